//! The `fs` backend: one file per block on a local filesystem.
//!
//! ```text
//! ROOT/blocks/ab/cd/abcd…    a block (stripped of trailing zeros), read-only (0400),
//!                            immutable; its mtime is the block's last-touched time
//! ROOT/tmp/ID/…              temporary files of the open store instance ID
//! ROOT/tmp/ID.lock           flock-ed by instance ID while it is open
//! ROOT/trash/abcd…           a block a garbage collection is deleting (see crate::gc)
//! ROOT/open.lock             serializes opening (cleanup of dead instances' files)
//! ROOT/gc.lock               held by the running garbage collection
//! ```
//!
//! A write goes to a temporary file in `ROOT/tmp/ID/` (same filesystem), is `fdatasync`ed,
//! renamed into place and the shard directory `fsync`ed, so after a crash a block file is
//! either absent or complete. A block that exists is never rewritten: putting it again
//! only sets its mtime. Every function here blocks; the store calls them on the blocking
//! pool.
//!
//! Blocks are tenants' data: every directory is 0700 and every file readable by the owner
//! only, whatever the process umask, and opening the store tightens a root that an older
//! release (or an operator) left open to others.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use rand::Rng;

use crate::direct::{BufferPool, read_block_direct};
use crate::error::{BlockError, Result};
use crate::hash::{BLOCK_SIZE, BlockHash};
use crate::store::{BlockInfo, Removal};

#[derive(Debug)]
pub(crate) struct FsBackend {
    root: PathBuf,
    blocks: PathBuf,
    trash: PathBuf,
    /// This instance's temporary directory.
    tmp: PathBuf,
    tmp_counter: AtomicU64,
    /// Shard directories known to exist durably (their creation fsynced), by the first two
    /// bytes of the hash.
    shards: Mutex<HashSet<[u8; 2]>>,
    /// Buffers of direct reads.
    buffers: Arc<BufferPool>,
    /// Held (flock-ed) while this instance is open; removes its temporary directory on drop.
    _instance: InstanceLock,
}

/// The flock on `ROOT/tmp/ID.lock` that marks `ROOT/tmp/ID/` as in use.
#[derive(Debug)]
struct InstanceLock {
    file: File,
    lock_path: PathBuf,
    dir: PathBuf,
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // Best effort: a crash leaves these behind, and the next open removes them.
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_file(&self.lock_path);
        let _ = self.file.unlock();
    }
}

/// The exclusive lock of a garbage collection over an `fs` store.
#[derive(Debug)]
pub(crate) struct FsGcLock {
    _file: File,
}

/// What opening found and cleaned up.
#[derive(Debug, Default)]
pub(crate) struct OpenCleanup {
    pub temp_dirs_removed: usize,
    pub trash_restored: usize,
}

/// Mode of the store's directories.
const DIR_MODE: u32 = 0o700;
/// Mode of a block file: read-only, since a block is never rewritten.
const BLOCK_MODE: u32 = 0o400;
/// Mode of the store's other files (locks, temporary files before they become blocks).
const FILE_MODE: u32 = 0o600;

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
        .map_err(BlockError::io("open lock file", path))
}

fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(BlockError::io("fsync directory", path))
}

/// Creates `path` if missing; fsyncs its parent when it did.
fn create_dir_durably(path: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => {
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(BlockError::io("create directory", path)(e)),
    }
}

/// Sets a directory's mode to [`DIR_MODE`] unless it already is.
fn make_private(dir: &Path) -> Result<()> {
    let meta = fs::metadata(dir).map_err(BlockError::io("stat directory", dir))?;
    if meta.permissions().mode() & 0o7777 != DIR_MODE {
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
            .map_err(BlockError::io("restrict the permissions of", dir))?;
    }
    Ok(())
}

fn mtime(meta: &fs::Metadata, path: &Path) -> Result<SystemTime> {
    meta.modified()
        .map_err(BlockError::io("read modification time of", path))
}

impl FsBackend {
    /// Opens (creating if needed) the store at `root`, removes the temporary files of
    /// instances that are gone, and puts back blocks a crashed garbage collection left in
    /// the trash.
    pub(crate) fn open(root: &Path) -> Result<(FsBackend, OpenCleanup)> {
        let root = root.to_path_buf();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&root)
            .map_err(BlockError::io("create block store directory", &root))?;
        let blocks = root.join("blocks");
        let tmp_root = root.join("tmp");
        let trash = root.join("trash");
        for dir in [&blocks, &tmp_root, &trash] {
            create_dir_durably(dir)?;
        }
        // Shards and blocks made by older releases stay as they were, but nobody else can
        // reach them through a private root.
        for dir in [&root, &blocks, &tmp_root, &trash] {
            make_private(dir)?;
        }
        let mut cleanup = OpenCleanup::default();

