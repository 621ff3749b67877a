use nefos_blocks::BlockError;
use nefos_db::DbError;
use thiserror::Error;

/// Errors of object storage. Each maps to one status in the API crate.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("{what} not found")]
    NotFound { what: &'static str },

    /// The caller may not do this here. Also the answer for private resources of other
    /// accounts, whether or not they exist, so nothing leaks.
    #[error("access denied")]
    Forbidden,

    #[error("{reason}")]
    Conflict { reason: &'static str },

    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },

    #[error("a precondition failed")]
    PreconditionFailed,

    #[error("not modified")]
    NotModified,

    #[error("the requested range is not satisfiable")]
    RangeNotSatisfiable { size: u64 },

    #[error("the upload does not match its ETag: expected {expected}, got {actual}")]
    EtagMismatch { expected: String, actual: String },

    #[error("the upload would exceed the {scope} quota")]
    QuotaExceeded { scope: &'static str },

    /// The quota engine refused the change (`pithos.diskspace` does not fit), or failed.
    #[error(transparent)]
    Quota(#[from] nefos_quota::QuotaError),

    #[error("the object is larger than {limit} bytes")]
    TooLarge { limit: u64 },

    /// The client's body ended early or failed to arrive.
    #[error("reading the request body failed")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// Blocks listed by a hashmap are not in the store (Pithos `PUT ?hashmap`).
    #[error("{} blocks are missing", missing.len())]
    MissingBlocks { missing: Vec<String> },

    /// A stored hashmap does not parse: the database is damaged.
    #[error("the hashmap of object version {serial} is damaged")]
    CorruptHashmap { serial: i64 },

    #[error("the block store failed")]
    Blocks(#[source] BlockError),

    #[error(transparent)]
    Database(DbError),
}

impl From<DbError> for StorageError {
    fn from(error: DbError) -> Self {
        StorageError::Database(error)
    }
}

impl From<BlockError> for StorageError {
    fn from(error: BlockError) -> Self {
        StorageError::Blocks(error)
    }
}

impl StorageError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        StorageError::InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}
