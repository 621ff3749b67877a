//! Moves of servers between nodes (`server_migrations`).

use sqlx::{Any, Executor};

use crate::{Connection, DbError};

/// Statuses of a move that has not ended.
pub const MIGRATION_UNDER_WAY: &[&str] =
    &["queued", "preparing", "running", "switching", "cancelling"];

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MigrationRow {
    pub id: i64,
    pub uuid: String,
    pub server_id: String,
    pub project_id: String,
    pub user_id: String,
    pub kind: String,
    pub source_node: String,
    pub dest_node: String,
    pub status: String,
    pub memory_total_bytes: i64,
    pub memory_processed_bytes: i64,
    pub memory_remaining_bytes: i64,
    pub disk_total_bytes: i64,
    pub disk_processed_bytes: i64,
    pub disk_remaining_bytes: i64,
    pub downtime_ms: Option<i64>,
    pub total_ms: Option<i64>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, uuid, server_id, project_id, user_id, kind, source_node, dest_node,
    status, memory_total_bytes, memory_processed_bytes, memory_remaining_bytes,
    disk_total_bytes, disk_processed_bytes, disk_remaining_bytes, downtime_ms, total_ms,
    error, created_at, updated_at";

/// Records a new move with the next id. Run under the placement lock, which orders the
/// ids.
pub async fn insert_migration(conn: &mut Connection, row: &MigrationRow) -> Result<i64, DbError> {
    let (next,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) + 1 FROM server_migrations")
        .fetch_one(&mut *conn)
        .await
        .map_err(DbError::query("number a server migration"))?;
    sqlx::query(
        "INSERT INTO server_migrations (id, uuid, server_id, project_id, user_id, kind,
                                        source_node, dest_node, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
    )
    .bind(next)
    .bind(&row.uuid)
    .bind(&row.server_id)
    .bind(&row.project_id)
    .bind(&row.user_id)
    .bind(&row.kind)
    .bind(&row.source_node)
    .bind(&row.dest_node)
    .bind(&row.status)
    .bind(row.created_at)
    .execute(&mut *conn)
    .await
    .map_err(DbError::query("record a server migration"))?;
    Ok(next)
}

pub async fn get_migration<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: i64,
) -> Result<Option<MigrationRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM server_migrations WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a server migration"))
}

/// Which moves a listing reads; every part given narrows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct MigrationSelection<'a> {
    pub server: Option<&'a str>,
    pub project: Option<&'a str>,
    pub status: Option<&'a str>,
    pub kind: Option<&'a str>,
    /// Moves from or to this node.
    pub node: Option<&'a str>,
    /// Only moves not ended.
    pub under_way: bool,
    /// Moves changed at or after this time (µs).
    pub changed_since: Option<i64>,
    /// Moves older than this one (newest first).
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// Moves, newest first.
pub async fn list_migrations<'c>(
    ex: impl Executor<'c, Database = Any>,
    selection: &MigrationSelection<'_>,
) -> Result<Vec<MigrationRow>, DbError> {
    let mut conditions = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    for (column, value) in [
        ("server_id", selection.server),
        ("project_id", selection.project),
        ("status", selection.status),
        ("kind", selection.kind),
    ] {
        if let Some(value) = value {
            texts.push(value.to_owned());
            conditions.push(format!("{column} = ${}", texts.len()));
        }
    }
    if let Some(node) = selection.node {
        texts.push(node.to_owned());
        let n = texts.len();
        conditions.push(format!("(source_node = ${n} OR dest_node = ${n})"));
    }
    if selection.under_way {
        let quoted: Vec<String> = MIGRATION_UNDER_WAY
            .iter()
            .map(|s| format!("'{s}'"))
            .collect();
        conditions.push(format!("status IN ({})", quoted.join(", ")));
    }
    let mut numbers = Vec::new();
    if let Some(since) = selection.changed_since {
        numbers.push(since);
        conditions.push(format!("updated_at >= ${}", texts.len() + numbers.len()));
    }
    if let Some(before) = selection.before {
        numbers.push(before);
        conditions.push(format!("id < ${}", texts.len() + numbers.len()));
    }
    let mut text = format!("SELECT {COLUMNS} FROM server_migrations");
    if !conditions.is_empty() {
        text.push_str(" WHERE ");
        text.push_str(&conditions.join(" AND "));
    }
    text.push_str(" ORDER BY id DESC");
    if let Some(limit) = selection.limit {
        text.push_str(&format!(" LIMIT {}", limit.max(0)));
    }
    let mut query = sqlx::query_as(&text);
    for value in &texts {
        query = query.bind(value);
    }
    for value in numbers {
        query = query.bind(value);
    }
    query
        .fetch_all(ex)
        .await
        .map_err(DbError::query("list server migrations"))
}

/// Changes a move's status, if it is one of `from`; whether it did.
pub async fn set_migration_status<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: i64,
    from: &[&str],
    to: &str,
    now: i64,
) -> Result<bool, DbError> {
    let quoted: Vec<String> = from.iter().map(|s| format!("'{s}'")).collect();
    let done = sqlx::query(&format!(
        "UPDATE server_migrations SET status = $2, updated_at = $3
         WHERE id = $1 AND status IN ({})",
        quoted.join(", ")
    ))
    .bind(id)
    .bind(to)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("change a server migration's status"))?;
    Ok(done.rows_affected() == 1)
}

/// Bytes of a move's memory and disk: total, processed, remaining.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrationProgress {
    pub memory: [i64; 3],
    pub disk: [i64; 3],
}

/// Records a move's progress.
pub async fn set_migration_progress<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: i64,
    progress: &MigrationProgress,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE server_migrations SET memory_total_bytes = $2, memory_processed_bytes = $3,
                memory_remaining_bytes = $4, disk_total_bytes = $5, disk_processed_bytes = $6,
                disk_remaining_bytes = $7, updated_at = $8
         WHERE id = $1",
    )
    .bind(id)
    .bind(progress.memory[0])
    .bind(progress.memory[1])
    .bind(progress.memory[2])
    .bind(progress.disk[0])
    .bind(progress.disk[1])
    .bind(progress.disk[2])
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("record a server migration's progress"))?;
    Ok(())
}

/// How a move ended: its status, figures and error.
pub async fn end_migration<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: i64,
    status: &str,
    downtime_ms: Option<i64>,
    total_ms: Option<i64>,
    error: Option<&str>,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE server_migrations SET status = $2, downtime_ms = COALESCE($3, downtime_ms),
                total_ms = COALESCE($4, total_ms), error = COALESCE($5, error), updated_at = $6
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(downtime_ms)
    .bind(total_ms)
    .bind(error)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("record the end of a server migration"))?;
    Ok(())
}
