use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use crate::transaction::WriterQueue;
use crate::{DbError, Transaction};

/// The engine behind a [`Database`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn from_url(url: &str) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(DbError::UnsupportedUrl { url: redact(url) })
        }
    }
}

/// Connection-pool limits.
impl Backend {
    /// The collation that orders text by its UTF-8 bytes.
    pub(crate) fn byte_collation(self) -> &'static str {
        match self {
            Backend::Sqlite => "COLLATE BINARY",
            Backend::Postgres => "COLLATE \"C\"",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// Every SQLite connection gets these before its first use. WAL lets readers run beside the
/// one writer; `synchronous=FULL` makes a committed transaction survive power loss; the busy
/// timeout makes a second process (say `nefos admin` beside `nefos up`) wait for the write
/// lock instead of failing.
const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 30000",
];

/// A handle on the control-plane database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    writers: WriterQueue,
}

impl Database {
    /// Opens `url` (`sqlite://PATH` or `postgres://…`). A SQLite file is created if missing.
    /// Does not migrate: call [`Database::migrate`] or [`Database::check_schema`].
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let mut options = AnyPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout);
        let url = match backend {
            Backend::Sqlite => {
                options = options.after_connect(|conn, _meta| {
                    Box::pin(async move {
                        for pragma in SQLITE_PRAGMAS {
                            conn.execute(*pragma).await?;
                        }
                        Ok(())
                    })
                });
                if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                }
            }
            Backend::Postgres => url.to_owned(),
        };
        let pool = options
            .connect(&url)
            .await
            .map_err(|source| DbError::Connect {
                url: redact(&url),
                source,
            })?;
        Ok(Database {
            pool,
            backend,
            writers: WriterQueue::default(),
        })
    }

    /// The URL of a SQLite database file at `path`.
    pub fn sqlite_url(path: &Path) -> String {
        format!("sqlite://{}", path.display())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for reads that need no transaction.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a transaction that may write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes fails outright,
    /// without waiting, when another connection committed in between.
    pub async fn begin(&self) -> Result<Transaction, DbError> {
        let failed = DbError::query("begin a transaction");
        match self.backend {
            Backend::Sqlite => {
                let turn = self.writers.clone().lock_owned().await;
                let tx = self
                    .pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(failed)?;
                Ok(Transaction::new(tx, Some(turn)))
            }
            Backend::Postgres => {
                let tx = self.pool.begin().await.map_err(failed)?;
                Ok(Transaction::new(tx, None))
            }
        }
    }

    /// Serialises the transactions that name `key` until `tx` ends. SQLite needs nothing:
    /// its write transactions already run one at a time (`BEGIN IMMEDIATE`). PostgreSQL
    /// takes a transaction-scoped advisory lock on a hash of the key, so two writers of the
    /// same thing (an object name, say) cannot both pass their checks and then collide.
    pub async fn lock_key(&self, tx: &mut Transaction, key: &str) -> Result<(), DbError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(key)
                .execute(&mut **tx)
                .await
                .map_err(DbError::query("take a lock"))?;
        }
        Ok(())
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `url` with any password replaced, for messages and logs.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn backend_is_chosen_by_scheme() {
        assert_eq!(Backend::from_url("sqlite:///a").ok(), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgresql://h/d").ok(),
            Some(Backend::Postgres)
        );
        assert!(matches!(
            Backend::from_url("mysql://h/d"),
            Err(DbError::UnsupportedUrl { .. })
        ));
    }
}
