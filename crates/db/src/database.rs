use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
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
    /// How long a query waits for a free connection of the pool.
    pub acquire_timeout: Duration,
    /// How long opening the database may take before it is reported unreachable. Kept
    /// short: a server that is down or firewalled should be named at start, not after the
    /// pool's retries.
    pub connect_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Whether opening a SQLite database may create its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Create {
    IfMissing,
    Never,
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

/// Rows a read-only connection buffers ahead of its reader: a page of servers and more.
const READ_ROW_BUFFER: usize = 2048;

/// A pool of read-only native connections to the SQLite database at `url` (which the
/// `Any` pool has opened, so it exists and is in WAL mode). Connections are made when
/// first needed.
async fn sqlite_reader(url: &str, settings: &PoolSettings) -> Result<SqlitePool, DbError> {
    use std::str::FromStr;
    let location = location(url);
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|source| DbError::Connect {
            location: location.clone(),
            source,
        })?
        .read_only(true)
        .busy_timeout(Duration::from_secs(30))
        // The driver's thread hands rows over a bounded channel; at its default of 50 a
        // page of 1,000 servers parked and woke that thread twenty times over, which was a
        // quarter of a page's time.
        .row_buffer_size(READ_ROW_BUFFER);
    Ok(SqlitePoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(options))
}

/// A handle on the control-plane database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    writers: WriterQueue,
    /// On SQLite, read-only connections of the native driver for reads of many rows: the
    /// `Any` driver copies every value of every row once more and builds each row's
    /// column list anew, which was most of the cost of a page of a thousand servers.
    sqlite_reads: Option<SqlitePool>,
}

impl Database {
    /// Opens `url` (`sqlite://PATH` or `postgres://…`). A SQLite file is created if missing
    /// (mode 0600). Does not migrate: call [`Database::migrate`] or
    /// [`Database::check_schema`]. For the commands that set a cloud up; the others use
    /// [`Database::connect_existing`].
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Self, DbError> {
        Self::open(url, settings, Create::IfMissing).await
    }

    /// Opens a database that must exist already: a missing SQLite file is
    /// [`DbError::NoDatabase`], never created, so a mistyped path cannot make an empty
    /// cloud to operate on.
    pub async fn connect_existing(url: &str, settings: &PoolSettings) -> Result<Self, DbError> {
        Self::open(url, settings, Create::Never).await
    }

