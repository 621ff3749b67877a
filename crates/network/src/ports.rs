//! Ports: a MAC and fixed IPs on a network, and the device they belong to. A port of the
//! caller's own project is charged to `cyclades.port`; its addresses are taken (and
//! released) in the transaction that writes the port, each recorded in the IP history.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;

use nefos_db::network::{
    self as q, AddressHistoryRow, AllocationRow, NetworkRow, PoolScope, PortRow, PortSelection,
};
use nefos_db::time::now_micros;
use nefos_db::{Connection, DbError, Transaction};
use nefos_identity::AuthContext;
use nefos_quota::Provision;
use rand::Rng;

use crate::address::{IpVersion, format_mac, parse_mac};
use crate::address_pairs::{self, AddressPairRequest};
use crate::ipam::{allocate_any, allocate_exact, allocate_gateway, autoconfigured, slaac_address};
use crate::networks::visible_network_row_in;
use crate::subnets::subnet;
use crate::{
    AddressHolder, FLOATING_IP_OWNER, FixedIp, NetworkError, Networks, PORT_RESOURCE, Port,
    ROUTER_GATEWAY, ROUTER_INTERFACE, Subnet, check_text, new_id, owns, project_of,
};

/// One entry of a request's `fixed_ips`: an address of a subnet, any address of a
/// subnet, or an address of whichever subnet holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixedIpRequest {
    pub subnet_id: Option<String>,
    pub ip_address: Option<IpAddr>,
}

/// A port to create.
#[derive(Debug, Clone, Default)]
pub struct NewPort {
    pub network_id: String,
    /// Another project's: administrators only.
    pub project_id: Option<String>,
    pub name: String,
    pub description: String,
    pub mac_address: Option<String>,
    pub admin_state_up: Option<bool>,
    pub device_id: String,
    pub device_owner: String,
    /// `None`: the network's setting.
    pub port_security_enabled: Option<bool>,
    /// `None`: an address of the first IPv4 subnet with room, of the first stateful IPv6
    /// one, and of every SLAAC one.
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
    pub binding_host: Option<String>,
    /// `None`: the project's default group (with port security on).
    pub security_groups: Option<Vec<String>>,
    pub allowed_address_pairs: Option<Vec<AddressPairRequest>>,
}

/// What an update changes; `None` leaves it.
#[derive(Debug, Clone, Default)]
pub struct PortUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub mac_address: Option<String>,
    pub admin_state_up: Option<bool>,
    pub device_id: Option<String>,
    pub device_owner: Option<String>,
    pub port_security_enabled: Option<bool>,
    /// Replaces the port's addresses: those named again are kept.
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
    pub binding_host: Option<Option<String>>,
    /// Replaces the port's security groups.
    pub security_groups: Option<Vec<String>>,
    /// Replaces the port's allowed address pairs.
    pub allowed_address_pairs: Option<Vec<AddressPairRequest>>,
}

/// OpenStack's base MAC: ports' addresses are this prefix and three random bytes.
const MAC_PREFIX: [u8; 3] = [0xfa, 0x16, 0x3e];

/// How many random MACs a port tries before giving up (each collision is one in 2^24).
const MAC_ATTEMPTS: usize = 16;

impl Networks {
    pub async fn create_port(
        &self,
        caller: &AuthContext,
        new: NewPort,
    ) -> Result<Port, NetworkError> {
        let mut tx = self.db.begin().await?;
        let port = self.create_port_in(&mut tx, caller, new).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a port's creation"))?;
        tracing::info!(port = %port.id, network = %port.network_id, mac = %port.mac_address, "port created");
        Ok(port)
    }

