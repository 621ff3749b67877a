use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::DbError;

/// One accepted change of a member's usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEventRow {
    pub project_id: String,
    pub member_id: String,
    pub resource: String,
    pub quantity: i64,
    pub at: i64,
}

pub async fn insert_usage_event<'c>(
    ex: impl Executor<'c, Database = Any>,
    event: &UsageEventRow,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO quota_usage_events (project_id, member_id, resource, quantity, at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&event.project_id)
    .bind(&event.member_id)
    .bind(&event.resource)
    .bind(event.quantity)
    .bind(event.at)
    .execute(ex)
    .await
    .map_err(DbError::query("record a usage event"))?;
    Ok(())
}

/// Records the release of everything a project's members still use (before the project
/// and its holdings are deleted).
pub async fn close_project_usage<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO quota_usage_events (project_id, member_id, resource, quantity, at)
         SELECT project_id, member_id, resource, -usage_min, $2 FROM quota_holdings
          WHERE project_id = $1 AND member_id <> '' AND usage_min <> 0",
    )
    .bind(project_id)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("close a project's usage"))?;
    Ok(())
}

/// The integral of usage over `[from, to)` per (project, member, resource), in
/// quantity × microseconds (a float: a TiB over a year exceeds 64 bits).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageIntegralRow {
    pub project_id: String,
    pub member_id: String,
    pub resource: String,
    /// Quantity × microseconds.
    pub integral: f64,
    /// Usage at `to`.
    pub usage_at_end: i64,
}

impl FromRow<'_, AnyRow> for UsageIntegralRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(UsageIntegralRow {
            project_id: row.try_get("project_id")?,
            member_id: row.try_get("member_id")?,
            resource: row.try_get("resource")?,
            integral: row.try_get("integral")?,
            usage_at_end: row.try_get("usage_at_end")?,
        })
    }
}

/// Usage over `[from, to)`: each event before `to` contributes its quantity for the part of
/// the period after it happened. Summed in floating point, which both engines have.
pub async fn usage_integrals<'c>(
    ex: impl Executor<'c, Database = Any>,
    from: i64,
    to: i64,
) -> Result<Vec<UsageIntegralRow>, DbError> {
    sqlx::query_as(
        "SELECT project_id, member_id, resource,
                CAST(SUM(CAST(quantity AS DOUBLE PRECISION)
                         * CAST($2 - CASE WHEN at > $1 THEN at ELSE $1 END
                                AS DOUBLE PRECISION)) AS DOUBLE PRECISION) AS integral,
                CAST(SUM(quantity) AS BIGINT) AS usage_at_end
           FROM quota_usage_events
          WHERE at < $2
          GROUP BY project_id, member_id, resource
          ORDER BY project_id, member_id, resource",
    )
    .bind(from)
    .bind(to)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("sum usage events"))
}
