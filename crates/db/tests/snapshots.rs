//! Snapshot transactions (`Database::begin_snapshot`), on PostgreSQL where they differ from
//! an ordinary transaction: every read sees one snapshot, and a write of a row another
//! transaction changed since is refused as a serialization failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use nefos_db::DbError;
use nefos_test_utils::postgres;

async fn serial(ex: impl sqlx::Executor<'_, Database = sqlx::Any>) -> i64 {
    sqlx::query_scalar("SELECT value FROM counters WHERE name = 'commission_serial'")
        .fetch_one(ex)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_snapshot_reads_one_state_and_refuses_to_write_over_a_newer_one() {
    let t = postgres().await;
    let mut tx = t.db.begin_snapshot().await.unwrap();
    let before = serial(&mut *tx).await;
    // Another transaction commits a change meanwhile.
    sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'commission_serial'")
        .execute(t.db.pool())
        .await
        .unwrap();
    assert_eq!(serial(&mut *tx).await, before, "the snapshot moved");
    let error = sqlx::query("UPDATE counters SET value = 100 WHERE name = 'commission_serial'")
        .execute(&mut *tx)
        .await
        .map_err(DbError::query("test"))
        .unwrap_err();
    assert!(error.is_serialization_failure(), "{error:?}");
    drop(tx);
    assert_eq!(serial(t.db.pool()).await, before + 1);
    // Any other failure is not one.
    let other = sqlx::query("SELECT nothing FROM nowhere")
        .execute(t.db.pool())
        .await
        .map_err(DbError::query("test"))
        .unwrap_err();
    assert!(!other.is_serialization_failure());
}
