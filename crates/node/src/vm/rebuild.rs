//! Rebuilding a VM (Nova's `rebuild`): a fresh root disk from an image, perhaps another
//! one, and a new guest configuration (password, keys, hostname), keeping the VM's sizes
//! and NICs. The old disk is discarded, so QEMU is killed rather than shut down.
//!
//! Recorded unfinished before the old disk goes and finished once the VM is at its power
//! state; every step may run again: the image fill converges, the old overlay is removed
//! if there, and the new one is written fresh.

use std::io;

use nefos_node_api::{RebuildVm, VmStatus};

use super::record::{Admission, Operation};
use super::{VmError, VmManager, blocking, kill_qemu, save, validate};
use crate::image_cache::ImageKey;
use crate::qcow2;
use crate::qemu;

impl VmManager {
    /// Rebuilds a VM; see the module.
    pub async fn rebuild(&self, id: &str, request: &RebuildVm) -> Result<VmStatus, VmError> {
        let key = ImageKey::new(&request.image).map_err(VmError::Image)?;
        let _guard = self.lock(id).await;
        let (paths, mut record) = self.existing(id)?;
        let mut spec = record.spec.clone();
        spec.image = request.image.clone();
        spec.guest = request.guest.clone();
        if let Some(name) = &request.name {
            spec.name = name.clone();
        }
        validate::spec(&spec)?;
        match record.admit(request.generation, Operation::Rebuild)? {
            Admission::Retry if !record.unfinished => {
                return self.status_of(&paths, &record).await;
            }
            Admission::Retry => {}
            Admission::New => {
                if record.resized_from.is_some() {
                    return Err(VmError::ResizeUnfinished);
                }
                let (image, _) = self
                    .cache
                    .ensure(&key, &self.blocks)
                    .await
                    .map_err(VmError::Image)?;
                if spec.disk_bytes < image.inspection.virtual_size {
                    return Err(VmError::DiskTooSmall {
                        disk: spec.disk_bytes,
                        image: image.inspection.virtual_size,
                    });
                }
                record.generation = request.generation;
                record.operation = Operation::Rebuild;
                record.unfinished = true;
                save(&paths, &record).await?;
            }
        }
        let (image, _) = self
            .cache
            .ensure(&key, &self.blocks)
            .await
            .map_err(VmError::Image)?;
        if let Some(pid) = qemu::running_pid(&paths) {
            kill_qemu(&paths, pid).await?;
        }
        // A saved state belongs to the disk about to go.
        super::suspend::remove_saved_state(&paths).await?;
        let (disk, base, format, size) = (
            paths.disk(),
            image.path.clone(),
            image.inspection.format,
            spec.disk_bytes,
        );
        blocking(&disk.clone(), move || {
            match std::fs::remove_file(&disk) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(VmError::Io { path: disk, source }),
            }
            qcow2::create_overlay(&disk, &base, format, size).map_err(VmError::Disk)
        })
        .await?;
        record.spec = spec;
        record.image_id = image.id.clone();
        record.power = request.power;
        save(&paths, &record).await?;
        self.converge(&paths, &record).await?;
        record.unfinished = false;
        save(&paths, &record).await?;
        tracing::info!(vm = id, image = %image.id, "rebuilt");
        self.status_of(&paths, &record).await
    }
}
