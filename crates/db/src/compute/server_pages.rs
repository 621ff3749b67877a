//! One page of a server listing, selected, sorted and cut in SQL: a listing of a project
//! with thousands of servers reads one page of rows, each with its metadata and tags
//! gathered by the same statement (so they agree with the row whatever is written beside
//! the read, and nothing is read for servers off the page). Paging is by keyset: the page
//! after a marker starts after the marker's sort key, so it costs the same however deep
//! it is.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Any, ColumnIndex, Decode, Executor, FromRow, Row, Type};

use super::servers::{SELECT_COLUMNS, ServerRow, server_row_from};
use crate::{Backend, Database, DbError};

/// A column servers sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    CreatedAt,
    UpdatedAt,
    Name,
    VmState,
    Id,
}

impl SortColumn {
    fn column(self) -> &'static str {
        match self {
            SortColumn::CreatedAt => "created_at",
            SortColumn::UpdatedAt => "updated_at",
            SortColumn::Name => "name",
            SortColumn::VmState => "vm_state",
            SortColumn::Id => "id",
        }
    }

    fn value_of(self, row: &ServerRow) -> Value {
        match self {
            SortColumn::CreatedAt => Value::Int(row.created_at),
            SortColumn::UpdatedAt => Value::Int(row.updated_at),
            SortColumn::Name => Value::Text(row.name.clone()),
            SortColumn::VmState => Value::Text(row.vm_state.clone()),
            SortColumn::Id => Value::Text(row.id.clone()),
        }
    }
}

/// A status as the states it stands for: any of `vm_states`, and, when given, any of
/// `task_states`.
#[derive(Debug, Clone, Copy)]
pub struct StatusStates<'a> {
    pub vm_states: &'a [&'a str],
    pub task_states: Option<&'a [&'a str]>,
}

/// What a page selects.
#[derive(Debug, Clone, Default)]
pub struct ServerQuery<'a> {
    /// One project's, or every project's.
    pub project: Option<&'a str>,
    /// Deleted servers too, if changed at or after this time; else only live ones.
    pub changed_since: Option<i64>,
    pub node: Option<&'a str>,
    /// A substring of the name.
    pub name_contains: Option<&'a str>,
    /// Any of these statuses (none: all).
    pub statuses: Vec<StatusStates<'a>>,
    pub image: Option<&'a str>,
    pub flavor: Option<&'a str>,
    /// All of these tags.
    pub tags: &'a [String],
    /// Sort keys, each descending or not; the id breaks ties in the last one's direction.
    pub sort: Vec<(SortColumn, bool)>,
    /// Start after this server (a marker's row).
    pub after: Option<&'a ServerRow>,
    pub limit: usize,
}

#[derive(Debug, Clone)]
enum Value {
    Int(i64),
    Text(String),
}

/// Builds a statement's text and its arguments, numbering its `$n` parameters as it goes.
#[derive(Debug, Default)]
struct Statement {
    conditions: Vec<String>,
    values: Vec<Value>,
}

impl Statement {
    fn bind(&mut self, value: Value) -> String {
        self.values.push(value);
        format!("${}", self.values.len())
    }

    fn text(&mut self, text: &str) -> String {
        self.bind(Value::Text(text.to_owned()))
    }

    fn any_of(&mut self, column: &str, values: &[&str]) -> String {
        let places: Vec<String> = values.iter().map(|v| self.text(v)).collect();
        format!("{column} IN ({})", places.join(", "))
    }
}

/// The condition that a row sorts strictly after `marker`: after it in the first key, or
/// equal there and after it in the next, and so on.
fn after(statement: &mut Statement, sort: &[(SortColumn, bool)], marker: &ServerRow) -> String {
    let mut alternatives = Vec::new();
    for (index, (column, descending)) in sort.iter().enumerate() {
        let mut parts = Vec::new();
        for (earlier, _) in &sort[..index] {
            let place = statement.bind(earlier.value_of(marker));
            parts.push(format!("{} = {place}", earlier.column()));
        }
        let place = statement.bind(column.value_of(marker));
        let operator = if *descending { "<" } else { ">" };
        parts.push(format!("{} {operator} {place}", column.column()));
        alternatives.push(format!("({})", parts.join(" AND ")));
    }
    format!("({})", alternatives.join(" OR "))
}

