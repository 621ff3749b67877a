//! Authentication: exchanging a password or a token for a new, possibly scoped, token.

use std::net::IpAddr;
use std::time::Duration;

use nefos_db::identity::{self as q, TokenRow, UserRow};
use nefos_db::time::now_micros;

use crate::secret::{audit_id, new_token, token_hash};
use crate::{AuthContext, Identity, IdentityError, Project, ScopedProject};

/// How a credential names its user (always in the `Default` domain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Id(String),
    Name(String),
}

/// A user name or id with a password.
#[derive(Debug, Clone)]
pub struct PasswordCredentials {
    pub user: UserRef,
    pub password: String,
}

/// The project a new token should be scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Unscoped,
    ProjectId(String),
    ProjectName(String),
}

/// A freshly issued token: the secret, shown to the client once, and what it grants.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub context: AuthContext,
}

/// Longer than any user's name (255 characters of up to 4 bytes) or id.
const MAX_LOGIN_NAME_BYTES: usize = 1024;

const BAD_CREDENTIALS: &str =
    "the request you have made requires authentication: invalid user name or password";
const NO_ACCESS: &str =
    "the user has no role on the requested project, or it does not exist or is disabled";

impl Identity {
    /// Checks a password and issues a token.
    pub async fn authenticate_password(
        &self,
        credentials: PasswordCredentials,
        scope: Scope,
    ) -> Result<IssuedToken, IdentityError> {
        self.authenticate_password_from(None, credentials, scope)
            .await
    }

    /// [`Identity::authenticate_password`] for a client at `address`: failed logins are
    /// throttled per user name and per address (see `throttle.rs`), before any hashing.
    pub async fn authenticate_password_from(
        &self,
        address: Option<IpAddr>,
        credentials: PasswordCredentials,
        scope: Scope,
    ) -> Result<IssuedToken, IdentityError> {
        let name = match &credentials.user {
            UserRef::Id(id) | UserRef::Name(id) => id.clone(),
        };
        // No user has a longer name or id: nothing to check, and nothing worth counting.
        if name.len() > MAX_LOGIN_NAME_BYTES {
            return Err(IdentityError::Unauthorized {
                reason: BAD_CREDENTIALS,
            });
        }
        if let Err(wait) = self.throttle.attempt(&name, address) {
            return Err(IdentityError::Throttled {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        let checked = self.check_password(credentials).await;
        let user = match checked {
            Ok(Some(user)) => user,
            Ok(None) => {
                return Err(IdentityError::Unauthorized {
                    reason: BAD_CREDENTIALS,
                });
            }
            Err(error) => {
                self.throttle.abandoned(&name, address);
                return Err(error);
            }
        };
        self.throttle.succeeded(&name, address);
        let expires_at = now_micros().saturating_add(ttl_micros(self.config.token_ttl));
        self.issue(user, scope, vec!["password".to_owned()], expires_at)
            .await
    }

    /// The enabled user the credentials name, if the password is theirs.
    async fn check_password(
        &self,
        credentials: PasswordCredentials,
    ) -> Result<Option<UserRow>, IdentityError> {
        let row = match &credentials.user {
            UserRef::Id(id) => q::get_user(self.db.pool(), id).await?,
            UserRef::Name(name) => q::get_user_by_name(self.db.pool(), name).await?,
        };
        let stored = row.as_ref().and_then(|u| u.password_hash.clone());
        let password_ok = self.hashers.verify(stored, credentials.password).await?;
        Ok(row.filter(|user| password_ok && user.enabled))
    }

    /// Exchanges a valid token for a new one, typically to change its scope. The new token
    /// expires no later than the one it came from.
    pub async fn authenticate_token(
        &self,
        token: &str,
        scope: Scope,
    ) -> Result<IssuedToken, IdentityError> {
        let context = self.validate(token).await?;
        let user = q::get_user(self.db.pool(), &context.user_id).await?.ok_or(
            IdentityError::Unauthorized {
                reason: "the token is not valid",
            },
        )?;
        let mut methods = vec!["token".to_owned()];
        methods.extend(context.methods.into_iter().filter(|m| m != "token"));
        self.issue(user, scope, methods, context.expires_at).await
    }

    async fn issue(
        &self,
        user: UserRow,
        scope: Scope,
        methods: Vec<String>,
        expires_at: i64,
    ) -> Result<IssuedToken, IdentityError> {
        let (project, roles) = match scope {
            Scope::Unscoped => (None, Vec::new()),
            Scope::ProjectId(id) => {
                self.scope_to(&user, q::get_project(self.db.pool(), &id).await?)
                    .await?
            }
            Scope::ProjectName(name) => {
                self.scope_to(&user, q::get_project_by_name(self.db.pool(), &name).await?)
                    .await?
            }
        };
        let token = new_token();
        let row = TokenRow {
            token_hash: token_hash(&token),
            audit_id: audit_id(),
            user_id: user.id.clone(),
            project_id: project.as_ref().map(|p: &ScopedProject| p.id.clone()),
            methods: methods.join(","),
            issued_at: now_micros(),
            expires_at,
            revoked_at: None,
        };
        q::insert_token(self.db.pool(), &row).await?;
        let context = AuthContext {
            user_id: user.id,
            user_name: user.name,
            project,
            roles,
            methods,
            issued_at: row.issued_at,
            expires_at: row.expires_at,
            audit_id: row.audit_id,
        };
        Ok(IssuedToken { token, context })
    }

    async fn scope_to(
        &self,
        user: &UserRow,
        project: Option<nefos_db::identity::ProjectRow>,
    ) -> Result<(Option<ScopedProject>, Vec<crate::Role>), IdentityError> {
        let Some(project) = project.filter(|p| p.enabled).map(Project::from) else {
            return Err(IdentityError::Unauthorized { reason: NO_ACCESS });
        };
        let roles: Vec<crate::Role> = q::roles_on_project(self.db.pool(), &user.id, &project.id)
            .await?
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect();
        if roles.is_empty() {
            return Err(IdentityError::Unauthorized { reason: NO_ACCESS });
        }
        let scoped = ScopedProject {
            id: project.id,
            name: project.name,
            kind: project.kind,
        };
        Ok((Some(scoped), roles))
    }
}

fn ttl_micros(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX)
}
