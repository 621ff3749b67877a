use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::{Connection, DbError};

/// What a project is beyond its Keystone fields (the columns of `projects` added for
/// Synnefo projects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectSettingsRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub kind: String,
    pub owner_id: Option<String>,
    pub state: String,
    pub homepage: String,
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    pub join_policy: String,
    pub leave_policy: String,
    pub max_members: Option<i64>,
    pub created_at: i64,
}

impl FromRow<'_, AnyRow> for ProjectSettingsRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(ProjectSettingsRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            kind: row.try_get("kind")?,
            owner_id: row.try_get("owner_id")?,
            state: row.try_get("state")?,
            homepage: row.try_get("homepage")?,
            start_at: row.try_get("start_at")?,
            end_at: row.try_get("end_at")?,
            join_policy: row.try_get("join_policy")?,
            leave_policy: row.try_get("leave_policy")?,
            max_members: row.try_get("max_members")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

const SETTINGS_COLUMNS: &str = "id, name, description, kind, owner_id, state, homepage,
    start_at, end_at, join_policy, leave_policy, max_members, created_at";

pub async fn get_project_settings<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<ProjectSettingsRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {SETTINGS_COLUMNS} FROM projects WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a project"))
}

/// Which projects [`list_project_settings`] returns.
#[derive(Debug, Clone, Default)]
pub struct ProjectSettingsFilter {
    /// Projects this user owns, is a member of, or has asked to join.
    pub related_to: Option<String>,
    pub state: Option<String>,
    pub owner_id: Option<String>,
    pub name: Option<String>,
}

pub async fn list_project_settings<'c>(
    ex: impl Executor<'c, Database = Any>,
    filter: &ProjectSettingsFilter,
) -> Result<Vec<ProjectSettingsRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {SETTINGS_COLUMNS} FROM projects p
         WHERE ($1 IS NULL OR p.owner_id = $1
                OR EXISTS (SELECT 1 FROM role_assignments a
                            WHERE a.project_id = p.id AND a.user_id = $1)
                OR EXISTS (SELECT 1 FROM project_memberships m
                            WHERE m.project_id = p.id AND m.user_id = $1))
           AND ($2 IS NULL OR p.state = $2) AND ($3 IS NULL OR p.owner_id = $3)
           AND ($4 IS NULL OR p.name = $4)
         ORDER BY p.created_at, p.id"
    ))
    .bind(&filter.related_to)
    .bind(&filter.state)
    .bind(&filter.owner_id)
    .bind(&filter.name)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list projects"))
}

/// Writes the Synnefo fields of a project and its Keystone name, description and
/// `enabled`.
pub async fn update_project_settings<'c>(
    ex: impl Executor<'c, Database = Any>,
    row: &ProjectSettingsRow,
    enabled: bool,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE projects SET name = $2, description = $3, state = $4, homepage = $5,
                start_at = $6, end_at = $7, join_policy = $8, leave_policy = $9,
                max_members = $10, enabled = $11, updated_at = $12
         WHERE id = $1",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(&row.state)
    .bind(&row.homepage)
    .bind(row.start_at)
    .bind(row.end_at)
    .bind(&row.join_policy)
    .bind(&row.leave_policy)
    .bind(row.max_members)
    .bind(enabled)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::insert(
        "update a project",
        "a project with this name",
    ))?;
    Ok(())
}

/// A project's grant of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantRow {
    pub member_limit: i64,
    pub project_limit: i64,
}

/// A project's grants, by resource.
pub async fn project_grants<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
) -> Result<BTreeMap<String, GrantRow>, DbError> {
    let rows = sqlx::query(
        "SELECT resource, member_limit, project_limit FROM project_quotas
         WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read a project's grants"))?;
    let read = |source| DbError::Query {
        action: "read a project's grants",
        source,
    };
    let mut grants = BTreeMap::new();
    for row in rows {
        grants.insert(
            row.try_get("resource").map_err(read)?,
            GrantRow {
                member_limit: row.try_get("member_limit").map_err(read)?,
                project_limit: row.try_get("project_limit").map_err(read)?,
            },
        );
    }
    Ok(grants)
}

/// Sets one grant of a project.
pub async fn set_project_grant<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
    resource: &str,
    grant: GrantRow,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO project_quotas (project_id, resource, member_limit, project_limit)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (project_id, resource) DO UPDATE
            SET member_limit = excluded.member_limit, project_limit = excluded.project_limit",
    )
    .bind(project_id)
    .bind(resource)
    .bind(grant.member_limit)
    .bind(grant.project_limit)
    .execute(ex)
    .await
    .map_err(DbError::query("set a project's grant"))?;
    Ok(())
}

/// Replaces every grant of a project.
pub async fn replace_project_grants(
    conn: &mut Connection,
    project_id: &str,
    grants: &BTreeMap<String, GrantRow>,
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM project_quotas WHERE project_id = $1")
        .bind(project_id)
        .execute(&mut *conn)
        .await
        .map_err(DbError::query("replace a project's grants"))?;
    for (resource, grant) in grants {
        set_project_grant(&mut *conn, project_id, resource, *grant).await?;
    }
    Ok(())
}