/// The page a query selects, as SQL: its `WHERE … ORDER BY … LIMIT` (one more row than
/// the page, to tell whether more follow) and the values it binds.
fn selection(query: &ServerQuery<'_>) -> (String, Vec<Value>) {
    let mut statement = Statement::default();
    if let Some(project) = query.project {
        let place = statement.text(project);
        statement.conditions.push(format!("project_id = {place}"));
    }
    match query.changed_since {
        Some(since) => {
            let place = statement.bind(Value::Int(since));
            statement.conditions.push(format!("updated_at >= {place}"));
        }
        None => statement.conditions.push("deleted_at IS NULL".to_owned()),
    }
    if let Some(node) = query.node {
        let place = statement.text(node);
        statement.conditions.push(format!("node_id = {place}"));
    }
    if let Some(name) = query.name_contains.filter(|n| !n.is_empty()) {
        // A substring, case and all, on both engines (SQLite's LIKE ignores case, and
        // neither has the other's substring search): removing it changes the name.
        let place = statement.text(name);
        statement
            .conditions
            .push(format!("replace(name, {place}, '') <> name"));
    }
    if !query.statuses.is_empty() {
        let mut any = Vec::new();
        for status in &query.statuses {
            let mut clause = statement.any_of("vm_state", status.vm_states);
            if let Some(tasks) = status.task_states {
                clause = format!("({clause} AND {})", statement.any_of("task_state", tasks));
            }
            any.push(clause);
        }
        statement.conditions.push(format!("({})", any.join(" OR ")));
    }
    if let Some(image) = query.image {
        let place = statement.text(image);
        statement.conditions.push(format!("image_id = {place}"));
    }
    if let Some(flavor) = query.flavor {
        let place = statement.text(flavor);
        statement.conditions.push(format!("flavor_id = {place}"));
    }
    for tag in query.tags {
        let place = statement.text(tag);
        statement.conditions.push(format!(
            "EXISTS (SELECT 1 FROM server_tags t WHERE t.server_id = servers.id AND t.tag = {place})"
        ));
    }
    let mut sort = query.sort.clone();
    if sort.is_empty() {
        sort.push((SortColumn::CreatedAt, true));
    }
    let last_descending = sort.last().is_some_and(|(_, descending)| *descending);
    if !sort.iter().any(|(column, _)| *column == SortColumn::Id) {
        sort.push((SortColumn::Id, last_descending));
    }
    if let Some(marker) = query.after {
        let after = after(&mut statement, &sort, marker);
        statement.conditions.push(after);
    }
    let order: Vec<String> = sort
        .iter()
        .map(|(column, descending)| {
            format!(
                "{} {}",
                column.column(),
                if *descending { "DESC" } else { "ASC" }
            )
        })
        .collect();
    let limit = statement.bind(Value::Int(
        i64::try_from(query.limit.saturating_add(1)).unwrap_or(i64::MAX),
    ));
    let text = format!(
        "WHERE {} ORDER BY {} LIMIT {limit}",
        if statement.conditions.is_empty() {
            "1 = 1".to_owned()
        } else {
            statement.conditions.join(" AND ")
        },
        order.join(", ")
    );
    (text, statement.values)
}

/// A server of a page, with its metadata and tags.
#[derive(Debug, Clone)]
pub struct PagedServer {
    pub row: ServerRow,
    pub metadata: BTreeMap<String, String>,
    /// Sorted.
    pub tags: Vec<String>,
}

impl FromRow<'_, AnyRow> for PagedServer {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        paged_server_from(row)
    }
}

impl FromRow<'_, SqliteRow> for PagedServer {
    fn from_row(row: &SqliteRow) -> Result<Self, sqlx::Error> {
        paged_server_from(row)
    }
}

