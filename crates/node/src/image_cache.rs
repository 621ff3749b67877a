//! The node's image cache (docs/design.md §5): images keyed by their content, filled
//! block by block. A block the node already holds, in any cached image, is copied from
//! there instead of fetched; all-zero blocks are holes and cost nothing. A cached image is
//! read-only and never changes, so any number of VM overlays can stand on it.
//!
//! A cached image is a byte copy of the image object, raw or qcow2 as it was declared; a
//! qcow2 image is not converted to raw. Converting would cost a pass over the whole disk
//! (its virtual size, not its often much smaller file) at every first use and a cache that
//! no longer holds the object's blocks, so later fills could not reuse them. QEMU reads
//! through a qcow2 base as well as a raw one, and an overlay stands on either, so spawning
//! stays O(1) in the image's size.
//!
//! Every image is inspected (`nefos_disk_format`) against its declared format before a VM
//! first uses it: after a fill, before the file takes its final name, and again whenever
//! a VM is defined on an image already cached (by an older agent, perhaps). The control
//! plane inspects images on upload too; this is the node's own defence, so that a file
//! named in an image's header can never be opened on this host.
//!
//! Layout of the cache directory, for an image id `<root>-<size>`:
//! `<id>.raw` or `<id>.qcow2` (the image, mode 0444, named by its format),
//! `<id>.hashmap` (its block hashes, one hex per line, used to find blocks for later
//! fills), `<id>.partial` (a fill in progress; removed at start). The id is the content
//! alone: inspection refuses qcow2 content declared raw and anything else declared qcow2,
//! so only one format of a given content can ever be cached.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use nefos_blocks::{BLOCK_SIZE, BlockHash, hash_block, merkle_root};
use nefos_disk_format::{DiskFormat, InspectError, Inspection, ReadAt};
use nefos_node_api::ImageContent;
use thiserror::Error;
use tokio::sync::Mutex;

use crate::control_plane::{ControlPlaneClient, ControlPlaneError};

/// Where the blocks of images come from.
pub trait BlockSource: Send + Sync {
    fn fetch(
        &self,
        hash: &BlockHash,
    ) -> impl Future<Output = Result<Bytes, ControlPlaneError>> + Send;
}

impl BlockSource for ControlPlaneClient {
    async fn fetch(&self, hash: &BlockHash) -> Result<Bytes, ControlPlaneError> {
        self.fetch_block(hash).await
    }
}

