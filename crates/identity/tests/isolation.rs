//! Isolation between users, and what makes a cloud administrator, on both backends.
//!
//! A user must not learn that another user's resources exist: everything foreign is "not
//! found". Administrative actions without the cloud admin role are "forbidden".

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{Cloud, Must, new_user};
use nefos_identity::{
    AuthContext, Caller, IdentityError, NewProject, ProjectFilter, ProjectPatch, Role,
    RoleAssignmentFilter, Scope, User, UserFilter, UserPatch,
};
use nefos_test_utils::each_backend;

/// Checks that `ctx` (a token of `me`) sees nothing of `other` and cannot touch its token.
async fn assert_isolated(c: &Cloud, ctx: &AuthContext, me: &User, other: &User, other_token: &str) {
    let label = c.label;
    let caller = Caller::Token(ctx);
    let id = &c.identity;
    assert_err!(
        label,
        id.user(caller, &other.id).await,
        IdentityError::NotFound { .. }
    );
    assert_err!(
        label,
        id.user_by_id_or_name(caller, &other.name).await,
        IdentityError::NotFound { .. }
    );
    assert_err!(
        label,
        id.user_by_id_or_name(caller, &other.id).await,
        IdentityError::NotFound { .. }
    );
    assert_err!(
        label,
        id.user_projects(caller, &other.id).await,
        IdentityError::NotFound { .. }
    );
    assert_err!(
        label,
        id.project(caller, &other.base_project_id).await,
        IdentityError::NotFound { .. }
    );
    assert_err!(
        label,
        id.project_by_id_or_name(caller, &other.name).await,
        IdentityError::NotFound { .. }
    );
    assert_err!(
        label,
        id.roles_on_project(caller, &other.base_project_id, &other.id)
            .await,
        IdentityError::NotFound { .. }
    );
    assert_err!(
        label,
        id.inspect_token(caller, other_token).await,
        IdentityError::NotFound { .. }
    );
    assert_err!(
        label,
        id.revoke_token(caller, other_token).await,
        IdentityError::NotFound { .. }
    );
    id.validate(other_token).await.must(label);

    // A foreign resource looks exactly like a missing one.
    let missing = assert_err!(
        label,
        id.user(caller, &"0".repeat(32)).await,
        IdentityError::NotFound { .. }
    );
    let foreign = assert_err!(
        label,
        id.user(caller, &other.id).await,
        IdentityError::NotFound { .. }
    );
    assert_eq!(
        missing.to_string().replace(&"0".repeat(32), "ID"),
        foreign.to_string().replace(&other.id, "ID"),
        "{label}"
    );

    // Listings hold only the caller's own.
    let users = id.users(caller, &UserFilter::default()).await.must(label);
    assert_eq!(users, std::slice::from_ref(me), "{label}");
    let filter = UserFilter {
        name: Some(other.name.clone()),
        ..Default::default()
    };
    assert!(
        id.users(caller, &filter).await.must(label).is_empty(),
        "{label}"
    );

    let projects = id
        .projects(caller, &ProjectFilter::default())
        .await
        .must(label);
    let mine = id.user_projects(caller, &me.id).await.must(label);
    assert_eq!(projects, mine, "{label}");
    assert!(
        projects.iter().any(|p| p.id == me.base_project_id),
        "{label}: {projects:?}"
    );
    assert!(
        projects.iter().all(|p| p.id != other.base_project_id),
        "{label}: {projects:?}"
    );
    let filter = ProjectFilter {
        member: Some(other.id.clone()),
        ..Default::default()
    };
    assert!(
        id.projects(caller, &filter).await.must(label).is_empty(),
        "{label}"
    );
    let filter = ProjectFilter {
        name: Some(other.name.clone()),
        ..Default::default()
    };
    assert!(
        id.projects(caller, &filter).await.must(label).is_empty(),
        "{label}"
    );

    let assignments = id
        .role_assignments(caller, &RoleAssignmentFilter::default())
        .await
        .must(label);
    assert!(!assignments.is_empty(), "{label}");
    assert!(
        assignments.iter().all(|a| a.user_id == me.id),
        "{label}: {assignments:?}"
    );
    let filter = RoleAssignmentFilter {
        user_id: Some(other.id.clone()),
        ..Default::default()
    };
    assert!(
        id.role_assignments(caller, &filter)
            .await
            .must(label)
            .is_empty(),
        "{label}"
    );
    let filter = RoleAssignmentFilter {
        project_id: Some(other.base_project_id.clone()),
        ..Default::default()
    };
    assert!(
        id.role_assignments(caller, &filter)
            .await
            .must(label)
            .is_empty(),
        "{label}"
    );
}

