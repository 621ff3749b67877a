//! Networks.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::flag::get_bool;
use crate::{Connection, DbError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub shared: bool,
    /// Neutron's `router:external`: one of the provider's public networks.
    pub external: bool,
    pub mtu: i64,
    pub port_security_enabled: bool,
    pub vni: i64,
    /// The user whose `cyclades.network.private` the network is charged to.
    pub charged_to: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
}

impl FromRow<'_, AnyRow> for NetworkRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(NetworkRow {
            id: row.try_get("id")?,
            project_id: row.try_get("project_id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            admin_state_up: get_bool(row, "admin_state_up")?,
            shared: get_bool(row, "shared")?,
            external: get_bool(row, "external")?,
            mtu: row.try_get("mtu")?,
            port_security_enabled: get_bool(row, "port_security_enabled")?,
            vni: row.try_get("vni")?,
            charged_to: row.try_get("charged_to")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            revision: row.try_get("revision")?,
        })
    }
}

const COLUMNS: &str = "id, project_id, name, description,
    CAST(admin_state_up AS INTEGER) AS admin_state_up, CAST(shared AS INTEGER) AS shared,
    CAST(external AS INTEGER) AS external, mtu,
    CAST(port_security_enabled AS INTEGER) AS port_security_enabled, vni, charged_to,
    created_at, updated_at, revision";

/// The next VXLAN network identifier: each network gets its own, never reused.
pub async fn next_vni(conn: &mut Connection) -> Result<i64, DbError> {
    sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'network_vni' RETURNING value",
    )
    .fetch_one(conn)
    .await
    .map_err(DbError::query("take a network's VNI"))
}

pub async fn insert_network(conn: &mut Connection, row: &NetworkRow) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO networks (id, project_id, name, description, admin_state_up, shared,
                               external, mtu, port_security_enabled, vni, charged_to,
                               created_at, updated_at, revision)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&row.id)
    .bind(&row.project_id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(row.admin_state_up)
    .bind(row.shared)
    .bind(row.external)
    .bind(row.mtu)
    .bind(row.port_security_enabled)
    .bind(row.vni)
    .bind(&row.charged_to)
    .bind(row.created_at)
    .bind(row.updated_at)
    .bind(row.revision)
    .execute(conn)
    .await
    .map_err(DbError::insert("create a network", "network"))?;
    Ok(())
}

/// Writes what an update may change, if the row is still at `row.revision - 1`.
/// Returns whether it was.
pub async fn update_network(conn: &mut Connection, row: &NetworkRow) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE networks SET name = $2, description = $3, admin_state_up = $4, shared = $5,
                external = $6, mtu = $7, port_security_enabled = $8, updated_at = $9,
                revision = $10
         WHERE id = $1 AND revision = $10 - 1",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(row.admin_state_up)
    .bind(row.shared)
    .bind(row.external)
    .bind(row.mtu)
    .bind(row.port_security_enabled)
    .bind(row.updated_at)
    .bind(row.revision)
    .execute(conn)
    .await
    .map_err(DbError::query("update a network"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn get_network<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<NetworkRow>, DbError> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM networks WHERE id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await
        .map_err(DbError::query("read a network"))
}

/// The networks a project sees (its own, the shared and the external ones), or every
/// network for `None`, oldest first.
pub async fn list_networks<'c>(
    ex: impl Executor<'c, Database = Any>,
    project: Option<&str>,
) -> Result<Vec<NetworkRow>, DbError> {
    let text = match project {
        Some(_) => format!(
            "SELECT {COLUMNS} FROM networks
             WHERE project_id = $1 OR shared OR external ORDER BY created_at, id"
        ),
        None => format!("SELECT {COLUMNS} FROM networks ORDER BY created_at, id"),
    };
    let mut select = sqlx::query_as(&text);
    if let Some(project) = project {
        select = select.bind(project.to_owned());
    }
    select
        .fetch_all(ex)
        .await
        .map_err(DbError::query("list networks"))
}

/// Locks a network's row until the transaction ends (PostgreSQL; SQLite runs one writer
/// at a time), so that checks of what hangs off it hold until the transaction commits.
/// Returns whether the network exists.
pub async fn lock_network(conn: &mut Connection, id: &str) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE networks SET revision = revision WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(DbError::query("lock a network"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_network(conn: &mut Connection, id: &str) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM networks WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(DbError::query("delete a network"))?;
    Ok(done.rows_affected() == 1)
}

/// Holds network `id` against changes of its subnets and pools (which [`lock_network`]
/// them) without excluding other holders: ports are made on it side by side, their
/// addresses kept apart by the allocations' key. PostgreSQL's `FOR SHARE`; SQLite has one
/// writer at a time anyway, and takes the write lock.
pub async fn share_network(
    conn: &mut Connection,
    id: &str,
    backend: crate::Backend,
) -> Result<bool, DbError> {
    if backend == crate::Backend::Sqlite {
        return lock_network(conn, id).await;
    }
    let found: Option<(String,)> =
        sqlx::query_as("SELECT id FROM networks WHERE id = $1 FOR SHARE")
            .bind(id)
            .fetch_optional(conn)
            .await
            .map_err(DbError::query("hold a network"))?;
    Ok(found.is_some())
}
