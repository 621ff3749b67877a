//! Helpers shared by the quota engine's tests.

#![allow(dead_code, clippy::unwrap_used)]

use nefos_identity::{AuthContext, Caller, Identity, NewUser, User};

pub const DISK: &str = "pithos.diskspace";

/// A new user, without a password.
pub async fn user(identity: &Identity, name: &str) -> User {
    identity
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
        .unwrap()
}

/// What an unscoped token of `user` says: who the user is, with no roles.
pub fn context(user: &User) -> AuthContext {
    AuthContext {
        user_id: user.id.clone(),
        user_name: user.name.clone(),
        project: None,
        roles: Vec::new(),
        methods: vec!["password".to_owned()],
        issued_at: 0,
        expires_at: i64::MAX,
        audit_id: String::new(),
    }
}
