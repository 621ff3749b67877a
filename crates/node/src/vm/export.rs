//! Exporting a VM's root disk as one self-contained qcow2 image (Nova's `createImage`):
//! the overlay and its base folded together by `qemu-img convert`. A running guest is
//! paused for the copy, as Nova's cold snapshot does, so the image is of one moment;
//! QEMU drains and flushes the disk when it pauses.

use std::path::PathBuf;

use nefos_qmp::commands::{Cont, QueryStatus, Stop};

use super::{VmError, VmManager, execute};
use crate::qemu::{self, VmPaths};
use crate::qemu_img;

/// An exported disk: a file in the VM's directory, deleted when this is dropped.
#[derive(Debug)]
pub struct ExportedDisk {
    path: PathBuf,
    len: u64,
}

impl ExportedDisk {
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn bytes(&self) -> u64 {
        self.len
    }
}

impl Drop for ExportedDisk {
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.path);
        let remove = move || {
            if let Err(error) = std::fs::remove_file(&path)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), %error, "cannot remove an exported disk");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

impl VmManager {
    /// Copies the VM's root disk into a self-contained qcow2 file; see the module.
    pub async fn export_disk(&self, id: &str) -> Result<ExportedDisk, VmError> {
        let _guard = self.lock(id).await;
        let (paths, record) = self.existing(id)?;
        if record.unfinished {
            return Err(VmError::Busy);
        }
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let mut exported = ExportedDisk {
            path: paths.export(&nonce),
            len: 0,
        };
        let paused_here = match qemu::running_pid(&paths) {
            Some(_) if execute(&paths, &QueryStatus {}).await?.running => {
                execute(&paths, &Stop {}).await?;
                Some(Resume {
                    paths: Some(paths.clone()),
                })
            }
            _ => None,
        };
        let shared = qemu::running_pid(&paths).is_some();
        let copied = qemu_img::flatten(self.qemu_settings(), &paths.disk(), &exported.path, shared)
            .await
            .map_err(VmError::QemuImg);
        if let Some(mut paused) = paused_here {
            paused.now().await?;
        }
        copied?;
        exported.len = tokio::fs::metadata(&exported.path)
            .await
            .map_err(|source| VmError::Io {
                path: exported.path.clone(),
                source,
            })?
            .len();
        tracing::info!(vm = id, bytes = exported.len, "disk exported");
        Ok(exported)
    }
}

/// A guest paused for an export: resumed after the copy, or, if the export is dropped
/// half-way (its caller went away), by a task of its own.
struct Resume {
    paths: Option<VmPaths>,
}

impl Resume {
    async fn now(&mut self) -> Result<(), VmError> {
        match self.paths.take() {
            Some(paths) => execute(&paths, &Cont {}).await.map(drop),
            None => Ok(()),
        }
    }
}

impl Drop for Resume {
    fn drop(&mut self) {
        if let Some(paths) = self.paths.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(error) = execute(&paths, &Cont {}).await {
                    tracing::warn!(dir = %paths.dir.display(), %error, "cannot resume a guest after an export");
                }
            });
        }
    }
}

/// Whether `name` is one of the files an export or a resize writes on the way: a crash
/// leaves them, and nothing else removes them.
pub(super) fn is_leftover(name: &str) -> bool {
    (name.starts_with("export-") && name.ends_with(".qcow2")) || name.ends_with(".partial")
}