    async fn open(url: &str, settings: &PoolSettings, create: Create) -> Result<Self, DbError> {
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
                if let Some(path) = sqlite_path(url) {
                    prepare_sqlite_file(path, create).await?;
                }
                let mode = match create {
                    Create::IfMissing => "mode=rwc",
                    Create::Never => "mode=rw",
                };
                with_default_param(url, "mode=", mode)
            }
            Backend::Postgres => url.to_owned(),
        };
        let location = location(&url);
        let pool = tokio::time::timeout(settings.connect_timeout, options.connect(&url))
            .await
            .map_err(|_| DbError::Unreachable {
                location: location.clone(),
                timeout: settings.connect_timeout,
            })?
            .map_err(|source| DbError::Connect { location, source })?;
        let sqlite_reads = match backend {
            Backend::Sqlite => Some(sqlite_reader(&url, settings).await?),
            Backend::Postgres => None,
        };
        Ok(Database {
            pool,
            backend,
            writers: WriterQueue::default(),
            sqlite_reads,
        })
    }

    /// The URL of a SQLite database file at `path`.
    pub fn sqlite_url(path: &Path) -> String {
        format!("sqlite://{}", path.display())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Native read-only SQLite connections, on SQLite only: for reads of many rows.
    pub fn sqlite_reads(&self) -> Option<&SqlitePool> {
        self.sqlite_reads.as_ref()
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

    /// Starts a transaction that may write and whose reads all see one snapshot, for work
    /// that compares tables written together elsewhere (reconciliation). On PostgreSQL this
    /// is `REPEATABLE READ`: a write of a row that another transaction changed since the
    /// snapshot fails with a serialization error rather than act on what was read. SQLite's
    /// [`Database::begin`] holds the write lock throughout, which gives the same.
    pub async fn begin_snapshot(&self) -> Result<Transaction, DbError> {
        match self.backend {
            Backend::Sqlite => self.begin().await,
            Backend::Postgres => {
                let tx = self
                    .pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ")
                    .await
                    .map_err(DbError::query("begin a snapshot transaction"))?;
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

    /// [`Database::lock_key`], shared: transactions that name `key` this way run side by
    /// side, and exclude one that takes it with [`Database::lock_key`] (writers into a
    /// container, say, against the container's deletion).
    pub async fn lock_key_shared(&self, tx: &mut Transaction, key: &str) -> Result<(), DbError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))")
                .bind(key)
                .execute(&mut **tx)
                .await
                .map_err(DbError::query("take a shared lock"))?;
        }
        Ok(())
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The file of a SQLite URL (`sqlite://PATH`, `sqlite:PATH`, with or without a query);
/// `None` for an in-memory database.
fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    (!path.is_empty() && path != ":memory:").then(|| Path::new(path))
}

/// `url` with `param` (`key=value`) added unless the URL sets `key` itself.
fn with_default_param(url: &str, key: &str, param: &str) -> String {
    match url.split_once('?') {
        Some((_, query)) if query.split('&').any(|p| p.starts_with(key)) => url.to_owned(),
        Some(_) => format!("{url}&{param}"),
        None => format!("{url}?{param}"),
    }
}

/// The database file and the WAL and shared-memory files beside it hold every password
/// hash and token hash of the cloud: readable by their owner only. SQLite gives the `-wal`
/// and `-shm` files the mode of the database file, so a database created 0600 keeps them
/// private whatever the umask; files an older release left open are tightened here.
async fn prepare_sqlite_file(path: &Path, create: Create) -> Result<(), DbError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |source| DbError::Files {
            path: path.clone(),
            source,
        };
        if !path.try_exists().map_err(io)? {
            match create {
                Create::Never => return Err(DbError::NoDatabase { path }),
                Create::IfMissing => {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .mode(PRIVATE_FILE_MODE)
                        .open(&path)
                        .map_err(io)?;
                }
            }
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            let file = std::path::PathBuf::from(name);
            let meta = match std::fs::metadata(&file) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(DbError::Files { path: file, source }),
            };
            if meta.permissions().mode() & 0o777 != PRIVATE_FILE_MODE {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))
                    .map_err(|source| DbError::Files { path: file, source })?;
            }
        }
        Ok(())
    })
    .await
    .map_err(DbError::Task)?
}

const PRIVATE_FILE_MODE: u32 = 0o600;

/// Where a database is, for messages: the file of a SQLite URL, `HOST:PORT` of a
/// PostgreSQL one. Never the user name or password, nor the rest of the URL.
fn location(url: &str) -> String {
    if let Some(path) = sqlite_path(url) {
        return path.display().to_string();
    }
    let Some((_, rest)) = url.split_once("://") else {
        return "the database".to_owned();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host_port.is_empty() {
        // libpq's default: the local socket.
        return "localhost:5432".to_owned();
    }
    let has_port = match host_port.rsplit_once(':') {
        // `[::1]` has colons but no port; `[::1]:5433` and `db:5433` have one.
        Some((_, port)) => !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    };
    if has_port && !host_port.ends_with(']') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
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
    fn location_names_the_server_never_the_credentials() {
        assert_eq!(
            location("postgres://u:secret@db.example:6543/nefos"),
            "db.example:6543"
        );
        assert_eq!(
            location("postgresql://u:secret@db/nefos?sslmode=require"),
            "db:5432"
        );
        assert_eq!(location("postgres://[::1]:5433/n"), "[::1]:5433");
        assert_eq!(location("postgres://u@[::1]/n"), "[::1]:5432");
        assert_eq!(
            location("sqlite:///var/lib/nefos/nefos.db?mode=rw"),
            "/var/lib/nefos/nefos.db"
        );
    }

    #[test]
    fn sqlite_mode_is_added_unless_given() {
        assert_eq!(
            with_default_param("sqlite:///a", "mode=", "mode=rw"),
            "sqlite:///a?mode=rw"
        );
        assert_eq!(
            with_default_param("sqlite:///a?cache=shared", "mode=", "mode=rw"),
            "sqlite:///a?cache=shared&mode=rw"
        );
        assert_eq!(
            with_default_param("sqlite:///a?mode=ro", "mode=", "mode=rw"),
            "sqlite:///a?mode=ro"
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("sqlite:a.db?x=y"), Some(Path::new("a.db")));
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
