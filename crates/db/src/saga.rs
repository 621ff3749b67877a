//! The saga log (migration 8): one row per saga, one per step it started. See
//! `nefos-saga` for what the states mean.

use sqlx::{Any, Executor};

use crate::DbError;

/// A row of `sagas`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SagaRow {
    pub id: String,
    pub kind: String,
    /// What it acts on (a server's id).
    pub subject: String,
    /// JSON.
    pub params: String,
    /// `running`, `unwinding` or `stuck`; a finished saga is deleted.
    pub state: String,
    /// The control-plane process running it.
    pub owner: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A row of `saga_steps`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StepRow {
    pub step: i64,
    pub name: String,
    /// `started`, `done` or `undone`.
    pub status: String,
    /// JSON, once done.
    pub output: Option<String>,
}

pub async fn insert_saga<'c>(
    ex: impl Executor<'c, Database = Any>,
    row: &SagaRow,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO sagas (id, kind, subject, params, state, owner, error, created_at,
                            updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&row.id)
    .bind(&row.kind)
    .bind(&row.subject)
    .bind(&row.params)
    .bind(&row.state)
    .bind(&row.owner)
    .bind(&row.error)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(ex)
    .await
    .map_err(DbError::insert("record a saga", "saga"))?;
    Ok(())
}

pub async fn get_saga<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<SagaRow>, DbError> {
    sqlx::query_as(
        "SELECT id, kind, subject, params, state, owner, error, created_at, updated_at
         FROM sagas WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a saga"))
}

pub async fn list_steps<'c>(
    ex: impl Executor<'c, Database = Any>,
    saga: &str,
) -> Result<Vec<StepRow>, DbError> {
    sqlx::query_as(
        "SELECT step, name, status, output FROM saga_steps WHERE saga_id = $1 ORDER BY step",
    )
    .bind(saga)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read a saga's steps"))
}

/// Records a step's status (and output), creating its row the first time, if `owner`
/// still owns the saga; false if it does not (another process adopted it).
pub async fn set_step<'c>(
    ex: impl Executor<'c, Database = Any>,
    saga: &str,
    owner: &str,
    step: &StepRow,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO saga_steps (saga_id, step, name, status, output, updated_at)
         SELECT $1, $2, $3, $4, $5, $6
         WHERE EXISTS (SELECT 1 FROM sagas WHERE id = $1 AND owner = $7)
         ON CONFLICT (saga_id, step) DO UPDATE SET
           status = excluded.status, output = excluded.output, updated_at = excluded.updated_at",
    )
    .bind(saga)
    .bind(step.step)
    .bind(&step.name)
    .bind(&step.status)
    .bind(&step.output)
    .bind(now)
    .bind(owner)
    .execute(ex)
    .await
    .map_err(DbError::query("record a saga step"))?;
    Ok(done.rows_affected() == 1)
}

/// Sets a saga's state (and error) if `owner` still owns it; false if it does not.
pub async fn set_saga_state<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    owner: &str,
    state: &str,
    error: Option<&str>,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE sagas SET state = $3, error = $4, updated_at = $5 WHERE id = $1 AND owner = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(state)
    .bind(error)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("record a saga's state"))?;
    Ok(done.rows_affected() == 1)
}

/// Forgets a finished saga and its steps (its parameters may hold secrets).
pub async fn delete_saga<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM sagas WHERE id = $1")
        .bind(id)
        .execute(ex)
        .await
        .map_err(DbError::query("forget a finished saga"))?;
    Ok(())
}

/// Unfinished sagas, not stuck, whose owner is not a process heard from since
/// `alive_since` (or is `me`: this process's own, which it may have lost track of).
pub async fn list_orphan_sagas<'c>(
    ex: impl Executor<'c, Database = Any>,
    alive_since: i64,
    me: &str,
) -> Result<Vec<SagaRow>, DbError> {
    sqlx::query_as(
        "SELECT id, kind, subject, params, state, owner, error, created_at, updated_at FROM sagas s
         WHERE s.state <> 'stuck'
           AND (s.owner IS NULL OR s.owner = $2 OR NOT EXISTS (
             SELECT 1 FROM control_plane_instances i
             WHERE i.id = s.owner AND i.heartbeat_at >= $1))
         ORDER BY s.created_at",
    )
    .bind(alive_since)
    .bind(me)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list abandoned sagas"))
}

/// Takes a saga over from `from` (its owner as last read); false if another did first.
pub async fn adopt_saga<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    from: Option<&str>,
    to: &str,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE sagas SET owner = $3, updated_at = $4
         WHERE id = $1 AND (owner = $2 OR (owner IS NULL AND $2 IS NULL))",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("adopt a saga"))?;
    Ok(done.rows_affected() == 1)
}

/// Sagas by state, oldest first: for operators.
pub async fn list_sagas<'c>(
    ex: impl Executor<'c, Database = Any>,
) -> Result<Vec<SagaRow>, DbError> {
    sqlx::query_as(
        "SELECT id, kind, subject, params, state, owner, error, created_at, updated_at
         FROM sagas ORDER BY created_at",
    )
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list sagas"))
}

/// The subjects of the sagas in the log (running, unwinding or stuck).
pub async fn saga_subjects<'c>(
    ex: impl Executor<'c, Database = Any>,
) -> Result<Vec<String>, DbError> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT subject FROM sagas")
        .fetch_all(ex)
        .await
        .map_err(DbError::query("list the subjects of sagas"))?;
    Ok(rows.into_iter().map(|(s,)| s).collect())
}
