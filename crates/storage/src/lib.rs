//! Object storage for nefos (docs/design.md §4): Pithos semantics over the
//! content-addressed block store. An account is a project; containers hold objects; an
//! object version is an ordered list of block hashes (its hashmap) plus its size and
//! metadata, so copying or moving an object copies a list, never data.
//!
//! No HTTP here: the API crate translates the Swift and Pithos protocols into calls on
//! [`Storage`].

mod access;
mod account;
mod acl;
mod charging;
mod container;
mod content;
mod digest;
mod download;
mod error;
mod expiry;
mod expiry_time;
mod gc;
mod grantees;
mod listing;
mod manifest;
mod meta;
mod object;
mod pithos;
mod signed;
mod upload;
mod write_access;

use nefos_blocks::BlockStore;
use nefos_db::Database;
use nefos_quota::Quotas;

pub use access::{Accessor, Permission, Sharing, SignedScope};
pub use account::AccountInfo;
pub use acl::{AclKind, clean_acl};
pub use container::{ContainerInfo, ContainerUpdate, Versioning};
pub use content::{Content, has_own_blocks};
pub use download::ByteRange;
pub use error::StorageError;
pub use expiry_time::{MAX_DELETE_AT, delete_after, delete_at};
pub use listing::{ListEntry, ListQuery, MAX_LISTING};
pub use manifest::{
    MAX_MANIFEST_BYTES, MAX_SEGMENTS, ManifestError, ObjectSegmentSpec, SegmentProblem,
    SegmentSpec, StoredItem, StoredSegment, inline_data_len, is_valid_dynamic, manifest_text,
    parse_manifest, split_path, stored_segments,
};
pub use meta::{Metadata, MetadataLimits, SWIFT_CONSTRAINT};
pub use object::{
    MAX_OBJECT_SIZE, ObjectInfo, ObjectUpdate, Preconditions, STORED_HEADERS, VersionSelector,
    WriteOptions, guess_content_type,
};
pub use pithos::{DataUpdate, SourceObject};
pub use signed::{SIGNING_KEY_NAMES, SigningKeys};

/// The object storage service; cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    db: Database,
    blocks: BlockStore,
    /// Charges `pithos.diskspace` for every stored version.
    quotas: Quotas,
}

impl Storage {
    /// Object storage over `db` and `blocks`, charging through `quotas` (which must be
    /// the process's one engine: it marks the commissions this process holds pending).
    pub fn new(db: Database, blocks: BlockStore, quotas: Quotas) -> Self {
        Storage { db, blocks, quotas }
    }

    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    pub fn blocks(&self) -> &BlockStore {
        &self.blocks
    }

    pub fn database(&self) -> &Database {
        &self.db
    }
}
