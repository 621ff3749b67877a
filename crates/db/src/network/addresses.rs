//! The addresses ports hold, and the history of who held each.

use sqlx::{Any, Executor};

use crate::{Connection, DbError};

/// One fixed IP of a port.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AllocationRow {
    pub subnet_id: String,
    pub address: String,
    pub port_id: String,
    pub network_id: String,
}

/// Gives `address` of its subnet to a port, unless another port holds it: returns whether
/// it did. Never waits out a conflict with an error: a concurrent allocation of the same
/// address simply makes this one return `false`.
pub async fn allocate_address(conn: &mut Connection, row: &AllocationRow) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO ip_allocations (subnet_id, address, port_id, network_id)
         VALUES ($1, $2, $3, $4) ON CONFLICT (subnet_id, address) DO NOTHING",
    )
    .bind(&row.subnet_id)
    .bind(&row.address)
    .bind(&row.port_id)
    .bind(&row.network_id)
    .execute(conn)
    .await
    .map_err(DbError::query("allocate an address"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn release_address(
    conn: &mut Connection,
    subnet: &str,
    address: &str,
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM ip_allocations WHERE subnet_id = $1 AND address = $2")
        .bind(subnet)
        .bind(address)
        .execute(conn)
        .await
        .map_err(DbError::query("release an address"))?;
    Ok(())
}

/// The addresses held in a subnet.
pub async fn subnet_addresses<'c>(
    ex: impl Executor<'c, Database = Any>,
    subnet: &str,
) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar("SELECT address FROM ip_allocations WHERE subnet_id = $1")
        .bind(subnet)
        .fetch_all(ex)
        .await
        .map_err(DbError::query("read a subnet's addresses"))
}

/// The port holding `address` of a subnet, if any.
pub async fn address_holder<'c>(
    ex: impl Executor<'c, Database = Any>,
    subnet: &str,
    address: &str,
) -> Result<Option<String>, DbError> {
    sqlx::query_scalar("SELECT port_id FROM ip_allocations WHERE subnet_id = $1 AND address = $2")
        .bind(subnet)
        .bind(address)
        .fetch_optional(ex)
        .await
        .map_err(DbError::query("read who holds an address"))
}

/// How many addresses of a subnet ports hold.
pub async fn count_subnet_addresses<'c>(
    ex: impl Executor<'c, Database = Any>,
    subnet: &str,
) -> Result<i64, DbError> {
    sqlx::query_scalar("SELECT COUNT(*) FROM ip_allocations WHERE subnet_id = $1")
        .bind(subnet)
        .fetch_one(ex)
        .await
        .map_err(DbError::query("count a subnet's addresses"))
}

/// The fixed IPs of one port.
pub async fn port_addresses<'c>(
    ex: impl Executor<'c, Database = Any>,
    port: &str,
) -> Result<Vec<AllocationRow>, DbError> {
    sqlx::query_as(
        "SELECT subnet_id, address, port_id, network_id FROM ip_allocations WHERE port_id = $1",
    )
    .bind(port)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read a port's addresses"))
}

/// The fixed IPs of the ports a listing selects.
pub async fn selected_port_addresses<'c>(
    ex: impl Executor<'c, Database = Any>,
    selection: super::PortSelection<'_>,
) -> Result<Vec<AllocationRow>, DbError> {
    let (filter, values) = selection.condition("p.");
    let text = format!(
        "SELECT a.subnet_id, a.address, a.port_id, a.network_id
         FROM ip_allocations a JOIN ports p ON p.id = a.port_id {filter}"
    );
    let mut select = sqlx::query_as(&text);
    for value in values {
        select = select.bind(value);
    }
    select
        .fetch_all(ex)
        .await
        .map_err(DbError::query("read ports' addresses"))
}

/// One address held by one port for a while.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AddressHistoryRow {
    pub id: String,
    pub address: String,
    pub network_id: String,
    pub subnet_id: String,
    pub port_id: String,
    pub project_id: String,
    pub device_id: String,
    pub allocated_at: i64,
    /// `None` while the port still holds it.
    pub released_at: Option<i64>,
}

pub async fn open_address_history(
    conn: &mut Connection,
    row: &AddressHistoryRow,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO ip_history (id, address, network_id, subnet_id, port_id, project_id,
                                 device_id, allocated_at, released_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&row.id)
    .bind(&row.address)
    .bind(&row.network_id)
    .bind(&row.subnet_id)
    .bind(&row.port_id)
    .bind(&row.project_id)
    .bind(&row.device_id)
    .bind(row.allocated_at)
    .bind(row.released_at)
    .execute(conn)
    .await
    .map_err(DbError::query("record an address's allocation"))?;
    Ok(())
}

/// Ends the open history of `address` held by `port`.
pub async fn close_address_history(
    conn: &mut Connection,
    port: &str,
    address: &str,
    at: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE ip_history SET released_at = $3
         WHERE port_id = $1 AND address = $2 AND released_at IS NULL",
    )
    .bind(port)
    .bind(address)
    .bind(at)
    .execute(conn)
    .await
    .map_err(DbError::query("record an address's release"))?;
    Ok(())
}

/// The history entries of a port's addresses that are still open.
pub async fn open_address_entries<'c>(
    ex: impl Executor<'c, Database = Any>,
    port: &str,
) -> Result<Vec<AddressHistoryRow>, DbError> {
    sqlx::query_as(
        "SELECT id, address, network_id, subnet_id, port_id, project_id, device_id,
                allocated_at, released_at
         FROM ip_history WHERE port_id = $1 AND released_at IS NULL ORDER BY address",
    )
    .bind(port)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read a port's address history"))
}

/// Who held `address`, most recent first.
pub async fn address_history<'c>(
    ex: impl Executor<'c, Database = Any>,
    address: &str,
) -> Result<Vec<AddressHistoryRow>, DbError> {
    sqlx::query_as(
        "SELECT id, address, network_id, subnet_id, port_id, project_id, device_id,
                allocated_at, released_at
         FROM ip_history WHERE address = $1 ORDER BY allocated_at DESC, id",
    )
    .bind(address)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read an address's history"))
}

/// Every address held in a subnet, with its port.
pub async fn subnet_allocations<'c>(
    ex: impl Executor<'c, Database = Any>,
    subnet: &str,
) -> Result<Vec<AllocationRow>, DbError> {
    sqlx::query_as(
        "SELECT subnet_id, address, port_id, network_id FROM ip_allocations
         WHERE subnet_id = $1 ORDER BY port_id, address",
    )
    .bind(subnet)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read a subnet's allocations"))
}

/// The subnets of `network` whose gateway address a port of `device_owner` (a router's
/// interface) holds, with that port's MAC: `(subnet id, MAC)`.
pub async fn gateway_holders<'c>(
    ex: impl Executor<'c, Database = Any>,
    network: &str,
    device_owner: &str,
) -> Result<Vec<(String, String)>, DbError> {
    sqlx::query_as(
        "SELECT a.subnet_id, p.mac_address
         FROM ip_allocations a
         JOIN ports p ON p.id = a.port_id
         JOIN subnets s ON s.id = a.subnet_id
         WHERE a.network_id = $1 AND p.device_owner = $2 AND a.address = s.gateway_ip",
    )
    .bind(network)
    .bind(device_owner)
    .fetch_all(ex)
    .await
    .map_err(DbError::query(
        "read which router ports hold a network's gateways",
    ))
}
