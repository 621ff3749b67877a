//! Projects and role assignments, on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{Cloud, Must};
use nefos_identity::{
    Caller, IdentityError, NewProject, ProjectFilter, ProjectKind, ProjectPatch, Role,
    RoleAssignment, RoleAssignmentFilter, Scope,
};
use nefos_test_utils::each_backend;

fn assignment(project_id: &str, user_id: &str, role: Role) -> RoleAssignment {
    RoleAssignment {
        project_id: project_id.to_owned(),
        user_id: user_id.to_owned(),
        role,
    }
}

fn sorted(mut assignments: Vec<RoleAssignment>) -> Vec<RoleAssignment> {
    assignments.sort_by(|a, b| {
        (&a.project_id, &a.user_id, a.role).cmp(&(&b.project_id, &b.user_id, b.role))
    });
    assignments
}

#[tokio::test]
async fn creating_a_regular_project() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        c.add_user("alice").await;
        let research = c.add_project("research").await;
        assert_eq!(research.kind, ProjectKind::Regular, "{}", t.label);
        assert_eq!(research.owner_id, None, "{}", t.label);
        assert_eq!(research.description, "project research", "{}", t.label);
        let stored = c
            .identity
            .project(Caller::Operator, &research.id)
            .await
            .must(t.label);
        assert_eq!(stored, research, "{}", t.label);
        let by_name = c
            .identity
            .project_by_id_or_name(Caller::Operator, "research")
            .await
            .must(t.label);
        assert_eq!(by_name, research, "{}", t.label);
        let filter = RoleAssignmentFilter {
            project_id: Some(research.id),
            ..Default::default()
        };
        let members = c
            .identity
            .role_assignments(Caller::Operator, &filter)
            .await
            .must(t.label);
        assert!(
            members.is_empty(),
            "{}: a new project has no members",
            t.label
        );

        for name in ["research", "alice"] {
            let new = NewProject {
                name: name.into(),
                description: String::new(),
                enabled: true,
            };
            assert_err!(
                t.label,
                c.identity.create_project(Caller::Operator, new).await,
                IdentityError::Conflict { .. }
            );
        }
        for name in ["", " ", "a/b", "a\u{7}b"] {
            let new = NewProject {
                name: name.into(),
                description: String::new(),
                enabled: true,
            };
            assert_err!(
                t.label,
                c.identity.create_project(Caller::Operator, new).await,
                IdentityError::InvalidInput { field: "name", .. }
            );
        }
        let all = c
            .identity
            .projects(Caller::Operator, &ProjectFilter::default())
            .await;
        assert_eq!(all.must(t.label).len(), 2, "{}", t.label);
    }
}

#[tokio::test]
async fn projects_can_be_listed_with_filters() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let zeta = c.add_project("zeta").await;
        let off = NewProject {
            name: "beta".into(),
            description: String::new(),
            enabled: false,
        };
        c.identity
            .create_project(Caller::Operator, off)
            .await
            .must(t.label);
        c.identity
            .grant_role(Caller::Operator, &zeta.id, &alice.id, Role::Reader)
            .await
            .must(t.label);

        let names = |filter: ProjectFilter| {
            let identity = c.identity.clone();
            async move {
                identity
                    .projects(Caller::Operator, &filter)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            names(ProjectFilter::default()).await,
            ["alice", "beta", "zeta"],
            "{}",
            t.label
        );
        let filter = ProjectFilter {
            enabled: Some(false),
            ..Default::default()
        };
        assert_eq!(names(filter).await, ["beta"], "{}", t.label);
        let filter = ProjectFilter {
            name: Some("zeta".into()),
            ..Default::default()
        };
        assert_eq!(names(filter).await, ["zeta"], "{}", t.label);
        let filter = ProjectFilter {
            member: Some(alice.id.clone()),
            ..Default::default()
        };
        assert_eq!(names(filter).await, ["alice", "zeta"], "{}", t.label);
        let filter = ProjectFilter {
            member: Some(alice.id.clone()),
            enabled: Some(false),
            name: None,
        };
        assert!(names(filter).await.is_empty(), "{}", t.label);
        let projects = c
            .identity
            .user_projects(Caller::Operator, &alice.id)
            .await
            .must(t.label);
        let names: Vec<_> = projects.into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["alice", "zeta"], "{}", t.label);
    }
}

