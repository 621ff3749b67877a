//! Inspecting an image's data where it lies, in the object store: its format, its virtual
//! size, and for qcow2 that it names no file of the host (nefos-disk-format).

use nefos_disk_format::{DiskFormat, ReadAt};
use nefos_storage::{ByteRange, ObjectInfo, Storage, StorageError};

use futures::TryStreamExt;

use crate::ImageError;

/// What inspection found in an image's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub format: DiskFormat,
    /// The size of the disk a guest sees.
    pub virtual_size: u64,
    /// Why a guest could not boot from it, though it is safe to keep (a raw image smaller
    /// than one sector, say): server creation refuses it with this reason.
    pub unbootable: Option<String>,
}

/// Ranges of an object version, read through the block store.
struct ObjectReader<'a> {
    storage: &'a Storage,
    object: &'a ObjectInfo,
}

impl ReadAt for ObjectReader<'_> {
    type Error = StorageError;

    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        let mut out = Vec::with_capacity(len);
        if len == 0 {
            return Ok(out);
        }
        let last = offset + u64::try_from(len).unwrap_or(u64::MAX) - 1;
        let range = ByteRange {
            first: offset,
            last,
        };
        let mut stream = std::pin::pin!(self.storage.read(self.object, Some(range)).await?);
        while let Some(chunk) = stream.try_next().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// Inspects `object` as an image declared to be `declared`; an unsafe or corrupt image is
/// [`ImageError::UnsafeData`] with the reason.
pub(crate) async fn inspect_object(
    storage: &Storage,
    object: &ObjectInfo,
    declared: &str,
) -> Result<Inspected, ImageError> {
    let declared: DiskFormat =
        declared
            .parse()
            .map_err(|error: nefos_disk_format::DiskFormatError| {
                ImageError::invalid("disk_format", error.to_string())
            })?;
    let reader = ObjectReader { storage, object };
    let inspection = nefos_disk_format::inspect(&reader, object.size, declared)
        .await
        .map_err(|error| {
            if error.is_refusal() {
                ImageError::UnsafeData {
                    reason: error.to_string(),
                }
            } else {
                ImageError::Inspection(error)
            }
        })?;
    Ok(Inspected {
        format: inspection.format,
        virtual_size: inspection.virtual_size,
        unbootable: (!inspection.may_boot()).then(|| {
            let reasons: Vec<String> = inspection
                .boot_problems
                .iter()
                .map(ToString::to_string)
                .collect();
            reasons.join("; ")
        }),
    })
}
