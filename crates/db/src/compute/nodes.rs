use sqlx::{Any, Executor};

use crate::DbError;

/// A row of `compute_nodes`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NodeRow {
    pub id: String,
    pub rpc_url: String,
    pub cpus: i64,
    pub ram_mib: i64,
    pub disk_free_bytes: i64,
    pub disk_total_bytes: i64,
    pub guest_cpu_model: String,
    pub host_cpu: String,
    /// JSON array of QEMU's feature names.
    pub cpu_features: String,
    /// Where the node's VXLAN tunnels end.
    pub tunnel_address: Option<String>,
    /// Whether it has a public interface (routers run there); 0 or 1.
    pub public_network: i64,
    pub accelerator: String,
    pub qemu_version: String,
    pub agent_version: String,
    /// The internal APIs' version the agent speaks.
    pub api_version: i64,
    pub running_vms: i64,
    pub registered_at: i64,
    pub heartbeat_at: i64,
    pub heartbeat_seconds: i64,
    /// Set by an operator, not by registration (which leaves it as it is); 0 or 1, as
    /// `Any` reads booleans (see `flag.rs`).
    pub drained: i64,
    /// Why it was drained; set with `drained`, not by registration.
    pub drained_reason: Option<String>,
}

const COLUMNS: &str = "id, rpc_url, cpus, ram_mib, disk_free_bytes, disk_total_bytes, \
    guest_cpu_model, host_cpu, accelerator, qemu_version, agent_version, running_vms, \
    registered_at, heartbeat_at, heartbeat_seconds, cpu_features, tunnel_address, \
    public_network, api_version";

const SELECT_COLUMNS: &str = "id, rpc_url, cpus, ram_mib, disk_free_bytes, disk_total_bytes, \
    guest_cpu_model, host_cpu, accelerator, qemu_version, agent_version, running_vms, \
    registered_at, heartbeat_at, heartbeat_seconds, CAST(drained AS INTEGER) AS drained, \
    drained_reason, cpu_features, tunnel_address, \
    CAST(public_network AS INTEGER) AS public_network, api_version";

/// Inserts the node or replaces its self-description (a re-registration).
pub async fn upsert_node<'c>(
    ex: impl Executor<'c, Database = Any>,
    row: &NodeRow,
) -> Result<(), DbError> {
    sqlx::query(&format!(
        "INSERT INTO compute_nodes ({COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                 $19)
         ON CONFLICT (id) DO UPDATE SET
           rpc_url = excluded.rpc_url, cpus = excluded.cpus, ram_mib = excluded.ram_mib,
           disk_free_bytes = excluded.disk_free_bytes,
           disk_total_bytes = excluded.disk_total_bytes,
           guest_cpu_model = excluded.guest_cpu_model, host_cpu = excluded.host_cpu,
           accelerator = excluded.accelerator, qemu_version = excluded.qemu_version,
           agent_version = excluded.agent_version, running_vms = excluded.running_vms,
           registered_at = excluded.registered_at, heartbeat_at = excluded.heartbeat_at,
           heartbeat_seconds = excluded.heartbeat_seconds,
           cpu_features = excluded.cpu_features, tunnel_address = excluded.tunnel_address,
           public_network = excluded.public_network, api_version = excluded.api_version"
    ))
    .bind(&row.id)
    .bind(&row.rpc_url)
    .bind(row.cpus)
    .bind(row.ram_mib)
    .bind(row.disk_free_bytes)
    .bind(row.disk_total_bytes)
    .bind(&row.guest_cpu_model)
    .bind(&row.host_cpu)
    .bind(&row.accelerator)
    .bind(&row.qemu_version)
    .bind(&row.agent_version)
    .bind(row.running_vms)
    .bind(row.registered_at)
    .bind(row.heartbeat_at)
    .bind(row.heartbeat_seconds)
    .bind(&row.cpu_features)
    .bind(&row.tunnel_address)
    .bind(row.public_network != 0)
    .bind(row.api_version)
    .execute(ex)
    .await
    .map_err(DbError::query("register a node"))?;
    Ok(())
}

/// Records a heartbeat; false if the node is not registered.
pub async fn record_heartbeat<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    running_vms: i64,
    disk_free_bytes: i64,
    at: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE compute_nodes SET running_vms = $2, disk_free_bytes = $3, heartbeat_at = $4
         WHERE id = $1",
    )
    .bind(id)
    .bind(running_vms)
    .bind(disk_free_bytes)
    .bind(at)
    .execute(ex)
    .await
    .map_err(DbError::query("record a node heartbeat"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn list_nodes<'c>(
    ex: impl Executor<'c, Database = Any>,
) -> Result<Vec<NodeRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {SELECT_COLUMNS} FROM compute_nodes ORDER BY id"
    ))
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list nodes"))
}

pub async fn get_node<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<NodeRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {SELECT_COLUMNS} FROM compute_nodes WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a node"))
}

/// Forgets a node's registration; false if it was not registered.
pub async fn delete_node<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM compute_nodes WHERE id = $1")
        .bind(id)
        .execute(ex)
        .await
        .map_err(DbError::query("delete a node"))?;
    Ok(done.rows_affected() > 0)
}

/// Drains a node, saying why, or undrains it; false if it is not registered.
pub async fn set_drained<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    drained: bool,
    reason: Option<&str>,
) -> Result<bool, DbError> {
    let done =
        sqlx::query("UPDATE compute_nodes SET drained = $2, drained_reason = $3 WHERE id = $1")
            .bind(id)
            .bind(drained)
            .bind(reason.filter(|_| drained))
            .execute(ex)
            .await
            .map_err(DbError::query("drain a node"))?;
    Ok(done.rows_affected() > 0)
}