    /// [`Networks::create_port`] in the caller's transaction (a server's creation makes
    /// its ports in its own).
    pub async fn create_port_in(
        &self,
        tx: &mut Transaction,
        caller: &AuthContext,
        new: NewPort,
    ) -> Result<Port, NetworkError> {
        let own = project_of(caller)?;
        let network = visible_network_row_in(tx, caller, &new.network_id).await?;
        let network_owner = owns(caller, &network.project_id);
        if !network_owner && !network.shared {
            return Err(NetworkError::not_allowed("create_port"));
        }
        let project = new.project_id.clone().unwrap_or_else(|| own.to_owned());
        if project != own && !caller.is_cloud_admin() {
            return Err(NetworkError::not_allowed("create_port:tenant_id"));
        }
        if new.mac_address.is_some() && !network_owner {
            return Err(NetworkError::not_allowed("create_port:mac_address"));
        }
        let named_address = new
            .fixed_ips
            .iter()
            .flatten()
            .any(|ip| ip.ip_address.is_some());
        if named_address && !network_owner {
            return Err(NetworkError::not_allowed(
                "create_port:fixed_ips:ip_address",
            ));
        }
        if new.device_owner.starts_with("network:") && !network_owner {
            return Err(NetworkError::not_allowed("create_port:device_owner"));
        }
        if new
            .allowed_address_pairs
            .as_ref()
            .is_some_and(|pairs| !pairs.is_empty())
            && !network_owner
        {
            return Err(NetworkError::not_allowed(
                "create_port:allowed_address_pairs",
            ));
        }
        if new.binding_host.is_some() && !caller.is_cloud_admin() {
            return Err(NetworkError::not_allowed("create_port:binding:host_id"));
        }
        // Without port security a port may send as any MAC and address: on another
        // project's shared network that would be spoofing its neighbours.
        if new.port_security_enabled.is_some() && !network_owner {
            return Err(NetworkError::not_allowed(
                "create_port:port_security_enabled",
            ));
        }
        check_text("name", &new.name)?;
        check_text("description", &new.description)?;
        check_text("device_id", &new.device_id)?;
        check_text("device_owner", &new.device_owner)?;
        let mac = match &new.mac_address {
            Some(text) => Some(check_mac(text)?),
            None => None,
        };
        let charged = (project == own).then(|| caller.user_id.clone());
        self.make_port(tx, &network, project, charged, mac, new)
            .await
    }

    /// Writes a port the caller may make: its row (charged to `charged_to`'s quota),
    /// its addresses and its groups. Routers and floating IPs make theirs here too.
    pub(crate) async fn make_port(
        &self,
        tx: &mut Transaction,
        network: &NetworkRow,
        project: String,
        charged_to: Option<String>,
        mac: Option<String>,
        new: NewPort,
    ) -> Result<Port, NetworkError> {
        let now = now_micros();
        let mut row = PortRow {
            id: new_id(),
            network_id: network.id.clone(),
            project_id: project,
            name: new.name,
            description: new.description,
            mac_address: mac.clone().unwrap_or_else(random_mac),
            admin_state_up: new.admin_state_up.unwrap_or(true),
            status: "DOWN".to_owned(),
            device_id: new.device_id,
            device_owner: new.device_owner,
            port_security_enabled: new
                .port_security_enabled
                .unwrap_or(network.port_security_enabled),
            binding_host: new.binding_host,
            charged_to,
            allowed_address_pairs: "[]".to_owned(),
            created_at: now,
            updated_at: now,
            revision: 1,
        };
        if let Some(requests) = new.allowed_address_pairs {
            let pairs = address_pairs::checked(requests, &row.mac_address)?;
            if !pairs.is_empty() && !row.port_security_enabled {
                return Err(address_pairs::security_required());
            }
            row.allowed_address_pairs = address_pairs::to_row(&pairs);
        }
        if !q::share_network(tx, &network.id, self.db.backend()).await? {
            return Err(NetworkError::no_network(&network.id));
        }
        let mut attempts = 0;
        while !q::insert_port(tx, &row).await? {
            attempts += 1;
            if mac.is_some() || attempts == MAC_ATTEMPTS {
                return Err(NetworkError::conflict(
                    "MacAddressInUse",
                    format!(
                        "Unable to complete operation for network {}. The mac address {} is \
                         in use.",
                        network.id, row.mac_address
                    ),
                ));
            }
            row.mac_address = random_mac();
        }
        let subnets = network_subnets(tx, &network.id).await?;
        let fixed_ips = match new.fixed_ips {
            Some(requests) => {
                let mut taken = Vec::new();
                for request in requests {
                    taken.push(take_requested(tx, &subnets, &row, &request).await?);
                }
                // As Neutron: a port has its address on every SLAAC subnet of its network
                // whatever else it asked for (a router's interface only where named).
                if row.device_owner != ROUTER_INTERFACE {
                    take_autoconfigured(tx, &subnets, &row, &mut taken).await?;
                }
                taken
            }
            None => take_default(tx, &subnets, &row).await?,
        };
        for ip in &fixed_ips {
            open_history(tx, &row, ip, now).await?;
        }
        let groups = match (row.port_security_enabled, new.security_groups) {
            (true, requested) => {
                self.groups_for_port(tx, &row.project_id, requested.as_deref())
                    .await?
            }
            (false, Some(requested)) if !requested.is_empty() => {
                return Err(security_needed());
            }
            (false, _) => Vec::new(),
        };
        q::set_port_security_groups(tx, &row.id, &groups).await?;
        // Charged last: the holding's row stays locked only until the commit.
        if let Some(user) = &row.charged_to {
            self.quotas
                .charge_in(
                    tx,
                    &[Provision::new(&row.project_id, user, PORT_RESOURCE, 1)],
                )
                .await
                .map_err(|e| NetworkError::quota("port", e))?;
        }
        let mut created = port(row, fixed_ips);
        created.security_groups = groups;
        Ok(created)
    }

