//! Servers: what users see of them, and the operations on them. Every operation that
//! involves a node records its intent in the database (a task state, a saga) in one
//! transaction with everything it charges, then runs as a saga (`sagas`); the server's
//! state changes when the node has reported.

mod actions;
mod addresses;
pub(crate) mod charges;
mod create;
mod interfaces;
pub mod migrate;
mod model;
mod rebuild;
mod resize;
pub mod sagas;
mod snapshot;
pub mod state;

pub use actions::PowerAction;
pub use addresses::ServerAddress;
pub use create::{CreateServer, CreatedServers, NetworkRequest, ServerNetworks};
pub use model::{Fault, Server, ServerFlavor};
pub use rebuild::Rebuild;

use std::collections::BTreeMap;

use nefos_db::compute::{self as q, ServerQuery, ServerRow, StatusStates};

pub use nefos_db::compute::SortColumn;
use nefos_db::time::now_micros;
use nefos_identity::AuthContext;

use crate::{Compute, ComputeError};

/// What a server listing selects.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Every project's servers (administrators only).
    pub all_projects: bool,
    /// Servers changed at or after this time, deleted ones included (µs since the epoch).
    pub changes_since: Option<i64>,
    /// A substring of the name.
    pub name: Option<String>,
    /// Statuses (any of them).
    pub status: Vec<String>,
    pub image: Option<String>,
    pub flavor: Option<String>,
    /// Only servers with all these tags.
    pub tags: Vec<String>,
    /// Only servers on this node (administrators only).
    pub node: Option<String>,
    /// Sort keys, each descending or not; newest first when none.
    pub sort: Vec<(SortColumn, bool)>,
    /// Start after this server.
    pub marker: Option<String>,
    /// At most this many (all when none).
    pub limit: Option<usize>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ServerPage {
    pub servers: Vec<Server>,
    /// More servers follow the last one.
    pub more: bool,
}

/// The hostname a server's guest gets: its name, sanitised as Nova does.
pub fn hostname_of(server: &Server) -> String {
    create::hostname(&server.name, &server.id)
}

/// An action asked of a server: what `Compute::record_and_run` records of it.
pub(crate) struct Asked<'a> {
    pub server: &'a Server,
    /// Who asked (an operator's command: the cloud's administrator user).
    pub user_id: &'a str,
    pub request_id: &'a str,
    /// Nova's instance-action name (`stop`, `resize`, …).
    pub action: &'a str,
}

impl Compute {
    /// Records the instance action and the saga `S` that carries it out in `tx`, with
    /// whatever the caller wrote there (task, quota), commits, and starts the saga.
    pub(crate) async fn record_and_run<S: nefos_saga::Saga>(
        &self,
        mut tx: nefos_db::Transaction,
        asked: Asked<'_>,
        params: &S::Params,
    ) -> Result<(), ComputeError> {
        let server = &asked.server.id;
        q::start_action(
            &mut *tx,
            server,
            asked.request_id,
            asked.action,
            &asked.server.project_id,
            asked.user_id,
            now_micros(),
        )
        .await?;
        let saga = self.sagas().create::<S>(&mut tx, server, params).await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit a server action"))?;
        self.sagas().spawn(&saga);
        Ok(())
    }
}

/// The project a listing is of; none for an administrator's listing of all projects.
fn listed_project<'a>(
    caller: &'a AuthContext,
    filter: &ListFilter,
) -> Result<Option<&'a str>, ComputeError> {
    if filter.all_projects && caller.is_cloud_admin() {
        Ok(None)
    } else {
        project_of(caller).map(Some)
    }
}

