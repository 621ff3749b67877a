//! Tokens: validation, revocation, expiry, rescoping, and what invalidates them, on both
//! backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::{Cloud, Must, PASSWORD};
use nefos_identity::{Caller, IdentityError, ProjectPatch, Role, Scope, UserPatch};
use nefos_test_utils::each_backend;

#[tokio::test]
async fn validate_returns_what_the_token_was_issued_with() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let research = c.add_project("research").await;
        for role in [Role::Reader, Role::Admin] {
            c.identity
                .grant_role(Caller::Operator, &research.id, &alice.id, role)
                .await
                .must(t.label);
        }
        for scope in [
            Scope::Unscoped,
            Scope::ProjectName("alice".into()),
            Scope::ProjectId(research.id.clone()),
        ] {
            let issued = c.login("alice", scope.clone()).await;
            let validated = c.identity.validate(&issued.token).await.must(t.label);
            assert_eq!(validated, issued.context, "{}: {scope:?}", t.label);
            assert_eq!(validated.user_id, alice.id, "{}", t.label);
            assert_eq!(validated.methods, ["password"], "{}", t.label);
        }
        let issued = c
            .login("alice", Scope::ProjectId(research.id.clone()))
            .await;
        let validated = c.identity.validate(&issued.token).await.must(t.label);
        assert_eq!(validated.roles, [Role::Admin, Role::Reader], "{}", t.label);
        assert_eq!(
            validated.project.as_ref().unwrap().name,
            "research",
            "{}",
            t.label
        );
        assert!(!validated.is_cloud_admin(), "{}", t.label);

        // A user inspects its own token.
        let inspected = c
            .identity
            .inspect_token(Caller::Token(&validated), &issued.token)
            .await
            .must(t.label);
        assert_eq!(inspected, validated, "{}", t.label);

        // Anything that is not an issued token is invalid.
        let mut tampered = issued.token.clone();
        tampered.replace_range(0..1, if tampered.starts_with('A') { "B" } else { "A" });
        for bogus in ["", "x", tampered.as_str(), &issued.context.audit_id] {
            assert_err!(
                t.label,
                c.identity.validate(bogus).await,
                IdentityError::Unauthorized { .. }
            );
        }
    }
}

#[tokio::test]
async fn a_revoked_token_is_invalid() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        c.add_user("alice").await;
        let first = c.login("alice", Scope::Unscoped).await;
        let second = c.login("alice", Scope::ProjectName("alice".into())).await;

        c.identity
            .revoke_token(Caller::Token(&first.context), &first.token)
            .await
            .must(t.label);
        assert_err!(
            t.label,
            c.identity.validate(&first.token).await,
            IdentityError::Unauthorized { .. }
        );
        assert!(
            c.is_valid(&second).await,
            "{}: only the revoked token goes",
            t.label
        );
        // Revoking twice: the token is unknown now.
        assert_err!(
            t.label,
            c.identity
                .revoke_token(Caller::Operator, &first.token)
                .await,
            IdentityError::NotFound { .. }
        );
        assert_err!(
            t.label,
            c.identity
                .inspect_token(Caller::Operator, &first.token)
                .await,
            IdentityError::NotFound { .. }
        );
        // A revoked token cannot be exchanged for a new one.
        assert_err!(
            t.label,
            c.identity
                .authenticate_token(&first.token, Scope::Unscoped)
                .await,
            IdentityError::Unauthorized { .. }
        );

        // One token may revoke another of the same user; the operator may revoke any.
        let third = c.login("alice", Scope::Unscoped).await;
        c.identity
            .revoke_token(Caller::Token(&second.context), &third.token)
            .await
            .must(t.label);
        assert!(!c.is_valid(&third).await, "{}", t.label);
        c.identity
            .revoke_token(Caller::Operator, &second.token)
            .await
            .must(t.label);
        assert!(!c.is_valid(&second).await, "{}", t.label);
    }
}

#[tokio::test]
async fn a_token_with_a_zero_ttl_is_expired_at_once() {
    for t in each_backend().await {
        let c = Cloud::with_ttl(&t, Duration::ZERO);
        c.add_user("alice").await;
        let issued = c.login("alice", Scope::ProjectName("alice".into())).await;
        assert!(
            issued.context.expires_at <= issued.context.issued_at,
            "{}",
            t.label
        );
        assert_err!(
            t.label,
            c.identity.validate(&issued.token).await,
            IdentityError::Unauthorized { .. }
        );
        assert_err!(
            t.label,
            c.identity
                .authenticate_token(&issued.token, Scope::Unscoped)
                .await,
            IdentityError::Unauthorized { .. }
        );
        assert_err!(
            t.label,
            c.identity
                .inspect_token(Caller::Operator, &issued.token)
                .await,
            IdentityError::NotFound { .. }
        );
    }
}

