use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::DbError;

/// A row of `quota_resources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRow {
    pub name: String,
    pub service: String,
    pub unit: String,
    pub description: String,
    pub base_default: i64,
    pub project_default: i64,
    pub registered_at: i64,
}

impl FromRow<'_, AnyRow> for ResourceRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(ResourceRow {
            name: row.try_get("name")?,
            service: row.try_get("service")?,
            unit: row.try_get("unit")?,
            description: row.try_get("description")?,
            base_default: row.try_get("base_default")?,
            project_default: row.try_get("project_default")?,
            registered_at: row.try_get("registered_at")?,
        })
    }
}

const RESOURCE_COLUMNS: &str =
    "name, service, unit, description, base_default, project_default, registered_at";

/// Registers a resource unless it is known already: the defaults an administrator set
/// survive a service's restart; the service, unit and description follow the code.
pub async fn register_resource<'c>(
    ex: impl Executor<'c, Database = Any>,
    resource: &ResourceRow,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO quota_resources (name, service, unit, description, base_default,
                                      project_default, registered_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (name) DO UPDATE SET service = excluded.service, unit = excluded.unit,
             description = excluded.description",
    )
    .bind(&resource.name)
    .bind(&resource.service)
    .bind(&resource.unit)
    .bind(&resource.description)
    .bind(resource.base_default)
    .bind(resource.project_default)
    .bind(resource.registered_at)
    .execute(ex)
    .await
    .map_err(DbError::query("register a quota resource"))?;
    Ok(())
}

pub async fn list_resources<'c>(
    ex: impl Executor<'c, Database = Any>,
) -> Result<Vec<ResourceRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {RESOURCE_COLUMNS} FROM quota_resources ORDER BY name"
    ))
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list quota resources"))
}

/// Changes a resource's defaults; returns whether it exists.
pub async fn set_resource_defaults<'c>(
    ex: impl Executor<'c, Database = Any>,
    name: &str,
    base_default: Option<i64>,
    project_default: Option<i64>,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE quota_resources SET base_default = COALESCE($2, base_default),
                                    project_default = COALESCE($3, project_default)
         WHERE name = $1",
    )
    .bind(name)
    .bind(base_default)
    .bind(project_default)
    .execute(ex)
    .await
    .map_err(DbError::query("change a quota resource"))?;
    Ok(done.rows_affected() > 0)
}
