//! Identity for nefos (docs/design.md §7): users, projects (each user has a personal base
//! project), role assignments and bearer tokens, with the authorization rules every API
//! relies on.
//!
//! This crate holds no HTTP: the API crate translates Keystone and Synnefo requests into
//! calls on [`Identity`], and operator commands call it directly as [`Caller::Operator`].

mod auth;
mod cache;
mod caller;
mod error;
mod model;
mod password;
mod projects;
mod secret;
mod throttle;
mod users;
mod validate;

use std::sync::Arc;
use std::time::Duration;

use nefos_db::Database;

pub use auth::{IssuedToken, PasswordCredentials, Scope, UserRef};
pub use caller::{AuthContext, Caller, ScopedProject};
pub use error::IdentityError;
pub use model::{
    NewProject, NewUser, Project, ProjectFilter, ProjectKind, ProjectPatch, Role, RoleAssignment,
    RoleAssignmentFilter, User, UserFilter, UserPatch,
};
pub use throttle::LoginThrottleConfig;

/// The name of the system project whose `admin` role makes a cloud administrator.
pub const ADMIN_PROJECT: &str = "admin";

/// Settings of the identity service.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// How long a new token lives.
    pub token_ttl: Duration,
    /// How long this process may trust a token it validated before asking the database
    /// again (zero: always ask). Bounds how late a revocation made by another control-plane
    /// process takes effect here.
    pub token_cache_ttl: Duration,
    /// Limits on failed password logins.
    pub login_throttle: LoginThrottleConfig,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            token_ttl: Duration::from_secs(24 * 3600),
            token_cache_ttl: Duration::from_secs(5),
            login_throttle: LoginThrottleConfig::default(),
        }
    }
}

/// The identity service; cheap to clone, safe to share between requests.
#[derive(Debug, Clone)]
pub struct Identity {
    db: Database,
    config: IdentityConfig,
    cache: Arc<cache::TokenCache>,
    hashers: Arc<password::PasswordHashers>,
    throttle: Arc<throttle::LoginThrottle>,
}

impl Identity {
    pub fn new(db: Database, config: IdentityConfig) -> Self {
        let cache = Arc::new(cache::TokenCache::new(config.token_cache_ttl));
        let hashers = Arc::new(password::PasswordHashers::new());
        let throttle = Arc::new(throttle::LoginThrottle::new(&config.login_throttle));
        Identity {
            db,
            config,
            cache,
            hashers,
            throttle,
        }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }
}
