//! Users: creation with a base project, names, updates and deletion, on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{Cloud, Must, PASSWORD, new_user};
use nefos_identity::{
    Caller, IdentityError, NewUser, ProjectKind, Role, RoleAssignment, RoleAssignmentFilter, Scope,
    UserFilter, UserPatch,
};
use nefos_test_utils::each_backend;

#[tokio::test]
async fn creating_a_user_creates_its_base_project_with_the_user_as_member() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        assert_eq!(alice.name, "alice", "{}", t.label);
        assert_eq!(
            alice.email.as_deref(),
            Some("alice@example.org"),
            "{}",
            t.label
        );
        assert!(alice.enabled, "{}", t.label);
        assert_eq!(alice.id.len(), 32, "{}: ids are 32 hex digits", t.label);

        let base = c
            .identity
            .project(Caller::Operator, &alice.base_project_id)
            .await
            .must(t.label);
        assert_eq!(base.name, "alice", "{}", t.label);
        assert_eq!(base.kind, ProjectKind::Base, "{}", t.label);
        assert_eq!(
            base.owner_id.as_deref(),
            Some(alice.id.as_str()),
            "{}",
            t.label
        );
        assert!(base.enabled, "{}", t.label);

        let roles = c
            .identity
            .roles_on_project(Caller::Operator, &alice.base_project_id, &alice.id)
            .await
            .must(t.label);
        assert_eq!(roles, vec![Role::Member], "{}", t.label);

        let filter = RoleAssignmentFilter {
            user_id: Some(alice.id.clone()),
            ..Default::default()
        };
        let assignments = c
            .identity
            .role_assignments(Caller::Operator, &filter)
            .await
            .must(t.label);
        let expected = RoleAssignment {
            project_id: alice.base_project_id.clone(),
            user_id: alice.id.clone(),
            role: Role::Member,
        };
        assert_eq!(assignments, vec![expected], "{}", t.label);

        let projects = c
            .identity
            .user_projects(Caller::Operator, &alice.id)
            .await
            .must(t.label);
        assert_eq!(projects, vec![base.clone()], "{}", t.label);

        let fetched = c
            .identity
            .user(Caller::Operator, &alice.id)
            .await
            .must(t.label);
        assert_eq!(fetched, alice, "{}", t.label);
        let by_name = c
            .identity
            .user_by_id_or_name(Caller::Operator, "alice")
            .await
            .must(t.label);
        assert_eq!(by_name, alice, "{}", t.label);
    }
}

#[tokio::test]
async fn the_admin_user_owns_the_system_project_as_admin() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let admin = c.add_admin().await;
        let system = c
            .identity
            .project(Caller::Operator, &admin.base_project_id)
            .await
            .must(t.label);
        assert_eq!(system.name, nefos_identity::ADMIN_PROJECT, "{}", t.label);
        assert_eq!(system.kind, ProjectKind::System, "{}", t.label);
        assert_eq!(
            system.owner_id.as_deref(),
            Some(admin.id.as_str()),
            "{}",
            t.label
        );
        let roles = c
            .identity
            .roles_on_project(Caller::Operator, &system.id, &admin.id)
            .await
            .must(t.label);
        assert_eq!(roles, vec![Role::Admin], "{}", t.label);

        let token = c.admin_login().await;
        let project = token.context.project.as_ref().unwrap();
        assert_eq!(project.id, system.id, "{}", t.label);
        assert_eq!(project.kind, ProjectKind::System, "{}", t.label);
    }
}

#[tokio::test]
async fn a_duplicate_user_name_is_a_conflict_and_creates_nothing() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let mut again = new_user("alice");
        again.email = Some("other@example.org".to_owned());
        assert_err!(
            t.label,
            c.identity.create_user(Caller::Operator, again).await,
            IdentityError::Conflict { .. }
        );

        // Through an administrator's token too.
        c.add_admin().await;
        let admin = c.admin_login().await;
        assert_err!(
            t.label,
            c.identity
                .create_user(Caller::Token(&admin.context), new_user("alice"))
                .await,
            IdentityError::Conflict { .. }
        );

        let users = c
            .identity
            .users(Caller::Operator, &UserFilter::default())
            .await
            .must(t.label);
        let names: Vec<_> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["admin", "alice"], "{}", t.label);
        let stored = c
            .identity
            .user_by_id_or_name(Caller::Operator, "alice")
            .await
            .must(t.label);
        assert_eq!(stored, alice, "{}: the original user is untouched", t.label);
        let projects = c
            .identity
            .projects(Caller::Operator, &Default::default())
            .await
            .must(t.label);
        assert_eq!(
            projects.len(),
            2,
            "{}: no stray base project: {projects:?}",
            t.label
        );
    }
}

