//! [`BlockStore`]: the backend-independent API over the `fs` and `s3` backends.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OwnedMutexGuard, Semaphore};

use crate::error::{BlockError, Result};
use crate::fs::{FsBackend, FsGcLock};
use crate::hash::{BLOCK_SIZE, BlockHash, hash_block, strip_trailing_zeros};
use crate::s3::{S3Backend, S3Settings};

/// Block operations one store runs at once, over all callers; more wait their turn. Bounds
/// the blocking threads and memory (up to one block each) the `fs` backend uses, and the
/// requests in flight to S3.
pub const MAX_CONCURRENT_OPERATIONS: usize = 32;

/// Operations one call over many blocks (`missing`, `touch`, `verify_all`, a garbage
/// collection) runs at once, so that one such call leaves room for others.
pub(crate) const BATCH_PARALLELISM: usize = 8;

/// Blocks at most this long are hashed on the async reactor; longer ones on the blocking
/// pool.
const INLINE_HASH_LIMIT: usize = 64 * 1024;

/// Which backend holds the blocks, and how to reach it. In TOML:
///
/// ```toml
/// backend = "fs"
/// path = "/var/lib/nefos/blocks"
/// ```
///
/// ```toml
/// backend = "s3"
/// bucket = "nefos-blocks"
/// endpoint = "https://s3.example.org"   # omit for AWS
/// region = "us-east-1"
/// access_key_id = "…"
/// secret_access_key = "…"
/// allow_http = false
/// prefix = "blocks"                     # key prefix inside the bucket, may be empty
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum BlockStoreConfig {
    /// Blocks as files under `path` (created if missing).
    Fs { path: PathBuf },
    /// Blocks as objects in an S3 bucket, which must exist.
    S3 {
        bucket: String,
        /// The service's URL; AWS's, derived from the region, when absent.
        #[serde(default)]
        endpoint: Option<String>,
        #[serde(default = "default_region")]
        region: String,
        #[serde(default)]
        access_key_id: Option<String>,
        #[serde(default)]
        secret_access_key: Option<String>,
        /// Allow an `http://` endpoint (a local test server); without it such an endpoint
        /// is refused when the store is opened.
        #[serde(default)]
        allow_http: bool,
        /// Prefix of every key this store writes.
        #[serde(default)]
        prefix: String,
    },
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

impl fmt::Debug for BlockStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockStoreConfig::Fs { path } => f.debug_struct("Fs").field("path", path).finish(),
            BlockStoreConfig::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                allow_http,
                prefix,
            } => f
                .debug_struct("S3")
                .field("bucket", bucket)
                .field("endpoint", endpoint)
                .field("region", region)
                .field("access_key_id", access_key_id)
                .field(
                    "secret_access_key",
                    &secret_access_key.as_ref().map(|_| "<redacted>"),
                )
                .field("allow_http", allow_http)
                .field("prefix", prefix)
                .finish(),
        }
    }
}

/// A stored block, as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    pub hash: BlockHash,
    /// Stored bytes (the block without its trailing zeros).
    pub size: u64,
    /// When the block was last written, put again or touched.
    pub last_touched: SystemTime,
}

/// What re-hashing a stored block found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// The stored bytes hash to the block's name.
    Intact,
    /// No such block is stored.
    Missing,
    /// The stored bytes do not hash to the block's name (or are longer than a block).
    Damaged { actual: BlockHash, size: u64 },
}

/// The result of the deletion step of a garbage collection on one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    Removed {
        size: u64,
    },
    /// Touched at or after the cutoff: kept.
    Touched,
    /// Already gone.
    Absent,
}

#[derive(Debug)]
enum Backend {
    Fs(Arc<FsBackend>),
    S3(S3Backend),
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    permits: Semaphore,
    /// Serializes garbage collections of this instance (the `fs` backend also locks a file,
    /// which covers other processes).
    gc: Arc<Mutex<()>>,
}

