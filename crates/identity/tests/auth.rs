//! Password authentication: scopes, and failures that do not tell why, on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{Cloud, Must, PASSWORD, new_user};
use nefos_identity::{
    Caller, IdentityConfig, IdentityError, NewProject, NewUser, PasswordCredentials, ProjectKind,
    ProjectPatch, Role, Scope, UserPatch, UserRef,
};
use nefos_test_utils::each_backend;

#[tokio::test]
async fn an_unscoped_token_names_the_user_and_nothing_else() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let issued = c.login("alice", Scope::Unscoped).await;
        let ctx = &issued.context;
        assert_eq!(ctx.user_id, alice.id, "{}", t.label);
        assert_eq!(ctx.user_name, "alice", "{}", t.label);
        assert_eq!(ctx.project, None, "{}", t.label);
        assert!(ctx.roles.is_empty(), "{}", t.label);
        assert_eq!(ctx.methods, ["password"], "{}", t.label);
        assert!(!ctx.is_cloud_admin(), "{}", t.label);
        let ttl = i64::try_from(IdentityConfig::default().token_ttl.as_micros()).unwrap();
        let lifetime = ctx.expires_at - ctx.issued_at;
        assert!(
            lifetime <= ttl && lifetime > ttl - 60_000_000,
            "{}: a token lives for the configured ttl, not {lifetime} µs",
            t.label
        );
        assert_eq!(issued.token.len(), 43, "{}: 256 bits in base64url", t.label);
        assert!(!ctx.audit_id.is_empty(), "{}", t.label);

        // Each login issues a different token.
        let again = c.login("alice", Scope::Unscoped).await;
        assert_ne!(again.token, issued.token, "{}", t.label);
        assert_ne!(
            again.context.audit_id, issued.context.audit_id,
            "{}",
            t.label
        );
    }
}

#[tokio::test]
async fn a_token_can_be_scoped_by_project_id_or_name() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let research = c.add_project("research").await;
        c.identity
            .grant_role(Caller::Operator, &research.id, &alice.id, Role::Reader)
            .await
            .must(t.label);

        for scope in [
            Scope::ProjectId(alice.base_project_id.clone()),
            Scope::ProjectName("alice".to_owned()),
        ] {
            let issued = c.login("alice", scope.clone()).await;
            let project = issued.context.project.as_ref().unwrap();
            assert_eq!(project.id, alice.base_project_id, "{}: {scope:?}", t.label);
            assert_eq!(project.name, "alice", "{}: {scope:?}", t.label);
            assert_eq!(project.kind, ProjectKind::Base, "{}: {scope:?}", t.label);
            assert_eq!(
                issued.context.roles,
                [Role::Member],
                "{}: {scope:?}",
                t.label
            );
        }
        for scope in [
            Scope::ProjectId(research.id.clone()),
            Scope::ProjectName("research".into()),
        ] {
            let issued = c.login("alice", scope.clone()).await;
            assert_eq!(
                issued.context.project_id(),
                Some(research.id.as_str()),
                "{}",
                t.label
            );
            assert_eq!(
                issued.context.roles,
                [Role::Reader],
                "{}: {scope:?}",
                t.label
            );
            assert_eq!(
                issued.context.project.as_ref().map(|p| p.kind),
                Some(ProjectKind::Regular),
                "{}",
                t.label
            );
        }

        // The user may be named by id as well.
        let credentials = PasswordCredentials {
            user: UserRef::Id(alice.id.clone()),
            password: PASSWORD.into(),
        };
        let issued = c
            .identity
            .authenticate_password(credentials, Scope::ProjectName("alice".into()))
            .await
            .must(t.label);
        assert_eq!(issued.context.user_id, alice.id, "{}", t.label);
        assert_eq!(issued.context.user_name, "alice", "{}", t.label);
    }
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_fail_alike() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let wrong_password = assert_err!(
            t.label,
            c.try_login("alice", "wrong password", Scope::Unscoped)
                .await,
            IdentityError::Unauthorized { .. }
        );
        let unknown_user = assert_err!(
            t.label,
            c.try_login("mallory", PASSWORD, Scope::Unscoped).await,
            IdentityError::Unauthorized { .. }
        );
        let (IdentityError::Unauthorized { reason: a }, IdentityError::Unauthorized { reason: b }) =
            (&wrong_password, &unknown_user)
        else {
            unreachable!()
        };
        assert_eq!(
            a, b,
            "{}: the reasons must not tell which was wrong",
            t.label
        );
        assert_eq!(
            wrong_password.to_string(),
            unknown_user.to_string(),
            "{}",
            t.label
        );
        assert!(
            !a.contains("mallory") && !a.contains("alice"),
            "{}: {a}",
            t.label
        );

        // Unknown ids, empty and oversized passwords, and a right password with a wrong
        // scope attempt all fail the same way too.
        let cases = [
            (UserRef::Id("0".repeat(32)), PASSWORD.to_owned()),
            (UserRef::Id(alice.id.clone()), String::new()),
            (UserRef::Name("alice".into()), "x".repeat(10_000)),
            (UserRef::Name("ALICE".into()), PASSWORD.to_owned()),
        ];
        for (user, password) in cases {
            let credentials = PasswordCredentials {
                user: user.clone(),
                password,
            };
            let error = assert_err!(
                t.label,
                c.identity
                    .authenticate_password(credentials, Scope::Unscoped)
                    .await,
                IdentityError::Unauthorized { .. }
            );
            assert_eq!(
                error.to_string(),
                wrong_password.to_string(),
                "{}: {user:?}",
                t.label
            );
        }
        // A wrong password with a scope is refused before the scope is looked at.
        let error = assert_err!(
            t.label,
            c.try_login("alice", "wrong", Scope::ProjectName("alice".into()))
                .await,
            IdentityError::Unauthorized { .. }
        );
        assert_eq!(error.to_string(), wrong_password.to_string(), "{}", t.label);
    }
}

