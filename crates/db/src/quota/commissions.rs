use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::{Connection, DbError};

/// A pending commission, as the rows of its provisions in `quota_provisions` record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommissionRow {
    pub serial: i64,
    pub client: String,
    pub instance: Option<String>,
    pub name: String,
    pub issued_at: i64,
}

impl FromRow<'_, AnyRow> for CommissionRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(CommissionRow {
            serial: row.try_get("serial")?,
            client: row.try_get("client")?,
            instance: row.try_get("instance")?,
            name: row.try_get("name")?,
            issued_at: row.try_get("issued_at")?,
        })
    }
}

/// One provision of a pending commission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionRow {
    pub project_id: String,
    pub member_id: String,
    pub resource: String,
    pub quantity: i64,
}

impl FromRow<'_, AnyRow> for ProvisionRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(ProvisionRow {
            project_id: row.try_get("project_id")?,
            member_id: row.try_get("member_id")?,
            resource: row.try_get("resource")?,
            quantity: row.try_get("quantity")?,
        })
    }
}

/// Takes `count` commission serials for a process to hand out, and returns the last (the
/// block is `last - count + 1 ..= last`). Called outside any commission's transaction,
/// once per block: the counter's row would otherwise be locked by every commission until
/// it commits, and commissions on different holdings would queue behind it.
pub async fn reserve_commission_serials<'c>(
    ex: impl Executor<'c, Database = Any>,
    count: i64,
) -> Result<i64, DbError> {
    sqlx::query_scalar(
        "UPDATE counters SET value = value + $1 WHERE name = 'commission_serial'
         RETURNING value",
    )
    .bind(count)
    .fetch_one(ex)
    .await
    .map_err(DbError::query("allocate commission serials"))
}

/// Records a pending commission: its provisions, in one statement.
pub async fn insert_commission(
    conn: &mut Connection,
    commission: &CommissionRow,
    provisions: &[ProvisionRow],
) -> Result<(), DbError> {
    if provisions.is_empty() {
        return Ok(());
    }
    let values: Vec<String> = (0..provisions.len())
        .map(|i| {
            let n = 5 + i * 4;
            format!(
                "($1, $2, $3, $4, $5, ${}, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO quota_provisions (serial, client, instance, name, issued_at, project_id,
                                       member_id, resource, quantity)
         VALUES {}",
        values.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .bind(commission.serial)
        .bind(&commission.client)
        .bind(&commission.instance)
        .bind(&commission.name)
        .bind(commission.issued_at);
    for provision in provisions {
        query = query
            .bind(&provision.project_id)
            .bind(&provision.member_id)
            .bind(&provision.resource)
            .bind(provision.quantity);
    }
    query
        .execute(&mut *conn)
        .await
        .map_err(DbError::query("record a commission"))?;
    Ok(())
}

pub async fn get_commission<'c>(
    ex: impl Executor<'c, Database = Any>,
    serial: i64,
) -> Result<Option<CommissionRow>, DbError> {
    sqlx::query_as(
        "SELECT serial, client, instance, name, issued_at FROM quota_provisions
         WHERE serial = $1 LIMIT 1",
    )
    .bind(serial)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a commission"))
}

pub async fn list_provisions<'c>(
    ex: impl Executor<'c, Database = Any>,
    serial: i64,
) -> Result<Vec<ProvisionRow>, DbError> {
    sqlx::query_as(
        "SELECT project_id, member_id, resource, quantity FROM quota_provisions
         WHERE serial = $1 ORDER BY project_id, member_id, resource",
    )
    .bind(serial)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("read the provisions of a commission"))
}

/// Removes a pending commission to resolve it, and returns its provisions (none when it
/// was no longer pending). The delete takes the rows' locks, so two resolutions of one
/// commission cannot both proceed.
pub async fn take_commission<'c>(
    ex: impl Executor<'c, Database = Any>,
    serial: i64,
) -> Result<Vec<ProvisionRow>, DbError> {
    sqlx::query_as(
        "DELETE FROM quota_provisions WHERE serial = $1
         RETURNING project_id, member_id, resource, quantity",
    )
    .bind(serial)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("resolve a commission"))
}

/// Pending commissions, oldest first: of one client, or all.
pub async fn list_commissions<'c>(
    ex: impl Executor<'c, Database = Any>,
    client: Option<&str>,
) -> Result<Vec<CommissionRow>, DbError> {
    sqlx::query_as(
        "SELECT DISTINCT serial, client, instance, name, issued_at FROM quota_provisions
         WHERE ($1 IS NULL OR client = $1) ORDER BY serial",
    )
    .bind(client)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list commissions"))
}

/// The pending commissions a control-plane process holds.
pub async fn list_commissions_of_instance<'c>(
    ex: impl Executor<'c, Database = Any>,
    instance: &str,
) -> Result<Vec<i64>, DbError> {
    sqlx::query_scalar(
        "SELECT DISTINCT serial FROM quota_provisions WHERE instance = $1 ORDER BY serial",
    )
    .bind(instance)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list a process's commissions"))
}

/// Pending commissions held by control-plane processes that are gone: with no row in
/// `control_plane_instances`, or no heartbeat since `alive_since`, and not `except`.
pub async fn list_abandoned_commissions<'c>(
    ex: impl Executor<'c, Database = Any>,
    alive_since: i64,
    except: &str,
) -> Result<Vec<i64>, DbError> {
    sqlx::query_scalar(
        "SELECT DISTINCT p.serial FROM quota_provisions p
         WHERE p.instance IS NOT NULL AND p.instance <> $2
           AND NOT EXISTS (SELECT 1 FROM control_plane_instances i
                            WHERE i.id = p.instance AND i.heartbeat_at >= $1)
         ORDER BY p.serial",
    )
    .bind(alive_since)
    .bind(except)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list abandoned commissions"))
}
