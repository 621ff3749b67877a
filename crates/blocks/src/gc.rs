//! Garbage collection of unreferenced blocks, and verification of every block.
//!
//! The block store does not know which blocks are in use: objects, images and snapshots
//! refer to blocks by hash from the database. A garbage collection therefore needs the
//! caller's set of referenced blocks, and must not delete a block that an upload running
//! at the same time is about to refer to. It is safe by this protocol.
//!
//! # Writers (object storage, images, snapshots)
//!
//! 1. Before committing a reference to a block, a writer makes sure the block is stored
//!    *and touched*: it either [`put`](BlockStore::put)s it (which stores it, or refreshes
//!    the last-touched time of the copy already there), or [`touch`](BlockStore::touch)es
//!    it (the Pithos hashmap protocol, where the client sends only hashes) and sends the
//!    missing ones first. [`missing`](BlockStore::missing) is only a question and protects
//!    nothing.
//! 2. The writer commits the reference (the object's hashmap row) within the *grace
//!    period* of that put or touch: the `older_than` a collection is run with must exceed
//!    the longest an upload can take between storing its first block and committing.
//! 3. A new reference made without a put or touch — a copy or move of an existing object
//!    — is created in the same database transaction that reads the reference it copies, so
//!    that at every instant one of the two is committed.
//!
//! # The collection ([`GcPass`], or [`collect_garbage`] in one call)
//!
//! One collection runs at a time per store ([`GcPass::start`] takes a lock: a file lock
//! for `fs`, shared by every process; within this process only for `s3`, so run the
//! collection of an `s3` store from one process).
//!
//! 1. **Start**: take the lock; fix `cutoff = now − older_than`; put back blocks that a
//!    crashed collection left half-deleted; **list** every block with its last-touched
//!    time.
//! 2. **References**: *after the listing*, the caller reads the set of referenced blocks
//!    (every version of every object, every image and snapshot) from the database, in one
//!    consistent read.
//! 3. **Sweep**: each listed block that is not referenced and whose listed last-touched time
//!    is before `cutoff` is removed with a check that is atomic against a concurrent put or
//!    touch: the block is moved aside (to the trash), its last-touched time is read again,
//!    and it is put back if it was touched at or after `cutoff`, else deleted. A put or
//!    touch refreshes the time *before* it checks the block is still in place, so one that
//!    reports the block present is always seen by the re-read; one that finds it moved
//!    aside writes the block again (a `touch` reports it missing, so the client sends it).
//!    While a block is in the trash, [`get`](BlockStore::get) still finds it there.
//!
//! Why no referenced block is lost: take a reference committed at time `c` after a put or
//! touch at `t ≥ c − older_than` (writer rules 1–2). If `c` is before step 2, the block is
//! in the referenced set. Otherwise `c` is after step 1 began, so `t > start − older_than =
//! cutoff`; a touch before the listing shows in the listed time, one after it is seen by
//! the atomic re-check of step 3. Blocks written after the listing are not candidates.
//! References made by copying (rule 3) are in the referenced set whenever their source
//! was. Clock skew between the machines that stamp times (the S3 service, or the hosts of
//! a shared filesystem) and the collector eats into the grace period: use hours.
//!
//! A crash in the middle of step 3 leaves at most the blocks then in the trash, which the
//! next collection (and, for `fs`, the next open) puts back.

use std::time::{Duration, SystemTime};

use futures::{StreamExt, stream};

use crate::error::{BlockError, Result};
use crate::hash::BlockHash;
use crate::store::{BATCH_PARALLELISM, BlockInfo, BlockStore, GcLock, Removal, VerifyOutcome};

/// What a garbage collection did.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Blocks listed at the start.
    pub listed: usize,
    /// Listed blocks in the referenced set.
    pub referenced: usize,
    /// Unreferenced blocks kept because they were touched within the grace period
    /// (uploads in flight), including those touched while the collection ran.
    pub recent: usize,
    pub deleted: usize,
    /// Bytes of the deleted blocks.
    pub deleted_bytes: u64,
    /// Blocks that a crashed collection had left half-deleted, put back at the start.
    pub restored: usize,
    /// Candidates that were already gone when their turn came.
    pub vanished: usize,
    /// Blocks whose deletion failed; the collection went on with the others.
    pub failed: Vec<(BlockHash, BlockError)>,
}

/// A garbage collection that has listed the store and waits for the referenced set.
#[derive(Debug)]
pub struct GcPass {
    store: BlockStore,
    lock: GcLock,
    cutoff: SystemTime,
    blocks: Vec<BlockInfo>,
    restored: usize,
}

