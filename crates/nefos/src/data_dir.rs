//! The data directory of a control plane: private files, and one `nefos up` at a time.
//!
//! Everything in it is the cloud's own secrets or tenants' data (the SQLite database with
//! every password hash, the credentials file, the cluster secret, the blocks), so it is
//! 0700 and its files 0600 whatever the umask they were made with; a directory an older
//! release left open is tightened at start.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// The lock file `nefos up` holds in its data directory; it contains the holder's PID.
pub const LOCK_FILE: &str = "nefos.lock";

/// Makes the files every server role creates from now on private to their owner, including
/// those made by others on our behalf (SQLite's `-wal` and `-shm`, a node's run files).
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Creates `dir` (0700, with its parents) if missing, then [`tighten`]s it.
pub async fn prepare(dir: &Path) -> anyhow::Result<()> {
    create(dir).await?;
    tighten(dir).await
}

/// Creates `dir` (0700, with its parents) if missing.
pub async fn create(dir: &Path) -> anyhow::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))
    })
    .await
    .context("creating the data directory failed")?
}

/// What nefos keeps directly in a data directory. Only these are tightened: an operator
/// may point `data_dir` at a directory that holds other things too, which are not ours.
const OWN_ENTRIES: &[&str] = &[
    "nefos.db",
    "nefos.db-wal",
    "nefos.db-shm",
    "nefos.db-journal",
    LOCK_FILE,
    "blocks",
    "node",
    "credentials",
    "clouds.yaml",
    "cluster-secret",
    "admin-password",
];

/// Tightens `dir` and what nefos keeps directly in it: directories to 0700, files to
/// 0600. Deeper levels are the business of their owners (the block store tightens its own
/// root); a private parent already keeps them from others.
pub async fn tighten(dir: &Path) -> anyhow::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || tighten_blocking(&dir))
        .await
        .context("tightening the data directory failed")?
}

fn tighten_blocking(dir: &Path) -> anyhow::Result<()> {
    make_private(dir, DIR_MODE)?;
    let entries = fs::read_dir(dir)
        .with_context(|| format!("cannot list the data directory {}", dir.display()))?;
    for entry in entries {
        let entry =
            entry.with_context(|| format!("cannot list the data directory {}", dir.display()))?;
        let path = entry.path();
        if !OWN_ENTRIES.iter().any(|own| entry.file_name() == *own) {
            continue;
        }
        let kind = entry
            .file_type()
            .with_context(|| format!("cannot stat {}", path.display()))?;
        if kind.is_dir() {
            make_private(&path, DIR_MODE)?;
        } else if kind.is_file() {
            make_private(&path, FILE_MODE)?;
        }
        // Symbolic links (say, to a database elsewhere) have no mode of their own; what
        // they point to is not ours to change.
    }
    Ok(())
}

fn make_private(path: &Path, mode: u32) -> anyhow::Result<()> {
    let meta =
        fs::symlink_metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
    if meta.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot restrict the permissions of {}", path.display()))?;
    }
    Ok(())
}

/// The exclusive lock of a data directory, held while this value lives (the kernel drops
/// it when the process dies, so a crash leaves no stale lock).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Locks `dir` (which must exist) for this process, or says which process holds it.
    pub async fn acquire(dir: &Path) -> anyhow::Result<DataDirLock> {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || Self::acquire_blocking(&dir))
            .await
            .context("locking the data directory failed")?
    }

    fn acquire_blocking(dir: &Path) -> anyhow::Result<DataDirLock> {
        let path = dir.join(LOCK_FILE);
        // Not truncated on open: until we hold the lock, the PID in it is the holder's.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                anyhow::bail!("{}", in_use_message(dir, holder_pid(&mut file)))
            }
            Err(TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        let write_pid = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{}", std::process::id())?;
            file.sync_data()
        };
        write_pid(&mut file)
            .with_context(|| format!("cannot write the PID to {}", path.display()))?;
        Ok(DataDirLock { _file: file })
    }
}

/// The PID the holder wrote, if it has written one yet and it reads as one.
fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn in_use_message(dir: &Path, pid: Option<u32>) -> String {
    let holder = match pid {
        Some(pid) => format!("another nefos (PID {pid})"),
        None => "another nefos".to_owned(),
    };
    format!(
        "the data directory {} is in use by {holder}; stop it first, or give this one \
         another --data directory",
        dir.display()
    )
}

/// Writes a file readable by its owner only, atomically (temp file, fsync, rename, and
/// the directory fsynced), so a crash leaves the old contents or the new, never a part.
pub async fn save_private(path: &Path, contents: String) -> anyhow::Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || write_private(&path, &contents))
        .await
        .context("writing a private file failed")?
}

/// [`save_private`]'s blocking work.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let temp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(&temp)
        .with_context(|| format!("cannot write {}", temp.display()))?;
    let written = file
        .set_permissions(fs::Permissions::from_mode(FILE_MODE))
        .and_then(|()| file.write_all(contents.as_bytes()))
        .and_then(|()| file.sync_all());
    written.with_context(|| format!("cannot write {}", temp.display()))?;
    fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    File::open(dir.unwrap_or(Path::new(".")))
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the directory of {}", path.display()))?;
    Ok(())
}

/// A file's contents, or `None` if it does not exist.
pub async fn read_if_exists(path: &Path) -> anyhow::Result<Option<String>> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_holder_when_known() {
        let dir = Path::new("/srv/nefos");
        let known = in_use_message(dir, Some(4242));
        assert!(
            known.contains("/srv/nefos") && known.contains("PID 4242"),
            "{known}"
        );
        let unknown = in_use_message(dir, None);
        assert!(!unknown.contains("PID"), "{unknown}");
    }
}
