//! Subnets and their allocation pools.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::flag::get_bool;
use crate::{Connection, DbError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetRow {
    pub id: String,
    pub network_id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub ip_version: i64,
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub enable_dhcp: bool,
    pub ipv6_address_mode: Option<String>,
    pub ipv6_ra_mode: Option<String>,
    /// JSON: an array of addresses.
    pub dns_nameservers: String,
    /// JSON: an array of `{"destination", "nexthop"}`.
    pub host_routes: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
}

impl FromRow<'_, AnyRow> for SubnetRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(SubnetRow {
            id: row.try_get("id")?,
            network_id: row.try_get("network_id")?,
            project_id: row.try_get("project_id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            ip_version: row.try_get("ip_version")?,
            cidr: row.try_get("cidr")?,
            gateway_ip: row.try_get("gateway_ip")?,
            enable_dhcp: get_bool(row, "enable_dhcp")?,
            ipv6_address_mode: row.try_get("ipv6_address_mode")?,
            ipv6_ra_mode: row.try_get("ipv6_ra_mode")?,
            dns_nameservers: row.try_get("dns_nameservers")?,
            host_routes: row.try_get("host_routes")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            revision: row.try_get("revision")?,
        })
    }
}

/// An allocation pool: a range of a subnet's addresses, both ends included.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PoolRow {
    pub subnet_id: String,
    pub first_ip: String,
    pub last_ip: String,
}

const COLUMNS: &str = "s.id, s.network_id, s.project_id, s.name, s.description, s.ip_version,
    s.cidr, s.gateway_ip, CAST(s.enable_dhcp AS INTEGER) AS enable_dhcp, s.ipv6_address_mode,
    s.ipv6_ra_mode, s.dns_nameservers, s.host_routes, s.created_at, s.updated_at, s.revision";

pub async fn insert_subnet(
    conn: &mut Connection,
    row: &SubnetRow,
    pools: &[PoolRow],
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO subnets (id, network_id, project_id, name, description, ip_version, cidr,
                              gateway_ip, enable_dhcp, ipv6_address_mode, ipv6_ra_mode,
                              dns_nameservers, host_routes, created_at, updated_at, revision)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&row.id)
    .bind(&row.network_id)
    .bind(&row.project_id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(row.ip_version)
    .bind(&row.cidr)
    .bind(&row.gateway_ip)
    .bind(row.enable_dhcp)
    .bind(&row.ipv6_address_mode)
    .bind(&row.ipv6_ra_mode)
    .bind(&row.dns_nameservers)
    .bind(&row.host_routes)
    .bind(row.created_at)
    .bind(row.updated_at)
    .bind(row.revision)
    .execute(&mut *conn)
    .await
    .map_err(DbError::insert("create a subnet", "subnet"))?;
    replace_pools(conn, &row.id, pools).await
}

/// Writes what an update may change, if the row is still at `row.revision - 1`.
pub async fn update_subnet(conn: &mut Connection, row: &SubnetRow) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE subnets SET name = $2, description = $3, gateway_ip = $4, enable_dhcp = $5,
                dns_nameservers = $6, host_routes = $7, updated_at = $8, revision = $9
         WHERE id = $1 AND revision = $9 - 1",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(&row.gateway_ip)
    .bind(row.enable_dhcp)
    .bind(&row.dns_nameservers)
    .bind(&row.host_routes)
    .bind(row.updated_at)
    .bind(row.revision)
    .execute(conn)
    .await
    .map_err(DbError::query("update a subnet"))?;
    Ok(done.rows_affected() == 1)
}

/// Marks a subnet changed (its pools, say) at `at`.
pub async fn touch_subnet(conn: &mut Connection, id: &str, at: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE subnets SET updated_at = $2, revision = revision + 1 WHERE id = $1")
        .bind(id)
        .bind(at)
        .execute(conn)
        .await
        .map_err(DbError::query("mark a subnet changed"))?;
    Ok(())
}

/// Sets a subnet's pools to `pools`.
pub async fn replace_pools(
    conn: &mut Connection,
    subnet: &str,
    pools: &[PoolRow],
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM allocation_pools WHERE subnet_id = $1")
        .bind(subnet)
        .execute(&mut *conn)
        .await
        .map_err(DbError::query("clear a subnet's pools"))?;
    for pool in pools {
        sqlx::query(
            "INSERT INTO allocation_pools (subnet_id, first_ip, last_ip) VALUES ($1, $2, $3)",
        )
        .bind(subnet)
        .bind(&pool.first_ip)
        .bind(&pool.last_ip)
        .execute(&mut *conn)
        .await
        .map_err(DbError::insert("add an allocation pool", "allocation pool"))?;
    }
    Ok(())
}