/// The database's query for a listing.
fn query<'a>(
    caller: &'a AuthContext,
    filter: &'a ListFilter,
    marker: Option<&'a ServerRow>,
) -> Result<ServerQuery<'a>, ComputeError> {
    let mut statuses = Vec::new();
    for status in &filter.status {
        let (vm_states, task_states) = state::states_of_status(status)
            .ok_or_else(|| ComputeError::invalid("Invalid status value"))?;
        statuses.push(StatusStates {
            vm_states,
            task_states,
        });
    }
    Ok(ServerQuery {
        project: listed_project(caller, filter)?,
        changed_since: filter.changes_since,
        node: filter.node.as_deref().filter(|_| caller.is_cloud_admin()),
        name_contains: filter.name.as_deref(),
        statuses,
        image: filter.image.as_deref(),
        flavor: filter.flavor.as_deref(),
        tags: &filter.tags,
        sort: filter.sort.clone(),
        after: marker,
        limit: filter.limit.unwrap_or(usize::MAX),
    })
}

/// The project a caller's servers are in: its token must be scoped to one.
pub(crate) fn project_of(caller: &AuthContext) -> Result<&str, ComputeError> {
    caller
        .project_id()
        .ok_or_else(|| ComputeError::forbidden("Compute needs a token scoped to a project."))
}

impl Compute {
    /// A page of the servers the caller may see, selected, sorted and cut by the database.
    pub async fn list_servers(
        &self,
        caller: &AuthContext,
        filter: &ListFilter,
    ) -> Result<ServerPage, ComputeError> {
        let marker = self.marker(caller, filter).await?;
        let query = query(caller, filter, marker.as_ref())?;
        let (page, more) = q::page_servers(self.db(), &query).await?;
        let down = self.down_nodes().await?;
        let servers = page
            .into_iter()
            .map(|paged| Server::from_row(paged.row, paged.metadata, paged.tags, &down))
            .collect();
        Ok(ServerPage { servers, more })
    }

    /// The ids and names of a page of servers, as a brief listing shows them (it reads
    /// nothing else), and whether more follow.
    pub async fn list_server_names(
        &self,
        caller: &AuthContext,
        filter: &ListFilter,
    ) -> Result<(Vec<(String, String)>, bool), ComputeError> {
        let marker = self.marker(caller, filter).await?;
        let query = query(caller, filter, marker.as_ref())?;
        Ok(q::page_server_names(self.db().pool(), &query).await?)
    }

    /// The row of a listing's marker, which must be a server the listing could show.
    async fn marker(
        &self,
        caller: &AuthContext,
        filter: &ListFilter,
    ) -> Result<Option<ServerRow>, ComputeError> {
        let Some(marker) = &filter.marker else {
            return Ok(None);
        };
        let project = listed_project(caller, filter)?;
        q::get_server(self.db().pool(), marker)
            .await?
            .filter(|row| project.is_none_or(|p| row.project_id == p))
            .map(Some)
            .ok_or_else(|| ComputeError::invalid(format!("marker [{marker}] not found")))
    }

    /// A server the caller may see; another project's is not found.
    pub async fn server(&self, caller: &AuthContext, id: &str) -> Result<Server, ComputeError> {
        let server = self.server_including_deleted(caller, id).await?;
        if server.deleted_at.is_some() {
            return Err(ComputeError::no_server(id));
        }
        Ok(server)
    }

