//! Subnets: the address blocks of a network, with their pools, gateway, DHCP options and
//! IPv6 modes; and `pool add`, by which an operator gives a network more addresses.

use std::collections::HashSet;
use std::net::IpAddr;
use std::str::FromStr;

use nefos_db::network::{self as q, NetworkRow, PoolRow, PoolScope, SubnetRow};
use nefos_db::time::now_micros;
use nefos_db::{Connection, DbError};
use nefos_identity::AuthContext;

use crate::address::{Cidr, CidrError, IpVersion, Range, to_number};
use crate::ipam::{check_pools, default_pools, pool};
use crate::{HostRoute, NetworkError, Networks, Subnet, check_text, new_id, owns, project_of};

/// A subnet to create.
#[derive(Debug, Clone, Default)]
pub struct NewSubnet {
    pub network_id: String,
    pub name: String,
    pub description: String,
    pub ip_version: i64,
    pub cidr: String,
    /// `None`: the first host address; `Some(None)`: no gateway.
    pub gateway_ip: Option<Option<IpAddr>>,
    /// `None`: every host address but the gateway's.
    pub allocation_pools: Option<Vec<(IpAddr, IpAddr)>>,
    pub enable_dhcp: Option<bool>,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<HostRoute>,
    pub ipv6_address_mode: Option<String>,
    pub ipv6_ra_mode: Option<String>,
}

/// What an update changes; `None` leaves it.
#[derive(Debug, Clone, Default)]
pub struct SubnetUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub gateway_ip: Option<Option<IpAddr>>,
    pub allocation_pools: Option<Vec<(IpAddr, IpAddr)>>,
    pub enable_dhcp: Option<bool>,
    pub dns_nameservers: Option<Vec<String>>,
    pub host_routes: Option<Vec<HostRoute>>,
}

/// What `pool add` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolAdded {
    pub subnet: Subnet,
    /// Whether the block was a new subnet (or a range added to an existing one).
    pub created: bool,
}

const IPV6_MODES: &[&str] = &["slaac", "dhcpv6-stateful", "dhcpv6-stateless"];