#[tokio::test]
async fn rescoping_keeps_the_expiry_and_adds_the_token_method() {
    for t in each_backend().await {
        let short = Cloud::with_ttl(&t, Duration::from_secs(3600));
        // The same database under a service that would issue much longer tokens.
        let long = Cloud::with_ttl(&t, Duration::from_secs(7 * 24 * 3600));
        let alice = short.add_user("alice").await;
        let research = short.add_project("research").await;
        short
            .identity
            .grant_role(Caller::Operator, &research.id, &alice.id, Role::Member)
            .await
            .must(t.label);

        let unscoped = short.login("alice", Scope::Unscoped).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let scoped = long
            .identity
            .authenticate_token(&unscoped.token, Scope::ProjectName("alice".into()))
            .await
            .must(t.label);
        assert_ne!(scoped.token, unscoped.token, "{}", t.label);
        assert_eq!(
            scoped.context.expires_at, unscoped.context.expires_at,
            "{}",
            t.label
        );
        assert!(
            scoped.context.issued_at > unscoped.context.issued_at,
            "{}",
            t.label
        );
        assert_eq!(scoped.context.methods, ["token", "password"], "{}", t.label);
        assert_eq!(scoped.context.user_id, alice.id, "{}", t.label);
        assert_eq!(
            scoped.context.project_id(),
            Some(alice.base_project_id.as_str()),
            "{}",
            t.label
        );
        assert_eq!(scoped.context.roles, [Role::Member], "{}", t.label);
        let validated = long.identity.validate(&scoped.token).await.must(t.label);
        assert_eq!(validated, scoped.context, "{}", t.label);

        // Rescoping a rescoped token: same expiry, "token" listed once.
        let again = long
            .identity
            .authenticate_token(&scoped.token, Scope::ProjectId(research.id.clone()))
            .await
            .must(t.label);
        assert_eq!(
            again.context.expires_at, unscoped.context.expires_at,
            "{}",
            t.label
        );
        assert_eq!(again.context.methods, ["token", "password"], "{}", t.label);
        assert_eq!(
            again.context.project_id(),
            Some(research.id.as_str()),
            "{}",
            t.label
        );

        // Back to unscoped.
        let unscoped_again = long
            .identity
            .authenticate_token(&again.token, Scope::Unscoped)
            .await
            .must(t.label);
        assert_eq!(unscoped_again.context.project, None, "{}", t.label);
        assert!(unscoped_again.context.roles.is_empty(), "{}", t.label);

        // The original token stays valid; rescoping does not consume it.
        assert!(short.is_valid(&unscoped).await, "{}", t.label);

        // Rescoping to a project without a role is refused.
        let bob = short.add_user("bob").await;
        for scope in [
            Scope::ProjectId(bob.base_project_id.clone()),
            Scope::ProjectName("bob".into()),
        ] {
            assert_err!(
                t.label,
                long.identity
                    .authenticate_token(&unscoped.token, scope)
                    .await,
                IdentityError::Unauthorized { .. }
            );
        }
    }
}

#[tokio::test]
async fn an_administrator_changing_a_password_revokes_the_users_tokens() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let bob = c.add_user("bob").await;
        let unscoped = c.login("alice", Scope::Unscoped).await;
        let scoped = c.base_login(&alice).await;
        let bobs = c.base_login(&bob).await;

        // Changing something else revokes nothing.
        let patch = UserPatch {
            email: Some(None),
            ..Default::default()
        };
        c.identity
            .update_user(Caller::Operator, &alice.id, patch)
            .await
            .must(t.label);
        assert!(
            c.is_valid(&unscoped).await && c.is_valid(&scoped).await,
            "{}",
            t.label
        );

        let patch = UserPatch {
            password: Some("new secret".into()),
            ..Default::default()
        };
        c.identity
            .update_user(Caller::Operator, &alice.id, patch)
            .await
            .must(t.label);
        assert!(!c.is_valid(&unscoped).await, "{}", t.label);
        assert!(!c.is_valid(&scoped).await, "{}", t.label);
        assert!(
            c.is_valid(&bobs).await,
            "{}: other users keep their tokens",
            t.label
        );

        assert_err!(
            t.label,
            c.try_login("alice", PASSWORD, Scope::Unscoped).await,
            IdentityError::Unauthorized { .. }
        );
        c.try_login("alice", "new secret", Scope::Unscoped)
            .await
            .must(t.label);

        // An empty new password is refused and changes nothing.
        let patch = UserPatch {
            password: Some(String::new()),
            ..Default::default()
        };
        assert_err!(
            t.label,
            c.identity
                .update_user(Caller::Operator, &alice.id, patch)
                .await,
            IdentityError::InvalidInput {
                field: "password",
                ..
            }
        );
        c.try_login("alice", "new secret", Scope::Unscoped)
            .await
            .must(t.label);
    }
}