    pub async fn port(&self, caller: &AuthContext, id: &str) -> Result<Port, NetworkError> {
        let row = self.visible_port_row(caller, id).await?;
        let addresses = q::port_addresses(self.db.pool(), &row.id).await?;
        let groups = q::groups_of_port(self.db.pool(), &row.id).await?;
        let mut found = port(row, fixed_ips(&addresses));
        found.security_groups = groups;
        Ok(found)
    }

    pub(crate) async fn visible_port_row(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<PortRow, NetworkError> {
        project_of(caller)?;
        let Some(row) = q::get_port(self.db.pool(), id).await? else {
            return Err(NetworkError::no_port(id));
        };
        if owns(caller, &row.project_id) {
            return Ok(row);
        }
        // The network's owner sees (and may delete) ports other projects made on it.
        match q::get_network(self.db.pool(), &row.network_id).await? {
            Some(network) if owns(caller, &network.project_id) => Ok(row),
            _ => Err(NetworkError::no_port(id)),
        }
    }

    /// The caller's ports (every port for an administrator), narrowed to a network or a
    /// device when given, oldest first.
    pub async fn ports(
        &self,
        caller: &AuthContext,
        network: Option<&str>,
        device: Option<&str>,
    ) -> Result<Vec<Port>, NetworkError> {
        let selection = PortSelection {
            network,
            device,
            ..PortSelection::default()
        };
        self.select_ports(caller, selection).await
    }

    /// The caller's ports of any of `devices` (a page of servers), oldest first.
    pub async fn ports_of_devices(
        &self,
        caller: &AuthContext,
        devices: &[String],
    ) -> Result<Vec<Port>, NetworkError> {
        let selection = PortSelection {
            devices: Some(devices),
            ..PortSelection::default()
        };
        self.select_ports(caller, selection).await
    }

    /// The ports `selection` names among the caller's (every port for an administrator).
    async fn select_ports(
        &self,
        caller: &AuthContext,
        selection: PortSelection<'_>,
    ) -> Result<Vec<Port>, NetworkError> {
        let project = project_of(caller)?;
        let selection = PortSelection {
            project: (!caller.is_cloud_admin()).then_some(project),
            ..selection
        };
        let rows = q::list_ports(self.db.pool(), selection).await?;
        let addresses = q::selected_port_addresses(self.db.pool(), selection).await?;
        let mut by_port: HashMap<&str, Vec<AllocationRow>> = HashMap::new();
        for allocation in &addresses {
            by_port
                .entry(allocation.port_id.as_str())
                .or_default()
                .push(allocation.clone());
        }
        let ports = rows
            .into_iter()
            .map(|row| {
                let ips = fixed_ips(by_port.get(row.id.as_str()).map_or(&[][..], |v| v));
                port(row, ips)
            })
            .collect();
        let mut conn = self
            .db
            .pool()
            .acquire()
            .await
            .map_err(DbError::query("connect"))?;
        with_groups(&mut conn, ports).await
    }

    pub async fn update_port(
        &self,
        caller: &AuthContext,
        id: &str,
        update: PortUpdate,
    ) -> Result<Port, NetworkError> {
        let mut row = self.visible_port_row(caller, id).await?;
        // The network's owner sees other projects' ports on it, and may delete them, but
        // changes only its own.
        if !owns(caller, &row.project_id) {
            return Err(NetworkError::not_allowed("update_port"));
        }
        let network = q::get_network(self.db.pool(), &row.network_id)
            .await?
            .ok_or_else(|| NetworkError::no_port(id))?;
        let network_owner = owns(caller, &network.project_id);
        if update.port_security_enabled.is_some() && !network_owner {
            return Err(NetworkError::not_allowed(
                "update_port:port_security_enabled",
            ));
        }
        if update.mac_address.is_some() && !caller.is_cloud_admin() {
            return Err(NetworkError::not_allowed("update_port:mac_address"));
        }
        if update.binding_host.is_some() && !caller.is_cloud_admin() {
            return Err(NetworkError::not_allowed("update_port:binding:host_id"));
        }
        if update
            .allowed_address_pairs
            .as_ref()
            .is_some_and(|pairs| !pairs.is_empty())
            && !network_owner
        {
            return Err(NetworkError::not_allowed(
                "update_port:allowed_address_pairs",
            ));
        }
        let named_address = update
            .fixed_ips
            .iter()
            .flatten()
            .any(|ip| ip.ip_address.is_some());
        if named_address && !network_owner {
            return Err(NetworkError::not_allowed(
                "update_port:fixed_ips:ip_address",
            ));
        }
        if update
            .device_owner
            .as_deref()
            .is_some_and(|o| o.starts_with("network:"))
            && !network_owner
        {
            return Err(NetworkError::not_allowed("update_port:device_owner"));
        }
        for (field, value) in [
            ("name", &update.name),
            ("description", &update.description),
            ("device_id", &update.device_id),
            ("device_owner", &update.device_owner),
        ] {
            if let Some(value) = value {
                check_text(field, value)?;
            }
        }
        let moved = update
            .device_id
            .as_ref()
            .is_some_and(|d| *d != row.device_id);
        if let Some(mac) = &update.mac_address {
            row.mac_address = check_mac(mac)?;
        }
        row.name = update.name.unwrap_or(row.name);
        row.description = update.description.unwrap_or(row.description);
        row.admin_state_up = update.admin_state_up.unwrap_or(row.admin_state_up);
        row.device_id = update.device_id.unwrap_or(row.device_id);
        row.device_owner = update.device_owner.unwrap_or(row.device_owner);
        row.port_security_enabled = update
            .port_security_enabled
            .unwrap_or(row.port_security_enabled);
        if let Some(host) = update.binding_host {
            row.binding_host = host;
        }
        if let Some(requests) = update.allowed_address_pairs {
            let pairs = address_pairs::checked(requests, &row.mac_address)?;
            row.allowed_address_pairs = address_pairs::to_row(&pairs);
        }
        if !row.port_security_enabled
            && !address_pairs::from_row(&row.allowed_address_pairs, &row.id).is_empty()
        {
            return Err(address_pairs::security_required());
        }
        let now = now_micros();
        row.updated_at = now;
        row.revision += 1;
        let mut tx = self.db.begin().await?;
        // Addresses are taken under the network's lock, as at a port's creation.
        if !q::lock_network(&mut tx, &row.network_id).await? {
            return Err(NetworkError::no_port(id));
        }
        if update.mac_address.is_some() {
            let subnets = network_subnets(&mut tx, &row.network_id).await?;
            let derived = q::port_addresses(&mut *tx, id).await?.into_iter().any(|a| {
                subnets
                    .iter()
                    .any(|s| s.id == a.subnet_id && autoconfigured(s))
            });
            if derived {
                return Err(NetworkError::conflict(
                    "PortBound",
                    format!(
                        "Port {id} holds SLAAC addresses made from its MAC: remove them \
                         (fixed_ips) before changing the MAC."
                    ),
                ));
            }
        }
        let written = q::update_port(&mut tx, &row).await.map_err(|error| match error {
            DbError::Conflict { .. } => NetworkError::conflict(
                "MacAddressInUse",
                format!(
                    "Unable to complete operation for network {}. The mac address {} is in use.",
                    row.network_id, row.mac_address
                ),
            ),
            other => NetworkError::Db(other),
        })?;
        if !written {
            return Err(NetworkError::conflict(
                "Conflict",
                format!("Port {id} changed while it was being updated; try again."),
            ));
        }
        if moved {
            // The device that held the addresses until now keeps its entries, closed.
            for entry in q::open_address_entries(&mut *tx, id).await? {
                q::close_address_history(&mut tx, id, &entry.address, now).await?;
                let Ok(ip_address) = IpAddr::from_str(&entry.address) else {
                    continue;
                };
                let ip = FixedIp {
                    subnet_id: entry.subnet_id,
                    ip_address,
                };
                open_history(&mut tx, &row, &ip, now).await?;
            }
        }
        if let Some(requests) = update.fixed_ips {
            replace_addresses(&mut tx, &row, requests, now).await?;
        }
        let current = q::groups_of_port(&mut *tx, id).await?;
        let groups = match update.security_groups {
            Some(requested) if !requested.is_empty() && !row.port_security_enabled => {
                return Err(security_needed());
            }
            Some(requested) => {
                self.groups_for_port(&mut tx, &row.project_id, Some(&requested))
                    .await?
            }
            None if !row.port_security_enabled && !current.is_empty() => {
                return Err(NetworkError::conflict(
                    "PortSecurityPortHasSecurityGroup",
                    "Port has security group associated. Cannot disable port security or IP \
                     address until security group is removed",
                ));
            }
            // Port security turned on: the port joins its project's default group.
            None if row.port_security_enabled && current.is_empty() => {
                self.groups_for_port(&mut tx, &row.project_id, None).await?
            }
            None => current,
        };
        q::set_port_security_groups(&mut tx, id, &groups).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a port's update"))?;
        self.port(caller, id).await
    }

    /// Deletes a port, releasing its addresses and its quota.
    pub async fn delete_port(&self, caller: &AuthContext, id: &str) -> Result<(), NetworkError> {
        let row = self.visible_port_row(caller, id).await?;
        if is_service_port(&row.device_owner) {
            return Err(NetworkError::conflict(
                "L3PortInUse",
                format!(
                    "Port {id} has owner {} and therefore cannot be deleted directly via the \
                     port API.",
                    row.device_owner
                ),
            ));
        }
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        // Locked first, so that no update adds an address between reading and deleting.
        if !q::lock_port(&mut tx, id).await? {
            return Err(NetworkError::no_port(id));
        }
        for allocation in q::port_addresses(&mut *tx, &row.id).await? {
            release(&mut tx, &row.id, &allocation, now).await?;
        }
        if !q::delete_port(&mut tx, id).await? {
            return Err(NetworkError::no_port(id));
        }
        q::set_port_security_groups(&mut tx, id, &[]).await?;
        q::disassociate_port(&mut tx, id, now).await?;
        if let Some(user) = &row.charged_to {
            self.quotas
                .charge_in(
                    &mut tx,
                    &[Provision::new(&row.project_id, user, PORT_RESOURCE, -1)],
                )
                .await
                .map_err(NetworkError::Quota)?;
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a port's deletion"))?;
        tracing::info!(port = %id, "port deleted");
        Ok(())
    }
}

/// Whether a port is one the service made for a router or a floating IP: those go with
/// what they serve, never on their own.
pub(crate) fn is_service_port(device_owner: &str) -> bool {
    [ROUTER_INTERFACE, ROUTER_GATEWAY, FLOATING_IP_OWNER].contains(&device_owner)
}

fn security_needed() -> NetworkError {
    NetworkError::bad_request(
        "PortSecurityAndIPRequiredForSecurityGroups",
        "Port security must be enabled and port must have an IP address in order to use \
         security groups.",
    )
}

/// Fills in the security groups of `ports`.
pub(crate) async fn with_groups(
    conn: &mut Connection,
    mut ports: Vec<Port>,
) -> Result<Vec<Port>, NetworkError> {
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    for (port, group) in q::port_security_groups(&mut *conn).await? {
        groups.entry(port).or_default().push(group);
    }
    for port in &mut ports {
        port.security_groups = groups.remove(&port.id).unwrap_or_default();
        port.security_groups.sort();
    }
    Ok(ports)
}

pub(crate) fn check_mac(text: &str) -> Result<String, NetworkError> {
    match parse_mac(&text.to_ascii_lowercase()) {
        // A port's MAC is a unicast address.
        Some(mac) if mac[0] & 1 == 0 && mac != [0; 6] => Ok(format_mac(mac)),
        _ => Err(NetworkError::invalid(format!(
            "'{text}' is not a valid MAC address"
        ))),
    }
}

fn random_mac() -> String {
    let tail: [u8; 3] = rand::thread_rng().r#gen();
    format_mac([
        MAC_PREFIX[0],
        MAC_PREFIX[1],
        MAC_PREFIX[2],
        tail[0],
        tail[1],
        tail[2],
    ])
}

async fn network_subnets(
    conn: &mut Connection,
    network: &str,
) -> Result<Vec<Subnet>, NetworkError> {
    let rows = q::network_subnets(&mut *conn, network).await?;
    let pools = q::subnet_pools(&mut *conn, PoolScope::Network(network)).await?;
    rows.into_iter().map(|row| subnet(row, &pools)).collect()
}

fn exhausted(network: &str) -> NetworkError {
    NetworkError::conflict(
        "IpAddressGenerationFailure",
        format!("No more IP addresses available on network {network}."),
    )
}

/// The addresses a port gets when its request names none.
async fn take_default(
    conn: &mut Connection,
    subnets: &[Subnet],
    port: &PortRow,
) -> Result<Vec<FixedIp>, NetworkError> {
    let mut taken = Vec::new();
    for version in [IpVersion::V4, IpVersion::V6] {
        let pooled: Vec<&Subnet> = subnets
            .iter()
            .filter(|s| s.cidr.version() == version && !autoconfigured(s))
            .collect();
        if pooled.is_empty() {
            continue;
        }
        let mut found = None;
        for subnet in pooled {
            if let Some(address) = allocate_any(conn, subnet, &port.id).await? {
                found = Some(FixedIp {
                    subnet_id: subnet.id.clone(),
                    ip_address: address,
                });
                break;
            }
        }
        taken.push(found.ok_or_else(|| exhausted(&port.network_id))?);
    }
    take_autoconfigured(conn, subnets, port, &mut taken).await?;
    Ok(taken)
}

/// A new SLAAC subnet's address for every port already on its network (as Neutron does;
/// a router's ports and the service's own take addresses only where they are named), in
/// the caller's transaction, which holds the network.
pub(crate) async fn give_autoconfigured_addresses(
    tx: &mut Transaction,
    subnet: &Subnet,
) -> Result<(), NetworkError> {
    let selection = PortSelection {
        network: Some(&subnet.network_id),
        ..PortSelection::default()
    };
    let now = now_micros();
    for row in q::list_ports(&mut **tx, selection).await? {
        if is_service_port(&row.device_owner) {
            continue;
        }
        let address = slaac_address(subnet, &row.mac_address)?;
        allocate_exact(tx, subnet, &row.id, address).await?;
        let ip = FixedIp {
            subnet_id: subnet.id.clone(),
            ip_address: address,
        };
        open_history(tx, &row, &ip, now).await?;
        q::touch_port(tx, &row.id, now).await?;
    }
    Ok(())
}

/// The port's SLAAC address on each autoconfigured subnet it has none on yet, added to
/// `taken`.
async fn take_autoconfigured(
    conn: &mut Connection,
    subnets: &[Subnet],
    port: &PortRow,
    taken: &mut Vec<FixedIp>,
) -> Result<(), NetworkError> {
    for subnet in subnets.iter().filter(|s| autoconfigured(s)) {
        if taken.iter().any(|ip| ip.subnet_id == subnet.id) {
            continue;
        }
        let address = slaac_address(subnet, &port.mac_address)?;
        allocate_exact(conn, subnet, &port.id, address).await?;
        taken.push(FixedIp {
            subnet_id: subnet.id.clone(),
            ip_address: address,
        });
    }
    Ok(())
}

/// The subnet of the network a request names, by id or by an address it holds.
fn requested_subnet<'s>(
    subnets: &'s [Subnet],
    network: &str,
    request: &FixedIpRequest,
) -> Result<&'s Subnet, NetworkError> {
    match (&request.subnet_id, request.ip_address) {
        (Some(id), address) => {
            let subnet = subnets.iter().find(|s| s.id == *id).ok_or_else(|| {
                NetworkError::invalid(format!(
                    "Failed to create port on network {network}, because fixed_ips included \
                     invalid subnet {id}"
                ))
            })?;
            if let Some(address) = address
                && !subnet.cidr.contains(address)
            {
                return Err(NetworkError::bad_request(
                    "InvalidIpForSubnet",
                    format!("IP address {address} is not a valid IP for the specified subnet."),
                ));
            }
            Ok(subnet)
        }
        (None, Some(address)) => subnets
            .iter()
            .find(|s| s.cidr.contains(address))
            .ok_or_else(|| {
                NetworkError::bad_request(
                    "InvalidIpForNetwork",
                    format!(
                        "IP address {address} is not a valid IP for any of the subnets on the \
                         specified network."
                    ),
                )
            }),
        (None, None) => Err(NetworkError::invalid(
            "each entry of fixed_ips names a subnet_id, an ip_address or both",
        )),
    }
}

