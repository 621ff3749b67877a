//! Streaming an object's bytes out of the block store, with read-ahead.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
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
                let from = first.saturating_sub(block_start);
                let to = (end - block_start).min(block_len);
                Ok(part(&stored, usize_of(from), usize_of(to)))
            }
        })
        .buffered(READ_AHEAD)
        .flat_map(|part| {
            let chunks: Vec<Result<Bytes, StorageError>> = match part {
                Ok(parts) => parts
                    .into_iter()
                    .filter(|c| !c.is_empty())
                    .map(Ok)
                    .collect(),
                Err(error) => vec![Err(error)],
            };
            stream::iter(chunks)
        })
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

/// Bytes `from..to` of a block stored as `stored`: blocks are stored without their
/// trailing zeros, which are served from one shared buffer of zeros instead of being
/// copied. Either part may be empty.
fn part(stored: &Bytes, from: usize, to: usize) -> [Bytes; 2] {
    let kept = stored.len();
    let data = stored.slice(from.min(kept)..to.min(kept));
    let zeros = to.saturating_sub(from.max(kept)).min(BLOCK_SIZE);
    static ZEROS: OnceLock<Bytes> = OnceLock::new();
    let zeros = ZEROS
        .get_or_init(|| Bytes::from(vec![0; BLOCK_SIZE]))
        .slice(..zeros);
    [data, zeros]
}

/// Offsets within one block, which is never larger than `BLOCK_SIZE`.
fn usize_of(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

    use futures::TryStreamExt;
    use nefos_blocks::BlockStoreConfig;

    use super::*;

    /// Pseudo-random bytes without a period, so that a misplaced page shows.
    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    /// An object of `blocks` blocks and a tail, with a block of zeros and blocks ending in
    /// zeros (stored stripped), as the store holds it.
    async fn object(store: &BlockStore, blocks: usize) -> (Vec<u8>, Arc<Vec<BlockHash>>) {
        let mut data = random(blocks * BLOCK_SIZE + 5000, blocks as u64);
        data[BLOCK_SIZE..2 * BLOCK_SIZE].fill(0);
        let len = data.len();
        data[len - 3000..].fill(0);
        if blocks > 2 {
            data[2 * BLOCK_SIZE + 1000..3 * BLOCK_SIZE].fill(0);
        }
        let mut hashes = Vec::new();
        for block in data.chunks(BLOCK_SIZE) {
            hashes.push(store.put(Bytes::copy_from_slice(block)).await.unwrap());
        }
        (data, Arc::new(hashes))
    }

    /// Drops the block files from the page cache, so that reads go to the disk.
    fn evict(store: &BlockStore, hashes: &[BlockHash]) {
        for hash in hashes {
            let file = std::fs::File::open(store.fs_block_path(hash).unwrap()).unwrap();
            rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_whole_objects_and_ranges_with_their_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(&BlockStoreConfig::Fs {
            path: dir.path().to_path_buf(),
        })
        .await
        .unwrap();
        // Through the page cache (2 blocks and a tail) and past it (6 blocks and a tail).
        for blocks in [2, 6] {
            let (data, hashes) = object(&store, blocks).await;
            let size = data.len() as u64;
            let b = BLOCK_SIZE as u64;
            let ranges = [
                None,
                Some((0, 0)),
                Some((size - 1, size - 1)),
                Some((b - 10, 2 * b + 10)),
                Some((b + 5, b + 100)),
                Some((2 * b + 999, 2 * b + 1001)),
                Some((size - 3001, size - 1)),
                Some((100, size - 100)),
            ];
            // Cached (just written), and from the disk.
            for (range, evicted) in ranges.iter().flat_map(|r| [(*r, false), (*r, true)]) {
                if evicted {
                    evict(&store, &hashes);
                }
                let range = range.map(|(first, last)| ByteRange { first, last });
                let chunks: Vec<Bytes> = read(store.clone(), hashes.clone(), size, range)
                    .try_collect()
                    .await
                    .unwrap();
                assert!(chunks.iter().all(|c| !c.is_empty()), "an empty chunk");
                let read: Vec<u8> = chunks.concat();
                let (first, last) = range.map_or((0, size - 1), |r| (r.first, r.last));
                let expected = &data[first as usize..=last as usize];
                assert!(
                    read == expected,
                    "{blocks} blocks, {range:?}, evicted {evicted}: {} bytes read, {} expected",
                    read.len(),
                    expected.len()
                );
            }
        }
    }

    #[tokio::test]
    async fn a_missing_block_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(&BlockStoreConfig::Fs {
            path: dir.path().to_path_buf(),
        })
        .await
        .unwrap();
        let absent = nefos_blocks::hash_block(b"never stored");
        for blocks in [1, 8] {
            let hashes = Arc::new(vec![absent; blocks]);
            let size = (blocks * BLOCK_SIZE) as u64;
            let result: Result<Vec<Bytes>, _> =
                read(store.clone(), hashes, size, None).try_collect().await;
            assert!(matches!(result, Err(StorageError::NotFound { .. })));
        }
    }
}
