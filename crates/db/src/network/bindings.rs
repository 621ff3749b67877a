//! Ports as devices use them: which node each is bound to, and the other nodes a node's
//! networks span (the peers of its VXLAN tunnels).

use sqlx::{Any, Executor};

use crate::{Connection, DbError};

/// Binds every port of `device` to `host` (or unbinds them); returns how many.
pub async fn bind_device_ports(
    conn: &mut Connection,
    device: &str,
    host: Option<&str>,
    status: &str,
    at: i64,
) -> Result<u64, DbError> {
    let done = sqlx::query(
        "UPDATE ports SET binding_host = $2, status = $3, updated_at = $4,
                revision = revision + 1
         WHERE device_id = $1",
    )
    .bind(device)
    .bind(host)
    .bind(status)
    .bind(at)
    .execute(conn)
    .await
    .map_err(DbError::query("bind a device's ports"))?;
    Ok(done.rows_affected())
}

/// The status of every port of `device` bound to a node.
pub async fn set_device_port_status(
    conn: &mut Connection,
    device: &str,
    status: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE ports SET status = $2 WHERE device_id = $1 AND binding_host IS NOT NULL")
        .bind(device)
        .bind(status)
        .execute(conn)
        .await
        .map_err(DbError::query("set a device's ports' status"))?;
    Ok(())
}

/// Every port's node, and while its server moves, its destination too: `(network, host)`
/// rows of a subquery.
const PORT_HOSTS: &str = "SELECT network_id, binding_host AS host FROM ports
                          WHERE binding_host IS NOT NULL
                          UNION ALL
                          SELECT network_id, migrating_to AS host FROM ports
                          WHERE migrating_to IS NOT NULL";

/// Marks every port of `device` as moving to `node` with it (or no longer moving).
pub async fn set_device_ports_moving(
    conn: &mut Connection,
    device: &str,
    node: Option<&str>,
    at: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE ports SET migrating_to = $2, updated_at = $3, revision = revision + 1
         WHERE device_id = $1",
    )
    .bind(device)
    .bind(node)
    .bind(at)
    .execute(conn)
    .await
    .map_err(DbError::query("mark a device's ports as moving"))?;
    Ok(())
}

/// Binds every port of `device` to `node`, where it moved, and ends the move.
pub async fn move_device_ports(
    conn: &mut Connection,
    device: &str,
    node: &str,
    at: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE ports SET binding_host = $2, migrating_to = NULL, updated_at = $3,
                revision = revision + 1
         WHERE device_id = $1",
    )
    .bind(device)
    .bind(node)
    .bind(at)
    .execute(conn)
    .await
    .map_err(DbError::query("move a device's ports"))?;
    Ok(())
}

/// For each network with a port on `node`, the tunnel addresses of the other nodes with
/// ports on it: (network, address). A moving port is on both its nodes.
pub async fn network_peers<'c>(
    ex: impl Executor<'c, Database = Any>,
    node: &str,
) -> Result<Vec<(String, String)>, DbError> {
    let text = format!(
        "SELECT DISTINCT h.network_id, n.tunnel_address
         FROM ({PORT_HOSTS}) h JOIN compute_nodes n ON n.id = h.host
         WHERE h.host <> $1 AND n.tunnel_address IS NOT NULL
           AND h.network_id IN (SELECT network_id FROM ports
                                WHERE binding_host = $1 OR migrating_to = $1)
         ORDER BY h.network_id, n.tunnel_address"
    );
    sqlx::query_as(&text)
        .bind(node)
        .fetch_all(ex)
        .await
        .map_err(DbError::query("read the peers of a node's networks"))
}

/// The nodes with ports on any of `networks` (a moving port on both of its).
pub async fn hosts_on_networks<'c>(
    ex: impl Executor<'c, Database = Any>,
    networks: &[String],
) -> Result<Vec<String>, DbError> {
    if networks.is_empty() {
        return Ok(Vec::new());
    }
    // `$1, $2, …`: one bind parameter per network.
    let parameters: Vec<String> = (1..=networks.len()).map(|i| format!("${i}")).collect();
    let text = format!(
        "SELECT DISTINCT host FROM ({PORT_HOSTS}) h
         WHERE network_id IN ({})
         ORDER BY host",
        parameters.join(", ")
    );
    let mut select = sqlx::query_scalar(&text);
    for network in networks {
        select = select.bind(network);
    }
    select
        .fetch_all(ex)
        .await
        .map_err(DbError::query("read the nodes of networks"))
}

/// The next generation of the networks' descriptions sent to nodes. Taking it locks the
/// counter until the transaction ends, so a description read after it is never older
/// than one with a smaller generation.
pub async fn next_network_generation(conn: &mut Connection) -> Result<i64, DbError> {
    sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'node_networks' RETURNING value",
    )
    .fetch_one(conn)
    .await
    .map_err(DbError::query("take a generation of the nodes' networks"))
}

/// The nodes routers may run on: those that realise networks and have a public
/// interface, or, where none has one, every node that realises networks; by id.
pub async fn router_nodes<'c>(
    ex: impl Executor<'c, Database = Any>,
) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar(
        "SELECT id FROM compute_nodes
         WHERE tunnel_address IS NOT NULL
           AND (public_network
                OR NOT EXISTS (SELECT 1 FROM compute_nodes
                               WHERE tunnel_address IS NOT NULL AND public_network))
         ORDER BY id",
    )
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read the nodes routers may run on"))
}