fn paged_server_from<'r, R>(row: &'r R) -> Result<PagedServer, sqlx::Error>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let metadata: Option<String> = row.try_get("metadata_json")?;
    let tags: Option<String> = row.try_get("tags_json")?;
    Ok(PagedServer {
        row: server_row_from(row)?,
        metadata: match metadata {
            Some(text) => serde_json::from_str(&text).map_err(json_error("metadata_json"))?,
            None => BTreeMap::new(),
        },
        tags: match tags {
            Some(text) => serde_json::from_str(&text).map_err(json_error("tags_json"))?,
            None => Vec::new(),
        },
    })
}

fn json_error(column: &'static str) -> impl Fn(serde_json::Error) -> sqlx::Error {
    move |source| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(source),
    }
}

/// The columns that gather a server's metadata (a JSON object) and tags (a sorted JSON
/// array) beside its row: a lookup by primary key per server of the page, where reading
/// them for the page in separate statements scanned the project's servers again for each.
fn gathered_columns(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "(SELECT json_group_object(meta_key, meta_value) FROM server_metadata
               WHERE server_id = servers.id) AS metadata_json,
             (SELECT json_group_array(tag ORDER BY tag) FROM server_tags
               WHERE server_id = servers.id) AS tags_json"
        }
        Backend::Postgres => {
            "(SELECT json_object_agg(meta_key, meta_value)::text FROM server_metadata
               WHERE server_id = servers.id) AS metadata_json,
             (SELECT json_agg(tag ORDER BY tag COLLATE \"C\")::text FROM server_tags
               WHERE server_id = servers.id) AS tags_json"
        }
    }
}

/// A page of servers with their metadata and tags, and whether more follow it. On
/// SQLite the rows are read by the native driver.
pub async fn page_servers(
    db: &Database,
    query: &ServerQuery<'_>,
) -> Result<(Vec<PagedServer>, bool), DbError> {
    let (selection, values) = selection(query);
    let text = format!(
        "SELECT {SELECT_COLUMNS}, {} FROM servers {selection}",
        gathered_columns(db.backend())
    );
    let failed = DbError::query("list a page of servers");
    let mut rows = match db.sqlite_reads() {
        Some(reads) => {
            let mut select = sqlx::query_as::<_, PagedServer>(&text);
            for value in values {
                select = match value {
                    Value::Int(v) => select.bind(v),
                    Value::Text(v) => select.bind(v),
                };
            }
            select.fetch_all(reads).await.map_err(failed)?
        }
        None => bind_all(sqlx::query_as::<_, PagedServer>(&text), values)
            .fetch_all(db.pool())
            .await
            .map_err(failed)?,
    };
    let more = rows.len() > query.limit;
    rows.truncate(query.limit);
    Ok((rows, more))
}

/// The ids and names of a page of servers (a brief listing reads nothing else), and
/// whether more follow.
pub async fn page_server_names<'c>(
    ex: impl Executor<'c, Database = Any>,
    query: &ServerQuery<'_>,
) -> Result<(Vec<(String, String)>, bool), DbError> {
    let (selection, values) = selection(query);
    let text = format!("SELECT id, name FROM servers {selection}");
    let mut rows = bind_all(sqlx::query_as::<_, (String, String)>(&text), values)
        .fetch_all(ex)
        .await
        .map_err(DbError::query("list a page of servers"))?;
    let more = rows.len() > query.limit;
    rows.truncate(query.limit);
    Ok((rows, more))
}

fn bind_all<'q, O>(
    mut select: sqlx::query::QueryAs<'q, Any, O, sqlx::any::AnyArguments<'q>>,
    values: Vec<Value>,
) -> sqlx::query::QueryAs<'q, Any, O, sqlx::any::AnyArguments<'q>> {
    for value in values {
        select = match value {
            Value::Int(v) => select.bind(v),
            Value::Text(v) => select.bind(v),
        };
    }
    select
}
