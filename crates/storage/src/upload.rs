//! Streaming an upload into the block store.
//!
//! The body is cut into 4 MiB blocks as it arrives. Each block is handed to the block store
//! (which hashes it off the reactor and writes it unless present) while the next one is
//! received, with a few blocks in flight; the MD5 that Swift clients check is computed in
//! order on the blocking pool. Memory stays at a few blocks per upload whatever its size.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::stream::StreamExt;
use futures::{Stream, TryStreamExt};
use md5::{Digest, Md5};
use nefos_blocks::{BlockHash, BlockStore, Chunker};
use tokio::task::JoinHandle;

use crate::StorageError;

/// Blocks being stored at once per upload.
const IN_FLIGHT: usize = 6;

/// What an upload stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uploaded {
    pub(crate) hashes: Vec<BlockHash>,
    pub(crate) size: u64,
    /// MD5 of the content, hex; `None` when it was not asked for (the digest job
    /// computes it later).
    pub(crate) md5: Option<String>,
}

/// Stores `body` as blocks; refuses more than `max_size` bytes. Computes the MD5 on the
/// way only `with_md5`.
pub(crate) async fn upload<S, E>(
    blocks: &BlockStore,
    body: S,
    max_size: u64,
    with_md5: bool,
) -> Result<Uploaded, StorageError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut body = std::pin::pin!(body.map_err(|e| StorageError::Body(e.into())));
    let mut chunker = Chunker::new();
    // Each block is stored by a task of its own, so it runs while the next block arrives.
    let mut pending: VecDeque<JoinHandle<Result<BlockHash, StorageError>>> = VecDeque::new();
    let mut hashes = Vec::new();
    let mut md5 = with_md5.then(Md5Chain::default);
    let mut size: u64 = 0;
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk?;
        size += chunk.len() as u64;
        if size > max_size {
            return Err(StorageError::TooLarge { limit: max_size });
        }
        while let Some(block) = chunker.next_block(&mut chunk) {
            if let Some(md5) = md5.as_mut() {
                md5.feed(block.clone()).await?;
            }
            pending.push_back(store(blocks, block));
            if pending.len() >= IN_FLIGHT
                && let Some(task) = pending.pop_front()
            {
                hashes.push(joined(task).await?);
            }
        }
    }
    if let Some(block) = chunker.finish() {
        if let Some(md5) = md5.as_mut() {
            md5.feed(block.clone()).await?;
        }
        pending.push_back(store(blocks, block));
    }
    while let Some(task) = pending.pop_front() {
        hashes.push(joined(task).await?);
    }
    Ok(Uploaded {
        hashes,
        size,
        md5: match md5 {
            Some(md5) => Some(md5.finish().await?),
            None => None,
        },
    })
}

fn store(blocks: &BlockStore, block: Bytes) -> JoinHandle<Result<BlockHash, StorageError>> {
    let blocks = blocks.clone();
    tokio::spawn(async move { Ok(blocks.put(block).await?) })
}

async fn joined(
    task: JoinHandle<Result<BlockHash, StorageError>>,
) -> Result<BlockHash, StorageError> {
    task.await.map_err(|e| StorageError::Body(Box::new(e)))?
}

/// An MD5 computed block after block on the blocking pool, each step overlapping with the
/// receipt of the next block.
#[derive(Default)]
struct Md5Chain {
    running: Option<JoinHandle<Md5>>,
    state: Option<Md5>,
}

impl Md5Chain {
    async fn take(&mut self) -> Result<Md5, StorageError> {
        match self.running.take() {
            Some(task) => task.await.map_err(|e| StorageError::Body(Box::new(e))),
            None => Ok(self.state.take().unwrap_or_default()),
        }
    }

    async fn feed(&mut self, block: Bytes) -> Result<(), StorageError> {
        let mut hasher = self.take().await?;
        self.running = Some(tokio::task::spawn_blocking(move || {
            hasher.update(&block);
            hasher
        }));
        Ok(())
    }

    async fn finish(mut self) -> Result<String, StorageError> {
        Ok(hex::encode(self.take().await?.finalize()))
    }
}