#[tokio::test]
async fn a_user_cannot_take_the_name_of_an_existing_project() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        c.add_admin().await;
        c.add_project("research").await;

        for name in ["research", "admin"] {
            assert_err!(
                t.label,
                c.identity
                    .create_user(Caller::Operator, new_user(name))
                    .await,
                IdentityError::Conflict { .. }
            );
        }
        let filter = UserFilter {
            name: Some("research".to_owned()),
            ..Default::default()
        };
        let users = c
            .identity
            .users(Caller::Operator, &filter)
            .await
            .must(t.label);
        assert!(users.is_empty(), "{}: {users:?}", t.label);
        let projects = c
            .identity
            .projects(Caller::Operator, &Default::default())
            .await
            .must(t.label);
        assert_eq!(projects.len(), 2, "{}: {projects:?}", t.label);
    }
}

#[tokio::test]
async fn invalid_names_emails_and_passwords_are_refused() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let long = "x".repeat(256);
        for name in ["", "   ", "a/b", "a\nb", "tab\there", long.as_str()] {
            let error = assert_err!(
                t.label,
                c.identity
                    .create_user(Caller::Operator, new_user(name))
                    .await,
                IdentityError::InvalidInput { field: "name", .. }
            );
            assert!(
                error.to_string().starts_with("invalid name"),
                "{}: {error}",
                t.label
            );
        }
        for email in [
            "alice",
            "@example.org",
            "alice@",
            "a b@example.org",
            "a\n@example.org",
        ] {
            let user = NewUser {
                email: Some(email.to_owned()),
                ..new_user("alice")
            };
            assert_err!(
                t.label,
                c.identity.create_user(Caller::Operator, user).await,
                IdentityError::InvalidInput { field: "email", .. }
            );
        }
        for password in [String::new(), "x".repeat(4097)] {
            let user = NewUser {
                password: Some(password),
                ..new_user("alice")
            };
            assert_err!(
                t.label,
                c.identity.create_user(Caller::Operator, user).await,
                IdentityError::InvalidInput {
                    field: "password",
                    ..
                }
            );
        }
        let users = c
            .identity
            .users(Caller::Operator, &UserFilter::default())
            .await
            .must(t.label);
        assert!(users.is_empty(), "{}: {users:?}", t.label);

        // Names beyond ASCII, and users without an address or a password, are fine.
        let greek = NewUser {
            email: None,
            password: None,
            ..new_user("Άλκηστις Παπαδοπούλου")
        };
        let user = c
            .identity
            .create_user(Caller::Operator, greek)
            .await
            .must(t.label);
        assert_eq!(user.email, None, "{}", t.label);
        let at_limit = NewUser {
            email: None,
            ..new_user(&"y".repeat(255))
        };
        let at_limit = c
            .identity
            .create_user(Caller::Operator, at_limit)
            .await
            .must(t.label);
        assert_eq!(at_limit.name.len(), 255, "{}", t.label);
    }
}

#[tokio::test]
async fn a_user_without_a_password_cannot_log_in_with_one() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let user = NewUser {
            password: None,
            ..new_user("ldap-only")
        };
        c.identity
            .create_user(Caller::Operator, user)
            .await
            .must(t.label);
        for password in [PASSWORD, ""] {
            assert_err!(
                t.label,
                c.try_login("ldap-only", password, Scope::Unscoped).await,
                IdentityError::Unauthorized { .. }
            );
        }
    }
}

#[tokio::test]
async fn update_user_changes_the_given_fields_only() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;

        let patch = UserPatch {
            email: Some(Some("a@example.net".to_owned())),
            ..Default::default()
        };
        let changed = c
            .identity
            .update_user(Caller::Operator, &alice.id, patch)
            .await
            .must(t.label);
        assert_eq!(
            changed.email.as_deref(),
            Some("a@example.net"),
            "{}",
            t.label
        );
        assert_eq!(changed.name, "alice", "{}", t.label);
        assert!(changed.enabled, "{}", t.label);
        assert!(changed.updated_at >= alice.updated_at, "{}", t.label);
        assert_eq!(changed.created_at, alice.created_at, "{}", t.label);

        let patch = UserPatch {
            email: Some(None),
            ..Default::default()
        };
        let cleared = c
            .identity
            .update_user(Caller::Operator, &alice.id, patch)
            .await
            .must(t.label);
        assert_eq!(cleared.email, None, "{}", t.label);
        let stored = c
            .identity
            .user(Caller::Operator, &alice.id)
            .await
            .must(t.label);
        assert_eq!(stored, cleared, "{}", t.label);

        let patch = UserPatch {
            email: Some(Some("nope".to_owned())),
            ..Default::default()
        };
        assert_err!(
            t.label,
            c.identity
                .update_user(Caller::Operator, &alice.id, patch)
                .await,
            IdentityError::InvalidInput { field: "email", .. }
        );
        let patch = UserPatch {
            name: Some("a/b".to_owned()),
            ..Default::default()
        };
        assert_err!(
            t.label,
            c.identity
                .update_user(Caller::Operator, &alice.id, patch)
                .await,
            IdentityError::InvalidInput { field: "name", .. }
        );
        assert_err!(
            t.label,
            c.identity
                .update_user(Caller::Operator, "no-such-user", UserPatch::default())
                .await,
            IdentityError::NotFound { .. }
        );
    }
}