impl GcPass {
    /// Step 1 of the protocol (module doc): locks, recovers, lists. Blocks touched less
    /// than `older_than` before now are kept whatever the referenced set says.
    pub async fn start(store: &BlockStore, older_than: Duration) -> Result<GcPass> {
        let lock = store.gc_lock().await?;
        let now = SystemTime::now();
        let cutoff = now
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let (restored, blocks) = store.recover_and_list(&lock, cutoff).await?;
        Ok(GcPass {
            store: store.clone(),
            lock,
            cutoff,
            blocks,
            restored,
        })
    }

    /// Every block listed, with its size and last-touched time.
    pub fn blocks(&self) -> &[BlockInfo] {
        &self.blocks
    }

    /// Blocks last touched before this time are candidates.
    pub fn cutoff(&self) -> SystemTime {
        self.cutoff
    }

    /// Step 3: deletes every listed block that `is_referenced` rejects and that was not
    /// touched since the cutoff. `is_referenced` must answer from references read *after*
    /// [`GcPass::start`] returned.
    pub async fn sweep(self, is_referenced: impl Fn(&BlockHash) -> bool) -> GcReport {
        let mut report = GcReport {
            listed: self.blocks.len(),
            restored: self.restored,
            ..GcReport::default()
        };
        let mut candidates = Vec::new();
        for block in &self.blocks {
            if is_referenced(&block.hash) {
                report.referenced += 1;
            } else if block.last_touched >= self.cutoff {
                report.recent += 1;
            } else {
                candidates.push(block.hash);
            }
        }
        let (store, lock, cutoff) = (&self.store, &self.lock, self.cutoff);
        let mut removals = stream::iter(candidates)
            .map(|hash| async move { (hash, store.remove_if_untouched(lock, &hash, cutoff).await) })
            .buffer_unordered(BATCH_PARALLELISM);
        while let Some((hash, outcome)) = removals.next().await {
            match outcome {
                Ok(Removal::Removed { size }) => {
                    report.deleted += 1;
                    report.deleted_bytes += size;
                }
                Ok(Removal::Touched) => report.recent += 1,
                Ok(Removal::Absent) => report.vanished += 1,
                Err(error) => {
                    tracing::warn!(block = %hash, error = %error, "garbage collection could not delete a block");
                    report.failed.push((hash, error));
                }
            }
        }
        tracing::info!(
            location = %self.store.location(),
            listed = report.listed,
            referenced = report.referenced,
            recent = report.recent,
            deleted = report.deleted,
            deleted_bytes = report.deleted_bytes,
            failed = report.failed.len(),
            "block garbage collection done",
        );
        report
    }
}

/// Runs a whole garbage collection: [`GcPass::start`], then `is_referenced` (called only
/// after the listing, once per listed block), then the sweep. `is_referenced` must reflect
/// the references committed *after* this function was called — typically a closure over a
/// set the caller cannot have read earlier; when the references come from an async
/// source, use [`GcPass`] directly.
pub async fn collect_garbage(
    store: &BlockStore,
    older_than: Duration,
    is_referenced: impl Fn(&BlockHash) -> bool,
) -> Result<GcReport> {
    let pass = GcPass::start(store, older_than).await?;
    Ok(pass.sweep(is_referenced).await)
}

/// A block whose stored bytes do not hash to its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DamagedBlock {
    pub hash: BlockHash,
    /// What the stored bytes hash to.
    pub actual: BlockHash,
    pub size: u64,
}

/// What [`verify_all`] found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Blocks re-hashed.
    pub checked: usize,
    pub intact: usize,
    pub damaged: Vec<DamagedBlock>,
    /// Listed, then gone before they could be read (deleted meanwhile).
    pub vanished: usize,
    /// Blocks that could not be read.
    pub unreadable: Vec<(BlockHash, BlockError)>,
}

impl VerifyReport {
    /// No damaged or unreadable block.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.unreadable.is_empty()
    }
}

/// Re-hashes every stored block (a few at a time) and reports the damaged and unreadable
/// ones.
pub async fn verify_all(store: &BlockStore) -> Result<VerifyReport> {
    let blocks = store.list().await?;
    let mut report = VerifyReport::default();
    let mut checks = stream::iter(blocks)
        .map(|block| async move { (block.hash, store.verify(&block.hash).await) })
        .buffer_unordered(BATCH_PARALLELISM);
    while let Some((hash, outcome)) = checks.next().await {
        report.checked += 1;
        match outcome {
            Ok(VerifyOutcome::Intact) => report.intact += 1,
            Ok(VerifyOutcome::Missing) => report.vanished += 1,
            Ok(VerifyOutcome::Damaged { actual, size }) => {
                tracing::warn!(block = %hash, actual = %actual, size, "damaged block");
                report.damaged.push(DamagedBlock { hash, actual, size });
            }
            Err(error) => report.unreadable.push((hash, error)),
        }
    }
    report.damaged.sort_by_key(|d| d.hash);
    Ok(report)
}