#[tokio::test]
async fn granting_a_role_is_idempotent() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let research = c.add_project("research").await;
        for _ in 0..3 {
            c.identity
                .grant_role(Caller::Operator, &research.id, &alice.id, Role::Member)
                .await
                .must(t.label);
        }
        let roles = c
            .identity
            .roles_on_project(Caller::Operator, &research.id, &alice.id)
            .await
            .must(t.label);
        assert_eq!(roles, [Role::Member], "{}", t.label);

        c.identity
            .grant_role(Caller::Operator, &research.id, &alice.id, Role::Reader)
            .await
            .must(t.label);
        c.identity
            .grant_role(Caller::Operator, &research.id, &alice.id, Role::Admin)
            .await
            .must(t.label);
        let roles = c
            .identity
            .roles_on_project(Caller::Operator, &research.id, &alice.id)
            .await
            .must(t.label);
        assert_eq!(
            roles,
            [Role::Admin, Role::Member, Role::Reader],
            "{}",
            t.label
        );
        // Alice asks about herself.
        let alices = c.login("alice", Scope::Unscoped).await;
        let own = c
            .identity
            .roles_on_project(Caller::Token(&alices.context), &research.id, &alice.id)
            .await
            .must(t.label);
        assert_eq!(own, roles, "{}", t.label);
        // No role on a project: an empty list.
        let other = c.add_project("other").await;
        let none = c
            .identity
            .roles_on_project(Caller::Token(&alices.context), &other.id, &alice.id)
            .await
            .must(t.label);
        assert!(none.is_empty(), "{}", t.label);

        assert_err!(
            t.label,
            c.identity
                .grant_role(Caller::Operator, "no-such-project", &alice.id, Role::Member)
                .await,
            IdentityError::NotFound {
                kind: "project",
                ..
            }
        );
        assert_err!(
            t.label,
            c.identity
                .grant_role(Caller::Operator, &research.id, "no-such-user", Role::Member)
                .await,
            IdentityError::NotFound { kind: "user", .. }
        );
    }
}

#[tokio::test]
async fn role_assignments_can_be_filtered() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let bob = c.add_user("bob").await;
        let research = c.add_project("research").await;
        let grants = [
            (&research.id, &alice.id, Role::Member),
            (&research.id, &alice.id, Role::Reader),
            (&research.id, &bob.id, Role::Admin),
            (&alice.base_project_id, &bob.id, Role::Reader),
        ];
        for (project, user, role) in grants {
            c.identity
                .grant_role(Caller::Operator, project, user, role)
                .await
                .must(t.label);
        }
        let list = |filter: RoleAssignmentFilter| {
            let identity = c.identity.clone();
            async move {
                sorted(
                    identity
                        .role_assignments(Caller::Operator, &filter)
                        .await
                        .unwrap(),
                )
            }
        };

        let all = list(RoleAssignmentFilter::default()).await;
        assert_eq!(
            all.len(),
            6,
            "{}: 4 grants and 2 base memberships: {all:?}",
            t.label
        );

        let filter = RoleAssignmentFilter {
            project_id: Some(research.id.clone()),
            ..Default::default()
        };
        let expected = sorted(vec![
            assignment(&research.id, &alice.id, Role::Member),
            assignment(&research.id, &alice.id, Role::Reader),
            assignment(&research.id, &bob.id, Role::Admin),
        ]);
        assert_eq!(list(filter).await, expected, "{}", t.label);

        let filter = RoleAssignmentFilter {
            user_id: Some(bob.id.clone()),
            ..Default::default()
        };
        let expected = sorted(vec![
            assignment(&research.id, &bob.id, Role::Admin),
            assignment(&alice.base_project_id, &bob.id, Role::Reader),
            assignment(&bob.base_project_id, &bob.id, Role::Member),
        ]);
        assert_eq!(list(filter).await, expected, "{}", t.label);

        let filter = RoleAssignmentFilter {
            role: Some(Role::Reader),
            ..Default::default()
        };
        let expected = sorted(vec![
            assignment(&research.id, &alice.id, Role::Reader),
            assignment(&alice.base_project_id, &bob.id, Role::Reader),
        ]);
        assert_eq!(list(filter).await, expected, "{}", t.label);

        let filter = RoleAssignmentFilter {
            user_id: Some(alice.id.clone()),
            project_id: Some(research.id.clone()),
            role: Some(Role::Member),
        };
        let expected = vec![assignment(&research.id, &alice.id, Role::Member)];
        assert_eq!(list(filter).await, expected, "{}", t.label);

        let filter = RoleAssignmentFilter {
            user_id: Some(alice.id.clone()),
            role: Some(Role::Admin),
            ..Default::default()
        };
        assert!(list(filter).await.is_empty(), "{}", t.label);
    }
}