#[tokio::test]
async fn renaming_a_user_renames_its_base_project() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        c.add_user("bob").await;
        c.add_project("research").await;

        let patch = UserPatch {
            name: Some("alicia".to_owned()),
            ..Default::default()
        };
        let renamed = c
            .identity
            .update_user(Caller::Operator, &alice.id, patch)
            .await
            .must(t.label);
        assert_eq!(renamed.name, "alicia", "{}", t.label);
        let base = c
            .identity
            .project(Caller::Operator, &alice.base_project_id)
            .await
            .must(t.label);
        assert_eq!(
            base.name, "alicia",
            "{}: the base project follows its user",
            t.label
        );
        let token = c
            .login("alicia", Scope::ProjectName("alicia".to_owned()))
            .await;
        assert_eq!(
            token.context.project_id(),
            Some(alice.base_project_id.as_str()),
            "{}",
            t.label
        );

        // The old name is free again, for a user and its base project.
        let new_alice = c.add_user("alice").await;
        assert_ne!(new_alice.id, alice.id, "{}", t.label);

        // Names held by another user or another project are refused, and nothing changes.
        for taken in ["bob", "research"] {
            let patch = UserPatch {
                name: Some(taken.to_owned()),
                ..Default::default()
            };
            assert_err!(
                t.label,
                c.identity
                    .update_user(Caller::Operator, &alice.id, patch)
                    .await,
                IdentityError::Conflict { .. }
            );
        }
        let stored = c
            .identity
            .user(Caller::Operator, &alice.id)
            .await
            .must(t.label);
        assert_eq!(stored.name, "alicia", "{}", t.label);
        let base = c
            .identity
            .project(Caller::Operator, &alice.base_project_id)
            .await
            .must(t.label);
        assert_eq!(base.name, "alicia", "{}", t.label);
    }
}

#[tokio::test]
async fn renaming_the_admin_user_keeps_the_system_project_name() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let admin = c.add_admin().await;
        let patch = UserPatch {
            name: Some("root".to_owned()),
            ..Default::default()
        };
        c.identity
            .update_user(Caller::Operator, &admin.id, patch)
            .await
            .must(t.label);
        let system = c
            .identity
            .project(Caller::Operator, &admin.base_project_id)
            .await
            .must(t.label);
        assert_eq!(system.name, nefos_identity::ADMIN_PROJECT, "{}", t.label);
        let token = c
            .login("root", Scope::ProjectName("admin".to_owned()))
            .await;
        assert!(token.context.is_cloud_admin(), "{}", t.label);
        // "admin" stays taken: it names the system project.
        assert_err!(
            t.label,
            c.identity
                .create_user(Caller::Operator, new_user("admin"))
                .await,
            IdentityError::Conflict { .. }
        );
    }
}

#[tokio::test]
async fn users_can_be_listed_with_filters() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        for name in ["carol", "alice", "bob"] {
            c.add_user(name).await;
        }
        let disabled = NewUser {
            enabled: false,
            ..new_user("dave")
        };
        c.identity
            .create_user(Caller::Operator, disabled)
            .await
            .must(t.label);

        let names = |users: Vec<nefos_identity::User>| {
            users.into_iter().map(|u| u.name).collect::<Vec<_>>()
        };
        let all = c
            .identity
            .users(Caller::Operator, &UserFilter::default())
            .await
            .must(t.label);
        assert_eq!(
            names(all),
            ["alice", "bob", "carol", "dave"],
            "{}: sorted by name",
            t.label
        );
        let filter = UserFilter {
            name: Some("bob".to_owned()),
            ..Default::default()
        };
        let bob = c
            .identity
            .users(Caller::Operator, &filter)
            .await
            .must(t.label);
        assert_eq!(names(bob), ["bob"], "{}", t.label);
        let filter = UserFilter {
            enabled: Some(false),
            ..Default::default()
        };
        let off = c
            .identity
            .users(Caller::Operator, &filter)
            .await
            .must(t.label);
        assert_eq!(names(off), ["dave"], "{}", t.label);
        let filter = UserFilter {
            enabled: Some(true),
            ..Default::default()
        };
        let on = c
            .identity
            .users(Caller::Operator, &filter)
            .await
            .must(t.label);
        assert_eq!(names(on), ["alice", "bob", "carol"], "{}", t.label);
    }
}

