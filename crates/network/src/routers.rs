//! Routers (Neutron's L3): a router joins private subnets (an interface on each, holding
//! the subnet's gateway address) to an external network (its gateway, an address of that
//! network), sending what goes out with the gateway's address (SNAT) and forwarding the
//! floating IPs it serves to their ports. A router runs on one node, chosen when it is
//! made (the node running the fewest routers); its interfaces and gateway are ports bound
//! to that node, so the node gets their networks like any other.

use std::collections::BTreeSet;
use std::net::IpAddr;

use nefos_db::network::{self as q, PortSelection, RouterRow};
use nefos_db::time::now_micros;
use nefos_db::{Connection, DbError, Transaction};
use nefos_identity::AuthContext;
use nefos_quota::Provision;

use crate::networks::visible_network_row_in;
use crate::ports::{fixed_ips, port, release};
use crate::{
    FixedIp, FixedIpRequest, NetworkError, Networks, NewPort, PORT_RESOURCE, Port, check_text,
    new_id, owns, project_of,
};

/// The `device_owner` of a router's interface on a private subnet.
pub const ROUTER_INTERFACE: &str = "network:router_interface";
/// The `device_owner` of a router's port on its external network.
pub const ROUTER_GATEWAY: &str = "network:router_gateway";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalGateway {
    pub network_id: String,
    pub enable_snat: bool,
    pub fixed_ips: Vec<FixedIp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Router {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub external_gateway: Option<ExternalGateway>,
    /// The node it runs on (administrators see it).
    pub node: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
}

/// A router's gateway as a request names it: the external network, and whether to SNAT
/// (default yes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRequest {
    pub network_id: String,
    pub enable_snat: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct NewRouter {
    pub name: String,
    pub description: String,
    pub admin_state_up: Option<bool>,
    pub project_id: Option<String>,
    pub external_gateway: Option<GatewayRequest>,
}

#[derive(Debug, Clone, Default)]
pub struct RouterUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    /// `Some(None)` clears the gateway.
    pub external_gateway: Option<Option<GatewayRequest>>,
}

/// What an interface added or removed is, in Neutron's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterInterface {
    pub router_id: String,
    pub project_id: String,
    pub port_id: String,
    pub network_id: String,
    pub subnet_ids: Vec<String>,
}

fn no_router(id: &str) -> NetworkError {
    NetworkError::NotFound {
        kind: "RouterNotFound",
        message: format!("Router {id} could not be found"),
    }
}

fn bad_router(message: impl std::fmt::Display) -> NetworkError {
    NetworkError::bad_request("BadRequest", format!("Bad router request: {message}."))
}

