//! Concurrent requests: creations race on names, and every user still gets exactly one base
//! project, on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::BTreeSet;

use common::{Cloud, Must, new_user};
use futures::future::join_all;
use nefos_identity::{
    Caller, IdentityError, NewProject, ProjectFilter, ProjectKind, Role, RoleAssignmentFilter,
    UserFilter,
};
use nefos_test_utils::each_backend;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_concurrent_creations_all_succeed() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let names: Vec<String> = (0..30).map(|i| format!("user-{i:02}")).collect();
        let results = join_all(
            names
                .iter()
                .map(|name| c.identity.create_user(Caller::Operator, new_user(name))),
        )
        .await;
        let users: Vec<_> = results.into_iter().map(|r| r.must(t.label)).collect();

        let listed = c
            .identity
            .users(Caller::Operator, &UserFilter::default())
            .await
            .must(t.label);
        let listed: Vec<_> = listed.into_iter().map(|u| u.name).collect();
        assert_eq!(listed, names, "{}", t.label);
        let projects = c
            .identity
            .projects(Caller::Operator, &ProjectFilter::default())
            .await
            .must(t.label);
        assert_eq!(projects.len(), 30, "{}: one base project each", t.label);
        let ids: BTreeSet<_> = users.iter().map(|u| u.base_project_id.as_str()).collect();
        assert_eq!(
            ids.len(),
            30,
            "{}: no two users share a base project",
            t.label
        );

        for user in &users {
            let base = c
                .identity
                .project(Caller::Operator, &user.base_project_id)
                .await
                .must(t.label);
            assert_eq!(base.name, user.name, "{}", t.label);
            assert_eq!(base.kind, ProjectKind::Base, "{}", t.label);
            assert_eq!(
                base.owner_id.as_deref(),
                Some(user.id.as_str()),
                "{}",
                t.label
            );
            let roles = c
                .identity
                .roles_on_project(Caller::Operator, &base.id, &user.id)
                .await
                .must(t.label);
            assert_eq!(roles, [Role::Member], "{}: {}", t.label, user.name);
        }
        let assignments = c
            .identity
            .role_assignments(Caller::Operator, &RoleAssignmentFilter::default())
            .await
            .must(t.label);
        assert_eq!(assignments.len(), 30, "{}", t.label);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_ten_concurrent_creations_of_one_name_exactly_one_wins() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let results = join_all((0..10).map(|i| {
            let mut user = new_user("alice");
            user.email = Some(format!("alice{i}@example.org"));
            c.identity.create_user(Caller::Operator, user)
        }))
        .await;

        let mut winners = Vec::new();
        for result in results {
            match result {
                Ok(user) => winners.push(user),
                Err(IdentityError::Conflict { .. }) => {}
                Err(other) => panic!("{}: expected success or Conflict, got {other:?}", t.label),
            }
        }
        assert_eq!(winners.len(), 1, "{}: {winners:?}", t.label);
        let winner = &winners[0];

        let users = c
            .identity
            .users(Caller::Operator, &UserFilter::default())
            .await
            .must(t.label);
        assert_eq!(users, std::slice::from_ref(winner), "{}", t.label);
        let projects = c
            .identity
            .projects(Caller::Operator, &ProjectFilter::default())
            .await
            .must(t.label);
        assert_eq!(projects.len(), 1, "{}: {projects:?}", t.label);
        assert_eq!(projects[0].id, winner.base_project_id, "{}", t.label);
        assert_eq!(
            projects[0].owner_id.as_deref(),
            Some(winner.id.as_str()),
            "{}",
            t.label
        );
        c.base_login(winner).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_and_a_project_racing_for_one_name_do_not_both_get_it() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let users = (0..5).map(|_| async {
            c.identity
                .create_user(Caller::Operator, new_user("shared"))
                .await
                .map(|_| ())
        });
        let projects = (0..5).map(|_| async {
            let new = NewProject {
                name: "shared".into(),
                description: String::new(),
                enabled: true,
            };
            c.identity
                .create_project(Caller::Operator, new)
                .await
                .map(|_| ())
        });
        let (users, projects) = futures::join!(join_all(users), join_all(projects));
        let mut successes = 0;
        for result in users.into_iter().chain(projects) {
            match result {
                Ok(()) => successes += 1,
                Err(IdentityError::Conflict { .. }) => {}
                Err(other) => panic!("{}: expected success or Conflict, got {other:?}", t.label),
            }
        }
        assert_eq!(successes, 1, "{}", t.label);
        let projects = c
            .identity
            .projects(Caller::Operator, &ProjectFilter::default())
            .await
            .must(t.label);
        assert_eq!(projects.len(), 1, "{}: {projects:?}", t.label);
        let users = c
            .identity
            .users(Caller::Operator, &UserFilter::default())
            .await
            .must(t.label);
        match projects[0].kind {
            ProjectKind::Base => {
                assert_eq!(users.len(), 1, "{}", t.label);
                assert_eq!(users[0].base_project_id, projects[0].id, "{}", t.label);
            }
            _ => assert!(users.is_empty(), "{}: {users:?}", t.label),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_grants_of_one_role_all_succeed_once() {
    for t in each_backend().await {
        let c = Cloud::new(&t);
        let alice = c.add_user("alice").await;
        let research = c.add_project("research").await;
        let results = join_all((0..10).map(|_| {
            c.identity
                .grant_role(Caller::Operator, &research.id, &alice.id, Role::Member)
        }))
        .await;
        for result in results {
            result.must(t.label);
        }
        let filter = RoleAssignmentFilter {
            project_id: Some(research.id.clone()),
            ..Default::default()
        };
        let assignments = c
            .identity
            .role_assignments(Caller::Operator, &filter)
            .await
            .must(t.label);
        assert_eq!(assignments.len(), 1, "{}: {assignments:?}", t.label);
    }
}
