//! Resizing a VM, as Nova does on one host: the VM is stopped, gets its new vCPUs and RAM
//! at its next start and a grown root disk now, and its disk as it was is kept until the
//! resize is confirmed (the copy goes) or reverted (the copy comes back, with the old
//! sizes).
//!
//! Each of the three is recorded unfinished before it touches the disk and finished
//! after, so a retry after a failure completes it, and each step is safe to do twice:
//! the copy is made under a temporary name and renamed, growing to a size the disk has
//! is a no-op, and a revert whose copy is gone has already put it back.

use std::io;

use nefos_node_api::{PowerState, ResizeEnd, ResizeVm, VmStatus};

use super::record::{Admission, Operation};
use super::{VmError, VmManager, blocking, durable, kill_qemu, save};
use crate::qemu::{self, VmPaths};
use crate::qemu_img;

impl VmManager {
    /// Resizes a stopped VM; see the module's comment.
    pub async fn resize(&self, id: &str, request: &ResizeVm) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, mut record) = self.existing(id)?;
        match record.admit(request.generation, Operation::Resize)? {
            Admission::Retry if !record.unfinished => {
                return self.status_of(&paths, &record).await;
            }
            Admission::Retry => {}
            Admission::New => {
                if qemu::running_pid(&paths).is_some() {
                    return Err(VmError::Running);
                }
                if super::suspend::has_saved_state(&paths).await {
                    return Err(VmError::Suspended);
                }
                if record.resized_from.is_some() {
                    return Err(VmError::ResizeUnfinished);
                }
                let size = request.size;
                if size.disk_bytes < record.spec.disk_bytes {
                    return Err(VmError::DiskShrink {
                        from: record.spec.disk_bytes,
                        to: size.disk_bytes,
                    });
                }
                // A copy left by a confirm that failed before removing it is not this
                // resize's.
                remove_file(paths.disk_before_resize()).await?;
                record.resized_from = Some(record.size());
                record.set_size(size);
                record.generation = request.generation;
                record.operation = Operation::Resize;
                record.power = PowerState::Stopped;
                record.unfinished = true;
                save(&paths, &record).await?;
            }
        }
        keep_disk(&paths).await?;
        qemu_img::grow(self.qemu_settings(), &paths.disk(), record.spec.disk_bytes)
            .await
            .map_err(VmError::QemuImg)?;
        record.unfinished = false;
        save(&paths, &record).await?;
        tracing::info!(vm = id, size = ?record.size(), "resized");
        self.status_of(&paths, &record).await
    }

    /// Keeps the resize: the disk kept for a revert is deleted.
    pub async fn confirm_resize(&self, id: &str, request: &ResizeEnd) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, mut record) = self.existing(id)?;
        match record.admit(request.generation, Operation::ConfirmResize)? {
            Admission::Retry if !record.unfinished => {
                return self.status_of(&paths, &record).await;
            }
            Admission::Retry => {}
            Admission::New => {
                if record.resized_from.is_none() {
                    return Err(VmError::NotResized);
                }
                record.resized_from = None;
                record.generation = request.generation;
                record.operation = Operation::ConfirmResize;
                record.unfinished = true;
                save(&paths, &record).await?;
            }
        }
        remove_file(paths.disk_before_resize()).await?;
        record.unfinished = false;
        save(&paths, &record).await?;
        self.status_of(&paths, &record).await
    }

    /// Undoes the resize: the VM is stopped and gets its earlier sizes and disk back (what
    /// the guest wrote since the resize is lost, as in Nova).
    pub async fn revert_resize(&self, id: &str, request: &ResizeEnd) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, mut record) = self.existing(id)?;
        match record.admit(request.generation, Operation::RevertResize)? {
            Admission::Retry if !record.unfinished => {
                return self.status_of(&paths, &record).await;
            }
            Admission::Retry => {}
            Admission::New => {
                let Some(before) = record.resized_from.take() else {
                    return Err(VmError::NotResized);
                };
                record.set_size(before);
                record.generation = request.generation;
                record.operation = Operation::RevertResize;
                record.power = PowerState::Stopped;
                record.unfinished = true;
                save(&paths, &record).await?;
            }
        }
        // The guest's disk is about to be replaced by the kept one: nothing it would
        // write in a clean shutdown survives, so it is not waited for.
        if let Some(pid) = qemu::running_pid(&paths) {
            kill_qemu(&paths, pid).await?;
        }
        // A saved state belongs to the disk about to be replaced.
        super::suspend::remove_saved_state(&paths).await?;
        let (kept, disk) = (paths.disk_before_resize(), paths.disk());
        blocking(&kept.clone(), move || match std::fs::rename(&kept, &disk) {
            Ok(()) => durable::sync_parent(&disk).map_err(|source| VmError::Io {
                path: disk.clone(),
                source,
            }),
            // Renamed by the attempt this one retries.
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(VmError::Io { path: kept, source }),
        })
        .await?;
        record.unfinished = false;
        save(&paths, &record).await?;
        tracing::info!(vm = id, size = ?record.size(), "resize reverted");
        self.status_of(&paths, &record).await
    }
}

/// Copies the VM's disk to the name a revert restores it from, unless it is there: the
/// copy is written under a temporary name, synced and renamed, so it is whole if present.
async fn keep_disk(paths: &VmPaths) -> Result<(), VmError> {
    let (disk, kept) = (paths.disk(), paths.disk_before_resize());
    blocking(&kept.clone(), move || {
        if kept.exists() {
            return Ok(());
        }
        let partial = kept.with_extension("partial");
        let io = |path: &std::path::Path| {
            let path = path.to_owned();
            move |source| VmError::Io { path, source }
        };
        let copied = std::fs::copy(&disk, &partial)
            .map_err(io(&disk))
            .and_then(|_| {
                std::fs::File::open(&partial)
                    .and_then(|file| file.sync_all())
                    .map_err(io(&partial))
            })
            .and_then(|()| std::fs::rename(&partial, &kept).map_err(io(&kept)));
        if copied.is_err() {
            // A copy cut short (a full disk) is not left to fill it.
            let _ = std::fs::remove_file(&partial);
        }
        copied?;
        durable::sync_parent(&kept).map_err(io(&kept))
    })
    .await
}

async fn remove_file(path: std::path::PathBuf) -> Result<(), VmError> {
    blocking(&path.clone(), move || match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(VmError::Io { path, source }),
    })
    .await
}