impl Networks {
    pub async fn create_router(
        &self,
        caller: &AuthContext,
        new: NewRouter,
    ) -> Result<Router, NetworkError> {
        let own = project_of(caller)?;
        let project = new.project_id.clone().unwrap_or_else(|| own.to_owned());
        if project != own && !caller.is_cloud_admin() {
            return Err(NetworkError::not_allowed("create_router:tenant_id"));
        }
        check_text("name", &new.name)?;
        check_text("description", &new.description)?;
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        let node = least_loaded_node(&mut tx).await?;
        let mut row = RouterRow {
            id: new_id(),
            project_id: project,
            name: new.name,
            description: new.description,
            admin_state_up: new.admin_state_up.unwrap_or(true),
            external_network_id: None,
            enable_snat: true,
            node_id: node,
            created_at: now,
            updated_at: now,
            revision: 1,
        };
        q::insert_router(&mut tx, &row).await?;
        if let Some(gateway) = new.external_gateway {
            self.set_gateway(&mut tx, caller, &mut row, &gateway)
                .await?;
            row.revision += 1;
            row.updated_at = now;
            q::update_router(&mut tx, &row).await?;
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a router's creation"))?;
        tracing::info!(router = %row.id, node = ?row.node_id, "router created");
        self.router_of(row).await
    }

    /// Gives `router` a gateway on external network `network` (in `tx`).
    async fn set_gateway(
        &self,
        tx: &mut Transaction,
        caller: &AuthContext,
        router: &mut RouterRow,
        gateway: &GatewayRequest,
    ) -> Result<(), NetworkError> {
        let network = gateway.network_id.as_str();
        let network_row = visible_network_row_in(tx, caller, network).await?;
        if !network_row.external {
            return Err(bad_router(format!(
                "Network {network} is not an external network"
            )));
        }
        let port = NewPort {
            network_id: network_row.id.clone(),
            device_id: router.id.clone(),
            device_owner: ROUTER_GATEWAY.to_owned(),
            port_security_enabled: Some(false),
            binding_host: router.node_id.clone(),
            ..NewPort::default()
        };
        let made = self
            .make_port(
                tx,
                &network_row,
                router.project_id.clone(),
                None,
                None,
                port,
            )
            .await?;
        if made.fixed_ips.is_empty() {
            return Err(NetworkError::conflict(
                "IpAddressGenerationFailure",
                format!("No more IP addresses available on network {network}."),
            ));
        }
        router.external_network_id = Some(network_row.id);
        router.enable_snat = gateway.enable_snat.unwrap_or(true);
        Ok(())
    }

    /// Removes `router`'s gateway port (in `tx`); refused while floating IPs use it.
    async fn clear_gateway(
        &self,
        tx: &mut Transaction,
        router: &mut RouterRow,
    ) -> Result<(), NetworkError> {
        if !q::router_floating_ips(&mut **tx, &router.id)
            .await?
            .is_empty()
        {
            return Err(NetworkError::conflict(
                "RouterExternalGatewayInUseByFloatingIp",
                format!(
                    "Gateway cannot be updated for router {}, since a gateway to external \
                     network {} is required by one or more floating IPs.",
                    router.id,
                    router.external_network_id.as_deref().unwrap_or_default()
                ),
            ));
        }
        for port in router_ports(tx, &router.id, ROUTER_GATEWAY).await? {
            drop_port(tx, &port).await?;
        }
        router.external_network_id = None;
        Ok(())
    }

    async fn visible_router_row(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<RouterRow, NetworkError> {
        project_of(caller)?;
        match q::get_router(self.db.pool(), id).await? {
            Some(row) if owns(caller, &row.project_id) => Ok(row),
            _ => Err(no_router(id)),
        }
    }

    async fn router_of(&self, row: RouterRow) -> Result<Router, NetworkError> {
        let mut conn = self
            .db
            .pool()
            .acquire()
            .await
            .map_err(DbError::query("connect"))?;
        let gateway = match &row.external_network_id {
            Some(network) => {
                let ips = router_ports(&mut conn, &row.id, ROUTER_GATEWAY)
                    .await?
                    .into_iter()
                    .flat_map(|p| p.fixed_ips)
                    .collect();
                Some(ExternalGateway {
                    network_id: network.clone(),
                    enable_snat: row.enable_snat,
                    fixed_ips: ips,
                })
            }
            None => None,
        };
        Ok(Router {
            id: row.id,
            project_id: row.project_id,
            name: row.name,
            description: row.description,
            admin_state_up: row.admin_state_up,
            external_gateway: gateway,
            node: row.node_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
            revision: row.revision,
        })
    }

    pub async fn router(&self, caller: &AuthContext, id: &str) -> Result<Router, NetworkError> {
        let row = self.visible_router_row(caller, id).await?;
        self.router_of(row).await
    }

    pub async fn routers(&self, caller: &AuthContext) -> Result<Vec<Router>, NetworkError> {
        let project = project_of(caller)?;
        let scope = (!caller.is_cloud_admin()).then_some(project);
        let mut routers = Vec::new();
        for row in q::list_routers(self.db.pool(), scope).await? {
            routers.push(self.router_of(row).await?);
        }
        Ok(routers)
    }

    pub async fn update_router(
        &self,
        caller: &AuthContext,
        id: &str,
        update: RouterUpdate,
    ) -> Result<Router, NetworkError> {
        self.visible_router_row(caller, id).await?;
        let mut tx = self.db.begin().await?;
        if !q::lock_router(&mut tx, id).await? {
            return Err(no_router(id));
        }
        let mut row = q::get_router(&mut *tx, id)
            .await?
            .ok_or_else(|| no_router(id))?;
        if let Some(name) = update.name {
            check_text("name", &name)?;
            row.name = name;
        }
        if let Some(description) = update.description {
            check_text("description", &description)?;
            row.description = description;
        }
        row.admin_state_up = update.admin_state_up.unwrap_or(row.admin_state_up);
        match update.external_gateway {
            None => {}
            Some(None) => self.clear_gateway(&mut tx, &mut row).await?,
            Some(Some(gateway)) => {
                if row.external_network_id.as_deref() == Some(gateway.network_id.as_str()) {
                    row.enable_snat = gateway.enable_snat.unwrap_or(row.enable_snat);
                } else {
                    if row.external_network_id.is_some() {
                        self.clear_gateway(&mut tx, &mut row).await?;
                    }
                    self.set_gateway(&mut tx, caller, &mut row, &gateway)
                        .await?;
                }
            }
        }
        row.updated_at = now_micros();
        row.revision += 1;
        if !q::update_router(&mut tx, &row).await? {
            return Err(NetworkError::conflict(
                "Conflict",
                format!("Router {id} changed meanwhile; try again."),
            ));
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a router's update"))?;
        self.router_of(row).await
    }

    pub async fn delete_router(&self, caller: &AuthContext, id: &str) -> Result<(), NetworkError> {
        self.visible_router_row(caller, id).await?;
        let mut tx = self.db.begin().await?;
        if !q::lock_router(&mut tx, id).await? {
            return Err(no_router(id));
        }
        let mut row = q::get_router(&mut *tx, id)
            .await?
            .ok_or_else(|| no_router(id))?;
        if !router_ports(&mut tx, id, ROUTER_INTERFACE)
            .await?
            .is_empty()
        {
            return Err(NetworkError::conflict(
                "RouterInUse",
                format!("Router {id} still has ports"),
            ));
        }
        self.clear_gateway(&mut tx, &mut row).await?;
        q::delete_router(&mut tx, id).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a router's deletion"))?;
        tracing::info!(router = %id, "router deleted");
        Ok(())
    }

    /// Gives the router an interface on `subnet_id` (holding the subnet's gateway
    /// address) or takes the caller's port `port_id` as one.
    pub async fn add_router_interface(
        &self,
        caller: &AuthContext,
        id: &str,
        subnet_id: Option<&str>,
        port_id: Option<&str>,
    ) -> Result<RouterInterface, NetworkError> {
        let router = self.visible_router_row(caller, id).await?;
        let mut tx = self.db.begin().await?;
        if !q::lock_router(&mut tx, id).await? {
            return Err(no_router(id));
        }
        let attached: BTreeSet<String> = router_ports(&mut tx, id, ROUTER_INTERFACE)
            .await?
            .into_iter()
            .flat_map(|p| p.fixed_ips)
            .map(|ip| ip.subnet_id)
            .collect();
        let port = match (subnet_id, port_id) {
            (Some(subnet_id), None) => {
                let Some(subnet) = q::get_subnet(&mut *tx, subnet_id).await? else {
                    return Err(NetworkError::no_subnet(subnet_id));
                };
                let network = visible_network_row_in(&mut tx, caller, &subnet.network_id)
                    .await
                    .map_err(|_| NetworkError::no_subnet(subnet_id))?;
                if !owns(caller, &subnet.project_id) && !network.shared {
                    return Err(NetworkError::no_subnet(subnet_id));
                }
                if network.external {
                    return Err(bad_router(format!(
                        "Router {id} cannot have an interface on external network {}",
                        network.id
                    )));
                }
                let Some(gateway) = subnet.gateway_ip.as_deref() else {
                    return Err(bad_router(format!(
                        "Subnet {subnet_id} does not have a gateway IP"
                    )));
                };
                if attached.contains(subnet_id) {
                    return Err(bad_router(format!(
                        "Router already has a port on subnet {subnet_id}"
                    )));
                }
                let gateway: IpAddr = gateway.parse().map_err(|_| NetworkError::Corrupt {
                    what: format!("subnet {subnet_id}'s gateway"),
                })?;
                let interface = NewPort {
                    network_id: network.id.clone(),
                    device_id: id.to_owned(),
                    device_owner: ROUTER_INTERFACE.to_owned(),
                    port_security_enabled: Some(false),
                    binding_host: router.node_id.clone(),
                    fixed_ips: Some(vec![FixedIpRequest {
                        subnet_id: Some(subnet_id.to_owned()),
                        ip_address: Some(gateway),
                    }]),
                    ..NewPort::default()
                };
                self.make_port(
                    &mut tx,
                    &network,
                    router.project_id.clone(),
                    None,
                    None,
                    interface,
                )
                .await
                .map_err(|error| match error {
                    NetworkError::Conflict {
                        kind: "IpAddressAlreadyAllocated",
                        ..
                    } => bad_router(format!(
                        "The gateway {gateway} of subnet {subnet_id} is held by a port"
                    )),
                    other => other,
                })?
            }
            (None, Some(port_id)) => {
                let Some(mut row) = q::get_port(&mut *tx, port_id).await? else {
                    return Err(NetworkError::no_port(port_id));
                };
                if !owns(caller, &row.project_id) {
                    return Err(NetworkError::no_port(port_id));
                }
                if !row.device_id.is_empty() {
                    return Err(NetworkError::conflict(
                        "PortInUse",
                        format!("Port {port_id} is in use by {}.", row.device_id),
                    ));
                }
                let held = q::port_addresses(&mut *tx, port_id).await?;
                if held.len() != 1 || attached.contains(&held[0].subnet_id) {
                    return Err(bad_router(format!(
                        "Port {port_id} must have exactly one address, on a subnet the \
                         router has no interface on"
                    )));
                }
                row.device_id = id.to_owned();
                row.device_owner = ROUTER_INTERFACE.to_owned();
                row.binding_host = router.node_id.clone();
                row.port_security_enabled = false;
                row.updated_at = now_micros();
                row.revision += 1;
                q::update_port(&mut tx, &row).await?;
                q::set_port_security_groups(&mut tx, port_id, &[]).await?;
                port(row, fixed_ips(&held))
            }
            _ => {
                return Err(NetworkError::invalid(
                    "Either subnet_id or port_id must be specified",
                ));
            }
        };
        tx.commit()
            .await
            .map_err(DbError::query("commit a router interface"))?;
        tracing::info!(router = %id, port = %port.id, "router interface added");
        Ok(interface_of(&router, &port))
    }

    /// Removes the router's interface on `subnet_id`, or port `port_id`; refused while a
    /// floating IP reaches a port of that subnet through the router.
    pub async fn remove_router_interface(
        &self,
        caller: &AuthContext,
        id: &str,
        subnet_id: Option<&str>,
        port_id: Option<&str>,
    ) -> Result<RouterInterface, NetworkError> {
        let router = self.visible_router_row(caller, id).await?;
        let mut tx = self.db.begin().await?;
        if !q::lock_router(&mut tx, id).await? {
            return Err(no_router(id));
        }
        let interfaces = router_ports(&mut tx, id, ROUTER_INTERFACE).await?;
        let found = interfaces.into_iter().find(|p| {
            port_id.is_none_or(|wanted| p.id == wanted)
                && subnet_id
                    .is_none_or(|wanted| p.fixed_ips.iter().any(|ip| ip.subnet_id == wanted))
        });
        let Some(found) = found else {
            return Err(NetworkError::NotFound {
                kind: "RouterInterfaceNotFoundForSubnet",
                message: format!(
                    "Router {id} has no interface on subnet {}",
                    subnet_id.or(port_id).unwrap_or_default()
                ),
            });
        };
        let subnets: BTreeSet<&str> = found
            .fixed_ips
            .iter()
            .map(|ip| ip.subnet_id.as_str())
            .collect();
        for floating in q::router_floating_ips(&mut *tx, id).await? {
            let Some(fixed) = floating.fixed_ip_address.as_deref() else {
                continue;
            };
            let on_subnet = match &floating.port_id {
                Some(port) => q::port_addresses(&mut *tx, port)
                    .await?
                    .iter()
                    .any(|a| a.address == fixed && subnets.contains(a.subnet_id.as_str())),
                None => false,
            };
            if on_subnet {
                return Err(NetworkError::conflict(
                    "RouterInterfaceInUseByFloatingIP",
                    format!(
                        "Router interface for subnet {} on router {id} cannot be deleted, as \
                         it is required by one or more floating IPs.",
                        subnets.iter().next().copied().unwrap_or_default()
                    ),
                ));
            }
        }
        let charged = q::get_port(&mut *tx, &found.id)
            .await?
            .and_then(|row| row.charged_to.map(|user| (row.project_id, user)));
        drop_port(&mut tx, &found).await?;
        // A port the project made and gave the router counted against its quota.
        if let Some((project, user)) = charged {
            self.quotas
                .charge_in(
                    &mut tx,
                    &[Provision::new(&project, &user, PORT_RESOURCE, -1)],
                )
                .await
                .map_err(NetworkError::Quota)?;
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a router interface's removal"))?;
        tracing::info!(router = %id, port = %found.id, "router interface removed");
        Ok(interface_of(&router, &found))
    }

    /// The nodes a change of `router` concerns: its own and those of its networks.
    pub async fn hosts_of_router(&self, router: &str) -> Result<Vec<String>, NetworkError> {
        let mut conn = self
            .db
            .pool()
            .acquire()
            .await
            .map_err(DbError::query("connect"))?;
        let mut hosts = BTreeSet::new();
        if let Some(row) = q::get_router(&mut *conn, router).await?
            && let Some(node) = row.node_id
        {
            hosts.insert(node);
        }
        let networks: Vec<String> = router_ports(&mut conn, router, ROUTER_INTERFACE)
            .await?
            .into_iter()
            .map(|p| p.network_id)
            .collect();
        hosts.extend(q::hosts_on_networks(&mut *conn, &networks).await?);
        Ok(hosts.into_iter().collect())
    }
}

fn interface_of(router: &RouterRow, port: &Port) -> RouterInterface {
    RouterInterface {
        router_id: router.id.clone(),
        project_id: router.project_id.clone(),
        port_id: port.id.clone(),
        network_id: port.network_id.clone(),
        subnet_ids: port
            .fixed_ips
            .iter()
            .map(|ip| ip.subnet_id.clone())
            .collect(),
    }
}

/// The ports of router `router` with `owner`.
pub(crate) async fn router_ports(
    conn: &mut Connection,
    router: &str,
    owner: &str,
) -> Result<Vec<Port>, NetworkError> {
    let selection = PortSelection {
        device: Some(router),
        ..PortSelection::default()
    };
    let mut ports = Vec::new();
    for row in q::list_ports(&mut *conn, selection).await? {
        if row.device_owner != owner {
            continue;
        }
        let held = q::port_addresses(&mut *conn, &row.id).await?;
        ports.push(port(row, fixed_ips(&held)));
    }
    Ok(ports)
}

/// Deletes a port the service made for itself (no quota was charged for it).
pub(crate) async fn drop_port(conn: &mut Connection, dropped: &Port) -> Result<(), NetworkError> {
    let now = now_micros();
    for allocation in q::port_addresses(&mut *conn, &dropped.id).await? {
        release(conn, &dropped.id, &allocation, now).await?;
    }
    q::delete_port(conn, &dropped.id).await?;
    Ok(())
}

/// The node that runs the fewest routers, among those with a public interface (where a
/// router's gateway and floating IPs can reach the provider's network), or among every
/// node that realises networks where none has one.
async fn least_loaded_node(conn: &mut Connection) -> Result<Option<String>, NetworkError> {
    let counts = q::routers_per_node(&mut *conn).await?;
    let nodes = q::router_nodes(&mut *conn).await?;
    Ok(nodes.into_iter().min_by_key(|node| {
        counts
            .iter()
            .find(|(n, _)| n == node)
            .map_or(0, |(_, count)| *count)
    }))
}
