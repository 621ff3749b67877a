//! The image service (docs/images.md): Glance v2 and Synnefo's Plankton over the object
//! store. An image is an object version with image metadata: uploading through Glance
//! writes an object into the owner's `images` container, registering through Plankton
//! names an object that is already there, and both give the same kind of image. No image
//! bytes exist outside the block store, so images, files and snapshots share blocks, and
//! the bytes count against the owner's `pithos.diskspace` as the object they are.
//!
//! No HTTP here: the API crate translates Glance and Plankton into calls on [`Images`].

mod boot;
mod caller;
mod data;
mod error;
mod fields;
mod hashing;
mod inspect;
mod listing;
mod members;
mod model;
mod registry;

use nefos_db::Database;
use nefos_storage::Storage;

pub use boot::BootSource;
pub use caller::Caller;
pub use data::{
    Arrival, ByteRangeRequest, ImageData, ObjectRef, REGISTERED_CONTAINER_FORMAT,
    UNBOOTABLE_PROPERTY, UPLOAD_CONTAINER,
};
pub use error::ImageError;
pub use fields::{FieldValue, ImageField, PatchOp, PatchOperation};
pub use inspect::Inspected;
pub use listing::{
    DEFAULT_LIMIT, DateFilter, DateOperator, ListPage, ListQuery, MAX_LIMIT, MemberStatusFilter,
    SortDirection, SortKey, VisibilityFilter,
};
pub use model::{
    CONTAINER_FORMATS, DISK_FORMATS, Image, ImageStatus, Member, MemberStatus, ObjectLocation,
    Visibility,
};
pub use registry::NewImage;

/// The image service; cheap to clone.
#[derive(Debug, Clone)]
pub struct Images {
    db: Database,
    storage: Storage,
    /// The largest image an upload may store (Glance's `image_size_cap`).
    size_cap: u64,
}

/// Glance's default `image_size_cap`: 1 TiB.
pub const DEFAULT_SIZE_CAP: u64 = 1 << 40;

impl Images {
    pub fn new(storage: Storage) -> Self {
        Images {
            db: storage.database().clone(),
            storage,
            size_cap: DEFAULT_SIZE_CAP,
        }
    }

    /// Sets the largest image an upload may store.
    #[must_use]
    pub fn with_size_cap(mut self, bytes: u64) -> Self {
        self.size_cap = bytes;
        self
    }

    pub fn size_cap(&self) -> u64 {
        self.size_cap
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Removes the records of images whose object was deleted or overwritten: they stopped
    /// being images at that moment (every read checks), this only drops their rows.
    pub async fn forget_unregistered(&self) -> Result<u64, ImageError> {
        Ok(nefos_db::image::delete_orphans(self.db.pool()).await?)
    }

    /// Undoes the uploads, stages and imports of control-plane processes silent for
    /// `silence` (they stopped mid-request): an upload or stage goes back to `queued` and
    /// what it stored is deleted; an import goes back to `uploading`, its staged data kept.
    /// Returns how many images it put back.
    pub async fn recover_interrupted(
        &self,
        silence: std::time::Duration,
    ) -> Result<usize, ImageError> {
        let silence = i64::try_from(silence.as_micros()).unwrap_or(i64::MAX);
        let alive_since = nefos_db::time::now_micros().saturating_sub(silence);
        let rows = nefos_db::image::interrupted_by_stopped(
            self.db.pool(),
            alive_since,
            self.storage.quotas().instance(),
        )
        .await?;
        let mut recovered = 0;
        for row in rows {
            let importing = row.status == ImageStatus::Importing.as_str();
            if !importing {
                self.storage
                    .purge_object_for_service(&row.owner_id, UPLOAD_CONTAINER, &row.id)
                    .await?;
            }
            let back = if importing {
                ImageStatus::Uploading
            } else {
                ImageStatus::Queued
            };
            if self
                .transition(&row.id, &[row.status.as_str()], back)
                .await?
            {
                tracing::warn!(image = %row.id, status = %row.status, "put back an image whose upload stopped with its process");
                recovered += 1;
            }
        }
        Ok(recovered)
    }
}
