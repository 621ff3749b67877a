use std::path::PathBuf;

use thiserror::Error;

use crate::hash::BLOCK_SIZE;

/// Errors of the block store.
#[derive(Debug, Error)]
pub enum BlockError {
    /// A block longer than [`BLOCK_SIZE`] was offered.
    #[error("a block of {len} bytes is longer than the block size ({BLOCK_SIZE} bytes)")]
    TooLarge { len: usize },

    /// A filesystem operation of the `fs` backend failed.
    #[error("block store I/O failed: cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Another process holds the lock of a store-wide operation (a garbage collection).
    #[error("{what} is already running on the block store at {}", path.display())]
    Busy { what: &'static str, path: PathBuf },

    /// The `s3` backend's configuration was refused.
    #[error("invalid S3 block store configuration for bucket {bucket:?}")]
    S3Config {
        bucket: String,
        #[source]
        source: object_store::Error,
    },

    /// An `http://` endpoint without `allow_http`.
    #[error(
        "the S3 endpoint {endpoint} is plain HTTP, which the block store refuses unless \
         `allow_http = true` is set in [blocks] (for a trusted network only); or use https://"
    )]
    PlainHttp { endpoint: String },

    /// The start-up check read back other bytes than it wrote.
    #[error("the block store at {location} returned other bytes than were written to it")]
    ProbeMismatch { location: String },

    /// A request to the S3 service failed.
    #[error("S3 request failed: cannot {action} {key}")]
    S3 {
        action: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },

    #[error("a background task of the block store failed")]
    Task(#[source] tokio::task::JoinError),
}

impl BlockError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> BlockError {
        let path = path.into();
        move |source| BlockError::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn s3(
        action: &'static str,
        key: &object_store::path::Path,
    ) -> impl FnOnce(object_store::Error) -> BlockError {
        let key = key.to_string();
        move |source| BlockError::S3 {
            action,
            key,
            source,
        }
    }
}

pub type Result<T, E = BlockError> = std::result::Result<T, E>;
