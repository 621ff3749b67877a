//! Compute's errors. The messages of those users see are Nova's, word for word where
//! clients or people know them (`Instance X could not be found.`); the API maps each
//! variant to its status in one place.

use nefos_db::DbError;
use nefos_node_api::NodeClientError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ComputeError {
    #[error("no node {id} is registered")]
    UnknownNode { id: String },
    #[error("invalid node registration: {reason}")]
    InvalidNode { reason: String },
    #[error("node {id} has no credential: enrol it first (`nefos admin node enroll {id}`)")]
    NotEnrolled { id: String },
    #[error("node {id} is enrolled already: revoke it before enrolling it again")]
    AlreadyEnrolled { id: String },
    #[error("the join token is unknown, used or expired")]
    JoinRefused,
    #[error("node {node} failed the call")]
    Rpc {
        node: String,
        #[source]
        source: NodeClientError,
    },
    /// What the caller named does not exist, or is not the caller's to see.
    #[error("{message}")]
    NotFound { message: String },
    /// The request is malformed or names something unusable.
    #[error("{message}")]
    Invalid { message: String },
    /// Not allowed in the current state of what it acts on.
    #[error("{message}")]
    Conflict { message: String },
    /// Not allowed to this caller.
    #[error("{message}")]
    Forbidden { message: String },
    /// Over quota: Nova's 403 with its message.
    #[error("{message}")]
    OverQuota { message: String },
    #[error("cannot generate a keypair")]
    KeyGeneration(#[source] ssh_key::Error),
    #[error("the quota engine failed")]
    Quota(#[source] nefos_quota::QuotaError),
    #[error("the network service failed")]
    Network(#[source] nefos_network::NetworkError),
    #[error("the image service failed")]
    Image(#[source] nefos_image::ImageError),
    #[error(transparent)]
    Saga(#[from] nefos_saga::SagaError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ComputeError {
    pub fn not_found(message: impl Into<String>) -> ComputeError {
        ComputeError::NotFound {
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> ComputeError {
        ComputeError::Invalid {
            message: message.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> ComputeError {
        ComputeError::Conflict {
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> ComputeError {
        ComputeError::Forbidden {
            message: message.into(),
        }
    }

    /// Nova's 404 for a server.
    pub fn no_server(id: &str) -> ComputeError {
        ComputeError::not_found(format!("Instance {id} could not be found."))
    }

    /// Nova's 404 for a flavor.
    pub fn no_flavor(id: &str) -> ComputeError {
        ComputeError::not_found(format!("Flavor {id} could not be found."))
    }
}
