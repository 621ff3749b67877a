use sqlx::{Any, Executor};

use crate::DbError;

/// Records that a control-plane process is alive (creating its row on the first call).
pub async fn heartbeat_instance<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO control_plane_instances (id, started_at, heartbeat_at) VALUES ($1, $2, $2)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
    )
    .bind(id)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("record a control-plane heartbeat"))?;
    Ok(())
}

/// Forgets processes silent since `before` that hold no pending commission.
pub async fn forget_dead_instances<'c>(
    ex: impl Executor<'c, Database = Any>,
    before: i64,
) -> Result<u64, DbError> {
    let done = sqlx::query(
        "DELETE FROM control_plane_instances
         WHERE heartbeat_at < $1
           AND NOT EXISTS (SELECT 1 FROM quota_provisions p WHERE p.instance = id)",
    )
    .bind(before)
    .execute(ex)
    .await
    .map_err(DbError::query("forget stopped control-plane processes"))?;
    Ok(done.rows_affected())
}