async fn take_requested(
    conn: &mut Connection,
    subnets: &[Subnet],
    port: &PortRow,
    request: &FixedIpRequest,
) -> Result<FixedIp, NetworkError> {
    let subnet = requested_subnet(subnets, &port.network_id, request)?;
    let address = match request.ip_address {
        // A router's interface holds its subnet's gateway address.
        Some(address) if port.device_owner == ROUTER_INTERFACE => {
            allocate_gateway(conn, subnet, &port.id, address).await?;
            address
        }
        Some(address) => {
            allocate_exact(conn, subnet, &port.id, address).await?;
            address
        }
        None if autoconfigured(subnet) => {
            let address = slaac_address(subnet, &port.mac_address)?;
            allocate_exact(conn, subnet, &port.id, address).await?;
            address
        }
        None => allocate_any(conn, subnet, &port.id)
            .await?
            .ok_or_else(|| exhausted(&port.network_id))?,
    };
    Ok(FixedIp {
        subnet_id: subnet.id.clone(),
        ip_address: address,
    })
}

/// Gives a port the addresses `requests` name: those it holds and are named again it
/// keeps, the others it releases, and what is new it takes.
async fn replace_addresses(
    conn: &mut Connection,
    port: &PortRow,
    requests: Vec<FixedIpRequest>,
    now: i64,
) -> Result<(), NetworkError> {
    let subnets = network_subnets(conn, &port.network_id).await?;
    let mut held = q::port_addresses(&mut *conn, &port.id).await?;
    let mut fresh = Vec::new();
    let mut kept = Vec::new();
    for request in requests {
        let subnet = requested_subnet(&subnets, &port.network_id, &request)?;
        let position = held.iter().position(|h| {
            h.subnet_id == subnet.id
                && request
                    .ip_address
                    .is_none_or(|a| IpAddr::from_str(&h.address).is_ok_and(|b| a == b))
        });
        match position {
            Some(index) => kept.push(held.swap_remove(index)),
            None => fresh.push(request),
        }
    }
    for allocation in &held {
        release(conn, &port.id, allocation, now).await?;
    }
    for request in fresh {
        let ip = take_requested(conn, &subnets, port, &request).await?;
        open_history(conn, port, &ip, now).await?;
    }
    Ok(())
}

