use nefos_db::DbError;
use thiserror::Error;

/// Errors of the identity service. Each variant maps to one HTTP status in the API crate.
#[derive(Debug, Error)]
pub enum IdentityError {
    /// The resource does not exist, or the caller may not know that it does.
    #[error("could not find {kind} {id}")]
    NotFound { kind: &'static str, id: String },

    /// Authentication failed. The reason is safe to show: it never tells which of user name
    /// and password was wrong.
    #[error("{reason}")]
    Unauthorized { reason: &'static str },

    /// The caller is authenticated but this action needs a role it lacks.
    #[error("you are not authorized to {action}")]
    Forbidden { action: &'static str },

    #[error("{what} already exists")]
    Conflict { what: &'static str },

    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },

    /// The request is valid but contradicts the state of the resource.
    #[error("{reason}")]
    NotAllowed { reason: &'static str },

    /// Too many failed logins for this user name or from this address: try again later.
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },

    /// Every password hashing thread is busy and the queue is full.
    #[error("the identity service is busy; try again in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },

    #[error("password hashing failed: {reason}")]
    PasswordHash { reason: String },

    #[error("a background task failed")]
    Task(#[source] tokio::task::JoinError),

    #[error(transparent)]
    Database(DbError),
}

impl From<DbError> for IdentityError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Conflict { what, .. } => IdentityError::Conflict { what },
            other => IdentityError::Database(other),
        }
    }
}

impl IdentityError {
    pub(crate) fn not_found(kind: &'static str, id: &str) -> Self {
        IdentityError::NotFound {
            kind,
            id: id.to_owned(),
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        IdentityError::InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}
