//! Servers (migration 8): their rows, metadata and tags, the generations their node calls
//! carry, and what each node holds, for placement.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Any, ColumnIndex, Decode, Executor, FromRow, Row, Type};

use crate::{Connection, DbError};

/// A row of `servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRow {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: String,
    pub description: Option<String>,
    pub image_id: Option<String>,
    pub flavor_id: String,
    pub flavor_name: String,
    pub vcpus: i64,
    pub ram_mib: i64,
    pub disk_gib: i64,
    pub ephemeral_gib: i64,
    pub swap_mib: i64,
    pub flavor_extra_specs: String,
    pub vm_state: String,
    pub task_state: Option<String>,
    pub power_state: i64,
    pub node_id: Option<String>,
    pub forwards: Option<String>,
    pub reservation_id: String,
    pub generation: i64,
    pub key_name: Option<String>,
    pub key_data: Option<String>,
    pub user_data: Option<String>,
    pub locked_by: Option<String>,
    pub locked_reason: Option<String>,
    pub access_ipv4: Option<String>,
    pub access_ipv6: Option<String>,
    pub fault: Option<String>,
    pub active_charged: bool,
    pub launched_at: Option<i64>,
    pub terminated_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
    /// The flavor (JSON) before a resize not yet confirmed or reverted.
    pub resized_from: Option<String>,
    /// The integer id Cyclades shows.
    pub serial: i64,
    /// The CPU model the server was given (absent: the default model).
    pub cpu_model: Option<String>,
}

impl FromRow<'_, AnyRow> for ServerRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        server_row_from(row)
    }
}

impl FromRow<'_, SqliteRow> for ServerRow {
    fn from_row(row: &SqliteRow) -> Result<Self, sqlx::Error> {
        server_row_from(row)
    }
}

/// A server row from a row of either driver (the listing reads SQLite natively).
pub(crate) fn server_row_from<'r, R>(row: &'r R) -> Result<ServerRow, sqlx::Error>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(ServerRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        image_id: row.try_get("image_id")?,
        flavor_id: row.try_get("flavor_id")?,
        flavor_name: row.try_get("flavor_name")?,
        vcpus: row.try_get("vcpus")?,
        ram_mib: row.try_get("ram_mib")?,
        disk_gib: row.try_get("disk_gib")?,
        ephemeral_gib: row.try_get("ephemeral_gib")?,
        swap_mib: row.try_get("swap_mib")?,
        flavor_extra_specs: row.try_get("flavor_extra_specs")?,
        vm_state: row.try_get("vm_state")?,
        task_state: row.try_get("task_state")?,
        power_state: row.try_get("power_state")?,
        node_id: row.try_get("node_id")?,
        forwards: row.try_get("forwards")?,
        reservation_id: row.try_get("reservation_id")?,
        generation: row.try_get("generation")?,
        key_name: row.try_get("key_name")?,
        key_data: row.try_get("key_data")?,
        user_data: row.try_get("user_data")?,
        locked_by: row.try_get("locked_by")?,
        locked_reason: row.try_get("locked_reason")?,
        access_ipv4: row.try_get("access_ipv4")?,
        access_ipv6: row.try_get("access_ipv6")?,
        fault: row.try_get("fault")?,
        active_charged: row.try_get::<i64, _>("active_charged")? != 0,
        launched_at: row.try_get("launched_at")?,
        terminated_at: row.try_get("terminated_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
        resized_from: row.try_get("resized_from")?,
        serial: row.try_get("serial")?,
        cpu_model: row.try_get("cpu_model")?,
    })
}

const INSERT_COLUMNS: &str = "id, project_id, user_id, name, description, image_id, flavor_id,
    flavor_name, vcpus, ram_mib, disk_gib, ephemeral_gib, swap_mib, flavor_extra_specs,
    vm_state, task_state, power_state, node_id, forwards, reservation_id, generation, key_name,
    key_data, user_data, locked_by, locked_reason, access_ipv4, access_ipv6, fault,
    active_charged, launched_at, terminated_at, created_at, updated_at, deleted_at,
    resized_from, serial, cpu_model";

pub(crate) const SELECT_COLUMNS: &str =
    "id, project_id, user_id, name, description, image_id, flavor_id,
    flavor_name, vcpus, ram_mib, disk_gib, ephemeral_gib, swap_mib, flavor_extra_specs,
    vm_state, task_state, power_state, node_id, forwards, reservation_id, generation, key_name,
    key_data, user_data, locked_by, locked_reason, access_ipv4, access_ipv6, fault,
    CAST(active_charged AS INTEGER) AS active_charged, launched_at, terminated_at, created_at,
    updated_at, deleted_at, resized_from, serial, cpu_model";

