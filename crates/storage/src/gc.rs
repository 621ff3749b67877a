//! Garbage collection of blocks no object version refers to (see `nefos_blocks::gc` for
//! the protocol that keeps it safe beside uploads in flight).

use std::collections::HashSet;
use std::time::Duration;

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
        let referenced: HashSet<BlockHash> = q::all_hashmaps(self.db.pool())
            .await?
            .iter()
            .flat_map(|text| parse_hashmap(text))
            .collect();
        Ok(pass.sweep(|hash| referenced.contains(hash)).await)
    }

    /// Re-hashes every stored block and reports the damaged ones.
    pub async fn verify_blocks(&self) -> Result<VerifyReport, StorageError> {
        Ok(nefos_blocks::verify_all(&self.blocks).await?)
    }
}