#[tokio::test]
async fn a_disabled_user_cannot_log_in() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let reference = assert_err!(
            t.label,
            c.try_login("alice", "wrong", Scope::Unscoped).await,
            IdentityError::Unauthorized { .. }
        );
        let patch = UserPatch {
            enabled: Some(false),
            ..Default::default()
        };
        c.identity
            .update_user(Caller::Operator, &alice.id, patch)
            .await
            .must(t.label);
        for scope in [Scope::Unscoped, Scope::ProjectName("alice".into())] {
            let error = assert_err!(
                t.label,
                c.try_login("alice", PASSWORD, scope).await,
                IdentityError::Unauthorized { .. }
            );
            assert_eq!(error.to_string(), reference.to_string(), "{}", t.label);
        }

        // Created disabled: the same.
        let bob = NewUser {
            enabled: false,
            ..new_user("bob")
        };
        c.identity
            .create_user(Caller::Operator, bob)
            .await
            .must(t.label);
        assert_err!(
            t.label,
            c.try_login("bob", PASSWORD, Scope::Unscoped).await,
            IdentityError::Unauthorized { .. }
        );

        // Enabled again, Alice logs in.
        let patch = UserPatch {
            enabled: Some(true),
            ..Default::default()
        };
        c.identity
            .update_user(Caller::Operator, &alice.id, patch)
            .await
            .must(t.label);
        c.login("alice", Scope::Unscoped).await;
    }
}

#[tokio::test]
async fn scoping_to_a_project_without_a_role_is_refused() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let bob = c.add_user("bob").await;
        c.add_admin().await;
        let research = c.add_project("research").await;
        let archive = c
            .identity
            .create_project(
                Caller::Operator,
                NewProject {
                    name: "archive".into(),
                    description: String::new(),
                    enabled: false,
                },
            )
            .await
            .must(t.label);
        c.identity
            .grant_role(Caller::Operator, &archive.id, &alice.id, Role::Member)
            .await
            .must(t.label);

        let no_access = assert_err!(
            t.label,
            c.try_login(
                "alice",
                PASSWORD,
                Scope::ProjectId(bob.base_project_id.clone())
            )
            .await,
            IdentityError::Unauthorized { .. }
        );
        let scopes = [
            Scope::ProjectName("bob".into()),
            Scope::ProjectId(research.id.clone()),
            Scope::ProjectName("research".into()),
            Scope::ProjectName("admin".into()),
            // Unknown projects fail the same way: no telling which exist.
            Scope::ProjectId("0".repeat(32)),
            Scope::ProjectName("no-such-project".into()),
            // A role on a disabled project is no access either.
            Scope::ProjectId(archive.id.clone()),
        ];
        for scope in scopes {
            let error = assert_err!(
                t.label,
                c.try_login("alice", PASSWORD, scope.clone()).await,
                IdentityError::Unauthorized { .. }
            );
            assert_eq!(
                error.to_string(),
                no_access.to_string(),
                "{}: {scope:?}",
                t.label
            );
        }

        // Enabling the project, or granting a role, opens it.
        let patch = ProjectPatch {
            enabled: Some(true),
            ..Default::default()
        };
        c.identity
            .update_project(Caller::Operator, &archive.id, patch)
            .await
            .must(t.label);
        c.login("alice", Scope::ProjectId(archive.id.clone())).await;
        c.identity
            .grant_role(
                Caller::Operator,
                &bob.base_project_id,
                &alice.id,
                Role::Reader,
            )
            .await
            .must(t.label);
        let issued = c.login("alice", Scope::ProjectName("bob".into())).await;
        assert_eq!(issued.context.roles, [Role::Reader], "{}", t.label);
    }
}
