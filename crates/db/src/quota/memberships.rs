use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::{Connection, DbError};

/// A row of `project_memberships`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipRow {
    pub id: i64,
    pub project_id: String,
    pub user_id: String,
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl FromRow<'_, AnyRow> for MembershipRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(MembershipRow {
            id: row.try_get("id")?,
            project_id: row.try_get("project_id")?,
            user_id: row.try_get("user_id")?,
            state: row.try_get("state")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

const MEMBERSHIP_COLUMNS: &str = "id, project_id, user_id, state, created_at, updated_at";

/// A new membership id; call inside the transaction that uses it.
pub async fn next_membership_id(conn: &mut Connection) -> Result<i64, DbError> {
    sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'membership_id' RETURNING value",
    )
    .fetch_one(conn)
    .await
    .map_err(DbError::query("allocate a membership id"))
}

/// Creates a membership, or moves the user's existing one of the project to `row.state`
/// (a user who left may ask again); returns the row as stored.
pub async fn upsert_membership(
    conn: &mut Connection,
    row: &MembershipRow,
) -> Result<MembershipRow, DbError> {
    sqlx::query(
        "INSERT INTO project_memberships (id, project_id, user_id, state, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (project_id, user_id) DO UPDATE
            SET state = excluded.state, updated_at = excluded.updated_at",
    )
    .bind(row.id)
    .bind(&row.project_id)
    .bind(&row.user_id)
    .bind(&row.state)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(&mut *conn)
    .await
    .map_err(DbError::query("record a project membership"))?;
    membership_of(&mut *conn, &row.project_id, &row.user_id)
        .await?
        .ok_or(DbError::Query {
            action: "read back a project membership",
            source: sqlx::Error::RowNotFound,
        })
}

pub async fn get_membership<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: i64,
) -> Result<Option<MembershipRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {MEMBERSHIP_COLUMNS} FROM project_memberships WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a project membership"))
}

pub async fn membership_of<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
    user_id: &str,
) -> Result<Option<MembershipRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {MEMBERSHIP_COLUMNS} FROM project_memberships
         WHERE project_id = $1 AND user_id = $2"
    ))
    .bind(project_id)
    .bind(user_id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a project membership"))
}

/// Which memberships [`list_memberships`] returns.
#[derive(Debug, Clone, Default)]
pub struct MembershipFilter {
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    /// Only this user's memberships and those of the projects this user owns.
    pub visible_to: Option<String>,
}

pub async fn list_memberships<'c>(
    ex: impl Executor<'c, Database = Any>,
    filter: &MembershipFilter,
) -> Result<Vec<MembershipRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {MEMBERSHIP_COLUMNS} FROM project_memberships m
         WHERE ($1 IS NULL OR m.project_id = $1) AND ($2 IS NULL OR m.user_id = $2)
           AND ($3 IS NULL OR m.user_id = $3 OR EXISTS (
                 SELECT 1 FROM projects p WHERE p.id = m.project_id AND p.owner_id = $3))
         ORDER BY m.id"
    ))
    .bind(&filter.project_id)
    .bind(&filter.user_id)
    .bind(&filter.visible_to)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list project memberships"))
}

/// Members who count towards a project's maximum: accepted, or accepted and asking to
/// leave.
pub async fn count_members<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
) -> Result<i64, DbError> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM project_memberships
         WHERE project_id = $1 AND state IN ('accepted', 'leave_requested')",
    )
    .bind(project_id)
    .fetch_one(ex)
    .await
    .map_err(DbError::query("count project members"))
}
