//! The two disk operations the node leaves to `qemu-img`, both rare and both needing all
//! of qcow2 rather than the few fields `qcow2.rs` writes: growing a root disk (a resize)
//! and folding a disk and its base into one self-contained image (an export for a
//! server image).

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::qemu::QemuSettings;

#[derive(Debug, Error)]
pub enum QemuImgError {
    #[error("cannot run {program}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("qemu-img {operation} failed ({status}): {stderr}")]
    Failed {
        operation: &'static str,
        status: String,
        stderr: String,
    },
}

/// `qemu-img`, found beside the node's QEMU (or on the PATH, as QEMU is).
pub fn program(settings: &QemuSettings) -> PathBuf {
    settings.binary.with_file_name("qemu-img")
}

/// Grows the qcow2 disk at `disk` to `size` bytes. Growing to the size it has is a no-op,
/// so a repeated call is harmless.
pub async fn grow(settings: &QemuSettings, disk: &Path, size: u64) -> Result<(), QemuImgError> {
    let size = size.to_string();
    let args = [
        "resize".as_ref(),
        "-f".as_ref(),
        "qcow2".as_ref(),
        disk.as_os_str(),
        size.as_ref(),
    ];
    run(settings, "resize", &args).await
}

/// Writes the qcow2 disk at `disk`, with its base folded in, to `out` as a qcow2 file of
/// its own. `shared`: the disk is open in a QEMU (which the caller has paused), so it is
/// read without taking QEMU's lock.
pub async fn flatten(
    settings: &QemuSettings,
    disk: &Path,
    out: &Path,
    shared: bool,
) -> Result<(), QemuImgError> {
    let mut args: Vec<&std::ffi::OsStr> = vec!["convert".as_ref()];
    if shared {
        args.push("-U".as_ref());
    }
    args.extend::<[&std::ffi::OsStr; 6]>([
        "-f".as_ref(),
        "qcow2".as_ref(),
        "-O".as_ref(),
        "qcow2".as_ref(),
        disk.as_os_str(),
        out.as_os_str(),
    ]);
    run(settings, "convert", &args).await
}

async fn run(
    settings: &QemuSettings,
    operation: &'static str,
    args: &[&std::ffi::OsStr],
) -> Result<(), QemuImgError> {
    let program = program(settings);
    let output = tokio::process::Command::new(&program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| QemuImgError::Spawn {
            program: program.clone(),
            source,
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(QemuImgError::Failed {
            operation,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}
