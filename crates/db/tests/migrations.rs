//! Schema migrations on both engines.

#![allow(clippy::unwrap_used)]

use nefos_db::{DbError, MIGRATIONS};
use nefos_test_utils::each_backend;

fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

#[tokio::test]
async fn migrating_twice_applies_nothing_the_second_time() {
    for t in each_backend().await {
        let status = t.db.migrate().await.unwrap();
        assert_eq!(status.version, latest(), "{}", t.label);
        assert_eq!(status.applied, 0, "{}", t.label);
        assert_eq!(t.db.check_schema().await.unwrap(), latest(), "{}", t.label);
    }
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused() {
    for t in each_backend().await {
        sqlx::query(
            "INSERT INTO nefos_schema (version, name, applied_at) VALUES ($1, 'future', 0)",
        )
        .bind(latest() + 1)
        .execute(t.db.pool())
        .await
        .unwrap();
        let err = t.db.migrate().await.unwrap_err();
        assert!(
            matches!(err, DbError::SchemaTooNew { database, binary } if database == latest() + 1 && binary == latest()),
            "{}: {err:?}",
            t.label
        );
        assert!(
            err.to_string().contains("newer than this nefos binary"),
            "{}",
            t.label
        );
        assert!(matches!(
            t.db.check_schema().await,
            Err(DbError::SchemaTooNew { .. })
        ));
    }
}

/// Records migration `version` as applied, keeping binaries of `compatible_from` working.
async fn record_future(db: &nefos_db::Database, version: i64, compatible_from: i64) {
    sqlx::query("INSERT INTO nefos_schema (version, name, applied_at) VALUES ($1, 'future', 0)")
        .bind(version)
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO nefos_schema_compatibility (version, compatible_from) VALUES ($1, $2)",
    )
    .bind(version)
    .bind(compatible_from)
    .execute(db.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn a_newer_schema_that_keeps_this_binary_working_is_accepted_for_a_roll() {
    for t in each_backend().await {
        // Two additive releases ahead: this binary keeps working, as during a roll.
        record_future(&t.db, latest() + 1, latest()).await;
        record_future(&t.db, latest() + 2, latest()).await;
        assert_eq!(
            t.db.check_schema().await.unwrap(),
            latest() + 2,
            "{}",
            t.label
        );
        assert_eq!(t.db.migrate().await.unwrap().applied, 0, "{}", t.label);
        // A third that contracts what this binary uses: refused.
        record_future(&t.db, latest() + 3, latest() + 1).await;
        assert!(
            matches!(t.db.check_schema().await, Err(DbError::SchemaTooNew { .. })),
            "{}",
            t.label
        );
        assert!(
            matches!(t.db.migrate().await, Err(DbError::SchemaTooNew { .. })),
            "{}",
            t.label
        );
    }
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_full_sync() {
    let t = nefos_test_utils::sqlite().await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    assert_eq!(fk, 1);
}

#[tokio::test]
async fn an_unknown_url_scheme_is_a_clear_error() {
    let err = nefos_db::Database::connect("mysql://h/db", &Default::default())
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::UnsupportedUrl { .. }));
}

#[allow(clippy::unwrap_used)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn connect_existing_never_creates_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.db");
    let url = nefos_db::Database::sqlite_url(&path);
    let err = nefos_db::Database::connect_existing(&url, &Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DbError::NoDatabase { path: p } if *p == path),
        "{err:?}"
    );
    assert!(
        !path.exists(),
        "connect_existing created {}",
        path.display()
    );
}

#[tokio::test]
async fn sqlite_files_are_private_and_existing_ones_are_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nefos.db");
    let url = nefos_db::Database::sqlite_url(&path);
    let db = nefos_db::Database::connect(&url, &Default::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let wal = dir.path().join("nefos.db-wal");
    let shm = dir.path().join("nefos.db-shm");
    for file in [&path, &wal, &shm] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    db.close().await;

    // What an older release left: the database readable by everyone.
    for file in [&path, &wal, &shm] {
        if file.exists() {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let db = nefos_db::Database::connect_existing(&url, &Default::default())
        .await
        .unwrap();
    assert_eq!(db.check_schema().await.unwrap(), latest());
    for file in [&path, &wal, &shm] {
        if file.exists() {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
    }
}

#[tokio::test]
async fn checking_an_empty_database_reports_it_behind_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = nefos_db::Database::sqlite_url(&dir.path().join("empty.db"));
    let db = nefos_db::Database::connect(&url, &Default::default())
        .await
        .unwrap();
    assert_eq!(db.schema_version().await.unwrap(), 0);
    let err = db.check_schema().await.unwrap_err();
    assert!(
        matches!(err, DbError::SchemaTooOld { database: 0, .. }),
        "{err:?}"
    );
    let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(tables, 0, "checking the schema wrote to the database");
}

#[tokio::test]
async fn an_unreachable_postgres_is_reported_quickly_by_host_and_port() {
    // A port nobody listens on: connections are refused, which the pool would retry for
    // its whole acquire timeout.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://nefos:s3cret-pw@127.0.0.1:{port}/nefos");
    let settings = nefos_db::PoolSettings {
        connect_timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let err = nefos_db::Database::connect_existing(&url, &settings)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_secs(5),
        "took {elapsed:?}"
    );
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(
        !message.contains("s3cret-pw") && !message.contains("nefos@"),
        "{message}"
    );
}