/// Held by a running garbage collection.
#[derive(Debug)]
pub(crate) struct GcLock {
    _local: OwnedMutexGuard<()>,
    _fs: Option<FsGcLock>,
}

/// The content-addressed block store shared by objects, images and snapshots. Blocks are
/// immutable, named by their [`hash_block`] hash, and stored once, without their trailing
/// zeros (which the hash ignores; readers pad back to the length they need). Cheap to
/// clone; all clones share one store and its concurrency limit.
#[derive(Debug, Clone)]
pub struct BlockStore {
    inner: Arc<Inner>,
}

/// SHA-256 of bytes already stripped of trailing zeros.
fn sha256(data: &[u8]) -> BlockHash {
    BlockHash(Sha256::digest(data).into())
}

/// Strips and hashes `data` on the blocking pool.
async fn strip_and_hash(data: Bytes) -> Result<(BlockHash, Bytes)> {
    tokio::task::spawn_blocking(move || {
        let len = strip_trailing_zeros(&data).len();
        let stripped = data.slice(..len);
        (sha256(&stripped), stripped)
    })
    .await
    .map_err(BlockError::Task)
}

impl BlockStore {
    /// Opens the store `config` names. For `fs`, creates the directory if needed, removes
    /// temporary files of writers that are gone (a crash) and puts back blocks a crashed
    /// garbage collection was deleting. For `s3`, builds the client and refuses a plain
    /// `http://` endpoint unless `allow_http`: the bucket must exist, and nothing else is
    /// checked until the first request or [`BlockStore::probe`].
    pub async fn open(config: &BlockStoreConfig) -> Result<BlockStore> {
        let backend = match config {
            BlockStoreConfig::Fs { path } => {
                let path = path.clone();
                let (fs, cleanup) = tokio::task::spawn_blocking(move || FsBackend::open(&path))
                    .await
                    .map_err(BlockError::Task)??;
                if cleanup.temp_dirs_removed > 0 || cleanup.trash_restored > 0 {
                    tracing::info!(
                        root = %fs.root().display(),
                        temp_dirs_removed = cleanup.temp_dirs_removed,
                        trash_restored = cleanup.trash_restored,
                        "block store: cleaned up after an earlier crash",
                    );
                }
                Backend::Fs(Arc::new(fs))
            }
            BlockStoreConfig::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                allow_http,
                prefix,
            } => Backend::S3(S3Backend::open(&S3Settings {
                bucket,
                endpoint: endpoint.as_deref(),
                region,
                access_key_id: access_key_id.as_deref(),
                secret_access_key: secret_access_key.as_deref(),
                allow_http: *allow_http,
                prefix,
            })?),
        };
        Ok(BlockStore {
            inner: Arc::new(Inner {
                backend,
                permits: Semaphore::new(MAX_CONCURRENT_OPERATIONS),
                gc: Arc::new(Mutex::new(())),
            }),
        })
    }

    /// Checks that the store works before anything relies on it: writes a small random
    /// object, reads it back and deletes it. The object is not a block (`fs`: a file in the
    /// store's temporary directory; `s3`: a key under `PREFIX/probe/` named by 128 random
    /// bits), so a failed or interrupted check leaves nothing a listing of blocks would
    /// show. A wrong endpoint, missing bucket, bad credentials or a read-only directory
    /// show here, at start, instead of as failed uploads.
    pub async fn probe(&self) -> Result<()> {
        let mut random = [0u8; 16];
        rand::thread_rng().fill(&mut random[..]);
        let name = hex::encode(random);
        let data = Bytes::from(format!("nefos block store probe {name}\n"));
        let read = match &self.inner.backend {
            Backend::Fs(fs) => {
                let expected = data.clone();
                self.fs_blocking(fs, move |fs| fs.probe(&name, &expected))
                    .await?
            }
            Backend::S3(s3) => {
                let _permit = self.permit().await;
                s3.probe(&name, data.clone()).await?
            }
        };
        if read != data {
            return Err(BlockError::ProbeMismatch {
                location: self.location(),
            });
        }
        Ok(())
    }

    /// `fs` or `s3`.
    pub fn backend_name(&self) -> &'static str {
        match &self.inner.backend {
            Backend::Fs(_) => "fs",
            Backend::S3(_) => "s3",
        }
    }

    /// Where the blocks are, for messages: a directory, or `s3://BUCKET/PREFIX`.
    pub fn location(&self) -> String {
        match &self.inner.backend {
            Backend::Fs(fs) => fs.root().display().to_string(),
            Backend::S3(s3) => format!("s3://{}/{}", s3.bucket(), s3.prefix()),
        }
    }

    /// For tests and tools: the file an `fs` store keeps a block in.
    pub fn fs_block_path(&self, hash: &BlockHash) -> Option<PathBuf> {
        match &self.inner.backend {
            Backend::Fs(fs) => Some(fs.block_path(hash)),
            Backend::S3(_) => None,
        }
    }

    /// For tests and tools: the key an `s3` store keeps a block under.
    pub fn s3_block_key(&self, hash: &BlockHash) -> Option<String> {
        match &self.inner.backend {
            Backend::Fs(_) => None,
            Backend::S3(s3) => Some(s3.block_key(hash).to_string()),
        }
    }

    async fn permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // The semaphore is never closed, so this always yields a permit.
        self.inner.permits.acquire().await.ok()
    }

    /// Runs `op` on the `fs` backend on the blocking pool.
    async fn fs_blocking<T, F>(&self, fs: &Arc<FsBackend>, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&FsBackend) -> Result<T> + Send + 'static,
    {
        let _permit = self.permit().await;
        let fs = Arc::clone(fs);
        tokio::task::spawn_blocking(move || op(&fs))
            .await
            .map_err(BlockError::Task)?
    }

    /// Stores a block (at most [`BLOCK_SIZE`] bytes) and returns its hash. Stores nothing
    /// when the block is already there, but refreshes its last-touched time, so that a
    /// garbage collection running now keeps it (see [`crate::gc`]). Returns only once the
    /// block is durable.
    pub async fn put(&self, data: Bytes) -> Result<BlockHash> {
        if data.len() > BLOCK_SIZE {
            return Err(BlockError::TooLarge { len: data.len() });
        }
        match &self.inner.backend {
            Backend::Fs(fs) => {
                self.fs_blocking(fs, move |fs| {
                    let stripped = strip_trailing_zeros(&data);
                    let hash = sha256(stripped);
                    fs.put(&hash, stripped)?;
                    Ok(hash)
                })
                .await
            }
            Backend::S3(s3) => {
                let (hash, stripped) = if data.len() <= INLINE_HASH_LIMIT {
                    let len = strip_trailing_zeros(&data).len();
                    let stripped = data.slice(..len);
                    (sha256(&stripped), stripped)
                } else {
                    strip_and_hash(data).await?
                };
                let _permit = self.permit().await;
                s3.put(&hash, stripped).await?;
                Ok(hash)
            }
        }
    }

    /// The stored bytes of a block — the block without its trailing zeros — or `None`.
    /// Does not verify them (see [`BlockStore::verify`]).
    pub async fn get(&self, hash: &BlockHash) -> Result<Option<Bytes>> {
        let hash = *hash;
        match &self.inner.backend {
            Backend::Fs(fs) => self.fs_blocking(fs, move |fs| fs.get(&hash)).await,
            Backend::S3(s3) => {
                let _permit = self.permit().await;
                s3.get(&hash).await
            }
        }
    }

    /// [`BlockStore::get`] for a large sequential read (a download): the `fs` backend takes
    /// what the page cache holds from it and reads the rest straight from the disk
    /// (`O_DIRECT`) into its own buffer, which saves copying the bytes through the page
    /// cache and keeps a big read from evicting everything else there; those bytes are not
    /// cached afterwards (Swift's object server, too, drops large objects from the cache).
    /// The same as `get` for `s3`.
    pub async fn get_uncached(&self, hash: &BlockHash) -> Result<Option<Bytes>> {
        let hash = *hash;
        match &self.inner.backend {
            Backend::Fs(fs) => self.fs_blocking(fs, move |fs| fs.get_direct(&hash)).await,
            Backend::S3(s3) => {
                let _permit = self.permit().await;
                s3.get(&hash).await
            }
        }
    }

    /// Hints that these blocks will be read soon, so the `fs` backend asks the kernel to
    /// start reading them (readahead into the page cache, no memory of ours). Best effort:
    /// a failure only loses the hint. Nothing for `s3`.
    pub async fn prefetch(&self, hashes: &[BlockHash]) {
        if let Backend::Fs(fs) = &self.inner.backend {
            let paths: Vec<_> = hashes.iter().map(|h| fs.block_path(h)).collect();
            let _ = tokio::task::spawn_blocking(move || crate::fs::advise_will_need(&paths)).await;
        }
    }

    /// Whether the block is stored.
    pub async fn contains(&self, hash: &BlockHash) -> Result<bool> {
        let hash = *hash;
        match &self.inner.backend {
            Backend::Fs(fs) => self.fs_blocking(fs, move |fs| fs.contains(&hash)).await,
            Backend::S3(s3) => {
                let _permit = self.permit().await;
                s3.contains(&hash).await
            }
        }
    }

    /// The hashes of `hashes` that are not stored, in input order, each once. Only a
    /// question: it does not protect the present blocks from a garbage collection; a caller
    /// about to refer to them uses [`BlockStore::touch`] instead.
    pub async fn missing(&self, hashes: &[BlockHash]) -> Result<Vec<BlockHash>> {
        self.each_unique(hashes, false).await
    }

    /// Refreshes the last-touched time of every present block of `hashes`, as
    /// [`BlockStore::put`] does for a block it already has, and returns the missing ones
    /// (in input order, each once). A caller that is about to commit a reference to blocks
    /// it did not upload (the Pithos hashmap protocol) calls this, not
    /// [`BlockStore::missing`], so that a concurrent garbage collection keeps them.
    pub async fn touch(&self, hashes: &[BlockHash]) -> Result<Vec<BlockHash>> {
        self.each_unique(hashes, true).await
    }

    async fn each_unique(&self, hashes: &[BlockHash], touch: bool) -> Result<Vec<BlockHash>> {
        let mut seen = HashSet::with_capacity(hashes.len());
        let unique: Vec<BlockHash> = hashes
            .iter()
            .filter(|h| seen.insert(**h))
            .copied()
            .collect();
        match &self.inner.backend {
            Backend::Fs(fs) => {
                self.fs_blocking(fs, move |fs| {
                    let mut missing = Vec::new();
                    for hash in unique {
                        let present = if touch {
                            fs.touch(&hash)?
                        } else {
                            fs.contains(&hash)?
                        };
                        if !present {
                            missing.push(hash);
                        }
                    }
                    Ok(missing)
                })
                .await
            }
            Backend::S3(s3) => {
                let present: Vec<(BlockHash, bool)> = stream::iter(unique)
                    .map(|hash| async move {
                        let _permit = self.permit().await;
                        let present = if touch {
                            s3.touch(&hash).await?
                        } else {
                            s3.contains(&hash).await?
                        };
                        Ok::<_, BlockError>((hash, present))
                    })
                    .buffered(BATCH_PARALLELISM)
                    .try_collect()
                    .await?;
                Ok(present
                    .into_iter()
                    .filter(|(_, present)| !present)
                    .map(|(hash, _)| hash)
                    .collect())
            }
        }
    }

    /// Deletes a block unconditionally; returns whether it was there. Only for tools and
    /// tests: unreferenced blocks are removed by a garbage collection ([`crate::gc`]), which
    /// is safe against concurrent uploads where this is not.
    pub async fn delete(&self, hash: &BlockHash) -> Result<bool> {
        let hash = *hash;
        match &self.inner.backend {
            Backend::Fs(fs) => self.fs_blocking(fs, move |fs| fs.delete(&hash)).await,
            Backend::S3(s3) => {
                let _permit = self.permit().await;
                s3.delete(&hash).await
            }
        }
    }

    /// Every stored block with its size and last-touched time, in no particular order.
    pub async fn list(&self) -> Result<Vec<BlockInfo>> {
        match &self.inner.backend {
            Backend::Fs(fs) => self.fs_blocking(fs, |fs| fs.list()).await,
            Backend::S3(s3) => {
                let _permit = self.permit().await;
                s3.list().await
            }
        }
    }

    /// Reads a stored block and re-hashes it.
    pub async fn verify(&self, hash: &BlockHash) -> Result<VerifyOutcome> {
        let expected = *hash;
        let check = move |data: Option<Bytes>| match data {
            None => VerifyOutcome::Missing,
            Some(data) => {
                let actual = hash_block(&data);
                if actual == expected && data.len() <= BLOCK_SIZE {
                    VerifyOutcome::Intact
                } else {
                    VerifyOutcome::Damaged {
                        actual,
                        size: data.len() as u64,
                    }
                }
            }
        };
        match &self.inner.backend {
            Backend::Fs(fs) => {
                self.fs_blocking(fs, move |fs| Ok(check(fs.get(&expected)?)))
                    .await
            }
            Backend::S3(s3) => {
                let data = {
                    let _permit = self.permit().await;
                    s3.get(&expected).await?
                };
                tokio::task::spawn_blocking(move || check(data))
                    .await
                    .map_err(BlockError::Task)
            }
        }
    }

    /// Takes the garbage-collection lock of the store; `Busy` if another collection holds
    /// it.
    pub(crate) async fn gc_lock(&self) -> Result<GcLock> {
        let local = Arc::clone(&self.inner.gc)
            .try_lock_owned()
            .map_err(|_| BlockError::Busy {
                what: "a garbage collection",
                path: PathBuf::from(self.location()),
            })?;
        let fs = match &self.inner.backend {
            Backend::Fs(fs) => {
                let path = fs.gc_lock_path();
                let lock = self.fs_blocking(fs, |fs| fs.try_gc_lock()).await?;
                Some(lock.ok_or(BlockError::Busy {
                    what: "a garbage collection",
                    path,
                })?)
            }
            Backend::S3(_) => None,
        };
        Ok(GcLock {
            _local: local,
            _fs: fs,
        })
    }

    /// Under the gc lock: puts back what a crashed collection left in the trash (and, on
    /// S3, drops orphaned markers older than `cutoff`), then lists the blocks.
    pub(crate) async fn recover_and_list(
        &self,
        _lock: &GcLock,
        cutoff: SystemTime,
    ) -> Result<(usize, Vec<BlockInfo>)> {
        match &self.inner.backend {
            Backend::Fs(fs) => {
                self.fs_blocking(fs, |fs| {
                    let restored = fs.restore_trash()?;
                    Ok((restored, fs.list()?))
                })
                .await
            }
            Backend::S3(s3) => {
                let _permit = self.permit().await;
                s3.recover(cutoff).await
            }
        }
    }

    /// Under the gc lock: deletes a block unless touched at or after `cutoff`.
    pub(crate) async fn remove_if_untouched(
        &self,
        _lock: &GcLock,
        hash: &BlockHash,
        cutoff: SystemTime,
    ) -> Result<Removal> {
        let hash = *hash;
        match &self.inner.backend {
            Backend::Fs(fs) => {
                self.fs_blocking(fs, move |fs| fs.remove_if_untouched(&hash, cutoff))
                    .await
            }
            Backend::S3(s3) => {
                let _permit = self.permit().await;
                s3.remove_if_untouched(&hash, cutoff).await
            }
        }
    }
}
