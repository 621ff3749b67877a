//! Routers and floating IPs (migration 16).

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::flag::get_bool;
use crate::{Connection, DbError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub external_network_id: Option<String>,
    pub enable_snat: bool,
    /// The node the router runs on.
    pub node_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
}

impl FromRow<'_, AnyRow> for RouterRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(RouterRow {
            id: row.try_get("id")?,
            project_id: row.try_get("project_id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            admin_state_up: get_bool(row, "admin_state_up")?,
            external_network_id: row.try_get("external_network_id")?,
            enable_snat: get_bool(row, "enable_snat")?,
            node_id: row.try_get("node_id")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            revision: row.try_get("revision")?,
        })
    }
}

const ROUTER_COLUMNS: &str = "id, project_id, name, description,
    CAST(admin_state_up AS INTEGER) AS admin_state_up, external_network_id,
    CAST(enable_snat AS INTEGER) AS enable_snat, node_id, created_at, updated_at, revision";

pub async fn insert_router(conn: &mut Connection, row: &RouterRow) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO routers (id, project_id, name, description, admin_state_up,
                              external_network_id, enable_snat, node_id, created_at,
                              updated_at, revision)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&row.id)
    .bind(&row.project_id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(row.admin_state_up)
    .bind(&row.external_network_id)
    .bind(row.enable_snat)
    .bind(&row.node_id)
    .bind(row.created_at)
    .bind(row.updated_at)
    .bind(row.revision)
    .execute(conn)
    .await
    .map_err(DbError::query("create a router"))?;
    Ok(())
}

/// Writes a router if it is still at `row.revision - 1`.
pub async fn update_router(conn: &mut Connection, row: &RouterRow) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE routers SET name = $2, description = $3, admin_state_up = $4,
                external_network_id = $5, enable_snat = $6, node_id = $7, updated_at = $8,
                revision = $9
         WHERE id = $1 AND revision = $9 - 1",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(row.admin_state_up)
    .bind(&row.external_network_id)
    .bind(row.enable_snat)
    .bind(&row.node_id)
    .bind(row.updated_at)
    .bind(row.revision)
    .execute(conn)
    .await
    .map_err(DbError::query("update a router"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn get_router<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<RouterRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {ROUTER_COLUMNS} FROM routers WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a router"))
}

/// One project's routers (every project's: `None`), oldest first.
pub async fn list_routers<'c>(
    ex: impl Executor<'c, Database = Any>,
    project: Option<&str>,
) -> Result<Vec<RouterRow>, DbError> {
    super::list_of_project(ex, "routers", ROUTER_COLUMNS, project, "list routers").await
}

/// The routers that run on `node`.
pub async fn node_routers<'c>(
    ex: impl Executor<'c, Database = Any>,
    node: &str,
) -> Result<Vec<RouterRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {ROUTER_COLUMNS} FROM routers WHERE node_id = $1 ORDER BY id"
    ))
    .bind(node)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read a node's routers"))
}

/// How many routers run on each node that runs any.
pub async fn routers_per_node<'c>(
    ex: impl Executor<'c, Database = Any>,
) -> Result<Vec<(String, i64)>, DbError> {
    sqlx::query_as(
        "SELECT node_id, COUNT(*) FROM routers WHERE node_id IS NOT NULL GROUP BY node_id",
    )
    .fetch_all(ex)
    .await
    .map_err(DbError::query("count routers per node"))
}

