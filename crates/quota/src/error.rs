use nefos_db::DbError;
use thiserror::Error;

/// A provision that did not fit: what it asked of which holding, and what the holding had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    pub project_id: String,
    /// `None` for the project's own limit (the sum over its members).
    pub member_id: Option<String>,
    pub resource: String,
    pub limit: i64,
    /// Usage before the request, counting what pending commissions reserve.
    pub usage: i64,
    pub requested: i64,
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let holder = match &self.member_id {
            Some(member) => format!("member {member} of project {}", self.project_id),
            None => format!("project {}", self.project_id),
        };
        write!(
            f,
            "{} of {holder}: limit {}, usage {}, requested {}",
            self.resource, self.limit, self.usage, self.requested
        )
    }
}

/// Errors of the quota engine and of projects.
#[derive(Debug, Error)]
pub enum QuotaError {
    /// The commission does not fit a limit; nothing of it was applied.
    #[error("quota exceeded: {0}")]
    Exceeded(Box<Shortfall>),

    /// A release would take usage below zero: the caller releases what it never held.
    #[error(
        "{resource} of {project_id}/{member_id} would go below zero (usage {usage}, released {released})"
    )]
    BelowZero {
        project_id: String,
        member_id: String,
        resource: String,
        usage: i64,
        released: i64,
    },

    #[error("unknown resource {resource:?}: no service registered it")]
    UnknownResource { resource: String },

    #[error("no pending commission {serial}")]
    NoCommission { serial: i64 },

    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },

    #[error("not allowed: {reason}")]
    NotAllowed { reason: String },

    /// The request conflicts with the state of what it acts on (joining a closed project,
    /// approving a decided application).
    #[error("{reason}")]
    Conflict { reason: String },

    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },

    #[error(transparent)]
    Db(#[from] DbError),
}

impl QuotaError {
    pub(crate) fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        QuotaError::NotFound {
            what,
            id: id.into(),
        }
    }

    pub(crate) fn not_allowed(reason: impl Into<String>) -> Self {
        QuotaError::NotAllowed {
            reason: reason.into(),
        }
    }

    pub(crate) fn conflict(reason: impl Into<String>) -> Self {
        QuotaError::Conflict {
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        QuotaError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