pub async fn get_subnet<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<SubnetRow>, DbError> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM subnets s WHERE s.id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await
        .map_err(DbError::query("read a subnet"))
}

/// The subnets of one network, oldest first.
pub async fn network_subnets<'c>(
    ex: impl Executor<'c, Database = Any>,
    network: &str,
) -> Result<Vec<SubnetRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM subnets s WHERE s.network_id = $1 ORDER BY s.created_at, s.id"
    ))
    .bind(network)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list a network's subnets"))
}

/// The subnets a project sees (its own, and those of networks it sees), or all for
/// `None`, oldest first.
pub async fn list_subnets<'c>(
    ex: impl Executor<'c, Database = Any>,
    project: Option<&str>,
) -> Result<Vec<SubnetRow>, DbError> {
    let text = match project {
        Some(_) => format!(
            "SELECT {COLUMNS} FROM subnets s JOIN networks n ON n.id = s.network_id
             WHERE s.project_id = $1 OR n.project_id = $1 OR n.shared OR n.external
             ORDER BY s.created_at, s.id"
        ),
        None => format!("SELECT {COLUMNS} FROM subnets s ORDER BY s.created_at, s.id"),
    };
    let mut select = sqlx::query_as(&text);
    if let Some(project) = project {
        select = select.bind(project.to_owned());
    }
    select
        .fetch_all(ex)
        .await
        .map_err(DbError::query("list subnets"))
}

/// Whose pools [`subnet_pools`] reads.
#[derive(Debug, Clone, Copy)]
pub enum PoolScope<'a> {
    Subnet(&'a str),
    Network(&'a str),
    /// The subnets [`list_subnets`] lists for the project (every subnet for `None`).
    Listed(Option<&'a str>),
}

/// Allocation pools, by subnet and first address (as text).
pub async fn subnet_pools<'c>(
    ex: impl Executor<'c, Database = Any>,
    scope: PoolScope<'_>,
) -> Result<Vec<PoolRow>, DbError> {
    let (filter, value) = match scope {
        PoolScope::Subnet(id) => ("WHERE s.id = $1", Some(id)),
        PoolScope::Network(id) => ("WHERE s.network_id = $1", Some(id)),
        PoolScope::Listed(Some(project)) => (
            "JOIN networks n ON n.id = s.network_id
             WHERE s.project_id = $1 OR n.project_id = $1 OR n.shared OR n.external",
            Some(project),
        ),
        PoolScope::Listed(None) => ("", None),
    };
    let text = format!(
        "SELECT p.subnet_id, p.first_ip, p.last_ip
         FROM allocation_pools p JOIN subnets s ON s.id = p.subnet_id {filter}
         ORDER BY p.subnet_id, p.first_ip"
    );
    let mut select = sqlx::query_as(&text);
    if let Some(value) = value {
        select = select.bind(value.to_owned());
    }
    select
        .fetch_all(ex)
        .await
        .map_err(DbError::query("read allocation pools"))
}

pub async fn delete_subnet(conn: &mut Connection, id: &str) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM subnets WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(DbError::query("delete a subnet"))?;
    Ok(done.rows_affected() == 1)
}

/// Gives a subnet another block and gateway (a renumbering), at `at`.
pub async fn renumber_subnet(
    conn: &mut Connection,
    id: &str,
    cidr: &str,
    gateway: Option<&str>,
    at: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE subnets SET cidr = $2, gateway_ip = $3, updated_at = $4, revision = revision + 1
         WHERE id = $1",
    )
    .bind(id)
    .bind(cidr)
    .bind(gateway)
    .bind(at)
    .execute(conn)
    .await
    .map_err(DbError::query("renumber a subnet"))?;
    Ok(())
}

/// The networks with a subnet changed after `since`, and the latest change among them.
pub async fn subnets_changed_since<'c>(
    ex: impl Executor<'c, Database = Any>,
    since: i64,
) -> Result<(Vec<String>, Option<i64>), DbError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT network_id, MAX(updated_at) FROM subnets WHERE updated_at > $1
         GROUP BY network_id ORDER BY network_id",
    )
    .bind(since)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read the subnets changed lately"))?;
    let latest = rows.iter().map(|(_, at)| *at).max();
    Ok((
        rows.into_iter().map(|(network, _)| network).collect(),
        latest,
    ))
}