#[tokio::test]
async fn deleting_a_user_removes_its_base_project_roles_and_tokens() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let bob = c.add_user("bob").await;
        let research = c.add_project("research").await;
        c.identity
            .grant_role(Caller::Operator, &research.id, &alice.id, Role::Member)
            .await
            .must(t.label);
        // Bob works in Alice's base project too.
        c.identity
            .grant_role(
                Caller::Operator,
                &alice.base_project_id,
                &bob.id,
                Role::Member,
            )
            .await
            .must(t.label);
        let alice_unscoped = c.login("alice", Scope::Unscoped).await;
        let alice_base = c.base_login(&alice).await;
        let alice_research = c
            .login("alice", Scope::ProjectId(research.id.clone()))
            .await;
        let bob_in_alice = c
            .login("bob", Scope::ProjectId(alice.base_project_id.clone()))
            .await;
        let bob_base = c.base_login(&bob).await;

        c.identity
            .delete_user(Caller::Operator, &alice.id)
            .await
            .must(t.label);

        assert_err!(
            t.label,
            c.identity.user(Caller::Operator, &alice.id).await,
            IdentityError::NotFound { .. }
        );
        assert_err!(
            t.label,
            c.identity
                .project(Caller::Operator, &alice.base_project_id)
                .await,
            IdentityError::NotFound { .. }
        );
        for token in [&alice_unscoped, &alice_base, &alice_research, &bob_in_alice] {
            assert!(!c.is_valid(token).await, "{}: {:?}", t.label, token.context);
            assert!(
                !c.token_is_stored(token).await,
                "{}: {:?}",
                t.label,
                token.context
            );
        }
        assert!(
            c.is_valid(&bob_base).await,
            "{}: other tokens live on",
            t.label
        );
        let assignments = c
            .identity
            .role_assignments(Caller::Operator, &RoleAssignmentFilter::default())
            .await
            .must(t.label);
        assert!(
            assignments
                .iter()
                .all(|a| a.user_id != alice.id && a.project_id != alice.base_project_id),
            "{}: {assignments:?}",
            t.label
        );
        // The regular project stays.
        c.identity
            .project(Caller::Operator, &research.id)
            .await
            .must(t.label);
        assert_err!(
            t.label,
            c.try_login("alice", PASSWORD, Scope::Unscoped).await,
            IdentityError::Unauthorized { .. }
        );
        assert_err!(
            t.label,
            c.identity.delete_user(Caller::Operator, &alice.id).await,
            IdentityError::NotFound { .. }
        );

        // The name can be used again.
        let again = c.add_user("alice").await;
        assert_ne!(again.base_project_id, alice.base_project_id, "{}", t.label);
    }
}

#[tokio::test]
async fn the_admin_user_cannot_be_deleted() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let admin = c.add_admin().await;
        let token = c.admin_login().await;
        for caller in [Caller::Operator, Caller::Token(&token.context)] {
            assert_err!(
                t.label,
                c.identity.delete_user(caller, &admin.id).await,
                IdentityError::NotAllowed { .. }
            );
        }
        c.identity
            .user(Caller::Operator, &admin.id)
            .await
            .must(t.label);
        c.identity
            .project(Caller::Operator, &admin.base_project_id)
            .await
            .must(t.label);
        assert!(c.is_valid(&token).await, "{}", t.label);
    }
}

#[tokio::test]
async fn password_matches_tells_only_administrators() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        assert!(
            c.identity
                .password_matches(Caller::Operator, &alice.id, PASSWORD.to_owned())
                .await
                .must(t.label),
            "{}",
            t.label
        );
        assert!(
            !c.identity
                .password_matches(Caller::Operator, &alice.id, "not it".to_owned())
                .await
                .must(t.label),
            "{}",
            t.label
        );
        let alices = c.base_login(&alice).await;
        let refused = c
            .identity
            .password_matches(
                Caller::Token(&alices.context),
                &alice.id,
                PASSWORD.to_owned(),
            )
            .await;
        assert!(
            matches!(refused, Err(IdentityError::Forbidden { .. })),
            "{}: {refused:?}",
            t.label
        );
    }
}
