//! The digest job: MD5s (Swift's ETag) of versions written without one, and Pithos hashes
//! of versions stored before the hash was kept.
//!
//! A version made from a hashmap (Pithos `PUT ?hashmap`) or by a partial update (`POST`
//! with `Content-Range`) is committed without its MD5, so the request costs what the blocks
//! it changes cost, not a read of the whole object. Until the job has read it back, GET and
//! HEAD answer without an `ETag`, listings give an empty `hash`, `If-Match` on it fails and
//! it cannot be a segment of a static large object. Clients that check downloads against
//! the ETag (`swift download`) skip the check when there is none.

use std::sync::Arc;

use futures::StreamExt;
use md5::{Digest, Md5};
use nefos_blocks::{BlockError, BlockHash, merkle_root};
use nefos_db::storage as q;

use crate::object::parse_hashmap;
use crate::{Storage, StorageError, download};

impl Storage {
    /// Computes the missing digests of up to `batch` versions, oldest first, and returns
    /// how many it completed. Safe to run in several processes at once: a version never
    /// changes content, so two computations agree and the first one stored is kept.
    pub async fn compute_pending_digests(&self, batch: i64) -> Result<u64, StorageError> {
        let pending = q::pending_digests(self.db.pool(), batch.max(1)).await?;
        let mut done = 0;
        for version in pending {
            // One version that cannot be read (a lost block, a damaged row) must not hold up
            // the others: it is logged and tried again on the next pass.
            match self.compute_digests_of(&version).await {
                Ok(true) => done += 1,
                Ok(false) => {}
                Err(error) => tracing::warn!(
                    serial = version.serial,
                    // Recorded as an error, with its sources.
                    error = &error as &dyn std::error::Error,
                    "cannot compute an object version's digests"
                ),
            }
        }
        Ok(done)
    }

    /// Computes and stores the digests of one version; false if it is gone.
    async fn compute_digests_of(&self, version: &q::PendingDigest) -> Result<bool, StorageError> {
        // Gone meanwhile (deleted, or an unversioned container's old version).
        let Some(text) = q::get_hashmap(self.db.pool(), version.serial).await? else {
            return Ok(false);
        };
        let hashes = parse_hashmap(version.serial, &text)?;
        drop(text);
        let size = u64::try_from(version.size).unwrap_or(0);
        let etag = if version.etag_pending {
            self.md5_of(&hashes, size).await?
        } else {
            // Kept by the query: only a missing ETag is overwritten.
            String::new()
        };
        let hash = merkle_root(&hashes).to_hex();
        q::set_digests(self.db.pool(), version.serial, &etag, &hash).await?;
        Ok(true)
    }

    /// The MD5 of the object made of `hashes` and `size` bytes, read back from the store
    /// (with read-ahead, hashing on the blocking pool).
    pub(crate) async fn md5_of(
        &self,
        hashes: &[BlockHash],
        size: u64,
    ) -> Result<String, StorageError> {
        let stream = download::read(self.blocks.clone(), Arc::new(hashes.to_vec()), size, None);
        let mut stream = std::pin::pin!(stream);
        let mut hasher = Md5::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            hasher = tokio::task::spawn_blocking(move || {
                hasher.update(&chunk);
                hasher
            })
            .await
            .map_err(|e| StorageError::Blocks(BlockError::Task(e)))?;
        }
        Ok(hex::encode(hasher.finalize()))
    }
}
