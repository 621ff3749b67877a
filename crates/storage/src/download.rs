//! Streaming an object's bytes out of the block store, with read-ahead.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{self, Stream, StreamExt};
use nefos_blocks::{BLOCK_SIZE, BlockHash, BlockStore};

use crate::StorageError;

/// Blocks read into memory ahead of the one being sent.
const READ_AHEAD: usize = 4;

/// Blocks the kernel is asked to bring into its page cache ahead of the one being sent:
/// deep read-ahead for the disk without holding the bytes in our memory.
const PREFETCH: usize = 16;

/// Reads of more blocks than this bypass the page cache for what it does not hold
/// ([`BlockStore::get_uncached`]): one copy less, and a big download does not evict
/// everything else. Smaller ones go through it, so that small objects read often stay
/// cached. Such reads get no kernel read-ahead: their `READ_AHEAD` reads are what keeps
/// the disk busy.
const CACHED_READ_BLOCKS: u64 = 4;

/// An inclusive byte range of an object, already resolved against its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Never: a range holds at least its first byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The bytes of `range` of an object made of `hashes` and `size` bytes.
pub(crate) fn read(
    blocks: BlockStore,
    hashes: Arc<Vec<BlockHash>>,
    size: u64,
    range: Option<ByteRange>,
) -> impl Stream<Item = Result<Bytes, StorageError>> + Send + 'static {
    let block_size = BLOCK_SIZE as u64;
    let (first, end) = match range {
        Some(r) => (r.first, r.last + 1),
        None => (0, size),
    };
    let indices = if first >= end {
        0..0
    } else {
        (first / block_size)..end.div_ceil(block_size)
    };
    let first_index = indices.start;
    let last_index = indices.end;
    let uncached = last_index - first_index > CACHED_READ_BLOCKS;
    stream::iter(indices)
        .map(move |index| {
            let blocks = blocks.clone();
            let hashes = hashes.clone();
            async move {
                if !uncached {
                    prefetch(&blocks, &hashes, index, first_index, last_index).await;
                }
                let block_start = index * block_size;
                let block_len = (size - block_start).min(block_size);
                let hash = usize::try_from(index)
                    .ok()
                    .and_then(|i| hashes.get(i))
                    .ok_or(StorageError::NotFound {
                        what: "block of the object",
                    })?;
                let stored = if uncached {
                    blocks.get_uncached(hash).await?
                } else {
                    blocks.get(hash).await?
                };
                let stored = stored.ok_or(StorageError::NotFound {
                    what: "block of the object",
                })?;
                let full = pad(stored, block_len);
                let from = first.saturating_sub(block_start);
                let to = (end - block_start).min(block_len);
                Ok(full.slice(usize_of(from)..usize_of(to)))
            }
        })
        .buffered(READ_AHEAD)
}

/// Asks the kernel to read ahead of block `index` of a read of blocks `first..last`: the
/// first block asks for the whole window, each later one for the block that enters it.
async fn prefetch(blocks: &BlockStore, hashes: &[BlockHash], index: u64, first: u64, last: u64) {
    let window = if index == first {
        index..(index + PREFETCH as u64).min(last)
    } else {
        let entering = index + PREFETCH as u64 - 1;
        entering..(entering + 1).min(last)
    };
    let ahead: Vec<BlockHash> = window
        .filter_map(|i| hashes.get(usize::try_from(i).ok()?).copied())
        .collect();
    if !ahead.is_empty() {
        blocks.prefetch(&ahead).await;
    }
}

/// Blocks are stored without trailing zeros; an object's block has its full length.
fn pad(stored: Bytes, len: u64) -> Bytes {
    let len = usize_of(len);
    if stored.len() >= len {
        return stored.slice(..len);
    }
    let mut full = BytesMut::with_capacity(len);
    full.extend_from_slice(&stored);
    full.resize(len, 0);
    full.freeze()
}

/// Offsets within one block, which is never larger than `BLOCK_SIZE`.
fn usize_of(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}
