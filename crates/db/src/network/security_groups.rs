//! Security groups, their rules, each project's default group, and the groups of ports
//! (migration 15).

use sqlx::{Any, Executor};

use crate::{Connection, DbError};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SecurityGroupRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub charged_to: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SecurityGroupRuleRow {
    pub id: String,
    pub security_group_id: String,
    pub project_id: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    /// A protocol's name or number; absent: any.
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
}

const GROUP_COLUMNS: &str =
    "id, project_id, name, description, charged_to, created_at, updated_at, revision";
const RULE_COLUMNS: &str = "id, security_group_id, project_id, direction, ethertype, protocol, \
    port_range_min, port_range_max, remote_ip_prefix, remote_group_id, description, \
    created_at, updated_at, revision";

pub async fn insert_security_group(
    conn: &mut Connection,
    row: &SecurityGroupRow,
) -> Result<(), DbError> {
    sqlx::query(&format!(
        "INSERT INTO security_groups ({GROUP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(&row.id)
    .bind(&row.project_id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(&row.charged_to)
    .bind(row.created_at)
    .bind(row.updated_at)
    .bind(row.revision)
    .execute(conn)
    .await
    .map_err(DbError::query("create a security group"))?;
    Ok(())
}

pub async fn update_security_group(
    conn: &mut Connection,
    row: &SecurityGroupRow,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE security_groups SET name = $2, description = $3, updated_at = $4,
                revision = $5
         WHERE id = $1 AND revision = $5 - 1",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(row.updated_at)
    .bind(row.revision)
    .execute(conn)
    .await
    .map_err(DbError::query("update a security group"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn get_security_group<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<SecurityGroupRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {GROUP_COLUMNS} FROM security_groups WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a security group"))
}

/// One project's groups (every project's: `None`), oldest first.
pub async fn list_security_groups<'c>(
    ex: impl Executor<'c, Database = Any>,
    project: Option<&str>,
) -> Result<Vec<SecurityGroupRow>, DbError> {
    super::list_of_project(
        ex,
        "security_groups",
        GROUP_COLUMNS,
        project,
        "list security groups",
    )
    .await
}

/// Locks a group's row until the transaction ends; whether it exists.
pub async fn lock_security_group(conn: &mut Connection, id: &str) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE security_groups SET revision = revision WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(DbError::query("lock a security group"))?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a group with its rules, the rules of other groups that name it as their
/// remote group, and its default mark.
pub async fn delete_security_group(conn: &mut Connection, id: &str) -> Result<bool, DbError> {
    for statement in [
        "DELETE FROM security_group_rules WHERE security_group_id = $1 OR remote_group_id = $1",
        "DELETE FROM default_security_groups WHERE security_group_id = $1",
    ] {
        sqlx::query(statement)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(DbError::query("delete a security group"))?;
    }
    let done = sqlx::query("DELETE FROM security_groups WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(DbError::query("delete a security group"))?;
    Ok(done.rows_affected() == 1)
}

/// The project's default group, if it has one yet.
pub async fn default_security_group<'c>(
    ex: impl Executor<'c, Database = Any>,
    project: &str,
) -> Result<Option<String>, DbError> {
    sqlx::query_scalar(
        "SELECT security_group_id FROM default_security_groups WHERE project_id = $1",
    )
    .bind(project)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a project's default security group"))
}

/// Marks `group` as the project's default unless it has one: whether it did.
pub async fn claim_default_security_group(
    conn: &mut Connection,
    project: &str,
    group: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO default_security_groups (project_id, security_group_id) VALUES ($1, $2)
         ON CONFLICT (project_id) DO NOTHING",
    )
    .bind(project)
    .bind(group)
    .execute(conn)
    .await
    .map_err(DbError::query("make a project's default security group"))?;
    Ok(done.rows_affected() == 1)
}

/// Which groups are their projects' defaults.
pub async fn default_security_group_ids<'c>(
    ex: impl Executor<'c, Database = Any>,
) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar("SELECT security_group_id FROM default_security_groups")
        .fetch_all(ex)
        .await
        .map_err(DbError::query("read the default security groups"))
}

pub async fn insert_security_group_rule(
    conn: &mut Connection,
    row: &SecurityGroupRuleRow,
) -> Result<(), DbError> {
    sqlx::query(&format!(
        "INSERT INTO security_group_rules ({RULE_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(&row.id)
    .bind(&row.security_group_id)
    .bind(&row.project_id)
    .bind(&row.direction)
    .bind(&row.ethertype)
    .bind(&row.protocol)
    .bind(row.port_range_min)
    .bind(row.port_range_max)
    .bind(&row.remote_ip_prefix)
    .bind(&row.remote_group_id)
    .bind(&row.description)
    .bind(row.created_at)
    .bind(row.updated_at)
    .bind(row.revision)
    .execute(conn)
    .await
    .map_err(DbError::query("create a security group rule"))?;
    Ok(())
}

pub async fn get_security_group_rule<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<SecurityGroupRuleRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM security_group_rules WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a security group rule"))
}

/// The rules of one group, or of every group (`None`), oldest first.
pub async fn security_group_rules<'c>(
    ex: impl Executor<'c, Database = Any>,
    group: Option<&str>,
) -> Result<Vec<SecurityGroupRuleRow>, DbError> {
    let filter = if group.is_some() {
        "WHERE security_group_id = $1"
    } else {
        ""
    };
    let text =
        format!("SELECT {RULE_COLUMNS} FROM security_group_rules {filter} ORDER BY created_at, id");
    let mut select = sqlx::query_as(&text);
    if let Some(group) = group {
        select = select.bind(group);
    }
    select
        .fetch_all(ex)
        .await
        .map_err(DbError::query("list security group rules"))
}

pub async fn delete_security_group_rule(conn: &mut Connection, id: &str) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM security_group_rules WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(DbError::query("delete a security group rule"))?;
    Ok(done.rows_affected() == 1)
}