#[tokio::test]
async fn revoking_roles() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let admin = c.add_admin().await;
        let alice = c.add_user("alice").await;
        let bob = c.add_user("bob").await;
        let research = c.add_project("research").await;
        for role in [Role::Admin, Role::Member, Role::Reader] {
            c.identity
                .grant_role(Caller::Operator, &research.id, &alice.id, role)
                .await
                .must(t.label);
        }

        c.identity
            .revoke_role(
                Caller::Operator,
                &research.id,
                &alice.id,
                Some(Role::Reader),
            )
            .await
            .must(t.label);
        let roles = c
            .identity
            .roles_on_project(Caller::Operator, &research.id, &alice.id)
            .await
            .must(t.label);
        assert_eq!(roles, [Role::Admin, Role::Member], "{}", t.label);
        assert_err!(
            t.label,
            c.identity
                .revoke_role(
                    Caller::Operator,
                    &research.id,
                    &alice.id,
                    Some(Role::Reader)
                )
                .await,
            IdentityError::NotFound { .. }
        );

        // `None` revokes every role.
        c.identity
            .revoke_role(Caller::Operator, &research.id, &alice.id, None)
            .await
            .must(t.label);
        let roles = c
            .identity
            .roles_on_project(Caller::Operator, &research.id, &alice.id)
            .await
            .must(t.label);
        assert!(roles.is_empty(), "{}", t.label);
        assert_err!(
            t.label,
            c.identity
                .revoke_role(Caller::Operator, &research.id, &alice.id, None)
                .await,
            IdentityError::NotFound { .. }
        );
        assert_err!(
            t.label,
            c.identity
                .revoke_role(Caller::Operator, "no-such-project", &alice.id, None)
                .await,
            IdentityError::NotFound { .. }
        );
        assert_err!(
            t.label,
            c.identity
                .revoke_role(Caller::Operator, &research.id, "no-such-user", None)
                .await,
            IdentityError::NotFound { .. }
        );

        // Nobody leaves their own base project, the administrator its system project neither.
        for role in [None, Some(Role::Member)] {
            assert_err!(
                t.label,
                c.identity
                    .revoke_role(Caller::Operator, &alice.base_project_id, &alice.id, role)
                    .await,
                IdentityError::NotAllowed { .. }
            );
        }
        let token = c.admin_login().await;
        assert_err!(
            t.label,
            c.identity
                .revoke_role(
                    Caller::Token(&token.context),
                    &admin.base_project_id,
                    &admin.id,
                    None
                )
                .await,
            IdentityError::NotAllowed { .. }
        );
        let roles = c
            .identity
            .roles_on_project(Caller::Operator, &alice.base_project_id, &alice.id)
            .await
            .must(t.label);
        assert_eq!(roles, [Role::Member], "{}", t.label);
        assert!(c.is_valid(&token).await, "{}", t.label);

        // Another user can be removed from someone's base project.
        c.identity
            .grant_role(
                Caller::Operator,
                &alice.base_project_id,
                &bob.id,
                Role::Reader,
            )
            .await
            .must(t.label);
        c.identity
            .revoke_role(Caller::Operator, &alice.base_project_id, &bob.id, None)
            .await
            .must(t.label);
        let roles = c
            .identity
            .roles_on_project(Caller::Operator, &alice.base_project_id, &bob.id)
            .await
            .must(t.label);
        assert!(roles.is_empty(), "{}", t.label);
    }
}