pub async fn lock_router(conn: &mut Connection, id: &str) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE routers SET revision = revision WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(DbError::query("lock a router"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_router(conn: &mut Connection, id: &str) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM routers WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(DbError::query("delete a router"))?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FloatingIpRow {
    pub id: String,
    pub project_id: String,
    pub floating_network_id: String,
    pub floating_port_id: String,
    pub floating_ip_address: String,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    pub router_id: Option<String>,
    pub description: String,
    pub charged_to: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
}

const FLOATING_COLUMNS: &str = "id, project_id, floating_network_id, floating_port_id, \
    floating_ip_address, port_id, fixed_ip_address, router_id, description, charged_to, \
    created_at, updated_at, revision";

pub async fn insert_floating_ip(conn: &mut Connection, row: &FloatingIpRow) -> Result<(), DbError> {
    sqlx::query(&format!(
        "INSERT INTO floating_ips ({FLOATING_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&row.id)
    .bind(&row.project_id)
    .bind(&row.floating_network_id)
    .bind(&row.floating_port_id)
    .bind(&row.floating_ip_address)
    .bind(&row.port_id)
    .bind(&row.fixed_ip_address)
    .bind(&row.router_id)
    .bind(&row.description)
    .bind(&row.charged_to)
    .bind(row.created_at)
    .bind(row.updated_at)
    .bind(row.revision)
    .execute(conn)
    .await
    .map_err(DbError::insert("create a floating IP", "fixed address"))?;
    Ok(())
}

/// Writes an association (or its end) if the row is still at `row.revision - 1`; a fixed
/// address another floating IP has is a conflict.
pub async fn update_floating_ip(
    conn: &mut Connection,
    row: &FloatingIpRow,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE floating_ips SET port_id = $2, fixed_ip_address = $3, router_id = $4,
                description = $5, updated_at = $6, revision = $7
         WHERE id = $1 AND revision = $7 - 1",
    )
    .bind(&row.id)
    .bind(&row.port_id)
    .bind(&row.fixed_ip_address)
    .bind(&row.router_id)
    .bind(&row.description)
    .bind(row.updated_at)
    .bind(row.revision)
    .execute(conn)
    .await
    .map_err(DbError::insert("associate a floating IP", "fixed address"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn get_floating_ip<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<FloatingIpRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {FLOATING_COLUMNS} FROM floating_ips WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a floating IP"))
}

/// One project's floating IPs (every project's: `None`), oldest first.
pub async fn list_floating_ips<'c>(
    ex: impl Executor<'c, Database = Any>,
    project: Option<&str>,
) -> Result<Vec<FloatingIpRow>, DbError> {
    super::list_of_project(
        ex,
        "floating_ips",
        FLOATING_COLUMNS,
        project,
        "list floating IPs",
    )
    .await
}

/// The floating IPs a router forwards.
pub async fn router_floating_ips<'c>(
    ex: impl Executor<'c, Database = Any>,
    router: &str,
) -> Result<Vec<FloatingIpRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {FLOATING_COLUMNS} FROM floating_ips WHERE router_id = $1 ORDER BY id"
    ))
    .bind(router)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read a router's floating IPs"))
}

/// The floating IPs associated with `port`.
pub async fn port_floating_ips<'c>(
    ex: impl Executor<'c, Database = Any>,
    port: &str,
) -> Result<Vec<FloatingIpRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {FLOATING_COLUMNS} FROM floating_ips WHERE port_id = $1 ORDER BY id"
    ))
    .bind(port)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read a port's floating IPs"))
}

pub async fn delete_floating_ip(conn: &mut Connection, id: &str) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM floating_ips WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(DbError::query("delete a floating IP"))?;
    Ok(done.rows_affected() == 1)
}

/// Ends every association with `port` (the port is going).
pub async fn disassociate_port(conn: &mut Connection, port: &str, at: i64) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE floating_ips SET port_id = NULL, fixed_ip_address = NULL, router_id = NULL,
                updated_at = $2, revision = revision + 1
         WHERE port_id = $1",
    )
    .bind(port)
    .bind(at)
    .execute(conn)
    .await
    .map_err(DbError::query("end a port's floating IPs"))?;
    Ok(())
}

/// Points the floating IPs of `port`'s address `from` at its new address `to` (the
/// port's subnet was renumbered).
pub async fn move_fixed_address(
    conn: &mut Connection,
    port: &str,
    from: &str,
    to: &str,
    at: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE floating_ips SET fixed_ip_address = $3, updated_at = $4, revision = revision + 1
         WHERE port_id = $1 AND fixed_ip_address = $2",
    )
    .bind(port)
    .bind(from)
    .bind(to)
    .bind(at)
    .execute(conn)
    .await
    .map_err(DbError::query("move a floating IP's fixed address"))?;
    Ok(())
}
