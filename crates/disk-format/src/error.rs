use std::error::Error;
use std::fmt;

use thiserror::Error;

use crate::{ContentFormat, DiskFormat};

/// A part of an image, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structure {
    /// The header and its extensions: the first sector, then the first cluster.
    Header,
    L1Table,
    /// The L2 table an active L1 entry points at.
    L2Table {
        l1_index: u64,
    },
    RefcountTable,
    RefcountBlock {
        index: u64,
    },
    SnapshotTable,
    SnapshotL1Table {
        snapshot: u32,
    },
    /// A cluster of guest data an L2 entry points at.
    DataCluster {
        l1_index: u64,
        l2_index: u64,
    },
}

impl fmt::Display for Structure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Structure::Header => f.write_str("the header"),
            Structure::L1Table => f.write_str("the L1 table"),
            Structure::L2Table { l1_index } => write!(f, "the L2 table of L1 entry {l1_index}"),
            Structure::RefcountTable => f.write_str("the refcount table"),
            Structure::RefcountBlock { index } => write!(f, "refcount block {index}"),
            Structure::SnapshotTable => f.write_str("the snapshot table"),
            Structure::SnapshotL1Table { snapshot } => {
                write!(f, "the L1 table of snapshot {snapshot}")
            }
            Structure::DataCluster { l1_index, l2_index } => write!(
                f,
                "the data cluster of L2 entry {l2_index} of L1 entry {l1_index}"
            ),
        }
    }
}

/// Why an image was refused, or could not be read.
#[derive(Debug, Error)]
pub enum InspectError {
    #[error("cannot read {len} bytes at offset {offset} of the image")]
    Read {
        offset: u64,
        len: usize,
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
    #[error("reading {len} bytes at offset {offset} of the image returned {got}")]
    ShortRead { offset: u64, len: usize, got: usize },
    #[error("the image is {found} but was declared {declared}")]
    Mismatch {
        declared: DiskFormat,
        found: ContentFormat,
    },
    #[error("qcow2 version {version} is not supported (only 2 and 3)")]
    Qcow2Version { version: u32 },
    #[error(
        "the qcow2 header length {length} is invalid: version 3 needs at least 104 bytes, a \
         multiple of 8, within the first cluster"
    )]
    HeaderLength { length: u32 },
    #[error("cluster_bits {bits} is out of range ({min}..={max})")]
    ClusterBits { bits: u32, min: u32, max: u32 },
    #[error("refcount_order {order} is out of range (0..=6)")]
    RefcountOrder { order: u32 },
    #[error(
        "the image names a backing file {}, which would let the image read files of the host",
        quoted(.name.as_deref(), "(whose name lies outside the header cluster)")
    )]
    BackingFile { name: Option<String> },
    #[error(
        "the image keeps its data in an external data file {}, which would let the image \
         read files of the host",
        quoted(.name.as_deref(), "(not named in the image, so chosen by whoever opens it)")
    )]
    DataFile { name: Option<String> },
    #[error("the image is encrypted (crypt_method {method}); nefos runs unencrypted images only")]
    Encrypted { method: u32 },
    #[error("the image has a disk encryption header but says it is not encrypted")]
    StrayEncryptionHeader,
    #[error("the image uses incompatible qcow2 features nefos does not know (bits {bits:#x})")]
    UnknownFeatures { bits: u64 },
    #[error("the image is marked corrupt (qcow2 incompatible feature bit 1)")]
    MarkedCorrupt,
    #[error("the image's virtual size is 0 bytes")]
    EmptyDisk,
    #[error("the image's virtual size of {size} bytes is over the limit of {max}")]
    TooLarge { size: u64, max: u64 },
    #[error(
        "{structure} ({len} bytes at offset {offset}) lies beyond the end of the {file_len}-byte \
         file: the image is truncated or corrupt"
    )]
    Truncated {
        structure: Structure,
        offset: u64,
        len: u64,
        file_len: u64,
    },
    #[error(
        "{structure} at offset {offset} is not aligned to the {cluster_size}-byte cluster: the \
         image is corrupt"
    )]
    Misaligned {
        structure: Structure,
        offset: u64,
        cluster_size: u64,
    },
    #[error("{structure} overlaps the header cluster: the image is corrupt")]
    OverlapsHeader { structure: Structure },
    #[error(
        "an entry pointing at {structure} has reserved bits set ({entry:#018x}): the image is corrupt"
    )]
    ReservedBits { structure: Structure, entry: u64 },
    #[error(
        "the L1 table has {entries} entries, but a {virtual_size}-byte disk needs {needed}: \
         the image is corrupt"
    )]
    L1TooSmall {
        entries: u32,
        needed: u64,
        virtual_size: u64,
    },
    #[error("the image has no refcount table: it is corrupt")]
    NoRefcountTable,
    #[error(
        "header extension {kind:#010x} at offset {offset} runs past the header cluster: the \
         image is corrupt"
    )]
    BadExtension { kind: u32, offset: u64 },
    #[error("the image has {count} snapshots; at most {max} are accepted")]
    TooManySnapshots { count: u32, max: u32 },
    #[error("snapshot {snapshot} has {len} bytes of extra data; at most {max} are accepted")]
    SnapshotExtraData { snapshot: u32, len: u32, max: u32 },
    #[error(
        "reading {structure} would bring the metadata read to {needed} bytes, over the limit \
         of {max}"
    )]
    MetadataTooLarge {
        structure: Structure,
        needed: u64,
        max: u64,
    },
}

impl InspectError {
    /// Whether the image itself is refused, rather than the reading of it having failed.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            InspectError::Read { .. } | InspectError::ShortRead { .. }
        )
    }
}

/// A name from an image, quoted (its bytes may be anything), or what is known of it.
fn quoted(name: Option<&str>, unnamed: &str) -> String {
    match name {
        Some(name) => format!("{name:?}"),
        None => unnamed.to_owned(),
    }
}
