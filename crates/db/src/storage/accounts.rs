use sqlx::{Any, Executor};

use crate::DbError;

/// A row of `storage_accounts`; absent until an account's metadata or groups are first set.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub project_id: String,
    /// JSON object of user metadata.
    pub meta: String,
    /// JSON object: group name → user ids.
    pub groups: String,
    pub updated_at: i64,
}

/// What an account holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountStats {
    pub containers: i64,
    pub objects: i64,
    pub bytes: i64,
}

pub async fn get_account<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
) -> Result<Option<AccountRow>, DbError> {
    sqlx::query_as(
        "SELECT project_id, meta, groups, updated_at FROM storage_accounts WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read an account"))
}

pub async fn upsert_account<'c>(
    ex: impl Executor<'c, Database = Any>,
    row: &AccountRow,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO storage_accounts (project_id, meta, groups, updated_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (project_id) DO UPDATE
         SET meta = excluded.meta, groups = excluded.groups, updated_at = excluded.updated_at",
    )
    .bind(&row.project_id)
    .bind(&row.meta)
    .bind(&row.groups)
    .bind(row.updated_at)
    .execute(ex)
    .await
    .map_err(DbError::query("write an account"))?;
    Ok(())
}

pub async fn account_stats<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
) -> Result<AccountStats, DbError> {
    let (containers, objects, bytes): (i64, i64, i64) = sqlx::query_as(
        "SELECT
            (SELECT COUNT(*) FROM containers WHERE project_id = $1),
            COUNT(o.serial),
            CAST(COALESCE(SUM(o.size), 0) AS BIGINT)
         FROM containers c JOIN objects o ON o.container_id = c.id AND o.current
         WHERE c.project_id = $1",
    )
    .bind(project_id)
    .fetch_one(ex)
    .await
    .map_err(DbError::query("count an account's usage"))?;
    Ok(AccountStats {
        containers,
        objects,
        bytes,
    })
}

/// Accounts whose groups contain `needle` (a user id, when that user goes), or every
/// account with groups with `None`.
pub async fn accounts_grouping<'c>(
    ex: impl Executor<'c, Database = Any>,
    needle: Option<&str>,
) -> Result<Vec<AccountRow>, DbError> {
    sqlx::query_as(
        "SELECT project_id, meta, groups, updated_at FROM storage_accounts
         WHERE groups <> '{}' AND ($1 IS NULL OR groups LIKE '%' || $1 || '%')",
    )
    .bind(needle)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("find accounts with groups"))
}

/// Sets only the groups of an account (leaving its metadata as it is now).
pub async fn set_account_groups<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
    groups: &str,
    updated_at: i64,
) -> Result<(), DbError> {
    sqlx::query("UPDATE storage_accounts SET groups = $2, updated_at = $3 WHERE project_id = $1")
        .bind(project_id)
        .bind(groups)
        .bind(updated_at)
        .execute(ex)
        .await
        .map_err(DbError::query("change an account's groups"))?;
    Ok(())
}