pub(crate) async fn release(
    conn: &mut Connection,
    port: &str,
    allocation: &AllocationRow,
    now: i64,
) -> Result<(), NetworkError> {
    q::release_address(&mut *conn, &allocation.subnet_id, &allocation.address).await?;
    q::close_address_history(conn, port, &allocation.address, now).await?;
    Ok(())
}

async fn open_history(
    conn: &mut Connection,
    port: &PortRow,
    ip: &FixedIp,
    now: i64,
) -> Result<(), NetworkError> {
    q::open_address_history(
        conn,
        &AddressHistoryRow {
            id: new_id(),
            address: ip.ip_address.to_string(),
            network_id: port.network_id.clone(),
            subnet_id: ip.subnet_id.clone(),
            port_id: port.id.clone(),
            project_id: port.project_id.clone(),
            device_id: port.device_id.clone(),
            allocated_at: now,
            released_at: None,
        },
    )
    .await?;
    Ok(())
}

/// A port's addresses in the order ports show them: IPv4 first, by address.
pub(crate) fn fixed_ips(allocations: &[AllocationRow]) -> Vec<FixedIp> {
    let mut ips: Vec<FixedIp> = allocations
        .iter()
        .filter_map(|a| {
            Some(FixedIp {
                subnet_id: a.subnet_id.clone(),
                ip_address: IpAddr::from_str(&a.address).ok()?,
            })
        })
        .collect();
    ips.sort_by_key(|ip| ip.ip_address);
    ips
}

