//! Schema migrations on both engines.

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