/// Checks that every administrative action is forbidden to `ctx`.
async fn assert_not_admin(c: &Cloud, ctx: &AuthContext, victim: &User, project_id: &str) {
    let label = c.label;
    let caller = Caller::Token(ctx);
    let id = &c.identity;
    assert!(!ctx.is_cloud_admin(), "{label}: {ctx:?}");
    assert!(!caller.is_admin(), "{label}");
    assert_err!(
        label,
        id.create_user(caller, new_user("mallory")).await,
        IdentityError::Forbidden { .. }
    );
    let project = NewProject {
        name: "heist".into(),
        description: String::new(),
        enabled: true,
    };
    assert_err!(
        label,
        id.create_project(caller, project).await,
        IdentityError::Forbidden { .. }
    );
    for project in [project_id, victim.base_project_id.as_str()] {
        assert_err!(
            label,
            id.grant_role(caller, project, &ctx.user_id, Role::Admin)
                .await,
            IdentityError::Forbidden { .. }
        );
    }
    assert_err!(
        label,
        id.revoke_role(caller, &victim.base_project_id, &victim.id, None)
            .await,
        IdentityError::Forbidden { .. }
    );
    let patch = UserPatch {
        enabled: Some(false),
        ..Default::default()
    };
    assert_err!(
        label,
        id.update_user(caller, &victim.id, patch).await,
        IdentityError::Forbidden { .. }
    );
    // Not even on oneself: a user cannot enable itself or rename itself.
    let patch = UserPatch {
        name: Some("root".into()),
        ..Default::default()
    };
    assert_err!(
        label,
        id.update_user(caller, &ctx.user_id, patch).await,
        IdentityError::Forbidden { .. }
    );
    assert_err!(
        label,
        id.delete_user(caller, &victim.id).await,
        IdentityError::Forbidden { .. }
    );
    let patch = ProjectPatch {
        enabled: Some(false),
        ..Default::default()
    };
    assert_err!(
        label,
        id.update_project(caller, project_id, patch).await,
        IdentityError::Forbidden { .. }
    );
    assert_err!(
        label,
        id.delete_project(caller, project_id).await,
        IdentityError::Forbidden { .. }
    );

    // Nothing changed.
    let users = id
        .users(Caller::Operator, &UserFilter::default())
        .await
        .must(label);
    assert!(
        users.iter().all(|u| u.name != "mallory" && u.enabled),
        "{label}: {users:?}"
    );
    let filter = ProjectFilter {
        name: Some("heist".into()),
        ..Default::default()
    };
    assert!(
        id.projects(Caller::Operator, &filter)
            .await
            .must(label)
            .is_empty(),
        "{label}"
    );
    let victim_roles = id
        .roles_on_project(Caller::Operator, &victim.base_project_id, &ctx.user_id)
        .await;
    assert!(victim_roles.must(label).is_empty(), "{label}");
}

