//! What the compute service needs of an image to start a server from it: its content (the
//! node's image cache keys on it, so images with the same bytes share one cache entry),
//! its format and sizes, and the minimums a flavor must meet.

use nefos_blocks::BlockHash;
use nefos_disk_format::DiskFormat;

use crate::{Caller, Image, ImageError, ImageStatus, Images, UNBOOTABLE_PROPERTY};

/// An image as a boot disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSource {
    pub image_id: String,
    pub format: DiskFormat,
    /// Bytes of the image data (what the node's cache holds).
    pub size: u64,
    /// The disk a guest sees; a root disk must be at least this large.
    pub virtual_size: u64,
    /// The data's block hashes: what the node fetches, and (with the size) its cache key.
    pub hashes: Vec<BlockHash>,
    /// GiB and MiB a flavor must offer (Glance's `min_disk`, `min_ram`).
    pub min_disk_gib: u64,
    pub min_ram_mib: u64,
}

impl BootSource {
    /// Refuses a flavor that does not meet the image's minimums, or a root disk smaller
    /// than the image's disk, with the reason as Nova states it.
    pub fn check_flavor(&self, disk_bytes: u64, ram_mib: u64) -> Result<(), ImageError> {
        const GIB: u64 = 1 << 30;
        if ram_mib < self.min_ram_mib {
            return Err(ImageError::invalid(
                "flavor",
                format!(
                    "Flavor's memory is too small for requested image: {} MiB < {} MiB",
                    ram_mib, self.min_ram_mib
                ),
            ));
        }
        if disk_bytes < self.min_disk_gib.saturating_mul(GIB) {
            return Err(ImageError::invalid(
                "flavor",
                format!(
                    "Flavor's disk is too small for requested image: {} GiB < {} GiB",
                    disk_bytes / GIB,
                    self.min_disk_gib
                ),
            ));
        }
        if disk_bytes < self.virtual_size {
            return Err(ImageError::invalid(
                "flavor",
                format!(
                    "Flavor's disk is too small for requested image: the image's disk is {} bytes, the flavor's {disk_bytes}",
                    self.virtual_size
                ),
            ));
        }
        Ok(())
    }
}

impl Images {
    /// The boot disk `caller` may start a server from: an active image it sees, whose
    /// data inspection found bootable.
    pub async fn boot_source(
        &self,
        caller: Caller<'_>,
        id: &str,
    ) -> Result<BootSource, ImageError> {
        let image = self.get(caller, id).await?;
        boot_source_of(self, &image).await
    }
}

async fn boot_source_of(images: &Images, image: &Image) -> Result<BootSource, ImageError> {
    if image.status != ImageStatus::Active {
        return Err(ImageError::conflict(format!(
            "Image {} is not active (it is {}).",
            image.id,
            image.status.as_str()
        )));
    }
    if let Some(why) = image.properties.get(UNBOOTABLE_PROPERTY) {
        return Err(ImageError::invalid(
            "image",
            format!("Image {} cannot boot a server: {why}", image.id),
        ));
    }
    let format: DiskFormat = image
        .disk_format
        .as_deref()
        .unwrap_or("raw")
        .parse()
        .map_err(|error: nefos_disk_format::DiskFormatError| {
            ImageError::invalid("disk_format", error.to_string())
        })?;
    let object = images.object_of(image).await?;
    let hashes = images.storage.hashmap(&object).await?;
    Ok(BootSource {
        image_id: image.id.clone(),
        format,
        size: object.size,
        virtual_size: image.virtual_size.unwrap_or(object.size),
        hashes,
        min_disk_gib: image.min_disk,
        min_ram_mib: image.min_ram,
    })
}
