//! The disk formats of nefos images, and an inspector that decides whether an image is
//! safe to run (docs/design.md §5: images are inspected; no backing files).
//!
//! nefos runs raw and qcow2 images. Every image is inspected against the format it was
//! declared with, by the control plane when it is uploaded or registered and again by the
//! node before a VM first uses it. An image is refused, with the reason, when:
//!
//! - its content is another format than the one declared (a qcow2 declared raw is the
//!   classic attack: a tool that probes the format would follow its backing file);
//! - as qcow2, it names anything outside itself: a backing file or an external data file,
//!   either of which would let a guest read files of the host;
//! - as qcow2, it is encrypted, uses incompatible features nefos does not know, is marked
//!   corrupt, has a virtual size of 0 or over [`MAX_VIRTUAL_SIZE`], or its metadata tables
//!   are misaligned or lie past the end of the file (a truncated or damaged upload).
//!
//! The inspector is sans-I/O: it reads through [`ReadAt`], so the control plane can feed
//! it ranges of an object and the node a local file, and it reads at most
//! [`MAX_METADATA_READ`] bytes whatever the header claims.

mod detect;
mod error;
mod format;
mod qcow2;
mod read;

use std::fmt;

pub use detect::{ContentFormat, HEAD_LEN, detect};
pub use error::{InspectError, Structure};
pub use format::{DiskFormat, DiskFormatError};
pub use qcow2::MAX_SNAPSHOTS;
pub use read::{MAX_METADATA_READ, OutOfBounds, ReadAt};

use read::Reader;

/// The largest virtual disk accepted: far above any cloud image, far below what would
/// make a node's overlay or a guest's first write surprising.
pub const MAX_VIRTUAL_SIZE: u64 = 16 << 40;

/// The sector: the smallest disk a guest can read anything from.
pub const SECTOR: u64 = 512;

/// What inspection found in an image it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub format: DiskFormat,
    /// The size of the disk the guest sees: the length of a raw image, the header's size
    /// of a qcow2 one (unrelated to its file's length).
    pub virtual_size: u64,
    /// Why a VM could not boot from this image, though it is safe to store and to attach.
    /// Empty when nothing is known against it.
    pub boot_problems: Vec<BootProblem>,
    /// qcow2's own facts, for a qcow2 image.
    pub qcow2: Option<Qcow2Details>,
}

impl Inspection {
    /// Whether nothing is known that stops a VM from booting this image.
    pub fn may_boot(&self) -> bool {
        self.boot_problems.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Qcow2Details {
    /// 2 (compat 0.10) or 3 (compat 1.1).
    pub version: u32,
    pub cluster_size: u64,
    /// Internal snapshots, which a guest never sees.
    pub snapshots: u32,
}

/// A reason an accepted image cannot boot a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootProblem {
    /// No boot sector fits: the disk is smaller than one 512-byte sector.
    SmallerThanOneSector { virtual_size: u64 },
}

impl fmt::Display for BootProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootProblem::SmallerThanOneSector { virtual_size } => write!(
                f,
                "the disk is {virtual_size} bytes, smaller than one 512-byte sector, so \
                 nothing can boot from it"
            ),
        }
    }
}

/// Inspects the image `source`, `total_len` bytes long, declared as `declared`: what it
/// is, or why it is refused.
pub async fn inspect<R: ReadAt + ?Sized>(
    source: &R,
    total_len: u64,
    declared: DiskFormat,
) -> Result<Inspection, InspectError> {
    let mut reader = Reader::new(source, total_len);
    let head_len = total_len.min(HEAD_LEN as u64);
    let head = reader.read(Structure::Header, 0, head_len).await?;
    match (declared, detect(&head)) {
        (DiskFormat::Raw, ContentFormat::Raw) => Ok(raw(total_len)),
        (DiskFormat::Qcow2, ContentFormat::Qcow2) => qcow2::inspect(&mut reader, &head).await,
        (declared, found) => Err(InspectError::Mismatch { declared, found }),
    }
}

/// Raw bytes are the disk. Any length is accepted (an image is also an object that may be
/// stored and attached); what could not boot is noted for the compute service to refuse.
fn raw(len: u64) -> Inspection {
    let mut boot_problems = Vec::new();
    if len < SECTOR {
        boot_problems.push(BootProblem::SmallerThanOneSector { virtual_size: len });
    }
    Inspection {
        format: DiskFormat::Raw,
        virtual_size: len,
        boot_problems,
        qcow2: None,
    }
}