impl Networks {
    pub async fn create_subnet(
        &self,
        caller: &AuthContext,
        new: NewSubnet,
    ) -> Result<Subnet, NetworkError> {
        let network = self.visible_network_row(caller, &new.network_id).await?;
        if !owns(caller, &network.project_id) {
            return Err(NetworkError::not_allowed("create_subnet"));
        }
        check_text("name", &new.name)?;
        check_text("description", &new.description)?;
        let mut tx = self.db.begin().await?;
        let subnet = insert_subnet(&mut tx, &network, new).await?;
        if crate::ipam::autoconfigured(&subnet) {
            crate::ports::give_autoconfigured_addresses(&mut tx, &subnet).await?;
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a subnet's creation"))?;
        tracing::info!(subnet = %subnet.id, network = %subnet.network_id, cidr = %subnet.cidr, "subnet created");
        Ok(subnet)
    }

    pub async fn subnet(&self, caller: &AuthContext, id: &str) -> Result<Subnet, NetworkError> {
        let row = self.visible_subnet_row(caller, id).await?;
        let pools = q::subnet_pools(self.db.pool(), PoolScope::Subnet(&row.id)).await?;
        subnet(row, &pools)
    }

    async fn visible_subnet_row(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<SubnetRow, NetworkError> {
        project_of(caller)?;
        let Some(row) = q::get_subnet(self.db.pool(), id).await? else {
            return Err(NetworkError::no_subnet(id));
        };
        if owns(caller, &row.project_id) {
            return Ok(row);
        }
        match self.visible_network_row(caller, &row.network_id).await {
            Ok(_) => Ok(row),
            Err(NetworkError::NotFound { .. }) => Err(NetworkError::no_subnet(id)),
            Err(other) => Err(other),
        }
    }

    /// The subnets the caller sees, oldest first.
    pub async fn subnets(&self, caller: &AuthContext) -> Result<Vec<Subnet>, NetworkError> {
        let project = project_of(caller)?;
        let scope = (!caller.is_cloud_admin()).then_some(project);
        let rows = q::list_subnets(self.db.pool(), scope).await?;
        let pools = q::subnet_pools(self.db.pool(), PoolScope::Listed(scope)).await?;
        rows.into_iter().map(|row| subnet(row, &pools)).collect()
    }

    pub async fn update_subnet(
        &self,
        caller: &AuthContext,
        id: &str,
        update: SubnetUpdate,
    ) -> Result<Subnet, NetworkError> {
        let visible = self.visible_subnet_row(caller, id).await?;
        if !owns(caller, &visible.project_id) {
            return Err(NetworkError::not_allowed("update_subnet"));
        }
        if let Some(name) = &update.name {
            check_text("name", name)?;
        }
        if let Some(description) = &update.description {
            check_text("description", description)?;
        }
        // What the update starts from is read under the network's lock, which ports taking
        // addresses and `pool add` hold too.
        let mut tx = self.db.begin().await?;
        if !q::lock_network(&mut tx, &visible.network_id).await? {
            return Err(NetworkError::no_subnet(id));
        }
        let mut row = q::get_subnet(&mut *tx, id)
            .await?
            .ok_or_else(|| NetworkError::no_subnet(id))?;
        let current = subnet(
            row.clone(),
            &q::subnet_pools(&mut *tx, PoolScope::Subnet(id)).await?,
        )?;
        row.name = update.name.unwrap_or(row.name);
        row.description = update.description.unwrap_or(row.description);
        let gateway = match update.gateway_ip {
            Some(gateway) => check_gateway(&current.cidr, gateway)?,
            None => current.gateway_ip,
        };
        if let Some(address) = gateway
            && gateway != current.gateway_ip
            && let Some(port) = q::address_holder(&mut *tx, id, &address.to_string()).await?
        {
            return Err(NetworkError::conflict(
                "GatewayIpInUse",
                format!(
                    "Current gateway ip {address} already in use by port {port}. Unable to update."
                ),
            ));
        }
        row.gateway_ip = gateway.map(|g| g.to_string());
        let pools = match update.allocation_pools {
            Some(ranges) => Some(
                ranges
                    .into_iter()
                    .map(|(start, end)| pool(&current.cidr, start, end))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        let checked = check_pools(
            &current.cidr,
            gateway,
            pools
                .clone()
                .unwrap_or_else(|| current.allocation_pools.clone()),
        )?;
        if let Some(servers) = update.dns_nameservers {
            row.dns_nameservers = nameservers(&servers)?;
        }
        if let Some(routes) = update.host_routes {
            row.host_routes = host_routes(current.cidr.version(), &routes)?;
        }
        row.enable_dhcp = update.enable_dhcp.unwrap_or(row.enable_dhcp);
        row.updated_at = now_micros();
        row.revision += 1;
        if !q::update_subnet(&mut tx, &row).await? {
            return Err(NetworkError::conflict(
                "Conflict",
                format!("Subnet {id} changed while it was being updated; try again."),
            ));
        }
        if pools.is_some() {
            q::replace_pools(&mut tx, id, &pool_rows(&current.cidr, id, &checked)).await?;
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a subnet's update"))?;
        self.subnet(caller, id).await
    }

    /// Deletes a subnet; refused while a port holds one of its addresses.
    pub async fn delete_subnet(&self, caller: &AuthContext, id: &str) -> Result<(), NetworkError> {
        let row = self.visible_subnet_row(caller, id).await?;
        if !owns(caller, &row.project_id) {
            return Err(NetworkError::not_allowed("delete_subnet"));
        }
        let mut tx = self.db.begin().await?;
        // Ports take addresses under the network's lock: one taken now is counted.
        q::lock_network(&mut tx, &row.network_id).await?;
        if q::count_subnet_addresses(&mut *tx, id).await? > 0 {
            return Err(NetworkError::conflict(
                "SubnetInUse",
                format!(
                    "Unable to complete operation on subnet {id}: One or more ports have an \
                     IP allocation from this subnet."
                ),
            ));
        }
        q::replace_pools(&mut tx, id, &[]).await?;
        if !q::delete_subnet(&mut tx, id).await? {
            return Err(NetworkError::no_subnet(id));
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a subnet's deletion"))?;
        tracing::info!(subnet = %id, "subnet deleted");
        Ok(())
    }

    /// The operator gives `network` another address block, at once and with no restart:
    /// a new subnet with `cidr`, or, when the network has a subnet of exactly `cidr`,
    /// `range` added to its pools.
    pub async fn add_pool(
        &self,
        network: &str,
        cidr: &str,
        range: Option<(IpAddr, IpAddr)>,
        gateway: Option<Option<IpAddr>>,
    ) -> Result<PoolAdded, NetworkError> {
        let block = parse_cidr(cidr)?;
        let mut tx = self.db.begin().await?;
        if !q::lock_network(&mut tx, network).await? {
            return Err(NetworkError::no_network(network));
        }
        let Some(network) = q::get_network(&mut *tx, network).await? else {
            return Err(NetworkError::no_network(network));
        };
        let existing = q::network_subnets(&mut *tx, &network.id)
            .await?
            .into_iter()
            .find(|s| Cidr::parse(&s.cidr).is_ok_and(|c| c == block));
        let added = match existing {
            Some(row) => {
                let Some((start, end)) = range else {
                    return Err(NetworkError::invalid(format!(
                        "network {} has a subnet of {block} already: name a range to add to it",
                        network.id
                    )));
                };
                let id = row.id.clone();
                let pools = q::subnet_pools(&mut *tx, PoolScope::Subnet(&id)).await?;
                let current = subnet(row, &pools)?;
                let mut ranges = current.allocation_pools.clone();
                ranges.push(pool(&block, start, end)?);
                let ranges = check_pools(&block, current.gateway_ip, ranges)?;
                q::replace_pools(&mut tx, &id, &pool_rows(&block, &id, &ranges)).await?;
                let now = now_micros();
                q::touch_subnet(&mut tx, &id, now).await?;
                PoolAdded {
                    subnet: Subnet {
                        allocation_pools: ranges,
                        updated_at: now,
                        revision: current.revision + 1,
                        ..current
                    },
                    created: false,
                }
            }
            None => {
                let new = NewSubnet {
                    network_id: network.id.clone(),
                    name: format!("pool-{block}"),
                    ip_version: i64::from(block.version().number()),
                    cidr: block.to_string(),
                    gateway_ip: gateway,
                    allocation_pools: range.map(|r| vec![r]),
                    ..NewSubnet::default()
                };
                PoolAdded {
                    subnet: insert_subnet(&mut tx, &network, new).await?,
                    created: true,
                }
            }
        };
        tx.commit()
            .await
            .map_err(DbError::query("commit an address block"))?;
        tracing::info!(network = %network.id, block = %block, subnet = %added.subnet.id, "address block added");
        Ok(added)
    }
}

pub(crate) fn parse_cidr(text: &str) -> Result<Cidr, NetworkError> {
    Cidr::parse(text).map_err(|error| match error {
        CidrError::Malformed => NetworkError::invalid(format!("'{text}' is not a valid IP subnet")),
        CidrError::HostBits { recommended } => NetworkError::invalid(format!(
            "'{text}' isn't a recognized IP subnet cidr, '{recommended}' is recommended"
        )),
    })
}

/// Validates `new` against `network` and writes it.
async fn insert_subnet(
    conn: &mut Connection,
    network: &NetworkRow,
    new: NewSubnet,
) -> Result<Subnet, NetworkError> {
    let version = IpVersion::from_number(new.ip_version).ok_or_else(|| {
        NetworkError::invalid(format!(
            "Invalid input for ip_version. Reason: '{}' is not in [4, 6]",
            new.ip_version
        ))
    })?;
    let cidr = parse_cidr(&new.cidr)?;
    if cidr.version() != version {
        return Err(NetworkError::invalid(format!(
            "Cidr {cidr} does not match ip_version {}",
            version.number()
        )));
    }
    check_ipv6_modes(&cidr, &new.ipv6_address_mode, &new.ipv6_ra_mode)?;
    // Another subnet written at the same time must see this one: the network's row is
    // locked first (PostgreSQL; SQLite runs one writer at a time anyway).
    if !q::lock_network(&mut *conn, &network.id).await? {
        return Err(NetworkError::no_network(&network.id));
    }
    for other in q::network_subnets(&mut *conn, &network.id).await? {
        if Cidr::parse(&other.cidr).is_ok_and(|c| c.overlaps(&cidr)) {
            return Err(NetworkError::invalid(format!(
                "Requested subnet with cidr: {cidr} for network: {} overlaps with another subnet",
                network.id
            )));
        }
    }
    let gateway = match new.gateway_ip {
        Some(gateway) => check_gateway(&cidr, gateway)?,
        None => cidr
            .hosts()
            .filter(|hosts| hosts.first != hosts.last)
            .and_then(|hosts| cidr.address(hosts.first)),
    };
    let pools = match new.allocation_pools {
        Some(ranges) => ranges
            .into_iter()
            .map(|(start, end)| pool(&cidr, start, end))
            .collect::<Result<Vec<_>, _>>()?,
        None => default_pools(&cidr, gateway),
    };
    let pools = check_pools(&cidr, gateway, pools)?;
    let now = now_micros();
    let row = SubnetRow {
        id: new_id(),
        network_id: network.id.clone(),
        project_id: network.project_id.clone(),
        name: new.name,
        description: new.description,
        ip_version: i64::from(version.number()),
        cidr: cidr.to_string(),
        gateway_ip: gateway.map(|g| g.to_string()),
        enable_dhcp: new.enable_dhcp.unwrap_or(true),
        ipv6_address_mode: new.ipv6_address_mode,
        ipv6_ra_mode: new.ipv6_ra_mode,
        dns_nameservers: nameservers(&new.dns_nameservers)?,
        host_routes: host_routes(version, &new.host_routes)?,
        created_at: now,
        updated_at: now,
        revision: 1,
    };
    let pool_rows = pool_rows(&cidr, &row.id, &pools);
    q::insert_subnet(conn, &row, &pool_rows).await?;
    subnet(row, &pool_rows)
}

fn check_ipv6_modes(
    cidr: &Cidr,
    address_mode: &Option<String>,
    ra_mode: &Option<String>,
) -> Result<(), NetworkError> {
    for mode in [address_mode, ra_mode].into_iter().flatten() {
        if cidr.version() == IpVersion::V4 {
            return Err(NetworkError::invalid(
                "ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set \
                 to False or ip_version is 4",
            ));
        }
        if !IPV6_MODES.contains(&mode.as_str()) {
            return Err(NetworkError::invalid(format!(
                "'{mode}' is not in {IPV6_MODES:?}"
            )));
        }
    }
    if let (Some(address), Some(ra)) = (address_mode, ra_mode)
        && address != ra
    {
        return Err(NetworkError::invalid(format!(
            "ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{address}' is not valid. \
             If both attributes are set, they must be the same value"
        )));
    }
    let slaac = matches!(
        address_mode.as_deref().or(ra_mode.as_deref()),
        Some("slaac") | Some("dhcpv6-stateless")
    );
    if slaac && cidr.prefix() != 64 {
        return Err(NetworkError::invalid(format!(
            "Invalid CIDR {cidr} for IPv6 address mode. OpenStack uses the EUI-64 address \
             format, which requires the prefix to be /64"
        )));
    }
    Ok(())
}

/// A gateway inside the subnet that a host could hold, or none.
fn check_gateway(cidr: &Cidr, gateway: Option<IpAddr>) -> Result<Option<IpAddr>, NetworkError> {
    let Some(address) = gateway else {
        return Ok(None);
    };
    let host = cidr.hosts().is_some_and(|h| h.contains(to_number(address)));
    if !cidr.contains(address) || !host {
        return Err(NetworkError::invalid(format!(
            "Gateway is not valid on subnet: {address} is not a host address of {cidr}"
        )));
    }
    Ok(Some(address))
}

fn nameservers(servers: &[String]) -> Result<String, NetworkError> {
    let mut seen = HashSet::new();
    for server in servers {
        if IpAddr::from_str(server).is_err() {
            return Err(NetworkError::invalid(format!(
                "'{server}' is not a valid nameserver. '{server}' is not a valid IP address"
            )));
        }
        if !seen.insert(server) {
            return Err(NetworkError::invalid(format!(
                "Duplicate nameserver '{server}'"
            )));
        }
    }
    Ok(serde_json::Value::from(servers.to_vec()).to_string())
}

fn host_routes(version: IpVersion, routes: &[HostRoute]) -> Result<String, NetworkError> {
    for route in routes {
        let destination = parse_cidr(&route.destination)?;
        let nexthop = IpAddr::from_str(&route.nexthop).map_err(|_| {
            NetworkError::invalid(format!("'{}' is not a valid IP address", route.nexthop))
        })?;
        if destination.version() != version || IpVersion::of(nexthop) != version {
            return Err(NetworkError::invalid(format!(
                "Host route {} via {} is not of the subnet's IP version",
                route.destination, route.nexthop
            )));
        }
    }
    serde_json::to_string(routes)
        .map_err(|e| NetworkError::invalid(format!("host routes cannot be written: {e}")))
}

pub(crate) fn pool_rows(cidr: &Cidr, subnet: &str, pools: &[Range]) -> Vec<PoolRow> {
    pools
        .iter()
        .filter_map(|range| {
            Some(PoolRow {
                subnet_id: subnet.to_owned(),
                first_ip: cidr.address(range.first)?.to_string(),
                last_ip: cidr.address(range.last)?.to_string(),
            })
        })
        .collect()
}

/// A subnet from its row and the pool rows (of it, among others).
pub(crate) fn subnet(row: SubnetRow, pools: &[PoolRow]) -> Result<Subnet, NetworkError> {
    let corrupt = |what: &str| NetworkError::Corrupt {
        what: format!("subnet {}: {what}", row.id),
    };
    let cidr = Cidr::parse(&row.cidr).map_err(|_| corrupt("cidr"))?;
    let gateway_ip = match &row.gateway_ip {
        Some(text) => Some(IpAddr::from_str(text).map_err(|_| corrupt("gateway"))?),
        None => None,
    };
    let mut allocation_pools = pools
        .iter()
        .filter(|p| p.subnet_id == row.id)
        .map(|p| {
            let first = IpAddr::from_str(&p.first_ip).map_err(|_| corrupt("pool"))?;
            let last = IpAddr::from_str(&p.last_ip).map_err(|_| corrupt("pool"))?;
            Range::new(to_number(first), to_number(last)).ok_or_else(|| corrupt("pool"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    allocation_pools.sort();
    Ok(Subnet {
        cidr,
        gateway_ip,
        dns_nameservers: serde_json::from_str(&row.dns_nameservers)
            .map_err(|_| corrupt("nameservers"))?,
        host_routes: serde_json::from_str(&row.host_routes).map_err(|_| corrupt("routes"))?,
        allocation_pools,
        id: row.id,
        network_id: row.network_id,
        project_id: row.project_id,
        name: row.name,
        description: row.description,
        enable_dhcp: row.enable_dhcp,
        ipv6_address_mode: row.ipv6_address_mode,
        ipv6_ra_mode: row.ipv6_ra_mode,
        created_at: row.created_at,
        updated_at: row.updated_at,
        revision: row.revision,
    })
}
