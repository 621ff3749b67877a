use sqlx::{Any, Executor};

use crate::DbError;

/// A row of `object_paths`: attributes of a name that outlive its versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct PathRow {
    pub container_id: String,
    pub name: String,
    pub sharing: Option<String>,
    pub public_token: Option<String>,
}

pub async fn get_path<'c>(
    ex: impl Executor<'c, Database = Any>,
    container_id: &str,
    name: &str,
) -> Result<Option<PathRow>, DbError> {
    sqlx::query_as(
        "SELECT container_id, name, sharing, public_token FROM object_paths
         WHERE container_id = $1 AND name = $2",
    )
    .bind(container_id)
    .bind(name)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read an object's attributes"))
}

/// Writes a path's attributes; a row with neither is deleted.
pub async fn put_path<'c>(
    ex: impl Executor<'c, Database = Any>,
    row: &PathRow,
) -> Result<(), DbError> {
    if row.sharing.is_none() && row.public_token.is_none() {
        sqlx::query("DELETE FROM object_paths WHERE container_id = $1 AND name = $2")
            .bind(&row.container_id)
            .bind(&row.name)
            .execute(ex)
            .await
            .map_err(DbError::query("clear an object's attributes"))?;
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO object_paths (container_id, name, sharing, public_token)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (container_id, name) DO UPDATE
         SET sharing = excluded.sharing, public_token = excluded.public_token",
    )
    .bind(&row.container_id)
    .bind(&row.name)
    .bind(&row.sharing)
    .bind(&row.public_token)
    .execute(ex)
    .await
    .map_err(DbError::query("write an object's attributes"))?;
    Ok(())
}

pub async fn get_path_by_public_token<'c>(
    ex: impl Executor<'c, Database = Any>,
    token: &str,
) -> Result<Option<PathRow>, DbError> {
    sqlx::query_as(
        "SELECT container_id, name, sharing, public_token FROM object_paths WHERE public_token = $1",
    )
    .bind(token)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("find a public object"))
}

/// Every shared path: (project of the container, container name, path row).
pub async fn shared_paths<'c>(
    ex: impl Executor<'c, Database = Any>,
) -> Result<Vec<(String, String, String, String)>, DbError> {
    sqlx::query_as(
        "SELECT c.project_id, c.name, p.name, p.sharing FROM object_paths p
         JOIN containers c ON c.id = p.container_id
         WHERE p.sharing IS NOT NULL ORDER BY c.project_id, c.name, p.name",
    )
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list shared objects"))
}

/// Paths whose sharing value contains `needle` (a user id, when that user goes), or every
/// shared path with `None`.
pub async fn paths_sharing_with<'c>(
    ex: impl Executor<'c, Database = Any>,
    needle: Option<&str>,
) -> Result<Vec<PathRow>, DbError> {
    sqlx::query_as(
        "SELECT container_id, name, sharing, public_token FROM object_paths
         WHERE sharing IS NOT NULL AND ($1 IS NULL OR sharing LIKE '%' || $1 || '%')",
    )
    .bind(needle)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("find shared paths"))
}

/// Sets only the sharing of a path (leaving its public URL as it is now).
pub async fn set_path_sharing<'c>(
    ex: impl Executor<'c, Database = Any>,
    container_id: &str,
    name: &str,
    sharing: Option<&str>,
) -> Result<(), DbError> {
    sqlx::query("UPDATE object_paths SET sharing = $3 WHERE container_id = $1 AND name = $2")
        .bind(container_id)
        .bind(name)
        .bind(sharing)
        .execute(ex)
        .await
        .map_err(DbError::query("change a path's sharing"))?;
    Ok(())
}
