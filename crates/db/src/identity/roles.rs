use sqlx::{Any, Executor};

use crate::{Connection, DbError};

/// A row of `role_assignments`: `user_id` holds `role` on `project_id`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RoleAssignmentRow {
    pub project_id: String,
    pub user_id: String,
    pub role: String,
    pub created_at: i64,
}

/// Which assignments [`list_role_assignments`] returns.
#[derive(Debug, Clone, Default)]
pub struct AssignmentFilter {
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub role: Option<String>,
}

/// Grants a role; granting one already held is a no-op. Returns whether it was new.
pub async fn grant_role(
    conn: &mut Connection,
    assignment: &RoleAssignmentRow,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO role_assignments (project_id, user_id, role, created_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (project_id, user_id, role) DO NOTHING",
    )
    .bind(&assignment.project_id)
    .bind(&assignment.user_id)
    .bind(&assignment.role)
    .bind(assignment.created_at)
    .execute(conn)
    .await
    .map_err(DbError::query("grant a role"))?;
    Ok(done.rows_affected() > 0)
}

/// Revokes one role, or every role of the user on the project when `role` is `None`.
/// Returns how many assignments went.
pub async fn revoke_role(
    conn: &mut Connection,
    project_id: &str,
    user_id: &str,
    role: Option<&str>,
) -> Result<u64, DbError> {
    let done = sqlx::query(
        "DELETE FROM role_assignments
         WHERE project_id = $1 AND user_id = $2 AND ($3 IS NULL OR role = $3)",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(role)
    .execute(conn)
    .await
    .map_err(DbError::query("revoke a role"))?;
    Ok(done.rows_affected())
}

/// The roles `user_id` holds on `project_id`, sorted.
pub async fn roles_on_project<'c>(
    ex: impl Executor<'c, Database = Any>,
    user_id: &str,
    project_id: &str,
) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar(
        "SELECT role FROM role_assignments WHERE user_id = $1 AND project_id = $2 ORDER BY role",
    )
    .bind(user_id)
    .bind(project_id)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read a user's roles"))
}

pub async fn list_role_assignments<'c>(
    ex: impl Executor<'c, Database = Any>,
    filter: &AssignmentFilter,
) -> Result<Vec<RoleAssignmentRow>, DbError> {
    sqlx::query_as(
        "SELECT project_id, user_id, role, created_at FROM role_assignments
         WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR project_id = $2)
           AND ($3 IS NULL OR role = $3)
         ORDER BY project_id, user_id, role",
    )
    .bind(&filter.user_id)
    .bind(&filter.project_id)
    .bind(&filter.role)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list role assignments"))
}