#[tokio::test]
async fn base_and_system_projects_cannot_be_deleted_or_renamed() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let admin = c.add_admin().await;
        let alice = c.add_user("alice").await;
        let token = c.admin_login().await;
        for caller in [Caller::Operator, Caller::Token(&token.context)] {
            for project in [&alice.base_project_id, &admin.base_project_id] {
                assert_err!(
                    t.label,
                    c.identity.delete_project(caller, project).await,
                    IdentityError::NotAllowed { .. }
                );
                let patch = ProjectPatch {
                    name: Some("renamed".into()),
                    ..Default::default()
                };
                assert_err!(
                    t.label,
                    c.identity.update_project(caller, project, patch).await,
                    IdentityError::NotAllowed { .. }
                );
            }
        }
        let base = c
            .identity
            .project(Caller::Operator, &alice.base_project_id)
            .await
            .must(t.label);
        assert_eq!(base.name, "alice", "{}", t.label);
        let system = c
            .identity
            .project(Caller::Operator, &admin.base_project_id)
            .await
            .must(t.label);
        assert_eq!(system.name, "admin", "{}", t.label);
        assert!(c.is_valid(&token).await, "{}", t.label);

        // Other changes, and "renaming" to the same name, are fine.
        let patch = ProjectPatch {
            name: Some("alice".into()),
            description: Some("Alice's things".into()),
            ..Default::default()
        };
        let changed = c
            .identity
            .update_project(Caller::Operator, &alice.base_project_id, patch)
            .await
            .must(t.label);
        assert_eq!(changed.name, "alice", "{}", t.label);
        assert_eq!(changed.description, "Alice's things", "{}", t.label);
        assert_eq!(changed.kind, ProjectKind::Base, "{}", t.label);
    }
}

#[tokio::test]
async fn regular_projects_can_be_renamed_and_deleted() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let research = c.add_project("research").await;
        c.add_project("archive").await;
        c.identity
            .grant_role(Caller::Operator, &research.id, &alice.id, Role::Member)
            .await
            .must(t.label);

        let patch = ProjectPatch {
            name: Some("science".into()),
            ..Default::default()
        };
        let renamed = c
            .identity
            .update_project(Caller::Operator, &research.id, patch)
            .await
            .must(t.label);
        assert_eq!(renamed.name, "science", "{}", t.label);
        assert_eq!(renamed.id, research.id, "{}", t.label);
        let token = c.login("alice", Scope::ProjectName("science".into())).await;
        assert_eq!(
            token.context.project.as_ref().unwrap().name,
            "science",
            "{}",
            t.label
        );

        for taken in ["archive", "alice"] {
            let patch = ProjectPatch {
                name: Some(taken.into()),
                ..Default::default()
            };
            assert_err!(
                t.label,
                c.identity
                    .update_project(Caller::Operator, &research.id, patch)
                    .await,
                IdentityError::Conflict { .. }
            );
        }
        let patch = ProjectPatch {
            name: Some("a/b".into()),
            ..Default::default()
        };
        assert_err!(
            t.label,
            c.identity
                .update_project(Caller::Operator, &research.id, patch)
                .await,
            IdentityError::InvalidInput { field: "name", .. }
        );
        assert_err!(
            t.label,
            c.identity
                .update_project(Caller::Operator, "no-such-project", ProjectPatch::default())
                .await,
            IdentityError::NotFound { .. }
        );

        c.identity
            .delete_project(Caller::Operator, &research.id)
            .await
            .must(t.label);
        assert_err!(
            t.label,
            c.identity.project(Caller::Operator, &research.id).await,
            IdentityError::NotFound { .. }
        );
        let filter = RoleAssignmentFilter {
            project_id: Some(research.id.clone()),
            ..Default::default()
        };
        let left = c
            .identity
            .role_assignments(Caller::Operator, &filter)
            .await
            .must(t.label);
        assert!(left.is_empty(), "{}: {left:?}", t.label);
        assert!(!c.is_valid(&token).await, "{}", t.label);
        assert_err!(
            t.label,
            c.identity
                .delete_project(Caller::Operator, &research.id)
                .await,
            IdentityError::NotFound { .. }
        );
        // The name is free again; Alice is unaffected.
        c.add_project("science").await;
        c.base_login(&alice).await;
    }
}