pub(crate) fn port(row: PortRow, mut fixed_ips: Vec<FixedIp>) -> Port {
    fixed_ips.sort_by_key(|ip| ip.ip_address);
    let allowed_address_pairs = address_pairs::from_row(&row.allowed_address_pairs, &row.id);
    Port {
        id: row.id,
        network_id: row.network_id,
        project_id: row.project_id,
        name: row.name,
        description: row.description,
        mac_address: row.mac_address,
        admin_state_up: row.admin_state_up,
        status: row.status,
        device_id: row.device_id,
        device_owner: row.device_owner,
        port_security_enabled: row.port_security_enabled,
        binding_host: row.binding_host,
        fixed_ips,
        security_groups: Vec::new(),
        allowed_address_pairs,
        charged_to: row.charged_to,
        created_at: row.created_at,
        updated_at: row.updated_at,
        revision: row.revision,
    }
}

impl Networks {
    /// Who held `address` (any network), most recent first: the operator's answer to an
    /// abuse report.
    pub async fn address_history(&self, address: &str) -> Result<Vec<AddressHolder>, NetworkError> {
        let address = IpAddr::from_str(address.trim())
            .map_err(|_| NetworkError::invalid(format!("'{address}' is not a valid IP address")))?;
        Ok(q::address_history(self.db.pool(), &address.to_string())
            .await?
            .into_iter()
            .map(|row| AddressHolder {
                address: row.address,
                network_id: row.network_id,
                subnet_id: row.subnet_id,
                port_id: row.port_id,
                project_id: row.project_id,
                device_id: row.device_id,
                allocated_at: row.allocated_at,
                released_at: row.released_at,
            })
            .collect())
    }
}
