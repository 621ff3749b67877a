use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::DbError;

/// A row of `project_applications`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationRow {
    pub id: String,
    pub project_id: String,
    pub applicant_id: String,
    pub state: String,
    pub name: String,
    pub description: String,
    pub homepage: String,
    pub start_at: Option<i64>,
    pub end_at: i64,
    pub join_policy: String,
    pub leave_policy: String,
    pub max_members: Option<i64>,
    /// JSON object: resource -> {"member_capacity": N, "project_capacity": N}.
    pub resources: String,
    pub comments: String,
    pub reason: String,
    pub created_at: i64,
    pub decided_at: Option<i64>,
}

impl FromRow<'_, AnyRow> for ApplicationRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(ApplicationRow {
            id: row.try_get("id")?,
            project_id: row.try_get("project_id")?,
            applicant_id: row.try_get("applicant_id")?,
            state: row.try_get("state")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            homepage: row.try_get("homepage")?,
            start_at: row.try_get("start_at")?,
            end_at: row.try_get("end_at")?,
            join_policy: row.try_get("join_policy")?,
            leave_policy: row.try_get("leave_policy")?,
            max_members: row.try_get("max_members")?,
            resources: row.try_get("resources")?,
            comments: row.try_get("comments")?,
            reason: row.try_get("reason")?,
            created_at: row.try_get("created_at")?,
            decided_at: row.try_get("decided_at")?,
        })
    }
}

const APPLICATION_COLUMNS: &str = "id, project_id, applicant_id, state, name, description,
    homepage, start_at, end_at, join_policy, leave_policy, max_members, resources, comments,
    reason, created_at, decided_at";

pub async fn insert_application<'c>(
    ex: impl Executor<'c, Database = Any>,
    app: &ApplicationRow,
) -> Result<(), DbError> {
    sqlx::query(&format!(
        "INSERT INTO project_applications ({APPLICATION_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    ))
    .bind(&app.id)
    .bind(&app.project_id)
    .bind(&app.applicant_id)
    .bind(&app.state)
    .bind(&app.name)
    .bind(&app.description)
    .bind(&app.homepage)
    .bind(app.start_at)
    .bind(app.end_at)
    .bind(&app.join_policy)
    .bind(&app.leave_policy)
    .bind(app.max_members)
    .bind(&app.resources)
    .bind(&app.comments)
    .bind(&app.reason)
    .bind(app.created_at)
    .bind(app.decided_at)
    .execute(ex)
    .await
    .map_err(DbError::query("record a project application"))?;
    Ok(())
}

pub async fn get_application<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<ApplicationRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {APPLICATION_COLUMNS} FROM project_applications WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read a project application"))
}

/// Which applications [`list_applications`] returns.
#[derive(Debug, Clone, Default)]
pub struct ApplicationFilter {
    pub project_id: Option<String>,
    pub applicant_id: Option<String>,
    pub state: Option<String>,
}

/// Applications, oldest first.
pub async fn list_applications<'c>(
    ex: impl Executor<'c, Database = Any>,
    filter: &ApplicationFilter,
) -> Result<Vec<ApplicationRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {APPLICATION_COLUMNS} FROM project_applications
         WHERE ($1 IS NULL OR project_id = $1) AND ($2 IS NULL OR applicant_id = $2)
           AND ($3 IS NULL OR state = $3)
         ORDER BY created_at, id"
    ))
    .bind(&filter.project_id)
    .bind(&filter.applicant_id)
    .bind(&filter.state)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list project applications"))
}

/// Moves an application from `from` to `to`; returns whether it was in `from`.
pub async fn decide_application<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    from: &str,
    to: &str,
    reason: &str,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE project_applications SET state = $3, reason = $4, decided_at = $5
         WHERE id = $1 AND state = $2",
    )
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(reason)
    .bind(now)
    .execute(ex)
    .await
    .map_err(DbError::query("decide a project application"))?;
    Ok(done.rows_affected() > 0)
}
