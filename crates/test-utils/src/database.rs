use nefos_db::{Database, PoolSettings};
use tempfile::TempDir;

/// The environment variable naming the PostgreSQL server tests use, as a URL without a
/// database name (`postgres://user@host:port`). `scripts/test` starts one and sets it.
pub const POSTGRES_ENV: &str = "NEFOS_TEST_POSTGRES";

/// A migrated, empty database for one test, and what keeps it alive.
#[derive(Debug)]
pub struct TestDatabase {
    /// `sqlite` or `postgres`, for assertion messages.
    pub label: &'static str,
    pub db: Database,
    /// The URL, for tests that start a process on the same database.
    pub url: String,
    _dir: Option<TempDir>,
}

/// A fresh SQLite database in a temporary directory.
pub async fn sqlite() -> TestDatabase {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = Database::sqlite_url(&dir.path().join("nefos.db"));
    let db = Database::connect(&url, &PoolSettings::default())
        .await
        .expect("open SQLite");
    db.migrate().await.expect("migrate SQLite");
    TestDatabase {
        label: "sqlite",
        db,
        url,
        _dir: Some(dir),
    }
}

/// A fresh database on the PostgreSQL server named by `NEFOS_TEST_POSTGRES`.
///
/// Panics when the variable is unset: the PostgreSQL half of the store tests must not pass
/// by being skipped. `scripts/test` starts a server and sets the variable.
pub async fn postgres() -> TestDatabase {
    let base = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_ENV} is not set: run the tests with scripts/test, which starts a \
             PostgreSQL server, or point {POSTGRES_ENV} at one (postgres://user@host:port)"
        )
    });
    let base = base.trim_end_matches('/');
    let name = format!("nefos_test_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(&format!("{base}/postgres"), &PoolSettings::default())
        .await
        .expect("connect to the test PostgreSQL server");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(admin.pool())
        .await
        .expect("create a test database");
    admin.close().await;
    let url = format!("{base}/{name}");
    let db = Database::connect(&url, &PoolSettings::default())
        .await
        .expect("open PostgreSQL");
    db.migrate().await.expect("migrate PostgreSQL");
    TestDatabase {
        label: "postgres",
        db,
        url,
        _dir: None,
    }
}

/// One fresh database on each engine, for store tests that must pass on both.
pub async fn each_backend() -> Vec<TestDatabase> {
    vec![sqlite().await, postgres().await]
}
