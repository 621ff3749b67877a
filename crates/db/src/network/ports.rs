//! Ports.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::flag::get_bool;
use crate::{Connection, DbError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRow {
    pub id: String,
    pub network_id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub mac_address: String,
    pub admin_state_up: bool,
    pub status: String,
    pub device_id: String,
    pub device_owner: String,
    pub port_security_enabled: bool,
    /// The node the port is bound to (Neutron's `binding:host_id`).
    pub binding_host: Option<String>,
    /// The user whose `cyclades.port` the port is charged to.
    pub charged_to: Option<String>,
    /// Neutron's allowed address pairs, as JSON.
    pub allowed_address_pairs: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
}

impl FromRow<'_, AnyRow> for PortRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(PortRow {
            id: row.try_get("id")?,
            network_id: row.try_get("network_id")?,
            project_id: row.try_get("project_id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            mac_address: row.try_get("mac_address")?,
            admin_state_up: get_bool(row, "admin_state_up")?,
            status: row.try_get("status")?,
            device_id: row.try_get("device_id")?,
            device_owner: row.try_get("device_owner")?,
            port_security_enabled: get_bool(row, "port_security_enabled")?,
            binding_host: row.try_get("binding_host")?,
            charged_to: row.try_get("charged_to")?,
            allowed_address_pairs: row.try_get("allowed_address_pairs")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            revision: row.try_get("revision")?,
        })
    }
}

const COLUMNS: &str = "id, network_id, project_id, name, description, mac_address,
    CAST(admin_state_up AS INTEGER) AS admin_state_up, status, device_id, device_owner,
    CAST(port_security_enabled AS INTEGER) AS port_security_enabled, binding_host, charged_to,
    allowed_address_pairs, created_at, updated_at, revision";

/// Inserts a port unless another port has its MAC address: returns whether it did.
pub async fn insert_port(conn: &mut Connection, row: &PortRow) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO ports (id, network_id, project_id, name, description, mac_address,
                            admin_state_up, status, device_id, device_owner,
                            port_security_enabled, binding_host, charged_to,
                            allowed_address_pairs, created_at, updated_at, revision)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT (mac_address) DO NOTHING",
    )
    .bind(&row.id)
    .bind(&row.network_id)
    .bind(&row.project_id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(&row.mac_address)
    .bind(row.admin_state_up)
    .bind(&row.status)
    .bind(&row.device_id)
    .bind(&row.device_owner)
    .bind(row.port_security_enabled)
    .bind(&row.binding_host)
    .bind(&row.charged_to)
    .bind(&row.allowed_address_pairs)
    .bind(row.created_at)
    .bind(row.updated_at)
    .bind(row.revision)
    .execute(conn)
    .await
    .map_err(DbError::insert("create a port", "port"))?;
    Ok(done.rows_affected() == 1)
}

/// Writes what an update may change, if the row is still at `row.revision - 1`.
pub async fn update_port(conn: &mut Connection, row: &PortRow) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE ports SET name = $2, description = $3, mac_address = $4, admin_state_up = $5,
                status = $6, device_id = $7, device_owner = $8, port_security_enabled = $9,
                binding_host = $10, updated_at = $11, revision = $12,
                allowed_address_pairs = $13
         WHERE id = $1 AND revision = $12 - 1",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(&row.mac_address)
    .bind(row.admin_state_up)
    .bind(&row.status)
    .bind(&row.device_id)
    .bind(&row.device_owner)
    .bind(row.port_security_enabled)
    .bind(&row.binding_host)
    .bind(row.updated_at)
    .bind(row.revision)
    .bind(&row.allowed_address_pairs)
    .execute(conn)
    .await
    .map_err(DbError::insert("update a port", "MAC address"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn get_port<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<PortRow>, DbError> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM ports WHERE id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await
        .map_err(DbError::query("read a port"))
}

/// Which ports a listing reads; every part given narrows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PortSelection<'a> {
    pub project: Option<&'a str>,
    pub network: Option<&'a str>,
    pub device: Option<&'a str>,
    /// Any of these devices (a page of servers, say).
    pub devices: Option<&'a [String]>,
    /// The node the ports are bound to, or moving to with their server.
    pub host: Option<&'a str>,
}

impl PortSelection<'_> {
    /// The `WHERE` clause of the selection on ports named `{prefix}…`, and its values.
    pub(crate) fn condition(&self, prefix: &str) -> (String, Vec<String>) {
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        for (column, value) in [
            ("project_id", self.project),
            ("network_id", self.network),
            ("device_id", self.device),
        ] {
            if let Some(value) = value {
                values.push(value.to_owned());
                conditions.push(format!("{prefix}{column} = ${}", values.len()));
            }
        }
        if let Some(host) = self.host {
            values.push(host.to_owned());
            let n = values.len();
            conditions.push(format!(
                "({prefix}binding_host = ${n} OR {prefix}migrating_to = ${n})"
            ));
        }
        if let Some(devices) = self.devices {
            if devices.is_empty() {
                conditions.push("1 = 0".to_owned());
            } else {
                // `$n, $n+1, …`: one bind parameter per device.
                let first = values.len();
                let parameters: Vec<String> = (1..=devices.len())
                    .map(|i| format!("${}", first + i))
                    .collect();
                values.extend(devices.iter().cloned());
                conditions.push(format!("{prefix}device_id IN ({})", parameters.join(", ")));
            }
        }
        if conditions.is_empty() {
            (String::new(), values)
        } else {
            (format!("WHERE {}", conditions.join(" AND ")), values)
        }
    }
}

/// Ports, oldest first.
pub async fn list_ports<'c>(
    ex: impl Executor<'c, Database = Any>,
    selection: PortSelection<'_>,
) -> Result<Vec<PortRow>, DbError> {
    let (filter, values) = selection.condition("");
    let text = format!("SELECT {COLUMNS} FROM ports {filter} ORDER BY created_at, id");
    let mut select = sqlx::query_as(&text);
    for value in values {
        select = select.bind(value);
    }
    select
        .fetch_all(ex)
        .await
        .map_err(DbError::query("list ports"))
}

/// How many ports a network has.
pub async fn count_network_ports<'c>(
    ex: impl Executor<'c, Database = Any>,
    network: &str,
) -> Result<i64, DbError> {
    sqlx::query_scalar("SELECT COUNT(*) FROM ports WHERE network_id = $1")
        .bind(network)
        .fetch_one(ex)
        .await
        .map_err(DbError::query("count a network's ports"))
}

/// Locks a port's row until the transaction ends (see [`super::lock_network`]). Returns
/// whether the port exists.
pub async fn lock_port(conn: &mut Connection, id: &str) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE ports SET revision = revision WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(DbError::query("lock a port"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_port(conn: &mut Connection, id: &str) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM ports WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(DbError::query("delete a port"))?;
    Ok(done.rows_affected() == 1)
}

/// Marks a port changed (its addresses, say) at `at`.
pub async fn touch_port(conn: &mut Connection, id: &str, at: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE ports SET updated_at = $2, revision = revision + 1 WHERE id = $1")
        .bind(id)
        .bind(at)
        .execute(conn)
        .await
        .map_err(DbError::query("mark a port changed"))?;
    Ok(())
}
