//! Callers for tests of domain crates: a new user acting in its personal project, and a
//! cloud administrator, as a token would present them.

use nefos_identity::{AuthContext, Caller, Identity, NewUser, ProjectKind, Role, ScopedProject};

/// A new user `name`, acting as a member of its personal project.
pub async fn member(identity: &Identity, name: &str) -> AuthContext {
    let user = identity
        .create_user(
            Caller::Operator,
            NewUser {
                name: name.to_owned(),
                email: None,
                password: None,
                enabled: true,
            },
        )
        .await
        .expect("create a test user");
    AuthContext {
        user_id: user.id.clone(),
        user_name: user.name.clone(),
        project: Some(ScopedProject {
            id: user.base_project_id.clone(),
            name: user.name.clone(),
            kind: ProjectKind::Base,
        }),
        roles: vec![Role::Member],
        methods: vec!["password".to_owned()],
        issued_at: 0,
        expires_at: i64::MAX,
        audit_id: String::new(),
    }
}

/// A new cloud administrator `name`: `admin` on a system project.
pub async fn cloud_admin(identity: &Identity, name: &str) -> AuthContext {
    let mut admin = member(identity, name).await;
    if let Some(project) = admin.project.as_mut() {
        project.kind = ProjectKind::System;
    }
    admin.roles = vec![Role::Admin];
    admin
}
