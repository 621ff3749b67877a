//! Networking (docs/design.md §6; docs/networks.md): networks, subnets and ports, and the
//! IPAM that gives ports their addresses, race-free, with a history of who held each.
//! Nodes realise what this crate records (bridges, VXLAN, DHCP, nftables); this crate
//! holds no HTTP.
//!
//! - `address`: addresses, CIDRs, ranges and MACs as numbers;
//! - `ipam`: pools and allocation;
//! - `networks`, `subnets`, `ports`: the resources, each operation authorised whole
//!   before it writes, and charged to quota in the transaction that writes it.

pub mod address;
mod address_pairs;
mod devices;
mod error;
mod floating_ips;
mod ipam;
mod networks;
mod ports;
mod renumber;
mod routers;
mod security_groups;
mod subnets;

use std::net::IpAddr;

use nefos_db::Database;
use nefos_identity::AuthContext;
use nefos_quota::Quotas;

pub use address::{Cidr, IpVersion, Range};
pub use address_pairs::{AddressPair, AddressPairRequest, MAX_ADDRESS_PAIRS};
pub use devices::{NodeNetwork, NodeRouter, NodeView, ResolvedRule};
pub use error::NetworkError;
pub use floating_ips::{FLOATING_IP_OWNER, FloatingIp, FloatingIpUpdate, NewFloatingIp};
pub use networks::{NetworkUpdate, NewNetwork};
pub use ports::{FixedIpRequest, NewPort, PortUpdate};
pub use renumber::{AddressMove, Renumbered};
pub use routers::{
    ExternalGateway, GatewayRequest, NewRouter, ROUTER_GATEWAY, ROUTER_INTERFACE, Router,
    RouterInterface, RouterUpdate,
};
pub use security_groups::{
    Direction, NewSecurityGroup, NewSecurityGroupRule, SecurityGroup, SecurityGroupRule,
};
pub use subnets::{NewSubnet, PoolAdded, SubnetUpdate};

/// The quota resource a private network counts against.
pub const PRIVATE_NETWORK_RESOURCE: &str = "cyclades.network.private";
/// The quota resource a port counts against.
pub const PORT_RESOURCE: &str = "cyclades.port";
/// The quota resource a floating IP counts against.
pub const FLOATING_IP_RESOURCE: &str = "cyclades.floating_ip";
/// The quota resource a security group (besides the default) counts against.
pub const SECURITY_GROUP_RESOURCE: &str = "cyclades.security_group";

/// How networking equips what it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSettings {
    /// The MTU of new networks: VXLAN takes 50 bytes of a 1500-byte underlay.
    pub mtu: i64,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings { mtu: 1450 }
    }
}

/// The network service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Networks {
    db: Database,
    quotas: Quotas,
    settings: NetworkSettings,
}

impl Networks {
    pub fn new(db: Database, quotas: Quotas, settings: NetworkSettings) -> Networks {
        Networks {
            db,
            quotas,
            settings,
        }
    }
}

/// A network as its API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub shared: bool,
    /// Neutron's `router:external`.
    pub external: bool,
    pub mtu: i64,
    pub port_security_enabled: bool,
    /// The VXLAN network identifier; shown to administrators only.
    pub vni: i64,
    /// Its subnets' ids, oldest first.
    pub subnets: Vec<String>,
    /// The user who made it in their own project (charged for it); Synnefo's `user_id`.
    pub charged_to: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
}

/// A static route a subnet's DHCP hands out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub network_id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub cidr: Cidr,
    pub gateway_ip: Option<IpAddr>,
    pub enable_dhcp: bool,
    pub ipv6_address_mode: Option<String>,
    pub ipv6_ra_mode: Option<String>,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<HostRoute>,
    /// Sorted and disjoint.
    pub allocation_pools: Vec<Range>,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
}

/// An address a port holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub id: String,
    pub network_id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub mac_address: String,
    pub admin_state_up: bool,
    /// `DOWN` until a node reports the port's device up.
    pub status: String,
    pub device_id: String,
    pub device_owner: String,
    pub port_security_enabled: bool,
    pub binding_host: Option<String>,
    /// IPv4 first, then IPv6; by address within each.
    pub fixed_ips: Vec<FixedIp>,
    /// The security groups whose rules filter its traffic (with port security on).
    pub security_groups: Vec<String>,
    pub allowed_address_pairs: Vec<AddressPair>,
    /// The user who made it in their own project (charged for it); Synnefo's `user_id`.
    pub charged_to: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
}

/// Who holds an address now or held it before, for abuse reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressHolder {
    pub address: String,
    pub network_id: String,
    pub subnet_id: String,
    pub port_id: String,
    pub project_id: String,
    pub device_id: String,
    pub allocated_at: i64,
    pub released_at: Option<i64>,
}

/// The project a caller acts for; an unscoped token acts for none.
fn project_of(caller: &AuthContext) -> Result<&str, NetworkError> {
    caller
        .project_id()
        .ok_or_else(|| NetworkError::not_allowed("a project-scoped token"))
}

/// Whether `caller` may change what belongs to `project`.
fn owns(caller: &AuthContext, project: &str) -> bool {
    caller.is_cloud_admin() || caller.project_id() == Some(project)
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A name or description: Neutron allows 255 characters.
fn check_text(field: &str, value: &str) -> Result<(), NetworkError> {
    if value.chars().count() > 255 {
        return Err(NetworkError::invalid(format!(
            "'{value}' exceeds maximum length of 255 for {field}"
        )));
    }
    Ok(())
}
