//! The ports of each server, in the order of its NICs (migration 14).

use sqlx::{Any, Executor};

use crate::{Connection, DbError};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ServerPortRow {
    pub server_id: String,
    pub port_id: String,
    pub position: i64,
    /// 1 when the server's creation made the port (its deletion deletes it).
    pub made_with_server: i64,
}

pub async fn insert_server_port(conn: &mut Connection, row: &ServerPortRow) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO server_ports (server_id, port_id, position, made_with_server)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&row.server_id)
    .bind(&row.port_id)
    .bind(row.position)
    .bind(row.made_with_server)
    .execute(conn)
    .await
    .map_err(DbError::query("record a server's port"))?;
    Ok(())
}

/// A server's ports, in NIC order.
pub async fn server_ports<'c>(
    ex: impl Executor<'c, Database = Any>,
    server: &str,
) -> Result<Vec<ServerPortRow>, DbError> {
    sqlx::query_as(
        "SELECT server_id, port_id, position, made_with_server FROM server_ports
         WHERE server_id = $1 ORDER BY position",
    )
    .bind(server)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read a server's ports"))
}

pub async fn delete_server_ports(conn: &mut Connection, server: &str) -> Result<(), DbError> {
    sqlx::query("DELETE FROM server_ports WHERE server_id = $1")
        .bind(server)
        .execute(conn)
        .await
        .map_err(DbError::query("forget a server's ports"))?;
    Ok(())
}

/// Forgets one of a server's ports (detached from it).
pub async fn delete_server_port(
    conn: &mut Connection,
    server: &str,
    port: &str,
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM server_ports WHERE server_id = $1 AND port_id = $2")
        .bind(server)
        .bind(port)
        .execute(conn)
        .await
        .map_err(DbError::query("forget a server's port"))?;
    Ok(())
}