/// Puts a port in exactly `groups`.
pub async fn set_port_security_groups(
    conn: &mut Connection,
    port: &str,
    groups: &[String],
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM port_security_groups WHERE port_id = $1")
        .bind(port)
        .execute(&mut *conn)
        .await
        .map_err(DbError::query("set a port's security groups"))?;
    for group in groups {
        sqlx::query(
            "INSERT INTO port_security_groups (port_id, security_group_id) VALUES ($1, $2)",
        )
        .bind(port)
        .bind(group)
        .execute(&mut *conn)
        .await
        .map_err(DbError::query("set a port's security groups"))?;
    }
    Ok(())
}

/// (port, group) for every port in any group.
pub async fn port_security_groups<'c>(
    ex: impl Executor<'c, Database = Any>,
) -> Result<Vec<(String, String)>, DbError> {
    sqlx::query_as("SELECT port_id, security_group_id FROM port_security_groups")
        .fetch_all(ex)
        .await
        .map_err(DbError::query("read ports' security groups"))
}

/// The groups of one port.
pub async fn groups_of_port<'c>(
    ex: impl Executor<'c, Database = Any>,
    port: &str,
) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar(
        "SELECT security_group_id FROM port_security_groups WHERE port_id = $1
         ORDER BY security_group_id",
    )
    .bind(port)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read a port's security groups"))
}

/// How many ports are in `group`.
pub async fn count_group_ports<'c>(
    ex: impl Executor<'c, Database = Any>,
    group: &str,
) -> Result<i64, DbError> {
    sqlx::query_scalar("SELECT COUNT(*) FROM port_security_groups WHERE security_group_id = $1")
        .bind(group)
        .fetch_one(ex)
        .await
        .map_err(DbError::query("count a security group's ports"))
}

/// The addresses of the ports in `group`: (address, port).
pub async fn group_member_addresses<'c>(
    ex: impl Executor<'c, Database = Any>,
    group: &str,
) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar(
        "SELECT a.address FROM ip_allocations a
         JOIN port_security_groups g ON g.port_id = a.port_id
         WHERE g.security_group_id = $1 ORDER BY a.address",
    )
    .bind(group)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read a security group's addresses"))
}

/// The allowed address pairs (JSON, as kept in the port's row) of the ports in `group`
/// that have any: they are members by those addresses too, as in Neutron.
pub async fn group_member_address_pairs<'c>(
    ex: impl Executor<'c, Database = Any>,
    group: &str,
) -> Result<Vec<(String, String)>, DbError> {
    sqlx::query_as(
        "SELECT p.id, p.allowed_address_pairs FROM ports p
         JOIN port_security_groups g ON g.port_id = p.id
         WHERE g.security_group_id = $1 AND p.allowed_address_pairs <> '[]' ORDER BY p.id",
    )
    .bind(group)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read a security group's address pairs"))
}

/// The nodes with ports in `group` or in a group with a rule naming `group` remote.
pub async fn hosts_of_group<'c>(
    ex: impl Executor<'c, Database = Any>,
    group: &str,
) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar(
        // A moving port's destination holds its rules too.
        "SELECT DISTINCT h.host FROM (
             SELECT id, binding_host AS host FROM ports WHERE binding_host IS NOT NULL
             UNION ALL
             SELECT id, migrating_to AS host FROM ports WHERE migrating_to IS NOT NULL
         ) h
         JOIN port_security_groups g ON g.port_id = h.id
         WHERE g.security_group_id = $1
            OR g.security_group_id IN
               (SELECT security_group_id FROM security_group_rules
                WHERE remote_group_id = $1)
         ORDER BY h.host",
    )
    .bind(group)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read the nodes of a security group"))
}