#[tokio::test]
async fn changing_ones_own_password_revokes_ones_tokens() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let bob = c.add_user("bob").await;
        let session = c.base_login(&alice).await;
        let other = c.login("alice", Scope::Unscoped).await;
        let bobs = c.base_login(&bob).await;
        let me = Caller::Token(&session.context);

        // A wrong original password changes nothing and revokes nothing.
        assert_err!(
            t.label,
            c.identity
                .change_own_password(me, &alice.id, "wrong".into(), "new secret".into())
                .await,
            IdentityError::Unauthorized { .. }
        );
        assert_err!(
            t.label,
            c.identity
                .change_own_password(me, &alice.id, PASSWORD.into(), String::new())
                .await,
            IdentityError::InvalidInput {
                field: "password",
                ..
            }
        );
        assert!(
            c.is_valid(&session).await && c.is_valid(&other).await,
            "{}",
            t.label
        );

        // Nobody changes another user's password this way, not even the operator.
        for caller in [Caller::Token(&bobs.context), Caller::Operator] {
            assert_err!(
                t.label,
                c.identity
                    .change_own_password(caller, &alice.id, PASSWORD.into(), "bob's".into())
                    .await,
                IdentityError::NotFound { .. }
            );
        }
        assert_err!(
            t.label,
            c.identity
                .change_own_password(me, &bob.id, PASSWORD.into(), "x".into())
                .await,
            IdentityError::NotFound { .. }
        );

        c.identity
            .change_own_password(me, &alice.id, PASSWORD.into(), "new secret".into())
            .await
            .must(t.label);
        assert!(
            !c.is_valid(&session).await,
            "{}: the token used is revoked too",
            t.label
        );
        assert!(!c.is_valid(&other).await, "{}", t.label);
        assert!(c.is_valid(&bobs).await, "{}", t.label);
        c.identity.validate(&bobs.token).await.must(t.label);
        assert_err!(
            t.label,
            c.try_login("alice", PASSWORD, Scope::Unscoped).await,
            IdentityError::Unauthorized { .. }
        );
        c.try_login("alice", "new secret", Scope::Unscoped)
            .await
            .must(t.label);
        // Bob's password is untouched.
        c.login("bob", Scope::Unscoped).await;
    }
}

#[tokio::test]
async fn disabling_a_user_revokes_its_tokens_for_good() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        c.add_user("bob").await;
        let unscoped = c.login("alice", Scope::Unscoped).await;
        let scoped = c.base_login(&alice).await;
        let bobs = c.login("bob", Scope::Unscoped).await;

        let patch = UserPatch {
            enabled: Some(false),
            ..Default::default()
        };
        let disabled = c
            .identity
            .update_user(Caller::Operator, &alice.id, patch)
            .await
            .must(t.label);
        assert!(!disabled.enabled, "{}", t.label);
        assert!(
            !c.is_valid(&unscoped).await && !c.is_valid(&scoped).await,
            "{}",
            t.label
        );
        assert!(c.is_valid(&bobs).await, "{}", t.label);

        // Enabling the user again does not bring the old tokens back.
        let patch = UserPatch {
            enabled: Some(true),
            ..Default::default()
        };
        c.identity
            .update_user(Caller::Operator, &alice.id, patch)
            .await
            .must(t.label);
        assert!(
            !c.is_valid(&unscoped).await && !c.is_valid(&scoped).await,
            "{}",
            t.label
        );
        let fresh = c.base_login(&alice).await;
        assert!(c.is_valid(&fresh).await, "{}", t.label);
    }
}