    /// A server the caller may see, deleted or not (Cyclades shows deleted servers).
    pub async fn server_including_deleted(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<Server, ComputeError> {
        let row = q::get_server(self.db().pool(), id)
            .await?
            .ok_or_else(|| ComputeError::no_server(id))?;
        if !caller.is_cloud_admin() && caller.project_id() != Some(row.project_id.as_str()) {
            return Err(ComputeError::no_server(id));
        }
        let metadata = q::server_metadata(self.db().pool(), id).await?;
        let tags = q::server_tags(self.db().pool(), id).await?;
        let down = self.down_nodes().await?;
        Ok(Server::from_row(row, metadata, tags, &down))
    }

    /// The id of the server Cyclades numbers `serial`, if the caller may see it.
    pub async fn server_by_serial(
        &self,
        caller: &AuthContext,
        serial: i64,
    ) -> Result<Server, ComputeError> {
        let id = q::server_id_of_serial(self.db().pool(), serial)
            .await?
            .ok_or_else(|| ComputeError::no_server(&serial.to_string()))?;
        self.server_including_deleted(caller, &id).await
    }

    /// The nodes that missed their heartbeats.
    async fn down_nodes(&self) -> Result<Vec<String>, ComputeError> {
        let now = now_micros();
        Ok(self
            .nodes()
            .registry()
            .list()
            .await?
            .into_iter()
            .filter(|node| !node.is_up(now))
            .map(|node| node.info.id)
            .collect())
    }

    /// Renames a server or changes its description.
    pub async fn update_server(
        &self,
        caller: &AuthContext,
        id: &str,
        name: Option<&str>,
        description: Option<Option<&str>>,
    ) -> Result<Server, ComputeError> {
        self.server(caller, id).await?;
        if let Some(name) = name {
            create::check_name(name)?;
        }
        if let Some(Some(description)) = description
            && description.chars().count() > 255
        {
            return Err(ComputeError::invalid(
                "Invalid input for field/attribute description. Value: the description is \
                 longer than 255 characters",
            ));
        }
        q::update_server_fields(self.db().pool(), id, name, description, now_micros()).await?;
        self.server(caller, id).await
    }

    /// Replaces (`replace`) or merges into a server's metadata.
    pub async fn set_server_metadata(
        &self,
        caller: &AuthContext,
        id: &str,
        metadata: &BTreeMap<String, String>,
        replace: bool,
    ) -> Result<BTreeMap<String, String>, ComputeError> {
        let server = self.server(caller, id).await?;
        create::check_metadata(metadata)?;
        let mut merged = if replace {
            BTreeMap::new()
        } else {
            server.metadata
        };
        merged.extend(metadata.clone());
        create::check_metadata(&merged)?;
        let mut tx = self.db().begin().await?;
        q::put_metadata(&mut tx, id, metadata, replace).await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit a server's metadata"))?;
        Ok(q::server_metadata(self.db().pool(), id).await?)
    }

    pub async fn delete_server_metadata(
        &self,
        caller: &AuthContext,
        id: &str,
        key: &str,
    ) -> Result<(), ComputeError> {
        self.server(caller, id).await?;
        if q::delete_metadata_key(self.db().pool(), id, key).await? {
            Ok(())
        } else {
            Err(ComputeError::not_found("Metadata item was not found"))
        }
    }

    /// Replaces a server's tags.
    pub async fn set_server_tags(
        &self,
        caller: &AuthContext,
        id: &str,
        tags: &[String],
    ) -> Result<Vec<String>, ComputeError> {
        self.server(caller, id).await?;
        create::check_tags(tags)?;
        let mut tx = self.db().begin().await?;
        q::set_tags(&mut tx, id, tags).await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit a server's tags"))?;
        Ok(q::server_tags(self.db().pool(), id).await?)
    }

    pub async fn add_server_tag(
        &self,
        caller: &AuthContext,
        id: &str,
        tag: &str,
    ) -> Result<(), ComputeError> {
        let server = self.server(caller, id).await?;
        let mut tags = server.tags;
        tags.push(tag.to_owned());
        create::check_tags(&tags)?;
        q::add_tag(self.db().pool(), id, tag).await?;
        Ok(())
    }

    pub async fn delete_server_tag(
        &self,
        caller: &AuthContext,
        id: &str,
        tag: &str,
    ) -> Result<(), ComputeError> {
        self.server(caller, id).await?;
        if q::delete_tag(self.db().pool(), id, tag).await? {
            Ok(())
        } else {
            Err(ComputeError::not_found(format!(
                "Tag '{tag}' could not be found for instance {id}"
            )))
        }
    }

    /// What was asked of a server, newest first.
    pub async fn instance_actions(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<Vec<q::ActionRow>, ComputeError> {
        self.server_including_deleted(caller, id).await?;
        Ok(q::list_actions(self.db().pool(), id).await?)
    }
}
