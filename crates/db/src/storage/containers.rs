use sqlx::any::AnyArguments;
use sqlx::query::QueryAs;
use sqlx::{Any, Executor};

use crate::DbError;

/// A row of `containers`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContainerRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    /// `auto` or `none`.
    pub versioning: String,
    /// JSON object of user metadata.
    pub meta: String,
    /// Pithos's policy quota: the bytes every version in the container may take.
    pub quota_bytes: Option<i64>,
    /// Swift's `X-Container-Read`, cleaned; empty for none.
    pub read_acl: String,
    /// Swift's `X-Container-Write`, cleaned; empty for none.
    pub write_acl: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A container with what it holds, for listings.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContainerListing {
    pub name: String,
    pub objects: i64,
    pub bytes: i64,
    pub updated_at: i64,
}

/// Which names a listing returns, Swift-style. `prefix` is applied by the query; the
/// caller rolls up names by delimiter.
#[derive(Debug, Clone, Default)]
pub struct NameRange {
    pub prefix: Option<String>,
    /// Only names after this one.
    pub marker: Option<String>,
    /// Only names before this one.
    pub end_marker: Option<String>,
    pub limit: i64,
    pub reverse: bool,
}

impl NameRange {
    /// The conditions on `column` for this range, as `$2` (prefix), `$3` and `$4` (bounds),
    /// followed by `ORDER BY … LIMIT $5`; bind them with [`NameRange::bind`].
    pub(crate) fn sql(&self, column: &str) -> String {
        let order = if self.reverse { "DESC" } else { "ASC" };
        format!(
            "($2 IS NULL OR substr({column}, 1, length($2)) = $2)
             AND ($3 IS NULL OR {column} > $3)
             AND ($4 IS NULL OR {column} < $4)
             ORDER BY {column} {order}
             LIMIT $5"
        )
    }

    /// Binds `$2`..`$5` of [`NameRange::sql`]. In reverse order the marker is the upper
    /// bound and the end marker the lower one.
    pub(crate) fn bind<'q, O>(
        &'q self,
        query: QueryAs<'q, Any, O, AnyArguments<'q>>,
    ) -> QueryAs<'q, Any, O, AnyArguments<'q>> {
        let (lower, upper) = if self.reverse {
            (&self.end_marker, &self.marker)
        } else {
            (&self.marker, &self.end_marker)
        };
        query
            .bind(&self.prefix)
            .bind(lower)
            .bind(upper)
            .bind(self.limit)
    }
}

const CONTAINER_COLUMNS: &str = "id, project_id, name, versioning, meta, quota_bytes, read_acl, write_acl, created_at, updated_at";

pub async fn insert_container<'c>(
    ex: impl Executor<'c, Database = Any>,
    row: &ContainerRow,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO containers (id, project_id, name, versioning, meta, created_at, updated_at,
                                 quota_bytes, read_acl, write_acl)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&row.id)
    .bind(&row.project_id)
    .bind(&row.name)
    .bind(&row.versioning)
    .bind(&row.meta)
    .bind(row.created_at)
    .bind(row.updated_at)
    .bind(row.quota_bytes)
    .bind(&row.read_acl)
    .bind(&row.write_acl)
    .execute(ex)
    .await
    .map_err(DbError::insert(
        "create a container",
        "a container with this name",
    ))?;
    Ok(())
}

pub async fn get_container<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
    name: &str,
) -> Result<Option<ContainerRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {CONTAINER_COLUMNS} FROM containers WHERE project_id = $1 AND name = $2"
    ))
    .bind(project_id)
    .bind(name)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a container"))
}

pub async fn get_container_by_id<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<ContainerRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {CONTAINER_COLUMNS} FROM containers WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a container"))
}

/// Writes `versioning`, `meta`, `quota_bytes`, the ACLs and `updated_at`.
pub async fn update_container<'c>(
    ex: impl Executor<'c, Database = Any>,
    row: &ContainerRow,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE containers SET versioning = $2, meta = $3, updated_at = $4, quota_bytes = $5,
                               read_acl = $6, write_acl = $7
         WHERE id = $1",
    )
    .bind(&row.id)
    .bind(&row.versioning)
    .bind(&row.meta)
    .bind(row.updated_at)
    .bind(row.quota_bytes)
    .bind(&row.read_acl)
    .bind(&row.write_acl)
    .execute(ex)
    .await
    .map_err(DbError::query("update a container"))?;
    Ok(())
}

/// Takes a container's row lock until the transaction ends (PostgreSQL; SQLite runs one
/// writer at a time anyway): writers that check its quota take turns.
pub async fn lock_container<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE containers SET updated_at = updated_at WHERE id = $1")
        .bind(id)
        .execute(ex)
        .await
        .map_err(DbError::query("lock a container"))?;
    Ok(())
}

/// Deletes a container with every version it holds.
pub async fn delete_container<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM containers WHERE id = $1")
        .bind(id)
        .execute(ex)
        .await
        .map_err(DbError::query("delete a container"))?;
    Ok(())
}

/// Current objects and their bytes in a container.
pub async fn container_stats<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<(i64, i64), DbError> {
    sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT)
         FROM objects WHERE container_id = $1 AND current",
    )
    .bind(id)
    .fetch_one(ex)
    .await
    .map_err(DbError::query("count a container's objects"))
}

pub async fn list_containers<'c>(
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
           AND {range_sql}"
    );
    range
        .bind(sqlx::query_as(&sql).bind(project_id))
        .fetch_all(ex)
        .await
        .map_err(DbError::query("list containers"))
}
