use thiserror::Error;

/// Errors of the database layer.
#[derive(Debug, Error)]
pub enum DbError {
    #[error("unsupported database URL {url:?}: expected sqlite://PATH or postgres://…")]
    UnsupportedUrl { url: String },

    #[error("cannot open the database at {location}")]
    Connect {
        /// The file, or `HOST:PORT` of the server: never the credentials.
        location: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot reach the database at {location} within {timeout:?}")]
    Unreachable {
        location: String,
        timeout: std::time::Duration,
    },

    /// A command that must not create a database found none.
    #[error("no database at {}", path.display())]
    NoDatabase { path: std::path::PathBuf },

    #[error("cannot prepare the database file {}", path.display())]
    Files {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("a background task of the database layer failed")]
    Task(#[source] tokio::task::JoinError),

    #[error(
        "the database schema is at version {database}, newer than this nefos binary knows \
         (up to {binary}); run a nefos release at least as new as the one that last migrated it"
    )]
    SchemaTooNew { database: i64, binary: i64 },

    #[error(
        "the database schema is at version {database}, older than this binary needs ({binary}); run migrations first"
    )]
    SchemaTooOld { database: i64, binary: i64 },

    #[error("migration {version} ({name}) failed")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// A uniqueness constraint refused the write: the caller asked for a name or key that
    /// another row already holds.
    #[error("{what} already exists")]
    Conflict {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },

    #[error("database error while trying to {action}")]
    Query {
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

impl DbError {
    /// Wraps a query error, naming what was being attempted.
    pub fn query(action: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
        move |source| DbError::Query { action, source }
    }

    /// Like [`DbError::query`], but a unique-constraint violation becomes [`DbError::Conflict`].
    pub fn insert(action: &'static str, what: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
        move |source| {
            let unique = matches!(&source, sqlx::Error::Database(e) if e.is_unique_violation());
            if unique {
                DbError::Conflict { what, source }
            } else {
                DbError::Query { action, source }
            }
        }
    }

    /// Whether PostgreSQL refused a write because another transaction changed the row
    /// since this one's snapshot ([`crate::Database::begin_snapshot`]): nothing was
    /// written, and the work can be retried.
    pub fn is_serialization_failure(&self) -> bool {
        match self {
            DbError::Query { source, .. } => source
                .as_database_error()
                .and_then(|e| e.code())
                .is_some_and(|code| code == "40001"),
            _ => false,
        }
    }
}