#[tokio::test]
async fn a_user_sees_nothing_of_another_user() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        c.add_admin().await;
        let alice = c.add_user("alice").await;
        let bob = c.add_user("bob").await;
        let bobs = c.base_login(&bob).await;

        for alices in [
            c.base_login(&alice).await,
            c.login("alice", Scope::Unscoped).await,
        ] {
            assert_isolated(&c, &alices.context, &alice, &bob, &bobs.token).await;
            // Her own things she sees.
            let caller = Caller::Token(&alices.context);
            c.identity.user(caller, &alice.id).await.must(t.label);
            c.identity
                .user_by_id_or_name(caller, "alice")
                .await
                .must(t.label);
            c.identity
                .project(caller, &alice.base_project_id)
                .await
                .must(t.label);
            c.identity
                .project_by_id_or_name(caller, "alice")
                .await
                .must(t.label);
            let mine = c
                .identity
                .inspect_token(caller, &alices.token)
                .await
                .must(t.label);
            assert_eq!(mine, alices.context, "{}", t.label);
        }
        // The system project is as hidden as any other.
        let alices = c.base_login(&alice).await;
        assert_err!(
            t.label,
            c.identity
                .project_by_id_or_name(Caller::Token(&alices.context), "admin")
                .await,
            IdentityError::NotFound { .. }
        );
    }
}

#[tokio::test]
async fn a_shared_project_is_visible_but_its_other_members_are_not() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let bob = c.add_user("bob").await;
        let research = c.add_project("research").await;
        for user in [&alice, &bob] {
            c.identity
                .grant_role(Caller::Operator, &research.id, &user.id, Role::Member)
                .await
                .must(t.label);
        }
        let alices = c
            .login("alice", Scope::ProjectName("research".into()))
            .await;
        let caller = Caller::Token(&alices.context);
        let seen = c.identity.project(caller, &research.id).await.must(t.label);
        assert_eq!(seen, research, "{}", t.label);
        assert_err!(
            t.label,
            c.identity.user(caller, &bob.id).await,
            IdentityError::NotFound { .. }
        );
        assert_err!(
            t.label,
            c.identity
                .roles_on_project(caller, &research.id, &bob.id)
                .await,
            IdentityError::NotFound { .. }
        );
        let filter = RoleAssignmentFilter {
            project_id: Some(research.id.clone()),
            ..Default::default()
        };
        let assignments = c
            .identity
            .role_assignments(caller, &filter)
            .await
            .must(t.label);
        assert_eq!(assignments.len(), 1, "{}: {assignments:?}", t.label);
        assert_eq!(assignments[0].user_id, alice.id, "{}", t.label);
        let names: Vec<_> = c
            .identity
            .projects(caller, &ProjectFilter::default())
            .await
            .must(t.label)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["alice", "research"], "{}", t.label);
    }
}

#[tokio::test]
async fn a_user_cannot_administer_the_cloud() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        c.add_admin().await;
        let alice = c.add_user("alice").await;
        let bob = c.add_user("bob").await;
        let research = c.add_project("research").await;
        let alices = c.base_login(&alice).await;
        assert_not_admin(&c, &alices.context, &bob, &research.id).await;
        let unscoped = c.login("alice", Scope::Unscoped).await;
        assert_not_admin(&c, &unscoped.context, &bob, &research.id).await;
    }
}

