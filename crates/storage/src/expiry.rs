//! Expiry (`X-Delete-At`, `X-Delete-After`): due objects already read as gone; the
//! expirer deletes them for real, as a DELETE would (a versioned container keeps the
//! history).

use nefos_db::storage as q;
use nefos_db::time::now_micros;

use crate::{Storage, StorageError};

/// Who the versions the expirer writes (deletion markers) are recorded as modified by.
const EXPIRER: &str = "nefos-expirer";

/// Passes over the due objects per call, so one call ends even if objects keep expiring.
const MAX_BATCHES: usize = 100;

impl Storage {
    /// Deletes the objects whose expiry has passed, `batch` per query, and returns how
    /// many it deleted. Idempotent and safe to run in several processes at once: each
    /// deletion re-checks, in its own transaction, that the current version is still due.
    pub async fn delete_expired(&self, batch: i64) -> Result<u64, StorageError> {
        let batch = batch.max(1);
        let mut deleted = 0;
        for _ in 0..MAX_BATCHES {
            let now = now_micros() / 1_000_000;
            let due = q::expired_objects(self.db.pool(), now, batch).await?;
            let full_batch = i64::try_from(due.len()).unwrap_or(i64::MAX) >= batch;
            for (container_id, name) in due {
                if self.expire(&container_id, &name, now).await? {
                    deleted += 1;
                }
            }
            if !full_batch {
                break;
            }
        }
        Ok(deleted)
    }

    /// Deletes the current version of one object if it is due at `now` (seconds).
    async fn expire(&self, container_id: &str, name: &str, now: i64) -> Result<bool, StorageError> {
        let mut tx = self.db.begin().await?;
        let Some(current) = q::get_current(&mut *tx, container_id, name).await? else {
            return Ok(false);
        };
        if current.delete_at.is_none_or(|at| at > now) {
            // Replaced, or its expiry changed, since it was found.
            return Ok(false);
        }
        self.record_deletion(&mut tx, current, EXPIRER.to_owned())
            .await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit an expiry"))?;
        Ok(true)
    }
}
