//! The node's half of the cloud's networks (docs/design.md §6): a bridge per network
//! with a port here, a VXLAN device on it flooding to the network's other nodes, a tap
//! per port, a DHCP server per bridge answering this node's ports, and nftables keeping
//! each port to its own MAC and addresses.
//!
//! The control plane sends the whole description ([`NodeNetworks`]) each time; the node
//! keeps it in its data directory and converges on it: what is missing is made, what is
//! there but not described (every device named `nf…`) is removed, and what is right is
//! left alone, so a guest's traffic is never disturbed by a convergence. An agent that
//! starts converges on the description it kept, before it looks at its VMs.

mod dhcp;
mod firewall;
mod link;
mod ra;
mod router;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use nefos_node_api::{
    DEVICE_PREFIX, Ipv6Mode, NetworkSpec, NetworksStatus, NodeNetworks, PortSpec, bridge_name,
    tap_name, vxlan_name,
};
use thiserror::Error;

use self::dhcp::message::Lease;
use self::dhcp::{DhcpServer, Leases, NO_GATEWAY_SERVER_ID};
use self::link::Kind;
use self::ra::{Advertisement, Advertising, Prefix, RaSender};
use self::router::RouterNamespaces;

pub use self::firewall::link_local;

#[derive(Debug, Error)]
pub enum NetError {
    #[error("cannot run {program}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("cannot read what {what} printed")]
    Parse {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot serve DHCP on {bridge}")]
    Dhcp {
        bridge: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot send router advertisements on {bridge}")]
    RouterAdvertisements {
        bridge: String,
        #[source]
        source: io::Error,
    },
    #[error("the networks' generation {given} is older than the {applied} this node applied")]
    Stale { given: u64, applied: u64 },
    #[error(
        "this node has no tunnel address, so it realises no networks (set tunnel_address in \
         its [node] configuration)"
    )]
    NoTunnel,
    #[error(
        "this node has no public interface, so it cannot join external networks (set \
         public_interface in its [node] configuration)"
    )]
    NoPublicInterface,
    #[error("invalid description of the node's networks: {0}")]
    Invalid(String),
    #[error("cannot switch on {path}")]
    Sysctl {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot keep the node's networks in {path}")]
    State {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How long a DHCP lease lasts unless the node is configured otherwise: short enough that
/// guests follow a renumbering within minutes.
pub const DEFAULT_LEASE_SECONDS: u32 = 600;

/// How the node joins the cloud's networks.
#[derive(Debug, Clone)]
pub struct NetSettings {
    /// The node's address for VXLAN tunnels to the other nodes.
    pub tunnel: Option<IpAddr>,
    /// The device on the provider's public network, joined to the bridges of external
    /// networks.
    pub public_interface: Option<String>,
    pub lease_seconds: u32,
}

#[derive(Debug)]
pub struct NetworkManager {
    tunnel: Option<IpAddr>,
    public_interface: Option<String>,
    lease_seconds: u32,
    routers: RouterNamespaces,
    state_path: PathBuf,
    inner: tokio::sync::Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    applied: NodeNetworks,
    dhcp: BTreeMap<String, DhcpServer>,
    advertising: BTreeMap<String, RaSender>,
    /// The ruleset last loaded, once one has been.
    ruleset: Option<Option<String>>,
    /// The NAT table last loaded in each router's namespace.
    router_rulesets: BTreeMap<String, String>,
}

impl NetworkManager {
    /// The node's networks as it last kept them, converged on now. A failure to converge
    /// is logged, not fatal: the VMs run on, and the control plane's next description is
    /// converged on again.
    pub async fn open(data_dir: &Path, settings: NetSettings) -> Result<NetworkManager, NetError> {
        let state_path = data_dir.join("networks.json");
        let applied = match tokio::fs::read(&state_path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|error| NetError::Invalid(format!("{}: {error}", state_path.display())))?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => NodeNetworks::default(),
            Err(source) => {
                return Err(NetError::State {
                    path: state_path,
                    source,
                });
            }
        };
        let tag = namespace_tag(data_dir).await?;
        let manager = NetworkManager {
            tunnel: settings.tunnel,
            public_interface: settings.public_interface,
            lease_seconds: settings.lease_seconds,
            routers: RouterNamespaces::new(&tag),
            state_path,
            inner: tokio::sync::Mutex::new(Inner {
                applied,
                ..Inner::default()
            }),
        };
        {
            let mut inner = manager.inner.lock().await;
            let desired = inner.applied.clone();
            if let Err(error) = manager.converge(&mut inner, &desired).await {
                tracing::error!(error = %error_chain(&error), "cannot restore the node's networks");
            }
        }
        Ok(manager)
    }

    /// Converges on `desired` and keeps it.
    pub async fn apply(&self, desired: NodeNetworks) -> Result<NetworksStatus, NetError> {
        let mut inner = self.inner.lock().await;
        if desired.generation < inner.applied.generation {
            return Err(NetError::Stale {
                given: desired.generation,
                applied: inner.applied.generation,
            });
        }
        self.validate(&desired)?;
        self.keep(&desired).await?;
        inner.applied = desired.clone();
        self.converge(&mut inner, &desired).await?;
        Ok(status(&inner.applied))
    }

    pub async fn status(&self) -> NetworksStatus {
        status(&self.inner.lock().await.applied)
    }

    /// The tap of `port_id`, if the node has been given that port.
    pub async fn tap_of(&self, port_id: &str) -> Option<String> {
        let inner = self.inner.lock().await;
        inner
            .applied
            .ports
            .iter()
            .any(|port| port.id == port_id)
            .then(|| tap_name(port_id))
    }

    fn validate(&self, desired: &NodeNetworks) -> Result<(), NetError> {
        if desired.networks.iter().any(|n| !n.external) && self.tunnel.is_none() {
            return Err(NetError::NoTunnel);
        }
        let networks: BTreeSet<&str> = desired.networks.iter().map(|n| n.id.as_str()).collect();
        if let Some(port) = desired
            .ports
            .iter()
            .find(|port| !networks.contains(port.network_id.as_str()))
        {
            return Err(NetError::Invalid(format!(
                "port {} is on network {}, which is not described",
                port.id, port.network_id
            )));
        }
        if let Some(network) = desired
            .networks
            .iter()
            .find(|n| n.vni == 0 || n.vni >= 1 << 24)
        {
            return Err(NetError::Invalid(format!(
                "network {} has VXLAN id {}, outside 1..2^24",
                network.id, network.vni
            )));
        }
        let legs = desired
            .routers
            .iter()
            .flat_map(|router| router.interfaces.iter().chain(&router.gateway));
        for leg in legs {
            if !networks.contains(leg.network_id.as_str()) || parse_mac(&leg.mac).is_none() {
                return Err(NetError::Invalid(format!(
                    "router port {} is on network {} with MAC {:?}: not a described network \
                     or not a MAC",
                    leg.port_id, leg.network_id, leg.mac
                )));
            }
        }
        if let Some(port) = desired.ports.iter().find(|p| parse_mac(&p.mac).is_none()) {
            return Err(NetError::Invalid(format!(
                "port {} has MAC {:?}",
                port.id, port.mac
            )));
        }
        Ok(())
    }

    async fn keep(&self, desired: &NodeNetworks) -> Result<(), NetError> {
        let state_error = |source| NetError::State {
            path: self.state_path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(desired)
            .map_err(|error| state_error(io::Error::other(error)))?;
        let temporary = self.state_path.with_extension("json.new");
        tokio::fs::write(&temporary, bytes)
            .await
            .map_err(state_error)?;
        tokio::fs::rename(&temporary, &self.state_path)
            .await
            .map_err(state_error)
    }

    async fn converge(&self, inner: &mut Inner, desired: &NodeNetworks) -> Result<(), NetError> {
        let existing = link::list(DEVICE_PREFIX).await?;
        let mut wanted = BTreeSet::new();
        let networks: BTreeMap<&str, &NetworkSpec> = desired
            .networks
            .iter()
            .map(|n| (n.id.as_str(), n))
            .collect();
        for network in &desired.networks {
            let bridge = bridge_name(network.vni);
            if ensure(&existing, &bridge, Kind::Bridge).await? {
                link::add_bridge(&bridge, network.mtu).await?;
            }
            ra::ignore_advertisements(&bridge).await?;
            if network.external {
                // Without a public interface the bridge stays the node's own: the rest of
                // its networks must not fail for it.
                if let Err(error) = self.join_public(&bridge).await {
                    tracing::error!(network = %network.id, error = %error_chain(&error), "an external network cannot reach the provider's network");
                }
                if !existing.get(&bridge).is_some_and(|l| l.up) {
                    link::set_up(&bridge).await?;
                }
                wanted.insert(bridge);
                continue;
            }
            let vxlan = vxlan_name(network.vni);
            let tunnel = self.tunnel.ok_or(NetError::NoTunnel)?;
            if ensure(&existing, &vxlan, Kind::Vxlan).await? {
                link::add_vxlan(&vxlan, network.vni, tunnel, network.mtu).await?;
            }
            attach(&existing, &vxlan, &bridge, network.mtu).await?;
            if !existing.get(&bridge).is_some_and(|l| l.up) {
                link::set_up(&bridge).await?;
            }
            let have: BTreeSet<IpAddr> = link::peers(&vxlan).await?.into_iter().collect();
            let want: BTreeSet<IpAddr> = network.peers.iter().copied().collect();
            for peer in want.difference(&have) {
                link::add_peer(&vxlan, *peer).await?;
            }
            for peer in have.difference(&want) {
                link::remove_peer(&vxlan, *peer).await?;
            }
            wanted.insert(bridge);
            wanted.insert(vxlan);
        }
        for port in &desired.ports {
            let Some(network) = networks.get(port.network_id.as_str()) else {
                continue;
            };
            let tap = tap_name(&port.id);
            if ensure(&existing, &tap, Kind::Tap).await? {
                link::add_tap(&tap).await?;
            }
            attach(&existing, &tap, &bridge_name(network.vni), network.mtu).await?;
            wanted.insert(tap);
        }
        wanted.extend(
            self.routers
                .converge(desired, &existing, &mut inner.router_rulesets)
                .await?,
        );
        // Taps first, then the rest: a bridge's deletion would only detach them.
        let mut unwanted: Vec<&link::Link> = existing
            .values()
            .filter(|link| !wanted.contains(&link.name))
            .collect();
        unwanted.sort_by_key(|link| link.kind != Kind::Tap);
        for link in unwanted {
            tracing::info!(device = %link.name, "removing a network device no longer described");
            link::delete(&link.name).await?;
        }
        let rules = firewall::ruleset(&desired.networks, &desired.ports);
        if inner.ruleset.as_ref() != Some(&rules) {
            firewall::apply(rules.as_deref()).await?;
            inner.ruleset = Some(rules);
        }
        self.serve_dhcp(inner, desired)?;
        self.advertise(inner, desired).await
    }

    /// The node's public interface on `bridge` (an external network's), up.
    async fn join_public(&self, bridge: &str) -> Result<(), NetError> {
        let Some(public) = &self.public_interface else {
            return Err(NetError::NoPublicInterface);
        };
        let links = link::list(public).await?;
        let Some(current) = links.get(public) else {
            return Err(NetError::Invalid(format!(
                "the public interface {public} does not exist"
            )));
        };
        if current.master.as_deref() != Some(bridge) {
            link::set_master(public, bridge).await?;
        }
        if !current.up {
            link::set_up(public).await?;
        }
        Ok(())
    }

    /// A DHCP server on each bridge whose network has DHCP on an IPv4 subnet.
    fn serve_dhcp(&self, inner: &mut Inner, desired: &NodeNetworks) -> Result<(), NetError> {
        let mut wanted = BTreeMap::new();
        for network in &desired.networks {
            let ports = desired.ports.iter().filter(|p| p.network_id == network.id);
            let leases: Leases = ports
                .filter_map(|port| {
                    let mac = parse_mac(&port.mac)?;
                    Some((mac, self.lease(network, port)?))
                })
                .collect();
            if network
                .subnets
                .iter()
                .any(|s| s.dhcp && !s.cidr.contains(':'))
            {
                wanted.insert(bridge_name(network.vni), leases);
            }
        }
        inner.dhcp.retain(|bridge, _| wanted.contains_key(bridge));
        for (bridge, leases) in wanted {
            match inner.dhcp.get(&bridge) {
                Some(server) => server.set_leases(leases),
                None => {
                    let server = DhcpServer::start(&bridge, leases)?;
                    inner.dhcp.insert(bridge, server);
                }
            }
        }
        Ok(())
    }

    /// A router advertisement sender on each bridge of a private network with IPv6
    /// subnets that have a mode (an external network's router is the provider's).
    async fn advertise(&self, inner: &mut Inner, desired: &NodeNetworks) -> Result<(), NetError> {
        let mut wanted = BTreeMap::new();
        for network in desired.networks.iter().filter(|n| !n.external) {
            let advertisement = advertisement(network);
            if advertisement.prefixes.is_empty() {
                continue;
            }
            let ports = desired
                .ports
                .iter()
                .filter(|p| p.network_id == network.id)
                .filter_map(|p| parse_mac(&p.mac))
                .collect();
            wanted.insert(
                bridge_name(network.vni),
                Advertising {
                    advertisement,
                    ports,
                },
            );
        }
        inner
            .advertising
            .retain(|bridge, _| wanted.contains_key(bridge));
        for (bridge, advertising) in wanted {
            match inner.advertising.get(&bridge) {
                Some(sender) => sender.set(advertising),
                // Without IPv6 on the node or the bridge, the guests go without
                // advertisements; the rest of the node's networks must not fail for it.
                None => match RaSender::start(&bridge, advertising).await {
                    Ok(sender) => {
                        inner.advertising.insert(bridge, sender);
                    }
                    Err(error) => {
                        tracing::error!(%bridge, error = %error_chain(&error), "cannot send router advertisements");
                    }
                },
            }
        }
        Ok(())
    }

    /// What DHCP gives `port`: its first IPv4 address on a subnet with DHCP on.
    fn lease(&self, network: &NetworkSpec, port: &PortSpec) -> Option<(Lease, Ipv4Addr)> {
        port.fixed_ips.iter().find_map(|fixed| {
            let IpAddr::V4(address) = fixed.address else {
                return None;
            };
            let subnet = network
                .subnets
                .iter()
                .find(|s| s.id == fixed.subnet_id && s.dhcp)?;
            let (_, prefix_len) = parse_cidr(&subnet.cidr)?;
            let gateway = match subnet.gateway {
                Some(IpAddr::V4(gateway)) => Some(gateway),
                _ => None,
            };
            let lease = Lease {
                address,
                prefix_len,
                gateway,
                dns_servers: subnet
                    .dns_servers
                    .iter()
                    .filter_map(|a| match a {
                        IpAddr::V4(a) => Some(*a),
                        IpAddr::V6(_) => None,
                    })
                    .collect(),
                routes: subnet
                    .host_routes
                    .iter()
                    .filter_map(|route| {
                        let (IpAddr::V4(destination), len) = parse_cidr(&route.destination)? else {
                            return None;
                        };
                        let IpAddr::V4(nexthop) = route.nexthop else {
                            return None;
                        };
                        Some((destination, len, nexthop))
                    })
                    .collect(),
                mtu: u16::try_from(network.mtu).unwrap_or(1500),
                hostname: port.hostname.clone(),
                lease_seconds: self.lease_seconds,
            };
            Some((lease, gateway.unwrap_or(NO_GATEWAY_SERVER_ID)))
        })
    }
}

/// What the node advertises on `network`'s bridge: the IPv6 subnets with a mode.
fn advertisement(network: &NetworkSpec) -> Advertisement {
    let mut advertisement = Advertisement {
        mtu: network.mtu,
        ..Advertisement::default()
    };
    for subnet in &network.subnets {
        let Some(mode) = subnet.ipv6_mode else {
            continue;
        };
        let Some((IpAddr::V6(address), len)) = parse_cidr(&subnet.cidr) else {
            continue;
        };
        advertisement.managed |= mode == Ipv6Mode::Dhcpv6Stateful;
        advertisement.other |= mode == Ipv6Mode::Dhcpv6Stateless;
        if advertisement.router.is_none() {
            advertisement.router = subnet.gateway_mac.as_deref().and_then(parse_mac);
        }
        advertisement.prefixes.push(Prefix {
            network: address,
            len,
            autonomous: mode != Ipv6Mode::Dhcpv6Stateful,
        });
        for server in &subnet.dns_servers {
            if let IpAddr::V6(server) = server
                && !advertisement.dns_servers.contains(server)
            {
                advertisement.dns_servers.push(*server);
            }
        }
    }
    advertisement
}

/// The tag in the names of this node's router namespaces: made at the node's first start
/// and kept in its data directory. Namespace names are the whole machine's, and nodes
/// (of one cloud or of several, as tests run them) must tell their own apart.
async fn namespace_tag(data_dir: &Path) -> Result<String, NetError> {
    let path = data_dir.join("namespace-tag");
    let state_error = |source| NetError::State {
        path: path.clone(),
        source,
    };
    match tokio::fs::read_to_string(&path).await {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(state_error(source)),
    }
    let tag: String = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    tokio::fs::write(&path, &tag).await.map_err(state_error)?;
    Ok(tag)
}

/// Whether device `name` must be made: it is missing, or it is something else by that
/// name (removed here).
async fn ensure(
    existing: &BTreeMap<String, link::Link>,
    name: &str,
    kind: Kind,
) -> Result<bool, NetError> {
    match existing.get(name) {
        Some(link) if link.kind == kind => Ok(false),
        Some(_) => {
            link::delete(name).await?;
            Ok(true)
        }
        None => Ok(true),
    }
}

/// Device `name` on `bridge`, with the network's MTU, up.
pub(crate) async fn attach(
    existing: &BTreeMap<String, link::Link>,
    name: &str,
    bridge: &str,
    mtu: u32,
) -> Result<(), NetError> {
    let current = existing.get(name);
    if current.and_then(|l| l.master.as_deref()) != Some(bridge) {
        link::set_master(name, bridge).await?;
    }
    if current.map(|l| l.mtu) != Some(mtu) {
        link::set_mtu(name, mtu).await?;
    }
    if !current.is_some_and(|l| l.up) {
        link::set_up(name).await?;
    }
    Ok(())
}

fn status(applied: &NodeNetworks) -> NetworksStatus {
    let bridges = applied
        .networks
        .iter()
        .map(|n| (n.id.clone(), bridge_name(n.vni)))
        .collect();
    let taps = applied
        .ports
        .iter()
        .map(|p| (p.id.clone(), tap_name(&p.id)))
        .collect();
    NetworksStatus {
        generation: applied.generation,
        bridges,
        taps,
    }
}

pub fn parse_mac(mac: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = mac
        .split(':')
        .map(|part| {
            (part.len() == 2)
                .then(|| u8::from_str_radix(part, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    <[u8; 6]>::try_from(bytes).ok()
}

pub(crate) fn parse_cidr(cidr: &str) -> Option<(IpAddr, u8)> {
    let (address, len) = cidr.split_once('/')?;
    Some((address.parse().ok()?, len.parse().ok()?))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
