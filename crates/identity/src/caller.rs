//! Who is asking: the context a validated token carries, and the authorization rules on it.

use crate::{ProjectKind, Role};

/// The project a token is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedProject {
    pub id: String,
    pub name: String,
    pub kind: ProjectKind,
}

/// What a valid token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthContext {
    pub user_id: String,
    pub user_name: String,
    /// `None` for an unscoped token.
    pub project: Option<ScopedProject>,
    /// The user's roles on the scoped project (empty when unscoped).
    pub roles: Vec<Role>,
    pub methods: Vec<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    pub audit_id: String,
}

impl AuthContext {
    /// A cloud administrator: a token scoped to the system project with its `admin` role.
    /// An `admin` role on any other project administers only that project.
    pub fn is_cloud_admin(&self) -> bool {
        self.project
            .as_ref()
            .is_some_and(|p| p.kind == ProjectKind::System)
            && self.roles.contains(&Role::Admin)
    }

    pub fn project_id(&self) -> Option<&str> {
        self.project.as_ref().map(|p| p.id.as_str())
    }
}

/// On whose behalf an identity operation runs.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// An operator with direct access to the database (`nefos admin`, `nefos up`).
    Operator,
    /// The bearer of a validated token.
    Token(&'a AuthContext),
}

impl Caller<'_> {
    /// Whether this caller may act on every user and project.
    pub fn is_admin(&self) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Token(ctx) => ctx.is_cloud_admin(),
        }
    }

    /// Whether this caller is `user_id` (or an administrator, who may act for anyone).
    pub fn is_or_admin(&self, user_id: &str) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Token(ctx) => ctx.is_cloud_admin() || ctx.user_id == user_id,
        }
    }

    /// The user behind this caller, if any.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Caller::Operator => None,
            Caller::Token(ctx) => Some(&ctx.user_id),
        }
    }

    pub(crate) fn require_admin(&self, action: &'static str) -> Result<(), crate::IdentityError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(crate::IdentityError::Forbidden { action })
        }
    }
}
