use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::DbError;

/// The member id of a project's own holding (its usage as a whole).
pub const WHOLE_PROJECT: &str = "";

/// A row of `quota_holdings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldingRow {
    pub project_id: String,
    /// A user id, or [`WHOLE_PROJECT`].
    pub member_id: String,
    pub resource: String,
    pub usage_min: i64,
    pub usage_max: i64,
}

impl FromRow<'_, AnyRow> for HoldingRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(HoldingRow {
            project_id: row.try_get("project_id")?,
            member_id: row.try_get("member_id")?,
            resource: row.try_get("resource")?,
            usage_min: row.try_get("usage_min")?,
            usage_max: row.try_get("usage_max")?,
        })
    }
}

/// What to add to one holding's bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldingChange {
    pub project_id: String,
    pub member_id: String,
    pub resource: String,
    pub add_min: i64,
    pub add_max: i64,
}

/// Adds to holdings' bounds, creating missing ones at zero, in one statement, and returns
/// every changed holding as it is now. The update takes the holdings' row locks
/// (PostgreSQL) in the order given, until the transaction ends: concurrent commissions on
/// one holding check one after the other, and callers that always give holdings in the
/// same (sorted) order cannot deadlock.
pub async fn add_to_holdings<'c>(
    ex: impl Executor<'c, Database = Any>,
    changes: &[HoldingChange],
) -> Result<Vec<HoldingRow>, DbError> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<String> = (0..changes.len())
        .map(|i| {
            let n = i * 5;
            format!(
                "(${}, ${}, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO quota_holdings (project_id, member_id, resource, usage_min, usage_max)
         VALUES {}
         ON CONFLICT (project_id, member_id, resource) DO UPDATE
            SET usage_min = quota_holdings.usage_min + excluded.usage_min,
                usage_max = quota_holdings.usage_max + excluded.usage_max
         RETURNING project_id, member_id, resource, usage_min, usage_max",
        values.join(", ")
    );
    let mut query = sqlx::query_as(&sql);
    for change in changes {
        query = query
            .bind(&change.project_id)
            .bind(&change.member_id)
            .bind(&change.resource)
            .bind(change.add_min)
            .bind(change.add_max);
    }
    query
        .fetch_all(ex)
        .await
        .map_err(DbError::query("update quota holdings"))
}

/// Sets a holding's usage outright, keeping what pending commissions reserve around it
/// (for reconciliation).
pub async fn set_holding_usage<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
    member_id: &str,
    resource: &str,
    usage: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO quota_holdings (project_id, member_id, resource, usage_min, usage_max)
         VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (project_id, member_id, resource) DO UPDATE
            SET usage_max = quota_holdings.usage_max - quota_holdings.usage_min + $4,
                usage_min = $4",
    )
    .bind(project_id)
    .bind(member_id)
    .bind(resource)
    .bind(usage)
    .execute(ex)
    .await
    .map_err(DbError::query("set a quota holding"))?;
    Ok(())
}

/// Which holdings [`list_holdings`] returns.
#[derive(Debug, Clone, Default)]
pub struct HoldingFilter {
    pub project_id: Option<String>,
    pub member_id: Option<String>,
    pub resource: Option<String>,
}

pub async fn list_holdings<'c>(
    ex: impl Executor<'c, Database = Any>,
    filter: &HoldingFilter,
) -> Result<Vec<HoldingRow>, DbError> {
    sqlx::query_as(
        "SELECT project_id, member_id, resource, usage_min, usage_max FROM quota_holdings
         WHERE ($1 IS NULL OR project_id = $1) AND ($2 IS NULL OR member_id = $2)
           AND ($3 IS NULL OR resource = $3)
         ORDER BY project_id, member_id, resource",
    )
    .bind(&filter.project_id)
    .bind(&filter.member_id)
    .bind(&filter.resource)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list quota holdings"))
}

/// What decides the limits of a (project, member, resource): the resource's defaults, the
/// project's kind, state, end and grant, and whether the member holds a role on it.
/// `None` when the resource is not registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitFacts {
    pub base_default: i64,
    pub project_default: i64,
    /// `None` when the project does not exist.
    pub project_kind: Option<String>,
    pub project_state: Option<String>,
    pub project_end_at: Option<i64>,
    pub granted_member_limit: Option<i64>,
    pub granted_project_limit: Option<i64>,
    pub is_member: bool,
}

pub async fn limit_facts<'c>(
    ex: impl Executor<'c, Database = Any>,
    project_id: &str,
    member_id: &str,
    resource: &str,
) -> Result<Option<LimitFacts>, DbError> {
    let row = sqlx::query(
        "SELECT r.base_default, r.project_default, p.kind, p.state, p.end_at,
                q.member_limit, q.project_limit,
                (SELECT COUNT(*) FROM role_assignments a
                  WHERE a.project_id = $1 AND a.user_id = $2) AS roles
           FROM quota_resources r
           LEFT JOIN projects p ON p.id = $1
           LEFT JOIN project_quotas q ON q.project_id = $1 AND q.resource = r.name
          WHERE r.name = $3",
    )
    .bind(project_id)
    .bind(member_id)
    .bind(resource)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a quota limit"))?;
    let Some(row) = row else { return Ok(None) };
    let read = |source| DbError::Query {
        action: "read a quota limit",
        source,
    };
    Ok(Some(LimitFacts {
        base_default: row.try_get("base_default").map_err(read)?,
        project_default: row.try_get("project_default").map_err(read)?,
        project_kind: row.try_get("kind").map_err(read)?,
        project_state: row.try_get("state").map_err(read)?,
        project_end_at: row.try_get("end_at").map_err(read)?,
        granted_member_limit: row.try_get("member_limit").map_err(read)?,
        granted_project_limit: row.try_get("project_limit").map_err(read)?,
        is_member: row.try_get::<i64, _>("roles").map_err(read)? > 0,
    }))
}