pub async fn insert_server(conn: &mut Connection, row: &ServerRow) -> Result<(), DbError> {
    sqlx::query(&format!(
        "INSERT INTO servers ({INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
         $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26,
         $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38)"
    ))
    .bind(&row.id)
    .bind(&row.project_id)
    .bind(&row.user_id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(&row.image_id)
    .bind(&row.flavor_id)
    .bind(&row.flavor_name)
    .bind(row.vcpus)
    .bind(row.ram_mib)
    .bind(row.disk_gib)
    .bind(row.ephemeral_gib)
    .bind(row.swap_mib)
    .bind(&row.flavor_extra_specs)
    .bind(&row.vm_state)
    .bind(&row.task_state)
    .bind(row.power_state)
    .bind(&row.node_id)
    .bind(&row.forwards)
    .bind(&row.reservation_id)
    .bind(row.generation)
    .bind(&row.key_name)
    .bind(&row.key_data)
    .bind(&row.user_data)
    .bind(&row.locked_by)
    .bind(&row.locked_reason)
    .bind(&row.access_ipv4)
    .bind(&row.access_ipv6)
    .bind(&row.fault)
    .bind(row.active_charged)
    .bind(row.launched_at)
    .bind(row.terminated_at)
    .bind(row.created_at)
    .bind(row.updated_at)
    .bind(row.deleted_at)
    .bind(&row.resized_from)
    .bind(row.serial)
    .bind(&row.cpu_model)
    .execute(conn)
    .await
    .map_err(DbError::insert("create a server", "server"))?;
    Ok(())
}

pub async fn get_server<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<ServerRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {SELECT_COLUMNS} FROM servers WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a server"))
}

/// Which servers a listing reads.
#[derive(Debug, Clone, Default)]
pub struct ServerScope<'a> {
    /// One project's, or every project's.
    pub project: Option<&'a str>,
    /// Deleted servers too, if deleted at or after this time (Nova's `changes-since`);
    /// without it, only servers not deleted.
    pub changed_since: Option<i64>,
    /// Only servers on this node.
    pub node: Option<&'a str>,
}

/// Servers in `scope`, newest first.
pub async fn list_servers<'c>(
    ex: impl Executor<'c, Database = Any>,
    scope: &ServerScope<'_>,
) -> Result<Vec<ServerRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {SELECT_COLUMNS} FROM servers
         WHERE ($1 IS NULL OR project_id = $1)
           AND (($2 IS NULL AND deleted_at IS NULL) OR updated_at >= $2)
           AND ($3 IS NULL OR node_id = $3)
         ORDER BY created_at DESC, id DESC"
    ))
    .bind(scope.project)
    .bind(scope.changed_since)
    .bind(scope.node)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list servers"))
}

/// Takes `count` serials for new servers and returns the first.
pub async fn take_serials(conn: &mut Connection, count: i64) -> Result<i64, DbError> {
    let (last,): (i64,) = sqlx::query_as(
        "UPDATE counters SET value = value + $1 WHERE name = 'server_serial' RETURNING value",
    )
    .bind(count)
    .fetch_one(conn)
    .await
    .map_err(DbError::query("take serials for new servers"))?;
    Ok(last - count + 1)
}

/// The id of the server with Cyclades id `serial`.
pub async fn server_id_of_serial<'c>(
    ex: impl Executor<'c, Database = Any>,
    serial: i64,
) -> Result<Option<String>, DbError> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM servers WHERE serial = $1")
        .bind(serial)
        .fetch_optional(ex)
        .await
        .map_err(DbError::query("find a server by its serial"))?;
    Ok(row.map(|(id,)| id))
}

/// A server's flavor columns, as a resize sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlavorColumns {
    pub flavor_id: String,
    pub flavor_name: String,
    pub vcpus: i64,
    pub ram_mib: i64,
    pub disk_gib: i64,
    pub ephemeral_gib: i64,
    pub swap_mib: i64,
    pub flavor_extra_specs: String,
}

/// Starts a resize of server `id`: it gets the flavor `flavor` and keeps `resized_from`
/// (the flavor it had, JSON). Only if no resize is under way; true if it applied.
pub async fn begin_resize<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    flavor: &FlavorColumns,
    resized_from: &str,
    now: i64,
) -> Result<bool, DbError> {
    set_flavor(
        ex,
        id,
        flavor,
        Some(resized_from),
        "resized_from IS NULL",
        now,
    )
    .await
}

