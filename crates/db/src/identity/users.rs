use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::flag::get_bool;
use crate::{Connection, DbError};

/// A row of `users`.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    /// argon2id PHC string; `None` for users who only log in through another provider.
    pub password_hash: Option<String>,
    pub enabled: bool,
    pub base_project_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl FromRow<'_, AnyRow> for UserRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(UserRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            email: row.try_get("email")?,
            password_hash: row.try_get("password_hash")?,
            enabled: get_bool(row, "enabled")?,
            base_project_id: row.try_get("base_project_id")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

const USER_COLUMNS: &str = "id, name, email, password_hash, CAST(enabled AS INTEGER) AS enabled,
                            base_project_id, created_at, updated_at";

/// Which users [`list_users`] returns.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub name: Option<String>,
    pub enabled: Option<bool>,
}

pub async fn insert_user(conn: &mut Connection, user: &UserRow) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO users (id, name, email, password_hash, enabled, base_project_id,
                            created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&user.id)
    .bind(&user.name)
    .bind(&user.email)
    .bind(&user.password_hash)
    .bind(user.enabled)
    .bind(&user.base_project_id)
    .bind(user.created_at)
    .bind(user.updated_at)
    .execute(conn)
    .await
    .map_err(DbError::insert("insert a user", "a user with this name"))?;
    Ok(())
}

pub async fn get_user<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<UserRow>, DbError> {
    sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await
        .map_err(DbError::query("read a user"))
}

pub async fn get_user_by_name<'c>(
    ex: impl Executor<'c, Database = Any>,
    name: &str,
) -> Result<Option<UserRow>, DbError> {
    sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"))
        .bind(name)
        .fetch_optional(ex)
        .await
        .map_err(DbError::query("read a user by name"))
}

pub async fn list_users<'c>(
    ex: impl Executor<'c, Database = Any>,
    filter: &UserFilter,
) -> Result<Vec<UserRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users
         WHERE ($1 IS NULL OR name = $1) AND ($2 IS NULL OR enabled = $2)
         ORDER BY name"
    ))
    .bind(&filter.name)
    .bind(filter.enabled)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list users"))
}

/// Writes every mutable field of `user`; returns whether the user existed.
pub async fn update_user(conn: &mut Connection, user: &UserRow) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE users SET name = $2, email = $3, password_hash = $4, enabled = $5, updated_at = $6
         WHERE id = $1",
    )
    .bind(&user.id)
    .bind(&user.name)
    .bind(&user.email)
    .bind(&user.password_hash)
    .bind(user.enabled)
    .bind(user.updated_at)
    .execute(conn)
    .await
    .map_err(DbError::insert("update a user", "a user with this name"))?;
    Ok(done.rows_affected() > 0)
}

/// Deletes a user; their role assignments and tokens go with them. Returns whether it existed.
pub async fn delete_user(conn: &mut Connection, id: &str) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(DbError::query("delete a user"))?;
    Ok(done.rows_affected() > 0)
}