        let open_lock_path = root.join("open.lock");
        let open_lock = open_lock_file(&open_lock_path)?;
        open_lock
            .lock()
            .map_err(BlockError::io("lock", &open_lock_path))?;
        cleanup.temp_dirs_removed = remove_dead_instances(&tmp_root)?;
        let instance = register_instance(&tmp_root)?;
        drop(open_lock);

        let backend = FsBackend {
            root,
            blocks,
            trash,
            tmp: instance.dir.clone(),
            tmp_counter: AtomicU64::new(0),
            shards: Mutex::new(HashSet::new()),
            buffers: Arc::new(BufferPool::default()),
            _instance: instance,
        };
        // A garbage collection running in another process owns the trash; else put back
        // what a crashed one left there.
        if let Some(lock) = backend.try_gc_lock()? {
            cleanup.trash_restored = backend.restore_trash()?;
            drop(lock);
        }
        Ok((backend, cleanup))
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn shard_dir(&self, hash: &BlockHash) -> PathBuf {
        let hex = hash.to_hex();
        self.blocks.join(&hex[0..2]).join(&hex[2..4])
    }

    pub(crate) fn block_path(&self, hash: &BlockHash) -> PathBuf {
        self.shard_dir(hash).join(hash.to_hex())
    }

    fn trash_path(&self, hash: &BlockHash) -> PathBuf {
        self.trash.join(hash.to_hex())
    }

    /// Makes sure the shard directory of `hash` exists durably.
    fn ensure_shard(&self, hash: &BlockHash) -> Result<PathBuf> {
        let key = [hash.0[0], hash.0[1]];
        let dir = self.shard_dir(hash);
        let known = self
            .shards
            .lock()
            .map(|s| s.contains(&key))
            .unwrap_or(false);
        if !known {
            if let Some(parent) = dir.parent() {
                create_dir_durably(parent)?;
            }
            create_dir_durably(&dir)?;
            if let Ok(mut shards) = self.shards.lock() {
                shards.insert(key);
            }
        }
        Ok(dir)
    }

    /// Stores `data` (already stripped, hashing to `hash`) unless present; refreshes the
    /// mtime of a present block. Returns whether it wrote the block.
    pub(crate) fn put(&self, hash: &BlockHash, data: &[u8]) -> Result<bool> {
        let path = self.block_path(hash);
        if self.touch_path(&path)? {
            return Ok(false);
        }
        self.write_new(hash, &path, data)?;
        Ok(true)
    }

    /// Refreshes the mtime of the block if present; returns whether it is present.
    pub(crate) fn touch(&self, hash: &BlockHash) -> Result<bool> {
        self.touch_path(&self.block_path(hash))
    }

