use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::DbError;
use crate::flag::{get_bool, get_optional_bool};

/// A row of `tokens`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub token_hash: String,
    pub audit_id: String,
    pub user_id: String,
    pub project_id: Option<String>,
    /// Authentication methods, comma-separated (`password`, `token`).
    pub methods: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// A token with what validating it needs of its user and project, read in one query.
#[derive(Debug, Clone)]
pub struct TokenLookup {
    pub token_hash: String,
    pub audit_id: String,
    pub user_id: String,
    pub project_id: Option<String>,
    pub methods: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub user_name: String,
    pub user_enabled: bool,
    pub project_name: Option<String>,
    pub project_enabled: Option<bool>,
    pub project_kind: Option<String>,
}

impl FromRow<'_, AnyRow> for TokenLookup {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(TokenLookup {
            token_hash: row.try_get("token_hash")?,
            audit_id: row.try_get("audit_id")?,
            user_id: row.try_get("user_id")?,
            project_id: row.try_get("project_id")?,
            methods: row.try_get("methods")?,
            issued_at: row.try_get("issued_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
            user_name: row.try_get("user_name")?,
            user_enabled: get_bool(row, "user_enabled")?,
            project_name: row.try_get("project_name")?,
            project_enabled: get_optional_bool(row, "project_enabled")?,
            project_kind: row.try_get("project_kind")?,
        })
    }
}

pub async fn insert_token<'c>(
    ex: impl Executor<'c, Database = Any>,
    token: &TokenRow,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO tokens (token_hash, audit_id, user_id, project_id, methods, issued_at,
                             expires_at, revoked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&token.token_hash)
    .bind(&token.audit_id)
    .bind(&token.user_id)
    .bind(&token.project_id)
    .bind(&token.methods)
    .bind(token.issued_at)
    .bind(token.expires_at)
    .bind(token.revoked_at)
    .execute(ex)
    .await
    .map_err(DbError::query("store a token"))?;
    Ok(())
}

pub async fn lookup_token<'c>(
    ex: impl Executor<'c, Database = Any>,
    token_hash: &str,
) -> Result<Option<TokenLookup>, DbError> {
    sqlx::query_as(
        "SELECT t.token_hash, t.audit_id, t.user_id, t.project_id, t.methods, t.issued_at,
                t.expires_at, t.revoked_at, u.name AS user_name,
                CAST(u.enabled AS INTEGER) AS user_enabled, p.name AS project_name,
                CAST(p.enabled AS INTEGER) AS project_enabled, p.kind AS project_kind
         FROM tokens t
         JOIN users u ON u.id = t.user_id
         LEFT JOIN projects p ON p.id = t.project_id
         WHERE t.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("look up a token"))
}

/// Marks a token revoked; returns whether it was live before.
pub async fn revoke_token<'c>(
    ex: impl Executor<'c, Database = Any>,
    token_hash: &str,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE tokens SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(token_hash)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("revoke a token"))?;
    Ok(done.rows_affected() > 0)
}

/// Revokes every live token of a user (password change, disabling).
pub async fn revoke_user_tokens<'c>(
    ex: impl Executor<'c, Database = Any>,
    user_id: &str,
    now: i64,
) -> Result<u64, DbError> {
    let done =
        sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(user_id)
            .bind(now)
            .execute(ex)
            .await
            .map_err(DbError::query("revoke a user's tokens"))?;
    Ok(done.rows_affected())
}

/// Revokes every live token scoped to a project, of one user or of everyone: Keystone's
/// revocation event on a role removal or a project being disabled. Such a token stays
/// revoked when the role or the project comes back.
pub async fn revoke_project_tokens<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
    user_id: Option<&str>,
    now: i64,
) -> Result<u64, DbError> {
    let done = sqlx::query(
        "UPDATE tokens SET revoked_at = $3
         WHERE project_id = $1 AND ($2 IS NULL OR user_id = $2) AND revoked_at IS NULL",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("revoke a project's tokens"))?;
    Ok(done.rows_affected())
}

/// Deletes tokens that expired before `before`; returns how many.
pub async fn purge_expired_tokens<'c>(
    ex: impl Executor<'c, Database = Any>,
    before: i64,
) -> Result<u64, DbError> {
    let done = sqlx::query("DELETE FROM tokens WHERE expires_at < $1")
        .bind(before)
        .execute(ex)
        .await
        .map_err(DbError::query("purge expired tokens"))?;
    Ok(done.rows_affected())
}
