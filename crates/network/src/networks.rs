//! Networks: create, show, list, update, delete. A private network (one not external)
//! created in the caller's own project is charged to `cyclades.network.private` in the
//! transaction that writes it, and released in the one that deletes it.

use nefos_db::DbError;
use nefos_db::network::{self as q, NetworkRow};
use nefos_db::time::now_micros;
use nefos_identity::AuthContext;
use nefos_quota::Provision;

use crate::{
    Network, NetworkError, Networks, PRIVATE_NETWORK_RESOURCE, check_text, new_id, owns, project_of,
};

/// A network to create. `None` takes the default.
#[derive(Debug, Clone, Default)]
pub struct NewNetwork {
    /// Another project's: administrators only.
    pub project_id: Option<String>,
    pub name: String,
    pub description: String,
    pub admin_state_up: Option<bool>,
    pub shared: Option<bool>,
    pub external: Option<bool>,
    pub mtu: Option<i64>,
    pub port_security_enabled: Option<bool>,
}

/// What an update changes; `None` leaves it.
#[derive(Debug, Clone, Default)]
pub struct NetworkUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    pub shared: Option<bool>,
    pub external: Option<bool>,
    pub mtu: Option<i64>,
    pub port_security_enabled: Option<bool>,
}

/// The smallest MTU IPv6 allows a link.
const MIN_MTU: i64 = 1280;

impl Networks {
    pub async fn create_network(
        &self,
        caller: &AuthContext,
        new: NewNetwork,
    ) -> Result<Network, NetworkError> {
        let own = project_of(caller)?;
        let project = new.project_id.clone().unwrap_or_else(|| own.to_owned());
        if project != own && !caller.is_cloud_admin() {
            return Err(NetworkError::not_allowed("create_network:tenant_id"));
        }
        if new.shared == Some(true) && !caller.is_cloud_admin() {
            return Err(NetworkError::not_allowed("create_network:shared"));
        }
        if new.external == Some(true) && !caller.is_cloud_admin() {
            return Err(NetworkError::not_allowed("create_network:router:external"));
        }
        check_text("name", &new.name)?;
        check_text("description", &new.description)?;
        let mtu = self.check_mtu(new.mtu)?;
        let external = new.external.unwrap_or(false);
        // Only a private network of the caller's own project is charged: the provider's
        // public networks, and those an administrator makes for a project, are not.
        let charged = !external && project == own;
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        if charged {
            self.quotas
                .charge_in(
                    &mut tx,
                    &[Provision::new(
                        &project,
                        &caller.user_id,
                        PRIVATE_NETWORK_RESOURCE,
                        1,
                    )],
                )
                .await
                .map_err(|e| NetworkError::quota("network", e))?;
        }
        let row = NetworkRow {
            id: new_id(),
            project_id: project,
            name: new.name,
            description: new.description,
            admin_state_up: new.admin_state_up.unwrap_or(true),
            shared: new.shared.unwrap_or(false),
            external,
            mtu,
            port_security_enabled: new.port_security_enabled.unwrap_or(true),
            vni: q::next_vni(&mut tx).await?,
            charged_to: charged.then(|| caller.user_id.clone()),
            created_at: now,
            updated_at: now,
            revision: 1,
        };
        q::insert_network(&mut tx, &row).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a network's creation"))?;
        tracing::info!(network = %row.id, project = %row.project_id, vni = row.vni, "network created");
        Ok(network(row, Vec::new()))
    }

    fn check_mtu(&self, mtu: Option<i64>) -> Result<i64, NetworkError> {
        let Some(mtu) = mtu else {
            return Ok(self.settings.mtu);
        };
        if mtu > self.settings.mtu {
            return Err(NetworkError::invalid(format!(
                "Requested MTU is too big, maximum is {}",
                self.settings.mtu
            )));
        }
        if mtu < MIN_MTU {
            return Err(NetworkError::invalid(format!(
                "Requested MTU is too small, minimum is {MIN_MTU}"
            )));
        }
        Ok(mtu)
    }

    /// A network the caller sees: its project's, a shared or an external one.
    pub async fn network(&self, caller: &AuthContext, id: &str) -> Result<Network, NetworkError> {
        let row = self.visible_network_row(caller, id).await?;
        let subnets = q::network_subnets(self.db.pool(), id).await?;
        Ok(network(row, subnets.into_iter().map(|s| s.id).collect()))
    }