#[tokio::test]
async fn a_removed_role_revokes_the_scoped_tokens_for_good() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let research = c.add_project("research").await;
        for role in [Role::Member, Role::Reader] {
            c.identity
                .grant_role(Caller::Operator, &research.id, &alice.id, role)
                .await
                .must(t.label);
        }
        let scoped = c
            .login("alice", Scope::ProjectId(research.id.clone()))
            .await;
        let unscoped = c.login("alice", Scope::Unscoped).await;
        let base = c.base_login(&alice).await;
        assert_eq!(
            scoped.context.roles,
            [Role::Member, Role::Reader],
            "{}",
            t.label
        );

        // As Keystone: removing any role revokes the user's tokens on that project.
        c.identity
            .revoke_role(
                Caller::Operator,
                &research.id,
                &alice.id,
                Some(Role::Member),
            )
            .await
            .must(t.label);
        assert!(!c.is_valid(&scoped).await, "{}", t.label);
        assert!(
            c.is_valid(&unscoped).await,
            "{}: unscoped tokens do not care",
            t.label
        );
        assert!(
            c.is_valid(&base).await,
            "{}: other scopes do not care",
            t.label
        );
        // A new token gets the roles left.
        let again = c
            .login("alice", Scope::ProjectId(research.id.clone()))
            .await;
        assert_eq!(again.context.roles, [Role::Reader], "{}", t.label);

        c.identity
            .revoke_role(
                Caller::Operator,
                &research.id,
                &alice.id,
                Some(Role::Reader),
            )
            .await
            .must(t.label);
        assert!(!c.is_valid(&again).await, "{}", t.label);
        assert_err!(
            t.label,
            c.identity
                .authenticate_token(&unscoped.token, Scope::ProjectId(research.id.clone()))
                .await,
            IdentityError::Unauthorized { .. }
        );

        // Added again, the user needs a new token: the old ones stay revoked.
        c.identity
            .grant_role(Caller::Operator, &research.id, &alice.id, Role::Admin)
            .await
            .must(t.label);
        assert!(!c.is_valid(&scoped).await, "{}", t.label);
        assert!(!c.is_valid(&again).await, "{}", t.label);
        let fresh = c
            .login("alice", Scope::ProjectId(research.id.clone()))
            .await;
        assert_eq!(fresh.context.roles, [Role::Admin], "{}", t.label);
    }
}

#[tokio::test]
async fn disabling_or_deleting_the_scoped_project_invalidates_the_token() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let research = c.add_project("research").await;
        c.identity
            .grant_role(Caller::Operator, &research.id, &alice.id, Role::Member)
            .await
            .must(t.label);
        let scoped = c
            .login("alice", Scope::ProjectName("research".into()))
            .await;
        let unscoped = c.login("alice", Scope::Unscoped).await;

        let off = ProjectPatch {
            enabled: Some(false),
            ..Default::default()
        };
        c.identity
            .update_project(Caller::Operator, &research.id, off)
            .await
            .must(t.label);
        assert!(!c.is_valid(&scoped).await, "{}", t.label);
        let on = ProjectPatch {
            enabled: Some(true),
            ..Default::default()
        };
        c.identity
            .update_project(Caller::Operator, &research.id, on)
            .await
            .must(t.label);
        assert!(
            !c.is_valid(&scoped).await,
            "{}: revoked for good, as Keystone does",
            t.label
        );
        let scoped = c
            .login("alice", Scope::ProjectName("research".into()))
            .await;

        c.identity
            .delete_project(Caller::Operator, &research.id)
            .await
            .must(t.label);
        assert!(!c.is_valid(&scoped).await, "{}", t.label);
        assert!(!c.token_is_stored(&scoped).await, "{}", t.label);
        assert!(c.is_valid(&unscoped).await, "{}", t.label);
        assert!(
            c.base_login(&alice).await.context.project.is_some(),
            "{}",
            t.label
        );
    }
}

#[tokio::test]
async fn purging_removes_only_expired_tokens() {
    for t in each_backend().await {
        let expiring = Cloud::with_ttl(&t, Duration::ZERO);
        let lasting = Cloud::new(&t);
        let alice = lasting.add_user("alice").await;
        let expired_a = expiring.login("alice", Scope::Unscoped).await;
        let expired_b = expiring.base_login(&alice).await;
        let live = lasting.login("alice", Scope::Unscoped).await;
        let revoked = lasting.login("alice", Scope::Unscoped).await;
        lasting
            .identity
            .revoke_token(Caller::Operator, &revoked.token)
            .await
            .must(t.label);
        tokio::time::sleep(Duration::from_millis(5)).await;

        // Within the grace period nothing goes.
        let purged = lasting
            .identity
            .purge_expired_tokens(Duration::from_secs(3600))
            .await;
        assert_eq!(purged.must(t.label), 0, "{}", t.label);
        assert!(lasting.token_is_stored(&expired_a).await, "{}", t.label);

        let purged = lasting
            .identity
            .purge_expired_tokens(Duration::ZERO)
            .await
            .must(t.label);
        assert_eq!(purged, 2, "{}", t.label);
        for gone in [&expired_a, &expired_b] {
            assert!(!lasting.token_is_stored(gone).await, "{}", t.label);
        }
        assert!(lasting.is_valid(&live).await, "{}", t.label);
        assert!(
            lasting.token_is_stored(&revoked).await,
            "{}: revoked tokens stay until they expire",
            t.label
        );
        let again = lasting
            .identity
            .purge_expired_tokens(Duration::ZERO)
            .await
            .must(t.label);
        assert_eq!(again, 0, "{}", t.label);
    }
}