#[derive(Debug, Error)]
pub enum CacheError {
    #[error("the image's block size is {got}; nefos images use {BLOCK_SIZE}-byte blocks")]
    BlockSize { got: u64 },
    #[error("an image of {size} bytes has {expected} blocks, but its hashmap lists {got}")]
    BlockCount {
        size: u64,
        expected: u64,
        got: usize,
    },
    #[error("invalid block hash {hash:?} in the image's hashmap")]
    BadHash { hash: String },
    #[error("cannot fetch block {index} of the image")]
    Fetch {
        index: usize,
        #[source]
        source: ControlPlaneError,
    },
    #[error("block {index} of the image is corrupt: expected hash {expected}, got {got}")]
    Corrupt {
        index: usize,
        expected: BlockHash,
        got: BlockHash,
    },
    #[error("the image failed its safety inspection")]
    Refused(#[source] InspectError),
    #[error("cannot inspect the image {path}")]
    Inspect {
        path: PathBuf,
        #[source]
        source: InspectError,
    },
    #[error("image cache I/O on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl CacheError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
        move |source| CacheError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// A checked image description: its blocks as hashes, its cache id and its declared
/// format.
#[derive(Debug, Clone)]
pub struct ImageKey {
    pub id: String,
    pub size: u64,
    pub hashes: Vec<BlockHash>,
    pub format: DiskFormat,
}

impl ImageKey {
    /// Checks that the hashmap fits the size and derives the id from the content alone.
    pub fn new(content: &ImageContent) -> Result<ImageKey, CacheError> {
        if content.block_size != BLOCK_SIZE as u64 {
            return Err(CacheError::BlockSize {
                got: content.block_size,
            });
        }
        let expected = content.size.div_ceil(BLOCK_SIZE as u64);
        // Pithos gives an empty object one hash, that of the empty block.
        let count_ok = content.hashes.len() as u64 == expected
            || (content.size == 0 && content.hashes.len() == 1);
        if !count_ok {
            return Err(CacheError::BlockCount {
                size: content.size,
                expected,
                got: content.hashes.len(),
            });
        }
        let hashes = content
            .hashes
            .iter()
            .map(|h| {
                h.parse::<BlockHash>()
                    .map_err(|_| CacheError::BadHash { hash: h.clone() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let id = format!("{}-{}", merkle_root(&hashes), content.size);
        Ok(ImageKey {
            id,
            size: content.size,
            hashes,
            format: content.format,
        })
    }
}

/// A cached image, inspected and ready to back overlays.
#[derive(Debug, Clone)]
pub struct CachedImage {
    pub id: String,
    pub path: PathBuf,
    /// The file's length.
    pub size: u64,
    /// What it is: its format and the size of the disk it holds.
    pub inspection: Inspection,
}

/// What a fill did, block by block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FillStats {
    pub fetched: usize,
    pub reused: usize,
    pub zero: usize,
}

#[derive(Debug)]
pub struct ImageCache {
    dir: PathBuf,
    /// One fill per image at a time; a second caller waits and then finds it cached.
    fills: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// Blocks fetched or copied at once during a fill.
const FILL_CONCURRENCY: usize = 4;

impl ImageCache {
    /// Opens the cache in `dir`, creating it, and drops fills a crash left unfinished.
    /// The cache keeps `dir` as an absolute path: its images' paths go into overlays and
    /// onto QEMU's command line, and must mean the same file from anywhere.
    pub fn open(dir: &Path) -> Result<ImageCache, CacheError> {
        std::fs::create_dir_all(dir).map_err(CacheError::io(dir))?;
        let dir = &std::fs::canonicalize(dir).map_err(CacheError::io(dir))?;
        for entry in std::fs::read_dir(dir).map_err(CacheError::io(dir))? {
            let path = entry.map_err(CacheError::io(dir))?.path();
            if path.extension().is_some_and(|e| e == "partial") {
                tracing::info!(path = %path.display(), "removing an unfinished image fill");
                std::fs::remove_file(&path).map_err(CacheError::io(&path))?;
            }
        }
        Ok(ImageCache {
            dir: dir.to_owned(),
            fills: Mutex::new(HashMap::new()),
        })
    }

    /// Where the image `id` of `format` is, once cached.
    pub fn path_of(&self, id: &str, format: DiskFormat) -> PathBuf {
        self.dir.join(format!("{id}.{}", format.as_str()))
    }

    /// The image, inspected, filling the cache first if it lacks it.
    pub async fn ensure(
        &self,
        key: &ImageKey,
        source: &impl BlockSource,
    ) -> Result<(CachedImage, FillStats), CacheError> {
        let path = self.path_of(&key.id, key.format);
        if let Some(cached) = self.cached(key, &path).await? {
            return Ok((cached, FillStats::default()));
        }
        let lock = self
            .fills
            .lock()
            .await
            .entry(key.id.clone())
            .or_default()
            .clone();
        let _fill = lock.lock().await;
        let result = match self.cached(key, &path).await {
            Ok(Some(cached)) => Ok((cached, FillStats::default())),
            Ok(None) => {
                let partial = self.dir.join(format!("{}.partial", key.id));
                let result = self.fill(key, &partial, &path, source).await;
                if result.is_err() {
                    let _ = tokio::fs::remove_file(&partial).await;
                }
                result
            }
            Err(error) => Err(error),
        };
        // Callers still waiting for this fill hold its lock (a failed fill leaves them one
        // to retry); the last one out removes it, so that a newcomer cannot start a second
        // fill of the same `.partial` beside theirs. Clones are taken under `fills`, so
        // the count cannot grow while it is held.
        let mut fills = self.fills.lock().await;
        if Arc::strong_count(&lock) <= 2 {
            fills.remove(&key.id);
        }
        drop(fills);
        result
    }

    /// The image at `path` if it is cached, inspected again: it may predate inspection.
    async fn cached(&self, key: &ImageKey, path: &Path) -> Result<Option<CachedImage>, CacheError> {
        if !tokio::fs::try_exists(path)
            .await
            .map_err(CacheError::io(path))?
        {
            return Ok(None);
        }
        let inspection = inspect_file(path, key.size, key.format).await?;
        Ok(Some(CachedImage {
            id: key.id.clone(),
            path: path.to_owned(),
            size: key.size,
            inspection,
        }))
    }

    /// Fills `partial` with the image, inspects it and only then gives it its name `done`.
    async fn fill(
        &self,
        key: &ImageKey,
        partial: &Path,
        done: &Path,
        source: &impl BlockSource,
    ) -> Result<(CachedImage, FillStats), CacheError> {
        let local = self.local_blocks().await?;
        let file = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(partial)
            .map_err(CacheError::io(partial))?;
        file.set_len(key.size).map_err(CacheError::io(partial))?;
        let file = Arc::new(file);
        let zero = BlockHash::empty();
        let stats = futures::stream::iter(key.hashes.iter().copied().enumerate())
            .map(|(index, hash)| {
                let file = file.clone();
                let local = &local;
                async move {
                    if hash == zero {
                        return Ok(FillStats {
                            zero: 1,
                            ..FillStats::default()
                        });
                    }
                    let (data, reused) = match local.get(&hash) {
                        Some(at) => match read_local(at.clone(), hash).await {
                            Some(data) => (data, true),
                            None => (fetch(source, index, hash).await?, false),
                        },
                        None => (fetch(source, index, hash).await?, false),
                    };
                    let offset = index as u64 * BLOCK_SIZE as u64;
                    let fits = offset + data.len() as u64 <= key.size;
                    let got = hash_block(&data);
                    if got != hash || !fits {
                        return Err(CacheError::Corrupt {
                            index,
                            expected: hash,
                            got,
                        });
                    }
                    let path = partial.to_owned();
                    tokio::task::spawn_blocking(move || file.write_all_at(&data, offset))
                        .await
                        .map_err(|e| CacheError::Io {
                            path: path.clone(),
                            source: io::Error::other(e),
                        })?
                        .map_err(CacheError::io(&path))?;
                    Ok(if reused {
                        FillStats {
                            reused: 1,
                            ..FillStats::default()
                        }
                    } else {
                        FillStats {
                            fetched: 1,
                            ..FillStats::default()
                        }
                    })
                }
            })
            .buffer_unordered(FILL_CONCURRENCY)
            .try_fold(FillStats::default(), |sum, one| async move {
                Ok(FillStats {
                    fetched: sum.fetched + one.fetched,
                    reused: sum.reused + one.reused,
                    zero: sum.zero + one.zero,
                })
            })
            .await?;
        let inspection = inspect_file(partial, key.size, key.format).await?;

        let dir = self.dir.clone();
        let hashmap_path = self.dir.join(format!("{}.hashmap", key.id));
        let hashmap: String = key.hashes.iter().map(|h| format!("{h}\n")).collect();
        let cached = CachedImage {
            id: key.id.clone(),
            path: done.to_owned(),
            size: key.size,
            inspection,
        };
        let (partial, done) = (partial.to_owned(), done.to_owned());
        tokio::task::spawn_blocking(move || -> Result<(), CacheError> {
            file.sync_data().map_err(CacheError::io(&partial))?;
            std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o444))
                .map_err(CacheError::io(&partial))?;
            write_synced(&hashmap_path, hashmap.as_bytes())
                .map_err(CacheError::io(&hashmap_path))?;
            std::fs::rename(&partial, &done).map_err(CacheError::io(&done))?;
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(CacheError::io(&dir))
        })
        .await
        .map_err(|e| CacheError::Io {
            path: self.dir.clone(),
            source: io::Error::other(e),
        })??;
        Ok((cached, stats))
    }

    /// Where each block of every cached image lies: hash → (image file, block index).
    async fn local_blocks(&self) -> Result<HashMap<BlockHash, (PathBuf, u64)>, CacheError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut blocks = HashMap::new();
            for entry in std::fs::read_dir(&dir).map_err(CacheError::io(&dir))? {
                let path = entry.map_err(CacheError::io(&dir))?.path();
                if path.extension().is_none_or(|e| e != "hashmap") {
                    continue;
                }
                // The image of this content, in the one format it was cached in.
                let Some(image) = [DiskFormat::Raw, DiskFormat::Qcow2]
                    .map(|format| path.with_extension(format.as_str()))
                    .into_iter()
                    .find(|image| image.exists())
                else {
                    continue;
                };
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                for (index, line) in text.lines().enumerate() {
                    if let Ok(hash) = line.parse::<BlockHash>() {
                        blocks.entry(hash).or_insert((image.clone(), index as u64));
                    }
                }
            }
            Ok(blocks)
        })
        .await
        .map_err(|e| CacheError::Io {
            path: self.dir.clone(),
            source: io::Error::other(e),
        })?
    }
}

/// A block from a cached image, if it is there and still has its hash (a damaged cache
/// falls back to fetching).
async fn read_local((image, index): (PathBuf, u64), hash: BlockHash) -> Option<Bytes> {
    tokio::task::spawn_blocking(move || {
        let file = File::open(&image).ok()?;
        let len = file.metadata().ok()?.len();
        let offset = index * BLOCK_SIZE as u64;
        let take = usize::try_from(len.saturating_sub(offset).min(BLOCK_SIZE as u64)).ok()?;
        let mut data = vec![0u8; take];
        file.read_exact_at(&mut data, offset).ok()?;
        let data = nefos_blocks::strip_trailing_zeros(&data).to_vec();
        (hash_block(&data) == hash).then(|| Bytes::from(data))
    })
    .await
    .ok()
    .flatten()
}

async fn fetch(
    source: &impl BlockSource,
    index: usize,
    hash: BlockHash,
) -> Result<Bytes, CacheError> {
    source
        .fetch(&hash)
        .await
        .map_err(|source| CacheError::Fetch { index, source })
}

/// A local image file, read for inspection off the async runtime's threads.
#[derive(Debug)]
struct ImageFile {
    file: Arc<File>,
}

impl ReadAt for ImageFile {
    type Error = io::Error;

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            let mut bytes = vec![0; len];
            file.read_exact_at(&mut bytes, offset)?;
            Ok(bytes)
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// Inspects the image file at `path`, `len` bytes long, against its declared `format`.
async fn inspect_file(path: &Path, len: u64, format: DiskFormat) -> Result<Inspection, CacheError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(CacheError::io(path))?
        .into_std()
        .await;
    let image = ImageFile {
        file: Arc::new(file),
    };
    nefos_disk_format::inspect(&image, len, format)
        .await
        .map_err(|source| {
            if source.is_refusal() {
                CacheError::Refused(source)
            } else {
                CacheError::Inspect {
                    path: path.to_owned(),
                    source,
                }
            }
        })
}

fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let temp = path.with_extension("tmp");
    let mut file = File::create(&temp)?;
    file.write_all(data)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)
}
