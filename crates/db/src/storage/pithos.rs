//! Queries behind the Pithos extensions: listings as they were at a time (`until=`) and
//! listings of shared objects.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::DbError;
use crate::storage::{ContainerListing, NameRange, ObjectRow};

/// Object columns with the `o.` alias (the same set `ObjectRow` reads).
const OBJECT_COLUMNS: &str = "o.serial, o.container_id, o.name,
    CAST(o.current AS INTEGER) AS current, CAST(o.deleted AS INTEGER) AS deleted, o.size,
    o.hash, o.blocks, o.etag, o.content_type, o.meta, o.delete_at, o.modified_at, o.modified_by,
    o.charged_to, o.charged_bytes";

/// The versions of container `{c}.id` that were live at time `{t}`: for each name, the
/// newest version written by then, unless that is a deletion marker.
fn as_of(container: &str, time: &str) -> String {
    format!(
        "o.container_id = {container} AND o.modified_at <= {time} AND NOT o.deleted
         AND o.serial = (SELECT MAX(h.serial) FROM objects h
                         WHERE h.container_id = o.container_id AND h.name = o.name
                           AND h.modified_at <= {time})"
    )
}

/// The containers of an account as they were at `until` (microseconds): those created by
/// then, with the objects and bytes they held then. Containers deleted since are gone
/// with their history, so they are not listed.
pub async fn list_containers_until<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
    range: &NameRange,
    until: i64,
) -> Result<Vec<ContainerListing>, DbError> {
    let range_sql = range.sql("c.name");
    let live = as_of("c.id", "$6");
    let sql = format!(
        "SELECT c.name,
                (SELECT COUNT(*) FROM objects o WHERE {live}) AS objects,
                (SELECT CAST(COALESCE(SUM(o.size), 0) AS BIGINT) FROM objects o
                  WHERE {live}) AS bytes,
                c.updated_at
         FROM containers c
         WHERE c.project_id = $1 AND c.created_at <= $6
           AND {range_sql}"
    );
    range
        .bind(sqlx::query_as(&sql).bind(project_id))
        .bind(until)
        .fetch_all(ex)
        .await
        .map_err(DbError::query("list containers as they were"))
}

/// Objects and bytes of a container as it was at `until`.
pub async fn container_stats_until<'c>(
    ex: impl Executor<'c, Database = Any>,
    container_id: &str,
    until: i64,
) -> Result<(i64, i64), DbError> {
    let live = as_of("$1", "$2");
    sqlx::query_as(&format!(
        "SELECT COUNT(*), CAST(COALESCE(SUM(o.size), 0) AS BIGINT) FROM objects o WHERE {live}"
    ))
    .bind(container_id)
    .bind(until)
    .fetch_one(ex)
    .await
    .map_err(DbError::query("count a container's objects as they were"))
}

/// Containers, objects and bytes of an account as it was at `until`.
pub async fn account_stats_until<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
    until: i64,
) -> Result<(i64, i64, i64), DbError> {
    let live = as_of("c.id", "$2");
    sqlx::query_as(&format!(
        "SELECT
            (SELECT COUNT(*) FROM containers WHERE project_id = $1 AND created_at <= $2),
            COUNT(o.serial),
            CAST(COALESCE(SUM(o.size), 0) AS BIGINT)
         FROM containers c JOIN objects o ON {live}
         WHERE c.project_id = $1"
    ))
    .bind(project_id)
    .bind(until)
    .fetch_one(ex)
    .await
    .map_err(DbError::query("count an account's usage as it was"))
}

/// The containers of an account that hold at least one shared object, Swift-style.
pub async fn list_shared_containers<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
    range: &NameRange,
) -> Result<Vec<ContainerListing>, DbError> {
    let range_sql = range.sql("c.name");
    let sql = format!(
        "SELECT c.name,
                (SELECT COUNT(*) FROM objects o WHERE o.container_id = c.id AND o.current) AS objects,
                (SELECT CAST(COALESCE(SUM(o.size), 0) AS BIGINT) FROM objects o
                  WHERE o.container_id = c.id AND o.current) AS bytes,
                c.updated_at
         FROM containers c
         WHERE c.project_id = $1
           AND EXISTS (SELECT 1 FROM object_paths p
                       JOIN objects o ON o.container_id = p.container_id AND o.name = p.name
                                     AND o.current
                       WHERE p.container_id = c.id AND p.sharing IS NOT NULL)
           AND {range_sql}"
    );
    range
        .bind(sqlx::query_as(&sql).bind(project_id))
        .fetch_all(ex)
        .await
        .map_err(DbError::query("list shared containers"))
}

/// A live object whose path carries sharing, with the container it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedObjectRow {
    pub container: String,
    pub container_updated_at: i64,
    pub object: ObjectRow,
    pub sharing: String,
    pub public_token: Option<String>,
}

impl FromRow<'_, AnyRow> for SharedObjectRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(SharedObjectRow {
            container: row.try_get("container")?,
            container_updated_at: row.try_get("container_updated_at")?,
            object: ObjectRow::from_row(row)?,
            sharing: row.try_get("sharing")?,
            public_token: row.try_get("public_token")?,
        })
    }
}

/// Every live shared object of an account, or of one of its containers, by container and
/// name. Shared objects are few next to all objects, so callers filter and page in memory.
pub async fn shared_objects<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
    container: Option<&str>,
) -> Result<Vec<SharedObjectRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT c.name AS container, c.updated_at AS container_updated_at, {OBJECT_COLUMNS},
                p.sharing, p.public_token
         FROM containers c
         JOIN object_paths p ON p.container_id = c.id
         JOIN objects o ON o.container_id = p.container_id AND o.name = p.name AND o.current
         WHERE c.project_id = $1 AND p.sharing IS NOT NULL AND ($2 IS NULL OR c.name = $2)
         ORDER BY c.name, o.name"
    ))
    .bind(project_id)
    .bind(container)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list shared objects"))
}

/// The accounts (projects) with at least one live shared object, each with the sharing
/// values it uses, for finding those that share with a user.
pub async fn sharing_accounts<'c>(
    ex: impl Executor<'c, Database = Any>,
) -> Result<Vec<(String, String)>, DbError> {
    sqlx::query_as(
        "SELECT DISTINCT c.project_id, p.sharing
         FROM object_paths p
         JOIN containers c ON c.id = p.container_id
         JOIN objects o ON o.container_id = p.container_id AND o.name = p.name AND o.current
         WHERE p.sharing IS NOT NULL
         ORDER BY c.project_id",
    )
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list accounts that share objects"))
}
