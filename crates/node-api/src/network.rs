//! What a node realises of the cloud's networks: the control plane computes it per node
//! and sends all of it at once, so that a node converges on one description (creating
//! what is missing, removing what is no longer listed) whatever it missed before.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Everything of the networks one node must have: each network with a port on the node,
/// and those ports. `generation` orders the descriptions: a node refuses one older than
/// the last it applied (two control planes may push at once).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeNetworks {
    pub generation: u64,
    pub networks: Vec<NetworkSpec>,
    pub ports: Vec<PortSpec>,
    /// The routers that run on this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routers: Vec<RouterSpec>,
}

/// A router: its own network namespace on the node, with a leg on the bridge of each
/// network it joins, forwarding between them; SNAT for what its private subnets send out
/// and DNAT for its floating IPs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterSpec {
    pub id: String,
    /// Its legs on private subnets; each holds its subnet's gateway address.
    pub interfaces: Vec<RouterPortSpec>,
    /// Its leg on the external network; the external subnet's gateway is its default
    /// route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<RouterPortSpec>,
    /// Whether what the private subnets send out leaves with the gateway's address.
    pub snat: bool,
    pub floating_ips: Vec<FloatingIpSpec>,
}

/// One leg of a router: a port of one of the node's networks (described in
/// [`NodeNetworks::networks`], where its subnets' prefixes are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterPortSpec {
    pub port_id: String,
    pub network_id: String,
    pub mac: String,
    pub fixed_ips: Vec<PortAddress>,
}

/// A floating address the router answers for on its gateway and forwards to `fixed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatingIpSpec {
    pub address: IpAddr,
    pub fixed: IpAddr,
}

/// A network as a node realises it: a bridge, joined to the same network's bridges on
/// the other nodes by VXLAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub id: String,
    /// The VXLAN network identifier (24 bits).
    pub vni: u32,
    /// The MTU guests get: the underlay's less VXLAN's 50 bytes.
    pub mtu: u32,
    pub subnets: Vec<SubnetSpec>,
    /// The tunnel addresses of the other nodes with ports on this network.
    pub peers: Vec<IpAddr>,
    /// An external (provider) network: its bridge is joined to the node's public
    /// interface instead of to other nodes by VXLAN.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetSpec {
    pub id: String,
    /// `10.0.0.0/24`, `2001:db8::/64`.
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Whether the node answers DHCP for it (IPv4; an IPv6 subnet is advertised when it
    /// has an [`Ipv6Mode`], which Neutron allows only with DHCP on).
    pub dhcp: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_routes: Vec<HostRouteSpec>,
    /// How guests configure their addresses on an IPv6 subnet; with a mode, the node
    /// sends router advertisements for the subnet's prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_mode: Option<Ipv6Mode>,
    /// The MAC of the router port holding the gateway address, when a router does: the
    /// router the advertisements name (by its link-local address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_mac: Option<String>,
}

/// Neutron's IPv6 address modes, as router advertisements carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ipv6Mode {
    /// Addresses made by the guests from the prefix and their MACs (the A flag).
    Slaac,
    /// Addresses from DHCPv6 (the M flag); the prefix is on-link only.
    Dhcpv6Stateful,
    /// SLAAC addresses, other settings from DHCPv6 (the A and O flags).
    Dhcpv6Stateless,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRouteSpec {
    pub destination: String,
    pub nexthop: IpAddr,
}

/// A port bound to this node: a tap on its network's bridge, answered by DHCP with its
/// addresses, and allowed to send only from its MAC and addresses (when its port
/// security is on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    pub id: String,
    pub network_id: String,
    pub mac: String,
    pub fixed_ips: Vec<PortAddress>,
    pub port_security: bool,
    /// Other addresses (a CIDR or an address) the port may send from, with the MAC it
    /// may use for them (its own when absent): Neutron's allowed address pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_address_pairs: Vec<AddressPair>,
    /// The hostname DHCP gives the guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The rules of its security groups: with them the port's traffic is filtered
    /// statefully, and what no rule allows is dropped; absent, it is not filtered (port
    /// security off, or no groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_rules: Option<Vec<RuleSpec>>,
}

/// A security group rule as a node enforces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    pub direction: RuleDirection,
    pub family: IpFamily,
    /// The IP protocol number; absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u8>,
    /// Ports (TCP, UDP, SCTP) or the ICMP type and code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_min: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_max: Option<u16>,
    /// The addresses or prefixes at the other end; absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remotes: Option<Vec<String>>,
}

/// Traffic to the port (`ingress`) or from it (`egress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleDirection {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpFamily {
    V4,
    V6,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortAddress {
    pub subnet_id: String,
    pub address: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPair {
    pub ip_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
}

/// What a node reports of its networks: the generation it applied and the devices it
/// has for them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworksStatus {
    pub generation: u64,
    /// Network id → its bridge.
    pub bridges: Vec<(String, String)>,
    /// Port id → its tap.
    pub taps: Vec<(String, String)>,
}

/// The tap of port `port_id` (15 bytes at most, the kernel's limit on interface names).
/// Every device a node makes for networks starts with `nf`, so that a node can tell its
/// own from the host's.
pub fn tap_name(port_id: &str) -> String {
    format!("nft{}", port_hex(port_id))
}

/// The node's end of the veth pair that is router port `port_id`'s leg (the other end,
/// in the router's namespace, is [`router_leg_inner_name`]).
pub fn router_leg_name(port_id: &str) -> String {
    format!("nfr{}", port_hex(port_id))
}

/// The router's end of port `port_id`'s leg, inside the router's namespace.
pub fn router_leg_inner_name(port_id: &str) -> String {
    format!("leg{}", port_hex(port_id))
}

/// The first 11 hex digits of a port's id: unique enough among one node's ports.
fn port_hex(port_id: &str) -> String {
    port_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(11)
        .collect()
}

/// The bridge of the network with VXLAN id `vni`.
pub fn bridge_name(vni: u32) -> String {
    format!("nfb{vni}")
}

/// The VXLAN device of the network with VXLAN id `vni`.
pub fn vxlan_name(vni: u32) -> String {
    format!("nfv{vni}")
}

/// The prefix of every device a node makes for networks.
pub const DEVICE_PREFIX: &str = "nf";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_fit_the_kernels_limit() {
        let tap = tap_name("0f9d3c1e-7a2b-4c5d-8e9f-0123456789ab");
        assert_eq!(tap, "nft0f9d3c1e7a2");
        assert!(tap.len() <= 15);
        assert!(bridge_name(16_777_215).len() <= 15);
        assert!(vxlan_name(16_777_215).len() <= 15);
    }
}
