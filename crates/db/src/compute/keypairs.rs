//! Keypairs (migration 8): a user's SSH public keys, by name.

use sqlx::{Any, Executor};

use crate::DbError;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeypairRow {
    pub user_id: String,
    pub name: String,
    pub key_type: String,
    pub public_key: String,
    pub fingerprint: String,
    pub created_at: i64,
}

const COLUMNS: &str = "user_id, name, key_type, public_key, fingerprint, created_at";

pub async fn insert_keypair<'c>(
    ex: impl Executor<'c, Database = Any>,
    row: &KeypairRow,
) -> Result<(), DbError> {
    sqlx::query(&format!(
        "INSERT INTO keypairs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(&row.user_id)
    .bind(&row.name)
    .bind(&row.key_type)
    .bind(&row.public_key)
    .bind(&row.fingerprint)
    .bind(row.created_at)
    .execute(ex)
    .await
    .map_err(DbError::insert("create a keypair", "keypair"))?;
    Ok(())
}

pub async fn list_keypairs<'c>(
    ex: impl Executor<'c, Database = Any>,
    user: &str,
) -> Result<Vec<KeypairRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM keypairs WHERE user_id = $1 ORDER BY name"
    ))
    .bind(user)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list keypairs"))
}

pub async fn get_keypair<'c>(
    ex: impl Executor<'c, Database = Any>,
    user: &str,
    name: &str,
) -> Result<Option<KeypairRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM keypairs WHERE user_id = $1 AND name = $2"
    ))
    .bind(user)
    .bind(name)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a keypair"))
}

pub async fn delete_keypair<'c>(
    ex: impl Executor<'c, Database = Any>,
    user: &str,
    name: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM keypairs WHERE user_id = $1 AND name = $2")
        .bind(user)
        .bind(name)
        .execute(ex)
        .await
        .map_err(DbError::query("delete a keypair"))?;
    Ok(done.rows_affected() == 1)
}
