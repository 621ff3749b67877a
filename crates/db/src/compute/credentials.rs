use sqlx::{Any, Executor, Row};

use crate::DbError;

/// Stores a pending enrolment of `node_id`, replacing a pending one (whose join token then
/// no longer works). False if the node has already joined: its credential stays until it
/// is revoked.
pub async fn put_enrolment<'c>(
    ex: impl Executor<'c, Database = Any>,
    node_id: &str,
    join_token_hash: &str,
    join_expires_at: i64,
    credential_id: &str,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO compute_node_credentials
           (node_id, join_token_hash, join_expires_at, token_hash, credential_id, created_at,
            joined_at)
         VALUES ($1, $2, $3, NULL, $4, $5, NULL)
         ON CONFLICT (node_id) DO UPDATE SET
           join_token_hash = excluded.join_token_hash,
           join_expires_at = excluded.join_expires_at,
           credential_id = excluded.credential_id,
           created_at = excluded.created_at
         WHERE compute_node_credentials.token_hash IS NULL",
    )
    .bind(node_id)
    .bind(join_token_hash)
    .bind(join_expires_at)
    .bind(credential_id)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("enrol a node"))?;
    Ok(done.rows_affected() == 1)
}

/// A node that has just joined: its id and its credential's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedNode {
    pub node_id: String,
    pub credential_id: String,
}

/// Exchanges a join token that is pending and not expired at `now` for the node's token,
/// in one statement, so that a token is used at most once even when two nodes race.
pub async fn complete_join<'c>(
    ex: impl Executor<'c, Database = Any>,
    join_token_hash: &str,
    token_hash: &str,
    now: i64,
) -> Result<Option<JoinedNode>, DbError> {
    let row = sqlx::query(
        "UPDATE compute_node_credentials
         SET token_hash = $2, joined_at = $3, join_token_hash = NULL, join_expires_at = NULL
         WHERE join_token_hash = $1 AND join_expires_at > $3
         RETURNING node_id, credential_id",
    )
    .bind(join_token_hash)
    .bind(token_hash)
    .bind(now)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("complete a node's join"))?;
    row.map(|row| {
        Ok(JoinedNode {
            node_id: row.try_get("node_id")?,
            credential_id: row.try_get("credential_id")?,
        })
    })
    .transpose()
    .map_err(DbError::query("read a joined node"))
}

/// The node whose token hashes to `token_hash`, if it holds a credential.
pub async fn node_of_token<'c>(
    ex: impl Executor<'c, Database = Any>,
    token_hash: &str,
) -> Result<Option<String>, DbError> {
    sqlx::query_scalar("SELECT node_id FROM compute_node_credentials WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(ex)
        .await
        .map_err(DbError::query("authenticate a node"))
}

/// The id of the credential node `node_id` has joined with, if it has joined.
pub async fn credential_id_of<'c>(
    ex: impl Executor<'c, Database = Any>,
    node_id: &str,
) -> Result<Option<String>, DbError> {
    sqlx::query_scalar(
        "SELECT credential_id FROM compute_node_credentials
         WHERE node_id = $1 AND token_hash IS NOT NULL",
    )
    .bind(node_id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a node's credential"))
}

/// Deletes the node's credential or pending enrolment; false if it had neither.
pub async fn delete_credential<'c>(
    ex: impl Executor<'c, Database = Any>,
    node_id: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM compute_node_credentials WHERE node_id = $1")
        .bind(node_id)
        .execute(ex)
        .await
        .map_err(DbError::query("revoke a node's credential"))?;
    Ok(done.rows_affected() > 0)
}