/// Ends a resize of server `id`, keeping its flavor (a confirm) or, with `restore`,
/// giving it back the one it had (a revert). Only once: true if a resize was under way
/// and the server is not deleted, so the caller gives back the quota it held in the
/// same transaction.
pub async fn end_resize<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    restore: Option<&FlavorColumns>,
    now: i64,
) -> Result<bool, DbError> {
    let condition = "resized_from IS NOT NULL";
    match restore {
        Some(flavor) => set_flavor(ex, id, flavor, None, condition, now).await,
        None => {
            let done = sqlx::query(
                "UPDATE servers SET resized_from = NULL, updated_at = $2
                 WHERE id = $1 AND deleted_at IS NULL AND resized_from IS NOT NULL",
            )
            .bind(id)
            .bind(now)
            .execute(ex)
            .await
            .map_err(DbError::query("end a server's resize"))?;
            Ok(done.rows_affected() == 1)
        }
    }
}

async fn set_flavor<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    flavor: &FlavorColumns,
    resized_from: Option<&str>,
    condition: &'static str,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(&format!(
        "UPDATE servers SET flavor_id = $2, flavor_name = $3, vcpus = $4, ram_mib = $5,
           disk_gib = $6, ephemeral_gib = $7, swap_mib = $8, flavor_extra_specs = $9,
           resized_from = $10, updated_at = $11
         WHERE id = $1 AND deleted_at IS NULL AND {condition}"
    ))
    .bind(id)
    .bind(&flavor.flavor_id)
    .bind(&flavor.flavor_name)
    .bind(flavor.vcpus)
    .bind(flavor.ram_mib)
    .bind(flavor.disk_gib)
    .bind(flavor.ephemeral_gib)
    .bind(flavor.swap_mib)
    .bind(&flavor.flavor_extra_specs)
    .bind(resized_from)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("change a server's flavor"))?;
    Ok(done.rows_affected() == 1)
}

/// Gives server `id` the flavor `flavor` if it is settled (no task, no resize under way)
/// and still has the sizes `sizes` (vCPUs, MiB, GiB) the caller compared; true if it did.
pub async fn sync_flavor<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    sizes: (i64, i64, i64),
    flavor: &FlavorColumns,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE servers SET flavor_id = $2, flavor_name = $3, vcpus = $4, ram_mib = $5,
           disk_gib = $6, ephemeral_gib = $7, swap_mib = $8, flavor_extra_specs = $9,
           updated_at = $10
         WHERE id = $1 AND deleted_at IS NULL AND resized_from IS NULL AND task_state IS NULL
           AND vcpus = $11 AND ram_mib = $12 AND disk_gib = $13",
    )
    .bind(id)
    .bind(&flavor.flavor_id)
    .bind(&flavor.flavor_name)
    .bind(flavor.vcpus)
    .bind(flavor.ram_mib)
    .bind(flavor.disk_gib)
    .bind(flavor.ephemeral_gib)
    .bind(flavor.swap_mib)
    .bind(&flavor.flavor_extra_specs)
    .bind(now)
    .bind(sizes.0)
    .bind(sizes.1)
    .bind(sizes.2)
    .execute(ex)
    .await
    .map_err(DbError::query("give a server its node's flavor"))?;
    Ok(done.rows_affected() == 1)
}

/// Records the image server `id` was (re)built from.
pub async fn set_image<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    image_id: &str,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE servers SET image_id = $2, updated_at = $3 WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(image_id)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("record a server's image"))?;
    Ok(done.rows_affected() == 1)
}

/// Takes `count` generations for calls on server `id`'s VM and returns the first.
pub async fn take_generations(conn: &mut Connection, id: &str, count: i64) -> Result<i64, DbError> {
    let (last,): (i64,) = sqlx::query_as(
        "UPDATE servers SET generation = generation + $2 WHERE id = $1 RETURNING generation",
    )
    .bind(id)
    .bind(count)
    .fetch_one(conn)
    .await
    .map_err(DbError::query("take generations for a server"))?;
    Ok(last - count + 1)
}

/// A change of a server's state. `None` fields are left as they are.
#[derive(Debug, Clone, Default)]
pub struct StateChange<'a> {
    pub vm_state: Option<&'a str>,
    /// `Some(None)` clears the task.
    pub task_state: Option<Option<&'a str>>,
    pub power_state: Option<i64>,
    pub node_id: Option<&'a str>,
    pub forwards: Option<&'a str>,
    pub fault: Option<Option<&'a str>>,
    pub active_charged: Option<bool>,
    pub launched_at: Option<i64>,
    pub terminated_at: Option<i64>,
    pub deleted_at: Option<i64>,
}