    /// Sets the mtime of the file at `path` to now, then checks it is still there. When this
    /// returns true, a garbage collection that had not yet moved the block to the trash
    /// when we looked will see the new mtime after moving it, and put it back (crate::gc).
    fn touch_path(&self, path: &Path) -> Result<bool> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(BlockError::io("open block", path)(e)),
        };
        file.set_modified(SystemTime::now())
            .map_err(BlockError::io("set modification time of", path))?;
        drop(file);
        match fs::symlink_metadata(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(BlockError::io("stat block", path)(e)),
        }
    }

    fn write_new(&self, hash: &BlockHash, path: &Path, data: &[u8]) -> Result<()> {
        let dir = self.ensure_shard(hash)?;
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{}.{n}", hash.to_hex()));
        let guard = TempFile(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .map_err(BlockError::io("create temporary file", &tmp))?;
        file.write_all(data)
            .map_err(BlockError::io("write temporary file", &tmp))?;
        file.sync_data()
            .map_err(BlockError::io("fdatasync temporary file", &tmp))?;
        file.set_permissions(fs::Permissions::from_mode(BLOCK_MODE))
            .map_err(BlockError::io("make read-only", &tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(BlockError::io("rename temporary file to", path))?;
        std::mem::forget(guard);
        sync_dir(&dir)
    }

    /// Writes `data` to a file `name` in this instance's temporary directory (where a
    /// crash leaves nothing that looks like a block), syncs it, reads it back and removes
    /// it; returns the bytes read.
    pub(crate) fn probe(&self, name: &str, data: &[u8]) -> Result<Bytes> {
        let path = self.tmp.join(format!("probe-{name}"));
        let guard = TempFile(&path);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(BlockError::io("create probe file", &path))?;
        file.write_all(data)
            .map_err(BlockError::io("write probe file", &path))?;
        file.sync_data()
            .map_err(BlockError::io("fdatasync probe file", &path))?;
        drop(file);
        let read = read_block(&path)?.unwrap_or_default();
        drop(guard);
        Ok(read)
    }

    /// The stored bytes of a block, also looking in the trash so that a block a garbage
    /// collection is about to put back stays readable.
    pub(crate) fn get(&self, hash: &BlockHash) -> Result<Option<Bytes>> {
        for path in [self.block_path(hash), self.trash_path(hash)] {
            match read_block(&path)? {
                Some(data) => return Ok(Some(data)),
                None => continue,
            }
        }
        Ok(None)
    }

    /// [`FsBackend::get`] for a large sequential read: what the page cache does not hold is
    /// read past it (see [`crate::direct`]).
    pub(crate) fn get_direct(&self, hash: &BlockHash) -> Result<Option<Bytes>> {
        for path in [self.block_path(hash), self.trash_path(hash)] {
            match read_block_direct(&path, &self.buffers)? {
                Some(data) => return Ok(Some(data)),
                None => continue,
            }
        }
        Ok(None)
    }

    pub(crate) fn contains(&self, hash: &BlockHash) -> Result<bool> {
        let path = self.block_path(hash);
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(BlockError::io("stat block", &path)(e)),
        }
    }

    pub(crate) fn delete(&self, hash: &BlockHash) -> Result<bool> {
        let path = self.block_path(hash);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(BlockError::io("remove block", &path)(e)),
        }
    }

    /// Every block with its size and mtime. Files that are not blocks in their right shard
    /// are logged and skipped.
    pub(crate) fn list(&self) -> Result<Vec<BlockInfo>> {
        let mut out = Vec::new();
        for first in read_dir_names(&self.blocks)? {
            let first_dir = self.blocks.join(&first);
            for second in read_dir_names(&first_dir)? {
                let shard = first_dir.join(&second);
                for name in read_dir_names(&shard)? {
                    let path = shard.join(&name);
                    let hash = match name.parse::<BlockHash>() {
                        Ok(hash)
                            if name.get(0..2) == Some(first.as_str())
                                && name.get(2..4) == Some(second.as_str()) =>
                        {
                            hash
                        }
                        _ => {
                            tracing::warn!(path = %path.display(), "not a block; skipped");
                            continue;
                        }
                    };
                    let meta = match fs::symlink_metadata(&path) {
                        Ok(meta) => meta,
                        Err(e) if e.kind() == ErrorKind::NotFound => continue,
                        Err(e) => return Err(BlockError::io("stat block", &path)(e)),
                    };
                    out.push(BlockInfo {
                        hash,
                        size: meta.len(),
                        last_touched: mtime(&meta, &path)?,
                    });
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn try_gc_lock(&self) -> Result<Option<FsGcLock>> {
        let path = self.root.join("gc.lock");
        let file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FsGcLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(BlockError::io("lock", &path)(e)),
        }
    }

    pub(crate) fn gc_lock_path(&self) -> PathBuf {
        self.root.join("gc.lock")
    }

    /// Puts every block in the trash back in place (or drops it where the block exists
    /// again). Only under the gc lock.
    pub(crate) fn restore_trash(&self) -> Result<usize> {
        let mut restored = 0;
        for name in read_dir_names(&self.trash)? {
            let trash_path = self.trash.join(&name);
            let Ok(hash) = name.parse::<BlockHash>() else {
                tracing::warn!(path = %trash_path.display(), "not a block; removed from the trash");
                fs::remove_file(&trash_path).map_err(BlockError::io("remove", &trash_path))?;
                continue;
            };
            self.ensure_shard(&hash)?;
            let path = self.block_path(&hash);
            fs::rename(&trash_path, &path).map_err(BlockError::io("restore block", &path))?;
            sync_dir(&self.shard_dir(&hash))?;
            restored += 1;
        }
        Ok(restored)
    }

    /// The deletion step of a garbage collection (crate::gc): deletes the block unless it
    /// was touched at or after `cutoff`, safely against a concurrent `put`/`touch`.
    pub(crate) fn remove_if_untouched(
        &self,
        hash: &BlockHash,
        cutoff: SystemTime,
    ) -> Result<Removal> {
        let path = self.block_path(hash);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Removal::Absent),
            Err(e) => return Err(BlockError::io("stat block", &path)(e)),
        };
        if mtime(&meta, &path)? >= cutoff {
            return Ok(Removal::Touched);
        }
        let trash_path = self.trash_path(hash);
        match fs::rename(&path, &trash_path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Removal::Absent),
            Err(e) => return Err(BlockError::io("move block to the trash", &trash_path)(e)),
        }
        // A touch that saw the block in place set its mtime before we moved it.
        let meta = fs::symlink_metadata(&trash_path)
            .map_err(BlockError::io("stat trashed block", &trash_path))?;
        if mtime(&meta, &trash_path)? >= cutoff {
            fs::rename(&trash_path, &path).map_err(BlockError::io("restore block", &path))?;
            return Ok(Removal::Touched);
        }
        fs::remove_file(&trash_path)
            .map_err(BlockError::io("remove trashed block", &trash_path))?;
        Ok(Removal::Removed { size: meta.len() })
    }
}

