//! Write transactions.
//!
//! SQLite runs one writer at a time. Left to itself, a second writer polls for the lock
//! with sleeps of up to 100 ms (`busy_timeout`), which shows as long tail latencies under
//! concurrent writes. Within one process, writers therefore queue on an async mutex before
//! `BEGIN IMMEDIATE`, and are woken the moment the previous one commits; `busy_timeout`
//! still covers writers in other processes (`nefos admin` beside `nefos up`). PostgreSQL
//! needs no such queue.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::{Any, AnyConnection};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The queue of a process's SQLite writers.
pub(crate) type WriterQueue = Arc<Mutex<()>>;

/// A database transaction that may write; dereferences to its connection. Dropping it
/// without [`Transaction::commit`] rolls it back.
#[derive(Debug)]
pub struct Transaction {
    inner: sqlx::Transaction<'static, Any>,
    /// Held until the transaction ends (SQLite only).
    _turn: Option<OwnedMutexGuard<()>>,
}

impl Transaction {
    pub(crate) fn new(
        inner: sqlx::Transaction<'static, Any>,
        turn: Option<OwnedMutexGuard<()>>,
    ) -> Self {
        Transaction { inner, _turn: turn }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

impl Deref for Transaction {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl DerefMut for Transaction {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}
