use sqlx::{Any, Executor};

use crate::{Connection, DbError};

/// Hashes per INSERT: well under SQLite's limit of bound parameters.
const GRANT_BATCH: usize = 500;

/// Lets node `node_id` read the blocks `hashes` (granting one again changes nothing).
pub async fn grant_blocks(
    conn: &mut Connection,
    node_id: &str,
    hashes: &[&str],
    now: i64,
) -> Result<(), DbError> {
    for batch in hashes.chunks(GRANT_BATCH) {
        let rows: Vec<String> = (0..batch.len())
            .map(|i| format!("($1, ${}, $2)", i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO compute_node_blocks (node_id, block_hash, granted_at) VALUES {}
             ON CONFLICT (node_id, block_hash) DO NOTHING",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(node_id).bind(now);
        for hash in batch {
            query = query.bind(*hash);
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(DbError::query("grant blocks to a node"))?;
    }
    Ok(())
}

/// Whether node `node_id` may read block `hash`.
pub async fn block_granted<'c>(
    ex: impl Executor<'c, Database = Any>,
    node_id: &str,
    hash: &str,
) -> Result<bool, DbError> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT block_hash FROM compute_node_blocks WHERE node_id = $1 AND block_hash = $2",
    )
    .bind(node_id)
    .bind(hash)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("check a node's block grant"))?;
    Ok(found.is_some())
}

/// Withdraws every block grant of node `node_id`.
pub async fn revoke_blocks<'c>(
    ex: impl Executor<'c, Database = Any>,
    node_id: &str,
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM compute_node_blocks WHERE node_id = $1")
        .bind(node_id)
        .execute(ex)
        .await
        .map_err(DbError::query("withdraw a node's block grants"))?;
    Ok(())
}
