//! Synnefo's network API (Cyclades' `/network/v2.0`) as kamaki 0.16 speaks it, served at
//! [`PREFIX`] over the same networks, ports and floating IPs as Neutron's: Synnefo's
//! catalog names this endpoint for the `network` service, Keystone's the Neutron one.
//! Servers are named by their Cyclades serials.

use serde::{Deserialize, Serialize};

/// Where it is served; kamaki appends `/v2.0` to the catalog's URL.
pub const PREFIX: &str = "/network/cyclades/v2.0";
/// [`PREFIX`] under Neutron's [`crate::PREFIX`].
pub const NESTED: &str = "/cyclades/v2.0";
/// The endpoint Synnefo's catalog gives for the `network` service.
pub const CATALOG_PATH: &str = "/network/cyclades";

pub mod paths {
    /// `GET` (detailed, as Synnefo lists), `POST` (201).
    pub const NETWORKS: &str = "/networks";
    pub const NETWORKS_DETAIL: &str = "/networks/detail";
    /// `GET`, `PUT` (rename), `DELETE` (204).
    pub const NETWORK: &str = "/networks/{network_id}";
    /// `GET`, `POST` (201; with a server's serial as `device_id`, the port is plugged in).
    pub const PORTS: &str = "/ports";
    pub const PORTS_DETAIL: &str = "/ports/detail";
    /// `GET`, `DELETE` (204; unplugged from its server first).
    pub const PORT: &str = "/ports/{port_id}";
    /// `GET`, `POST` (200, as Synnefo answers).
    pub const FLOATING_IPS: &str = "/floatingips";
    pub const FLOATING_IPS_DETAIL: &str = "/floatingips/detail";
    /// `GET`, `DELETE` (204).
    pub const FLOATING_IP: &str = "/floatingips/{floating_ip_id}";
}

/// Synnefo's network flavors; nefos's private networks are its MAC-filtered ones (a
/// segment of their own with anti-spoofing), the only flavor users may create.
pub const NETWORK_TYPES: &[&str] = &["MAC_FILTERED", "IP_LESS_ROUTED", "PHYSICAL_VLAN", "CUSTOM"];
pub const PRIVATE_TYPE: &str = "MAC_FILTERED";
/// What an external (public) network is shown as.
pub const PUBLIC_TYPE: &str = "IP_LESS_ROUTED";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub rel: String,
    pub href: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub links: Vec<Link>,
    pub user_id: String,
    pub tenant_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub public: bool,
    pub shared: bool,
    #[serde(rename = "router:external")]
    pub external: bool,
    pub admin_state_up: bool,
    pub subnets: Vec<String>,
    #[serde(rename = "SNF:floating_ip_pool")]
    pub floating_ip_pool: bool,
    pub created: String,
    pub updated: String,
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    pub ip_address: String,
    pub subnet: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub id: String,
    pub name: String,
    pub links: Vec<Link>,
    pub user_id: String,
    pub tenant_id: String,
    /// The serial of the server it is plugged into.
    pub device_id: Option<String>,
    /// `vm` for a server's, Neutron's owner otherwise.
    pub device_owner: String,
    pub admin_state_up: bool,
    pub mac_address: String,
    pub status: String,
    pub network_id: String,
    pub fixed_ips: Vec<FixedIp>,
    pub security_groups: Vec<String>,
    pub created: String,
    pub updated: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatingIp {
    pub id: String,
    pub floating_ip_address: String,
    pub floating_network_id: String,
    /// Always `null`, as Synnefo's.
    pub fixed_ip_address: Option<String>,
    /// The serial of the server it serves.
    pub instance_id: Option<String>,
    /// While it serves a server: its port on the public network (see docs/networks.md).
    pub port_id: Option<String>,
    pub user_id: String,
    pub tenant_id: String,
    pub deleted: bool,
}

/// `POST /networks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub admin_state_up: Option<bool>,
    /// Ignored, as Synnefo ignores it.
    #[serde(default)]
    pub shared: Option<bool>,
    /// The project to create it in.
    #[serde(default)]
    pub project: Option<String>,
}

/// `POST /ports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortCreate {
    pub network_id: String,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub security_groups: Option<Vec<String>>,
    #[serde(default)]
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedIpRequest {
    pub ip_address: String,
    #[serde(default)]
    pub subnet_id: Option<String>,
}

/// `POST /floatingips`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloatingIpCreate {
    #[serde(default)]
    pub floating_network_id: Option<String>,
    #[serde(default)]
    pub floating_ip_address: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_prefix_is_neutrons_and_the_nested_path() {
        assert_eq!(super::PREFIX, format!("{}{}", crate::PREFIX, super::NESTED));
        assert_eq!(format!("{}/v2.0", super::CATALOG_PATH), super::PREFIX);
    }
}
