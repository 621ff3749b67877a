//! Queries of networking (migration 13): networks, subnets with their allocation pools,
//! ports, the addresses ports hold, the history of who held each address, and the nodes
//! ports are bound to.

mod addresses;
mod bindings;
mod networks;
mod ports;
mod routers;
mod security_groups;
mod subnets;

pub use addresses::*;
pub use bindings::*;
pub use networks::*;
pub use ports::*;
pub use routers::*;
pub use security_groups::*;
pub use subnets::*;

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow};

use crate::DbError;

/// The rows of `table` (as `columns`) of one project, or of every project (`None`),
/// oldest first: the listings of resources a project owns.
async fn list_of_project<'c, T>(
    ex: impl Executor<'c, Database = Any>,
    table: &str,
    columns: &str,
    project: Option<&str>,
    action: &'static str,
) -> Result<Vec<T>, DbError>
where
    T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
{
    let filter = if project.is_some() {
        "WHERE project_id = $1"
    } else {
        ""
    };
    let text = format!("SELECT {columns} FROM {table} {filter} ORDER BY created_at, id");
    let mut select = sqlx::query_as(&text);
    if let Some(project) = project {
        select = select.bind(project);
    }
    select.fetch_all(ex).await.map_err(DbError::query(action))
}
