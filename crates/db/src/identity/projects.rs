use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::flag::get_bool;
use crate::{Connection, DbError};

/// A row of `projects`.
#[derive(Debug, Clone)]
pub struct ProjectRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    /// `base`, `system` or `regular` (see the migration).
    pub kind: String,
    pub owner_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl FromRow<'_, AnyRow> for ProjectRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(ProjectRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            enabled: get_bool(row, "enabled")?,
            kind: row.try_get("kind")?,
            owner_id: row.try_get("owner_id")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

const PROJECT_COLUMNS: &str = "id, name, description, CAST(enabled AS INTEGER) AS enabled, kind,
                               owner_id, created_at, updated_at";

/// Which projects [`list_projects`] returns.
#[derive(Debug, Clone, Default)]
pub struct ProjectFilter {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    /// Only projects this user holds a role on.
    pub member: Option<String>,
}

pub async fn insert_project(conn: &mut Connection, project: &ProjectRow) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO projects (id, name, description, enabled, kind, owner_id, created_at,
                               updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&project.id)
    .bind(&project.name)
    .bind(&project.description)
    .bind(project.enabled)
    .bind(&project.kind)
    .bind(&project.owner_id)
    .bind(project.created_at)
    .bind(project.updated_at)
    .execute(conn)
    .await
    .map_err(DbError::insert(
        "insert a project",
        "a project with this name",
    ))?;
    Ok(())
}

pub async fn get_project<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<ProjectRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a project"))
}

pub async fn get_project_by_name<'c>(
    ex: impl Executor<'c, Database = Any>,
    name: &str,
) -> Result<Option<ProjectRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {PROJECT_COLUMNS} FROM projects WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a project by name"))
}

pub async fn list_projects<'c>(
    ex: impl Executor<'c, Database = Any>,
    filter: &ProjectFilter,
) -> Result<Vec<ProjectRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {PROJECT_COLUMNS} FROM projects p
         WHERE ($1 IS NULL OR name = $1) AND ($2 IS NULL OR enabled = $2)
           AND ($3 IS NULL OR EXISTS (
                 SELECT 1 FROM role_assignments r WHERE r.project_id = p.id AND r.user_id = $3))
         ORDER BY name"
    ))
    .bind(&filter.name)
    .bind(filter.enabled)
    .bind(&filter.member)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list projects"))
}

/// Writes every mutable field of `project`; returns whether it existed.
pub async fn update_project(conn: &mut Connection, project: &ProjectRow) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE projects SET name = $2, description = $3, enabled = $4, updated_at = $5
         WHERE id = $1",
    )
    .bind(&project.id)
    .bind(&project.name)
    .bind(&project.description)
    .bind(project.enabled)
    .bind(project.updated_at)
    .execute(conn)
    .await
    .map_err(DbError::insert(
        "update a project",
        "a project with this name",
    ))?;
    Ok(done.rows_affected() > 0)
}

/// Deletes a project with its role assignments, the tokens scoped to it and its quota
/// holdings; what its members still used there is recorded as released now, so usage
/// over time ends with it.
pub async fn delete_project(conn: &mut Connection, id: &str) -> Result<bool, DbError> {
    crate::quota::close_project_usage(&mut *conn, id, crate::time::now_micros()).await?;
    let done = sqlx::query("DELETE FROM projects WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(DbError::query("delete a project"))?;
    Ok(done.rows_affected() > 0)
}