#[tokio::test]
async fn a_cloud_administrator_sees_and_manages_everything() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let admin = c.add_admin().await;
        let alice = c.add_user("alice").await;
        let bob = c.add_user("bob").await;
        let bobs = c.base_login(&bob).await;
        let token = c.admin_login().await;
        let caller = Caller::Token(&token.context);
        assert!(caller.is_admin(), "{}", t.label);

        let seen = c.identity.user(caller, &bob.id).await.must(t.label);
        assert_eq!(seen, bob, "{}", t.label);
        c.identity
            .user_by_id_or_name(caller, "bob")
            .await
            .must(t.label);
        let projects = c
            .identity
            .user_projects(caller, &bob.id)
            .await
            .must(t.label);
        assert_eq!(projects.len(), 1, "{}", t.label);
        assert_eq!(projects[0].id, bob.base_project_id, "{}", t.label);
        c.identity
            .project(caller, &bob.base_project_id)
            .await
            .must(t.label);
        c.identity
            .project_by_id_or_name(caller, "bob")
            .await
            .must(t.label);
        let roles = c
            .identity
            .roles_on_project(caller, &bob.base_project_id, &bob.id)
            .await
            .must(t.label);
        assert_eq!(roles, [Role::Member], "{}", t.label);
        let inspected = c
            .identity
            .inspect_token(caller, &bobs.token)
            .await
            .must(t.label);
        assert_eq!(inspected, bobs.context, "{}", t.label);

        let names: Vec<_> = c
            .identity
            .users(caller, &UserFilter::default())
            .await
            .must(t.label)
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["admin", "alice", "bob"], "{}", t.label);
        let names: Vec<_> = c
            .identity
            .projects(caller, &ProjectFilter::default())
            .await
            .must(t.label)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["admin", "alice", "bob"], "{}", t.label);
        let filter = ProjectFilter {
            member: Some(alice.id.clone()),
            ..Default::default()
        };
        let alices = c.identity.projects(caller, &filter).await.must(t.label);
        assert_eq!(alices.len(), 1, "{}", t.label);
        assert_eq!(alices[0].id, alice.base_project_id, "{}", t.label);
        let all = c
            .identity
            .role_assignments(caller, &RoleAssignmentFilter::default())
            .await
            .must(t.label);
        assert_eq!(all.len(), 3, "{}: {all:?}", t.label);

        let carol = c
            .identity
            .create_user(caller, new_user("carol"))
            .await
            .must(t.label);
        let project = NewProject {
            name: "research".into(),
            description: String::new(),
            enabled: true,
        };
        let research = c
            .identity
            .create_project(caller, project)
            .await
            .must(t.label);
        c.identity
            .grant_role(caller, &research.id, &carol.id, Role::Member)
            .await
            .must(t.label);
        c.identity
            .grant_role(caller, &research.id, &bob.id, Role::Reader)
            .await
            .must(t.label);
        c.identity
            .revoke_role(caller, &research.id, &bob.id, Some(Role::Reader))
            .await
            .must(t.label);
        c.login("carol", Scope::ProjectName("research".into()))
            .await;

        c.identity
            .revoke_token(caller, &bobs.token)
            .await
            .must(t.label);
        assert!(!c.is_valid(&bobs).await, "{}", t.label);
        c.identity
            .delete_user(caller, &alice.id)
            .await
            .must(t.label);
        assert!(c.is_valid(&token).await, "{}", t.label);
        assert_eq!(token.context.user_id, admin.id, "{}", t.label);
    }
}

#[tokio::test]
async fn an_admin_role_on_a_regular_project_does_not_make_a_cloud_administrator() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        c.add_admin().await;
        let alice = c.add_user("alice").await;
        let bob = c.add_user("bob").await;
        let research = c.add_project("research").await;
        let system = c
            .identity
            .project_by_id_or_name(Caller::Operator, "admin")
            .await
            .must(t.label);
        c.identity
            .grant_role(Caller::Operator, &research.id, &alice.id, Role::Admin)
            .await
            .must(t.label);
        c.identity
            .grant_role(
                Caller::Operator,
                &alice.base_project_id,
                &alice.id,
                Role::Admin,
            )
            .await
            .must(t.label);
        // Bob is a member, not an admin, of the system project.
        c.identity
            .grant_role(Caller::Operator, &system.id, &bob.id, Role::Member)
            .await
            .must(t.label);
        let bobs_base = c.base_login(&bob).await;

        for scope in [
            Scope::ProjectId(research.id.clone()),
            Scope::ProjectName("alice".into()),
        ] {
            let alices = c.login("alice", scope).await;
            assert!(alices.context.roles.contains(&Role::Admin), "{}", t.label);
            assert_not_admin(&c, &alices.context, &bob, &research.id).await;
            assert_isolated(&c, &alices.context, &alice, &bob, &bobs_base.token).await;
        }

        let bobs = c.login("bob", Scope::ProjectName("admin".into())).await;
        assert_eq!(bobs.context.roles, [Role::Member], "{}", t.label);
        assert_not_admin(&c, &bobs.context, &alice, &research.id).await;

        // Even the cloud administrator's own token is no administrator's without the system
        // project scope.
        let unscoped = c.login("admin", Scope::Unscoped).await;
        assert_not_admin(&c, &unscoped.context, &alice, &research.id).await;
    }
}