/// Applies `change` to server `id` if it is not deleted and, with `expect_task`, only if
/// its task is that one (`Some(None)`: no task). True if it applied.
pub async fn change_state<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    expect_task: Option<Option<&str>>,
    change: &StateChange<'_>,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE servers SET
           vm_state = COALESCE($3, vm_state),
           task_state = CASE WHEN $4 = 1 THEN $5 ELSE task_state END,
           power_state = COALESCE($6, power_state),
           node_id = COALESCE($7, node_id),
           forwards = COALESCE($8, forwards),
           fault = CASE WHEN $9 = 1 THEN $10 ELSE fault END,
           active_charged = COALESCE($11, active_charged),
           launched_at = COALESCE($12, launched_at),
           terminated_at = COALESCE($13, terminated_at),
           deleted_at = COALESCE($14, deleted_at),
           updated_at = $2
         WHERE id = $1 AND deleted_at IS NULL
           AND ($15 = 0 OR ($16 IS NULL AND task_state IS NULL) OR task_state = $16)",
    )
    .bind(id)
    .bind(now)
    .bind(change.vm_state)
    .bind(i64::from(change.task_state.is_some()))
    .bind(change.task_state.flatten())
    .bind(change.power_state)
    .bind(change.node_id)
    .bind(change.forwards)
    .bind(i64::from(change.fault.is_some()))
    .bind(change.fault.flatten())
    .bind(change.active_charged)
    .bind(change.launched_at)
    .bind(change.terminated_at)
    .bind(change.deleted_at)
    .bind(i64::from(expect_task.is_some()))
    .bind(expect_task.flatten())
    .execute(ex)
    .await
    .map_err(DbError::query("change a server's state"))?;
    Ok(done.rows_affected() == 1)
}

/// Renames a server or changes its description or access addresses.
pub async fn update_server_fields<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    name: Option<&str>,
    description: Option<Option<&str>>,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE servers SET name = COALESCE($2, name),
           description = CASE WHEN $3 = 1 THEN $4 ELSE description END, updated_at = $5
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(name)
    .bind(i64::from(description.is_some()))
    .bind(description.flatten())
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("update a server"))?;
    Ok(done.rows_affected() == 1)
}

/// Locks or unlocks a server (`by` None unlocks).
pub async fn set_lock<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    by: Option<&str>,
    reason: Option<&str>,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE servers SET locked_by = $2, locked_reason = $3, updated_at = $4
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(by)
    .bind(reason)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("lock a server"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn server_metadata<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<BTreeMap<String, String>, DbError> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT meta_key, meta_value FROM server_metadata WHERE server_id = $1")
            .bind(id)
            .fetch_all(ex)
            .await
            .map_err(DbError::query("read a server's metadata"))?;
    Ok(rows.into_iter().collect())
}

/// Replaces a server's metadata, or merges into it.
pub async fn put_metadata(
    conn: &mut Connection,
    id: &str,
    metadata: &BTreeMap<String, String>,
    replace: bool,
) -> Result<(), DbError> {
    if replace {
        sqlx::query("DELETE FROM server_metadata WHERE server_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(DbError::query("replace a server's metadata"))?;
    }
    for (key, value) in metadata {
        sqlx::query(
            "INSERT INTO server_metadata (server_id, meta_key, meta_value) VALUES ($1, $2, $3)
             ON CONFLICT (server_id, meta_key) DO UPDATE SET meta_value = excluded.meta_value",
        )
        .bind(id)
        .bind(key)
        .bind(value)
        .execute(&mut *conn)
        .await
        .map_err(DbError::query("set a server's metadata"))?;
    }
    Ok(())
}

pub async fn delete_metadata_key<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    key: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM server_metadata WHERE server_id = $1 AND meta_key = $2")
        .bind(id)
        .bind(key)
        .execute(ex)
        .await
        .map_err(DbError::query("delete a server's metadata key"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn server_tags<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Vec<String>, DbError> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT tag FROM server_tags WHERE server_id = $1 ORDER BY tag")
            .bind(id)
            .fetch_all(ex)
            .await
            .map_err(DbError::query("read a server's tags"))?;
    Ok(rows.into_iter().map(|(t,)| t).collect())
}

pub async fn set_tags(conn: &mut Connection, id: &str, tags: &[String]) -> Result<(), DbError> {
    sqlx::query("DELETE FROM server_tags WHERE server_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(DbError::query("replace a server's tags"))?;
    for tag in tags {
        add_tag(&mut *conn, id, tag).await?;
    }
    Ok(())
}

pub async fn add_tag<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    tag: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO server_tags (server_id, tag) VALUES ($1, $2)
         ON CONFLICT (server_id, tag) DO NOTHING",
    )
    .bind(id)
    .bind(tag)
    .execute(ex)
    .await
    .map_err(DbError::query("tag a server"))?;
    Ok(())
}

pub async fn delete_tag<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    tag: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM server_tags WHERE server_id = $1 AND tag = $2")
        .bind(id)
        .bind(tag)
        .execute(ex)
        .await
        .map_err(DbError::query("untag a server"))?;
    Ok(done.rows_affected() == 1)
}

