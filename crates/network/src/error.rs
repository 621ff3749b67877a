//! Networking's errors. Each carries the name Neutron gives its kind of error (the
//! `type` of Neutron's error body) and Neutron's message; the API maps the variants to
//! statuses in one place.

use nefos_db::DbError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum NetworkError {
    /// What the caller named does not exist, or is not the caller's to see.
    #[error("{message}")]
    NotFound { kind: &'static str, message: String },
    /// The request is malformed or names something unusable.
    #[error("{message}")]
    Invalid { kind: &'static str, message: String },
    /// Not possible in the current state of what it acts on (in use, exhausted, taken).
    #[error("{message}")]
    Conflict { kind: &'static str, message: String },
    /// Not allowed to this caller.
    #[error("{message}")]
    Forbidden { message: String },
    /// Over quota, in Neutron's words.
    #[error("Quota exceeded for resources: ['{resource}'].")]
    OverQuota { resource: &'static str },
    /// A stored value does not parse: the database was written by something else.
    #[error("stored data is corrupt: {what}")]
    Corrupt { what: String },
    #[error("the quota engine failed")]
    Quota(#[source] nefos_quota::QuotaError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl NetworkError {
    /// Neutron's `InvalidInput`.
    pub fn invalid(message: impl std::fmt::Display) -> NetworkError {
        NetworkError::Invalid {
            kind: "InvalidInput",
            message: format!("Invalid input for operation: {message}."),
        }
    }

    pub fn bad_request(kind: &'static str, message: impl Into<String>) -> NetworkError {
        NetworkError::Invalid {
            kind,
            message: message.into(),
        }
    }

    pub fn conflict(kind: &'static str, message: impl Into<String>) -> NetworkError {
        NetworkError::Conflict {
            kind,
            message: message.into(),
        }
    }

    /// Neutron's refusal by policy.
    pub fn not_allowed(rule: &str) -> NetworkError {
        NetworkError::Forbidden {
            message: format!("rule:{rule} is disallowed by policy"),
        }
    }

    pub fn no_network(id: &str) -> NetworkError {
        NetworkError::NotFound {
            kind: "NetworkNotFound",
            message: format!("Network {id} could not be found."),
        }
    }

    pub fn no_subnet(id: &str) -> NetworkError {
        NetworkError::NotFound {
            kind: "SubnetNotFound",
            message: format!("Subnet {id} could not be found."),
        }
    }

    pub fn no_port(id: &str) -> NetworkError {
        NetworkError::NotFound {
            kind: "PortNotFound",
            message: format!("Port {id} could not be found."),
        }
    }

    /// The error of a quota charge: Neutron's `OverQuota` when it did not fit.
    pub(crate) fn quota(resource: &'static str, error: nefos_quota::QuotaError) -> NetworkError {
        match error {
            nefos_quota::QuotaError::Exceeded(_) => NetworkError::OverQuota { resource },
            other => NetworkError::Quota(other),
        }
    }

    /// Neutron's name of the kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            NetworkError::NotFound { kind, .. }
            | NetworkError::Invalid { kind, .. }
            | NetworkError::Conflict { kind, .. } => kind,
            NetworkError::Forbidden { .. } => "PolicyNotAuthorized",
            NetworkError::OverQuota { .. } => "OverQuota",
            NetworkError::Corrupt { .. } | NetworkError::Quota(_) | NetworkError::Db(_) => {
                "HTTPInternalServerError"
            }
        }
    }
}
