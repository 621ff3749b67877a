//! Leadership for singleton loops (docs/design.md §3): of all control-plane processes on
//! one database, one at a time runs a given loop. On PostgreSQL that is a transaction-level
//! advisory lock, held while the guard lives and released when it is dropped or the
//! process dies; on SQLite the one process serving the file is the leader.

use sqlx::Any;

use crate::{Backend, Database, DbError};

/// Held while this process leads a singleton loop. [`SingletonGuard::release`] lets go at
/// once; dropped, it lets go when its connection is next used (sqlx rolls back lazily),
/// or when the process ends.
#[derive(Debug)]
pub struct SingletonGuard {
    /// The transaction holding the advisory lock (PostgreSQL only).
    lock: Option<sqlx::Transaction<'static, Any>>,
}

impl SingletonGuard {
    /// Ends the leadership now.
    pub async fn release(self) -> Result<(), DbError> {
        if let Some(lock) = self.lock {
            lock.rollback()
                .await
                .map_err(DbError::query("release a singleton lock"))?;
        }
        Ok(())
    }
}

/// A stable lock key for a loop's name (FNV-1a), with the high bits marking nefos's.
fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(((hash >> 16) | 0x6e65_0000_0000_0000).to_ne_bytes())
}

impl Database {
    /// Leadership of the loop `name` if no other process holds it; None if one does.
    pub async fn try_singleton(&self, name: &str) -> Result<Option<SingletonGuard>, DbError> {
        if self.backend() == Backend::Sqlite {
            return Ok(Some(SingletonGuard { lock: None }));
        }
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(DbError::query("begin a singleton lock"))?;
        let (got,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
            .bind(lock_key(name))
            .fetch_one(&mut *tx)
            .await
            .map_err(DbError::query("take a singleton lock"))?;
        Ok(got.then_some(SingletonGuard { lock: Some(tx) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(lock_key("reconcile"), lock_key("reconcile"));
        assert_ne!(lock_key("reconcile"), lock_key("saga-recovery"));
    }
}
