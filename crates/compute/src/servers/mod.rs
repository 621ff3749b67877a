//! Servers: what users see of them, and the operations on them. Every operation that
//! involves a node records its intent in the database (a task state, a saga) in one
//! transaction with everything it charges, then runs as a saga (`sagas`); the server's
//! state changes when the node has reported.

mod actions;
pub(crate) mod charges;
mod create;
mod model;
mod resize;
pub mod sagas;
mod snapshot;
pub mod state;

pub use actions::PowerAction;
pub use create::{CreateServer, CreatedServers, Networks};
pub use model::{Fault, Server, ServerFlavor};

use std::collections::BTreeMap;

use nefos_db::compute::{self as q, ServerScope};
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
}

/// The hostname a server's guest gets: its name, sanitised as Nova does.
pub fn hostname_of(server: &Server) -> String {
    create::hostname(&server.name, &server.id)
}

/// The project a caller's servers are in: its token must be scoped to one.
pub(crate) fn project_of(caller: &AuthContext) -> Result<&str, ComputeError> {
    caller
        .project_id()
        .ok_or_else(|| ComputeError::forbidden("Compute needs a token scoped to a project."))
}

impl Compute {
    /// Servers the caller may see, newest first.
    pub async fn list_servers(
        &self,
        caller: &AuthContext,
        filter: &ListFilter,
    ) -> Result<Vec<Server>, ComputeError> {
        let admin = caller.is_cloud_admin();
        let project = if filter.all_projects && admin {
            None
        } else {
            Some(project_of(caller)?)
        };
        let scope = ServerScope {
            project,
            changed_since: filter.changes_since,
            node: filter.node.as_deref().filter(|_| admin),
        };
        let rows = q::list_servers(self.db().pool(), &scope).await?;
        let mut metadata = q::metadata_of_servers(self.db().pool(), project).await?;
        let mut tags = q::tags_of_servers(self.db().pool(), project).await?;
        let down = self.down_nodes().await?;
        let statuses: Vec<String> = filter
            .status
            .iter()
            .map(|s| s.to_ascii_uppercase())
            .collect();
        let mut servers = Vec::new();
        for row in rows {
            let server_metadata = metadata.remove(&row.id).unwrap_or_default();
            let server_tags = tags.remove(&row.id).unwrap_or_default();
            let server = Server::from_row(row, server_metadata, server_tags, &down);
            let selected = filter
                .name
                .as_ref()
                .is_none_or(|n| server.name.contains(n.as_str()))
                && (statuses.is_empty() || statuses.iter().any(|s| s == server.status()))
                && filter
                    .image
                    .as_ref()
                    .is_none_or(|i| server.image_id.as_deref() == Some(i.as_str()))
                && filter
                    .flavor
                    .as_ref()
                    .is_none_or(|f| &server.flavor.id == f)
                && filter.tags.iter().all(|t| server.tags.contains(t));
            if selected {
                servers.push(server);
            }
        }
        Ok(servers)
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
