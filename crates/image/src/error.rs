use nefos_db::DbError;
use nefos_storage::StorageError;
use thiserror::Error;

/// Errors of the image service. The Glance and Plankton APIs each map them to their
/// statuses in one place.
#[derive(Debug, Error)]
pub enum ImageError {
    /// No such image, or one the caller may not see: the two are indistinguishable.
    #[error("no image found with ID {id}")]
    NotFound { id: String },

    #[error("tag {tag} not found on image {image}")]
    TagNotFound { image: String, tag: String },

    #[error("no member {member} for image {image}")]
    MemberNotFound { image: String, member: String },

    /// The caller sees the image but may not do this to it.
    #[error("{reason}")]
    Forbidden { reason: String },

    /// Glance answers 403 for attributes the caller may never set.
    #[error("attribute '{attribute}' is {kind}")]
    ReservedAttribute {
        attribute: String,
        kind: &'static str,
    },

    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },

    /// Not allowed in the image's present state (Glance's 409s).
    #[error("{reason}")]
    Conflict { reason: String },

    /// The data is not a safe disk image of the declared format.
    #[error("the image data was refused: {reason}")]
    UnsafeData { reason: String },

    #[error("the requested range is not satisfiable")]
    RangeNotSatisfiable { size: u64 },

    /// The image has no data to serve (a queued image's download: Glance's 204).
    #[error("image {id} has no data")]
    NoData { id: String },

    /// The data could not be read to inspect it (not a verdict on the data).
    #[error("cannot read the image data to inspect it")]
    Inspection(#[source] nefos_disk_format::InspectError),

    /// A stored row makes no sense: the database is damaged.
    #[error("the image registry is damaged: {what}")]
    Corrupt { what: String },

    #[error("image storage failed")]
    Storage(#[source] StorageError),

    #[error(transparent)]
    Database(#[from] DbError),
}

impl ImageError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> ImageError {
        ImageError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(id: &str) -> ImageError {
        ImageError::NotFound { id: id.to_owned() }
    }

    pub(crate) fn forbidden(reason: impl Into<String>) -> ImageError {
        ImageError::Forbidden {
            reason: reason.into(),
        }
    }

    pub(crate) fn conflict(reason: impl Into<String>) -> ImageError {
        ImageError::Conflict {
            reason: reason.into(),
        }
    }
}

impl From<StorageError> for ImageError {
    fn from(error: StorageError) -> Self {
        ImageError::Storage(error)
    }
}