/// Removes a temporary file unless forgotten.
struct TempFile<'a>(&'a Path);

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.0);
    }
}

fn read_block(path: &Path) -> Result<Option<Bytes>> {
    match File::open(path) {
        Ok(file) => read_open_block(file, path).map(Some),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BlockError::io("open block", path)(e)),
    }
}

/// Everything in the open block file (`path` for messages), read through the page cache.
pub(crate) fn read_open_block(mut file: File, path: &Path) -> Result<Bytes> {
    let len = file
        .metadata()
        .map_err(BlockError::io("stat block", path))?
        .len();
    // A damaged file may be longer than a block; read what is there, but do not trust its
    // length for the allocation beyond a block.
    let hint = usize::try_from(len).unwrap_or(BLOCK_SIZE).min(BLOCK_SIZE);
    let mut data = Vec::with_capacity(hint);
    file.read_to_end(&mut data)
        .map_err(BlockError::io("read block", path))?;
    Ok(Bytes::from(data))
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BlockError::io("list directory", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(BlockError::io("list directory", dir))?;
        match entry.file_name().into_string() {
            Ok(name) => names.push(name),
            Err(name) => {
                tracing::warn!(dir = %dir.display(), name = ?name, "non-UTF-8 name skipped");
            }
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// Removes the temporary directories of instances whose lock is free (their process is
/// gone), and anything else in `tmp_root` that no live instance owns. Under the open lock.
fn remove_dead_instances(tmp_root: &Path) -> Result<usize> {
    let mut removed = 0;
    let names = read_dir_names(tmp_root)?;
    let live_or_checked: HashSet<&str> = names
        .iter()
        .filter_map(|n| n.strip_suffix(".lock"))
        .collect();
    for name in &names {
        let path = tmp_root.join(name);
        if let Some(id) = name.strip_suffix(".lock") {
            let lock = open_lock_file(&path)?;
            match lock.try_lock() {
                Ok(()) => {
                    let dir = tmp_root.join(id);
                    remove_tree(&dir)?;
                    fs::remove_file(&path).map_err(BlockError::io("remove", &path))?;
                    removed += 1;
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(BlockError::io("lock", &path)(e)),
            }
        } else if !live_or_checked.contains(name.as_str()) {
            // A directory or file without a lock: nobody owns it.
            remove_tree(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn remove_tree(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(BlockError::io("remove temporary files", path))
}

/// Creates and locks `tmp_root/ID.lock`, then `tmp_root/ID/`. Under the open lock, so no
/// other opener can see the directory before its lock is held.
fn register_instance(tmp_root: &Path) -> Result<InstanceLock> {
    loop {
        let id = format!("{:016x}", rand::thread_rng().r#gen::<u64>());
        let lock_path = tmp_root.join(format!("{id}.lock"));
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&lock_path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(BlockError::io("create lock file", &lock_path)(e)),
        };
        file.lock().map_err(BlockError::io("lock", &lock_path))?;
        let dir = tmp_root.join(&id);
        fs::DirBuilder::new()
            .mode(DIR_MODE)
            .create(&dir)
            .map_err(BlockError::io("create temporary directory", &dir))?;
        return Ok(InstanceLock {
            file,
            lock_path,
            dir,
        });
    }
}

/// Asks the kernel to read these files into the page cache in the background.
pub(crate) fn advise_will_need(paths: &[PathBuf]) {
    for path in paths {
        if let Ok(file) = File::open(path) {
            let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::WillNeed);
        }
    }
}
