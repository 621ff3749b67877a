//! Garbage collection of blocks no object version refers to (see `nefos_blocks::gc` for
//! the protocol that keeps it safe beside uploads in flight).

use std::collections::HashSet;
use std::time::Duration;

use futures::TryStreamExt;
use nefos_blocks::{BlockHash, GcPass, GcReport, VerifyReport};
use nefos_db::storage as q;

use crate::object::parse_hashmap;
use crate::{Storage, StorageError};

impl Storage {
    /// Deletes blocks that no version of any object refers to and that nothing has
    /// touched for `older_than`. Run it from one process at a time.
    pub async fn collect_garbage(&self, older_than: Duration) -> Result<GcReport, StorageError> {
        let pass = GcPass::start(&self.blocks, older_than).await?;
        // The references are read after the listing: that order is what makes it safe.
        // They are streamed a version at a time into the set of distinct blocks, so memory
        // follows the blocks stored, not the versions that share them; a hashmap that does
        // not parse stops the collection before anything is deleted.
        let mut referenced: HashSet<BlockHash> = HashSet::new();
        let mut hashmaps = std::pin::pin!(q::live_hashmaps(self.db.pool()));
        while let Some((serial, text)) = hashmaps.try_next().await? {
            referenced.extend(parse_hashmap(serial, &text)?);
        }
        Ok(pass.sweep(|hash| referenced.contains(hash)).await)
    }

    /// Re-hashes every stored block and reports the damaged ones.
    pub async fn verify_blocks(&self) -> Result<VerifyReport, StorageError> {
        Ok(nefos_blocks::verify_all(&self.blocks).await?)
    }
}