/// What the servers placed on a node take of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct NodeLoad {
    pub servers: i64,
    pub vcpus: i64,
    pub ram_mib: i64,
    pub disk_gib: i64,
}

/// The load of every node that holds servers, by node.
pub async fn node_loads<'c>(
    ex: impl Executor<'c, Database = Any>,
) -> Result<BTreeMap<String, NodeLoad>, DbError> {
    let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        // A moving server takes room at its destination too, from the start of its move.
        "SELECT node_id, COUNT(*), COALESCE(SUM(vcpus), 0), COALESCE(SUM(ram_mib), 0),
                COALESCE(SUM(disk_gib), 0)
         FROM (SELECT node_id, vcpus, ram_mib, disk_gib FROM servers
               WHERE deleted_at IS NULL AND node_id IS NOT NULL
               UNION ALL
               SELECT m.dest_node AS node_id, s.vcpus, s.ram_mib, s.disk_gib
               FROM server_migrations m JOIN servers s ON s.id = m.server_id
               WHERE s.deleted_at IS NULL
                 AND m.status IN ('queued', 'preparing', 'running', 'switching',
                                  'cancelling')) placed
         GROUP BY node_id",
    )
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read the nodes' loads"))?;
    Ok(rows
        .into_iter()
        .map(|(node, servers, vcpus, ram_mib, disk_gib)| {
            (
                node,
                NodeLoad {
                    servers,
                    vcpus,
                    ram_mib,
                    disk_gib,
                },
            )
        })
        .collect())
}

/// Records the start of an instance action.
pub async fn start_action<'c>(
    ex: impl Executor<'c, Database = Any>,
    server: &str,
    request_id: &str,
    action: &str,
    project: &str,
    user: &str,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO instance_actions (server_id, request_id, action, project_id, user_id,
                                       start_time)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (server_id, request_id) DO NOTHING",
    )
    .bind(server)
    .bind(request_id)
    .bind(action)
    .bind(project)
    .bind(user)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("record an instance action"))?;
    Ok(())
}

/// Records how an instance action ended (`message` None: success).
pub async fn finish_action<'c>(
    ex: impl Executor<'c, Database = Any>,
    server: &str,
    request_id: &str,
    message: Option<&str>,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE instance_actions SET finish_time = $3, message = $4
         WHERE server_id = $1 AND request_id = $2",
    )
    .bind(server)
    .bind(request_id)
    .bind(now)
    .bind(message)
    .execute(ex)
    .await
    .map_err(DbError::query("finish an instance action"))?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActionRow {
    pub server_id: String,
    pub request_id: String,
    pub action: String,
    pub project_id: String,
    pub user_id: String,
    pub start_time: i64,
    pub finish_time: Option<i64>,
    pub message: Option<String>,
}

pub async fn list_actions<'c>(
    ex: impl Executor<'c, Database = Any>,
    server: &str,
) -> Result<Vec<ActionRow>, DbError> {
    sqlx::query_as(
        "SELECT server_id, request_id, action, project_id, user_id, start_time, finish_time,
                message
         FROM instance_actions WHERE server_id = $1 ORDER BY start_time DESC",
    )
    .bind(server)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list instance actions"))
}

/// Marks server `id`'s active resources charged (`charged`) or released, if they are not
/// so already; true if it changed. The row lock this takes orders concurrent callers, so
/// only one of them charges or releases.
pub async fn set_active_charged<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    charged: bool,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE servers SET active_charged = $2, updated_at = $3
         WHERE id = $1 AND deleted_at IS NULL AND active_charged <> $2",
    )
    .bind(id)
    .bind(charged)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("record a server's active charge"))?;
    Ok(done.rows_affected() == 1)
}

/// Marks server `id` deleted, if it is not; true if it changed (and the caller releases
/// its quota, in the same transaction).
pub async fn mark_deleted<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE servers SET vm_state = 'deleted', task_state = NULL, power_state = 0,
           terminated_at = $2, deleted_at = $2, updated_at = $2
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("mark a server deleted"))?;
    Ok(done.rows_affected() == 1)
}
