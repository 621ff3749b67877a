//! What a node remembers of the VMs it destroyed: the generation of each destroy, so that
//! a late or retried call of an older generation (an `ensure` still in flight when the
//! control plane deleted the VM) cannot define the VM again. A newer generation may: a VM
//! can come back to a node it left (a migration back, say). Tombstones are pruned after
//! [`KEEP`], far longer than any call is retried.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{VmError, durable};

/// How long a tombstone is kept.
pub const KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

/// The directory of tombstones, one file per destroyed VM holding its generation.
#[derive(Debug, Clone)]
pub struct Tombstones {
    dir: PathBuf,
}

impl Tombstones {
    /// Tombstones kept in `dir`, which is created if missing. Blocking.
    pub fn open(dir: &Path) -> Result<Tombstones, VmError> {
        std::fs::create_dir_all(dir).map_err(|source| VmError::Io {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Tombstones {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// The generation VM `id` was destroyed at, if it was. Blocking.
    pub fn generation(&self, id: &str) -> Result<Option<u64>, VmError> {
        let path = self.path(id);
        match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map(Some).map_err(|_| VmError::Io {
                path,
                source: io::Error::new(io::ErrorKind::InvalidData, "not a generation"),
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(VmError::Io { path, source }),
        }
    }

    /// Records, durably, that VM `id` is destroyed as of `generation`. Blocking.
    pub fn bury(&self, id: &str, generation: u64) -> Result<(), VmError> {
        let path = self.path(id);
        durable::write(&path, generation.to_string().as_bytes())
            .map_err(|source| VmError::Io { path, source })
    }

    /// Forgets VM `id`'s tombstone, once a newer generation defined it again. Blocking.
    pub fn remove(&self, id: &str) -> Result<(), VmError> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(VmError::Io { path, source }),
        }
    }

    /// Removes tombstones older than `keep`. Blocking; errors are logged, not returned.
    pub fn prune(&self, keep: Duration) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.filter_map(Result::ok) {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age >= keep);
            if old && let Err(error) = std::fs::remove_file(entry.path()) {
                tracing::warn!(path = %entry.path().display(), %error, "cannot prune a tombstone");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tombstone_keeps_its_generation_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let tombstones = Tombstones::open(&dir.path().join("destroyed")).unwrap();
        assert_eq!(tombstones.generation("vm-1").unwrap(), None);
        tombstones.bury("vm-1", 7).unwrap();
        assert_eq!(tombstones.generation("vm-1").unwrap(), Some(7));
        tombstones.prune(KEEP);
        assert_eq!(tombstones.generation("vm-1").unwrap(), Some(7));
        tombstones.prune(Duration::ZERO);
        assert_eq!(tombstones.generation("vm-1").unwrap(), None);
        tombstones.bury("vm-1", 9).unwrap();
        tombstones.remove("vm-1").unwrap();
        tombstones.remove("vm-1").unwrap();
        assert_eq!(tombstones.generation("vm-1").unwrap(), None);
    }
}
