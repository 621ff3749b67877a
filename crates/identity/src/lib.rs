//! Identity for nefos (DESIGN §7): users, projects (each user has a personal base project),
//! role assignments and bearer tokens, with the authorization rules every API relies on.
//!
//! This crate holds no HTTP: the API crate translates Keystone and Synnefo requests into
//! calls on [`Identity`], and operator commands call it directly as [`Caller::Operator`].

mod auth;
mod caller;
mod error;
mod model;
mod password;
mod projects;
mod secret;
mod users;
mod validate;

use std::time::Duration;

use nefos_db::Database;

pub use auth::{IssuedToken, PasswordCredentials, Scope, UserRef};
pub use caller::{AuthContext, Caller, ScopedProject};
pub use error::IdentityError;
pub use model::{
    NewProject, NewUser, Project, ProjectFilter, ProjectKind, ProjectPatch, Role, RoleAssignment,
    RoleAssignmentFilter, User, UserFilter, UserPatch,
};

/// The name of the system project whose `admin` role makes a cloud administrator.
pub const ADMIN_PROJECT: &str = "admin";

/// Settings of the identity service.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// How long a new token lives.
    pub token_ttl: Duration,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            token_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// The identity service; cheap to clone, safe to share between requests.
#[derive(Debug, Clone)]
pub struct Identity {
    db: Database,
    config: IdentityConfig,
}

impl Identity {
    pub fn new(db: Database, config: IdentityConfig) -> Self {
        Identity { db, config }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }
}
