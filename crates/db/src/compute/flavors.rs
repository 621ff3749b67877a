//! Flavors (migration 8), their extra specs and the projects a private one is open to.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::flag::get_bool;
use crate::{Connection, DbError};

#[derive(Debug, Clone, PartialEq)]
pub struct FlavorRow {
    pub id: String,
    pub name: String,
    pub vcpus: i64,
    pub ram_mib: i64,
    pub disk_gib: i64,
    pub ephemeral_gib: i64,
    pub swap_mib: i64,
    pub rxtx_factor: f64,
    pub is_public: bool,
    pub disabled: bool,
    pub description: Option<String>,
    pub created_at: i64,
}

impl FromRow<'_, AnyRow> for FlavorRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(FlavorRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            vcpus: row.try_get("vcpus")?,
            ram_mib: row.try_get("ram_mib")?,
            disk_gib: row.try_get("disk_gib")?,
            ephemeral_gib: row.try_get("ephemeral_gib")?,
            swap_mib: row.try_get("swap_mib")?,
            rxtx_factor: row.try_get("rxtx_factor")?,
            is_public: get_bool(row, "is_public")?,
            disabled: get_bool(row, "disabled")?,
            description: row.try_get("description")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

const COLUMNS: &str = "f.id, f.name, f.vcpus, f.ram_mib, f.disk_gib, f.ephemeral_gib, f.swap_mib,
    f.rxtx_factor, CAST(f.is_public AS INTEGER) AS is_public,
    CAST(f.disabled AS INTEGER) AS disabled, f.description, f.created_at";

pub async fn insert_flavor(conn: &mut Connection, row: &FlavorRow) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO flavors (id, name, vcpus, ram_mib, disk_gib, ephemeral_gib, swap_mib,
                              rxtx_factor, is_public, disabled, description, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(row.vcpus)
    .bind(row.ram_mib)
    .bind(row.disk_gib)
    .bind(row.ephemeral_gib)
    .bind(row.swap_mib)
    .bind(row.rxtx_factor)
    .bind(row.is_public)
    .bind(row.disabled)
    .bind(&row.description)
    .bind(row.created_at)
    .execute(conn)
    .await
    .map_err(DbError::insert("create a flavor", "flavor"))?;
    Ok(())
}

/// Flavors `project` may use (public, or private and open to it), or all with `admin`.
pub async fn list_flavors<'c>(
    ex: impl Executor<'c, Database = Any>,
    project: Option<&str>,
    admin: bool,
) -> Result<Vec<FlavorRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM flavors f
         WHERE $2 = 1 OR f.is_public OR EXISTS (
           SELECT 1 FROM flavor_access a WHERE a.flavor_id = f.id AND a.project_id = $1)
         ORDER BY f.id"
    ))
    .bind(project)
    .bind(i64::from(admin))
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list flavors"))
}

pub async fn get_flavor<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<FlavorRow>, DbError> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM flavors f WHERE f.id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await
        .map_err(DbError::query("read a flavor"))
}

pub async fn update_flavor_description<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    description: Option<&str>,
) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE flavors SET description = $2 WHERE id = $1")
        .bind(id)
        .bind(description)
        .execute(ex)
        .await
        .map_err(DbError::query("update a flavor"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_flavor<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM flavors WHERE id = $1")
        .bind(id)
        .execute(ex)
        .await
        .map_err(DbError::query("delete a flavor"))?;
    Ok(done.rows_affected() == 1)
}

/// Extra specs by flavor, for `ids`.
pub async fn extra_specs<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<BTreeMap<String, String>, DbError> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT spec_key, spec_value FROM flavor_extra_specs WHERE flavor_id = $1")
            .bind(id)
            .fetch_all(ex)
            .await
            .map_err(DbError::query("read a flavor's extra specs"))?;
    Ok(rows.into_iter().collect())
}

/// Every flavor's extra specs, by flavor id.
pub async fn all_extra_specs<'c>(
    ex: impl Executor<'c, Database = Any>,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, DbError> {
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT flavor_id, spec_key, spec_value FROM flavor_extra_specs")
            .fetch_all(ex)
            .await
            .map_err(DbError::query("read flavors' extra specs"))?;
    let mut specs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (flavor, key, value) in rows {
        specs.entry(flavor).or_default().insert(key, value);
    }
    Ok(specs)
}

pub async fn put_extra_spec<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    key: &str,
    value: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO flavor_extra_specs (flavor_id, spec_key, spec_value) VALUES ($1, $2, $3)
         ON CONFLICT (flavor_id, spec_key) DO UPDATE SET spec_value = excluded.spec_value",
    )
    .bind(id)
    .bind(key)
    .bind(value)
    .execute(ex)
    .await
    .map_err(DbError::query("set a flavor's extra spec"))?;
    Ok(())
}

pub async fn delete_extra_spec<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    key: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM flavor_extra_specs WHERE flavor_id = $1 AND spec_key = $2")
        .bind(id)
        .bind(key)
        .execute(ex)
        .await
        .map_err(DbError::query("delete a flavor's extra spec"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn flavor_access<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Vec<String>, DbError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT project_id FROM flavor_access WHERE flavor_id = $1 ORDER BY project_id",
    )
    .bind(id)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read a flavor's access list"))?;
    Ok(rows.into_iter().map(|(p,)| p).collect())
}

/// Opens a private flavor to a project; false if it was open to it already.
pub async fn add_flavor_access<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    project: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO flavor_access (flavor_id, project_id) VALUES ($1, $2)
         ON CONFLICT (flavor_id, project_id) DO NOTHING",
    )
    .bind(id)
    .bind(project)
    .execute(ex)
    .await
    .map_err(DbError::query("open a flavor to a project"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn remove_flavor_access<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    project: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM flavor_access WHERE flavor_id = $1 AND project_id = $2")
        .bind(id)
        .bind(project)
        .execute(ex)
        .await
        .map_err(DbError::query("close a flavor to a project"))?;
    Ok(done.rows_affected() == 1)
}