    pub(crate) async fn visible_network_row(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<NetworkRow, NetworkError> {
        let mut conn = self
            .db
            .pool()
            .acquire()
            .await
            .map_err(DbError::query("connect"))?;
        visible_network_row_in(&mut conn, caller, id).await
    }

    /// The networks the caller sees, oldest first (every network for an administrator).
    pub async fn networks(&self, caller: &AuthContext) -> Result<Vec<Network>, NetworkError> {
        let project = project_of(caller)?;
        let scope = (!caller.is_cloud_admin()).then_some(project);
        let rows = q::list_networks(self.db.pool(), scope).await?;
        let subnets = q::list_subnets(self.db.pool(), scope).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let ids = subnets
                    .iter()
                    .filter(|s| s.network_id == row.id)
                    .map(|s| s.id.clone())
                    .collect();
                network(row, ids)
            })
            .collect())
    }

    pub async fn update_network(
        &self,
        caller: &AuthContext,
        id: &str,
        update: NetworkUpdate,
    ) -> Result<Network, NetworkError> {
        let mut row = self.visible_network_row(caller, id).await?;
        if !owns(caller, &row.project_id) {
            return Err(NetworkError::not_allowed("update_network"));
        }
        if update.shared.is_some() && !caller.is_cloud_admin() {
            return Err(NetworkError::not_allowed("update_network:shared"));
        }
        if update.external.is_some() && !caller.is_cloud_admin() {
            return Err(NetworkError::not_allowed("update_network:router:external"));
        }
        if let Some(name) = update.name {
            check_text("name", &name)?;
            row.name = name;
        }
        if let Some(description) = update.description {
            check_text("description", &description)?;
            row.description = description;
        }
        if let Some(mtu) = update.mtu {
            row.mtu = self.check_mtu(Some(mtu))?;
        }
        // A charged network stays charged whatever it becomes: what was charged is
        // released when it is deleted.
        row.external = update.external.unwrap_or(row.external);
        row.admin_state_up = update.admin_state_up.unwrap_or(row.admin_state_up);
        row.shared = update.shared.unwrap_or(row.shared);
        row.port_security_enabled = update
            .port_security_enabled
            .unwrap_or(row.port_security_enabled);
        row.updated_at = now_micros();
        row.revision += 1;
        let mut tx = self.db.begin().await?;
        if !q::update_network(&mut tx, &row).await? {
            return Err(NetworkError::conflict(
                "Conflict",
                format!("Network {id} changed while it was being updated; try again."),
            ));
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a network's update"))?;
        self.network(caller, id).await
    }

    /// Deletes a network and its subnets; refused while it has ports.
    pub async fn delete_network(&self, caller: &AuthContext, id: &str) -> Result<(), NetworkError> {
        let row = self.visible_network_row(caller, id).await?;
        if !owns(caller, &row.project_id) {
            return Err(NetworkError::not_allowed("delete_network"));
        }
        let mut tx = self.db.begin().await?;
        // A port created at the same time locks the row too: it is counted, or it waits
        // and then finds no network.
        q::lock_network(&mut tx, id).await?;
        if q::count_network_ports(&mut *tx, id).await? > 0 {
            return Err(NetworkError::conflict(
                "NetworkInUse",
                format!(
                    "Unable to complete operation on network {id}. There are one or more \
                     ports still in use on the network."
                ),
            ));
        }
        for subnet in q::network_subnets(&mut *tx, id).await? {
            q::replace_pools(&mut tx, &subnet.id, &[]).await?;
            q::delete_subnet(&mut tx, &subnet.id).await?;
        }
        if !q::delete_network(&mut tx, id).await? {
            return Err(NetworkError::no_network(id));
        }
        if let Some(user) = &row.charged_to {
            self.quotas
                .charge_in(
                    &mut tx,
                    &[Provision::new(
                        &row.project_id,
                        user,
                        PRIVATE_NETWORK_RESOURCE,
                        -1,
                    )],
                )
                .await
                .map_err(NetworkError::Quota)?;
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a network's deletion"))?;
        tracing::info!(network = %id, "network deleted");
        Ok(())
    }
}

pub(crate) fn network(row: NetworkRow, subnets: Vec<String>) -> Network {
    Network {
        id: row.id,
        project_id: row.project_id,
        name: row.name,
        description: row.description,
        admin_state_up: row.admin_state_up,
        shared: row.shared,
        external: row.external,
        mtu: row.mtu,
        port_security_enabled: row.port_security_enabled,
        vni: row.vni,
        subnets,
        charged_to: row.charged_to,
        created_at: row.created_at,
        updated_at: row.updated_at,
        revision: row.revision,
    }
}

/// A network the caller sees, read on `conn` (a transaction's, which must not wait for
/// a second connection of the pool).
pub(crate) async fn visible_network_row_in(
    conn: &mut nefos_db::Connection,
    caller: &AuthContext,
    id: &str,
) -> Result<NetworkRow, NetworkError> {
    project_of(caller)?;
    match q::get_network(conn, id).await? {
        Some(row) if owns(caller, &row.project_id) || row.shared || row.external => Ok(row),
        _ => Err(NetworkError::no_network(id)),
    }
}
