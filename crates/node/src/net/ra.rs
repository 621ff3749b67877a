//! Router advertisements (RFC 4861 §4.2), one sender per bridge whose network has IPv6
//! subnets with a mode: the prefixes guests make addresses from (SLAAC) or only reach
//! on-link (DHCPv6), the M and O flags, the MTU, the DNS servers (RFC 8106) and, when a
//! router holds a subnet's gateway, that router as the guests' default route.
//!
//! The router is named by its link-local address (formed from its port's MAC, as the
//! kernel in its namespace forms it): the advertisements leave from that address (a
//! socket bound to it with `IPV6_FREEBIND`), so guests route through the router and not
//! through the node. Without a router they leave from the bridge's own link-local address
//! with a router lifetime of zero: the prefixes alone.
//!
//! They go to all nodes every [`INTERVAL`], at once when they change, and in answer to a
//! solicitation from one of this node's ports (guests solicit when their link comes up).
//! A bridge never takes advertisements itself (its `accept_ra` is off, see
//! [`ignore_advertisements`]): those of other nodes reach it over VXLAN.

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::NetError;
use super::firewall::link_local_of;

/// How often advertisements go out unasked.
pub const INTERVAL: Duration = Duration::from_secs(30);
/// The least time between two answers to solicitations (RFC 4861's
/// `MIN_DELAY_BETWEEN_RAS`).
const MIN_DELAY_BETWEEN_ANSWERS: Duration = Duration::from_secs(3);
/// How long guests keep the router as their default: long enough that an agent's
/// restart goes unnoticed.
const ROUTER_LIFETIME_SECONDS: u16 = 1800;
/// radvd's defaults.
const VALID_LIFETIME_SECONDS: u32 = 86_400;
const PREFERRED_LIFETIME_SECONDS: u32 = 14_400;
/// How long guests keep the DNS servers: three [`INTERVAL`]s (RFC 8106 §5.1).
const DNS_LIFETIME_SECONDS: u32 = 90;

const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

mod option {
    pub const SOURCE_LINK_ADDRESS: u8 = 1;
    pub const PREFIX: u8 = 3;
    pub const MTU: u8 = 5;
    pub const DNS_SERVERS: u8 = 25;
}

/// What a bridge's advertisements say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertisement {
    /// Addresses come from DHCPv6 (the M flag).
    pub managed: bool,
    /// Other settings come from DHCPv6 (the O flag).
    pub other: bool,
    /// The MAC of the router that is the guests' default, if any.
    pub router: Option<[u8; 6]>,
    pub prefixes: Vec<Prefix>,
    pub mtu: u32,
    pub dns_servers: Vec<Ipv6Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    pub network: Ipv6Addr,
    pub len: u8,
    /// Guests make their addresses from it (the A flag).
    pub autonomous: bool,
}

/// What a sender needs: the advertisement and the MACs of the node's ports on the
/// bridge (whose solicitations it answers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertising {
    pub advertisement: Advertisement,
    pub ports: BTreeSet<[u8; 6]>,
}

/// A running sender on one bridge; it stops when dropped.
#[derive(Debug)]
pub struct RaSender {
    state: watch::Sender<Advertising>,
    task: JoinHandle<()>,
}

impl RaSender {
    pub async fn start(bridge: &str, advertising: Advertising) -> Result<RaSender, NetError> {
        let ra_error = |source| NetError::RouterAdvertisements {
            bridge: bridge.to_owned(),
            source,
        };
        let index = interface_index(bridge).await.map_err(ra_error)?;
        let listener = listen(bridge, index).map_err(ra_error)?;
        let (state, changes) = watch::channel(advertising);
        let task = tokio::spawn(serve(bridge.to_owned(), index, listener, changes));
        Ok(RaSender { state, task })
    }

    /// Advertises `advertising` from now on (at once, if it changed).
    pub fn set(&self, advertising: Advertising) {
        self.state.send_if_modified(|current| {
            let changed = *current != advertising;
            *current = advertising;
            changed
        });
    }
}

impl Drop for RaSender {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Switches off `bridge`'s own acceptance of advertisements and address
/// autoconfiguration: the node must never take a route or an address from a tenant's
/// network.
pub async fn ignore_advertisements(bridge: &str) -> Result<(), NetError> {
    for setting in ["accept_ra", "autoconf"] {
        let path = format!("/proc/sys/net/ipv6/conf/{bridge}/{setting}");
        match tokio::fs::read_to_string(&path).await {
            Ok(value) if value.trim() == "0" => continue,
            // IPv6 is off on the bridge: there is nothing to accept.
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            _ => {}
        }
        tokio::fs::write(&path, "0")
            .await
            .map_err(|source| NetError::Sysctl { path, source })?;
    }
    Ok(())
}

async fn interface_index(bridge: &str) -> io::Result<u32> {
    let text = tokio::fs::read_to_string(format!("/sys/class/net/{bridge}/ifindex")).await?;
    text.trim()
        .parse()
        .map_err(|_| io::Error::other(format!("{bridge}'s ifindex is {text:?}")))
}

/// A socket on `bridge` that hears what guests send to all routers. It is a raw
/// ICMPv6 socket in tokio's datagram type: receiving from it is the same system call.
fn listen(bridge: &str, index: u32) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    socket.bind_device(Some(bridge.as_bytes()))?;
    socket.join_multicast_v6(&ALL_ROUTERS, index)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// A socket that sends on `bridge` from `source` (the bridge's own address when `None`).
fn speaker(bridge: &str, index: u32, source: Option<Ipv6Addr>) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    socket.bind_device(Some(bridge.as_bytes()))?;
    // Advertisements are only believed with a hop limit of 255 (RFC 4861 §6.1.2).
    socket.set_multicast_hops_v6(255)?;
    socket.set_unicast_hops_v6(255)?;
    socket.set_multicast_if_v6(index)?;
    // The node must not hear its own advertisements.
    socket.set_multicast_loop_v6(false)?;
    if let Some(source) = source {
        // The router's address is not the node's: it lives in the router's namespace.
        socket.set_freebind_v6(true)?;
        socket.bind(&SockAddr::from(SocketAddrV6::new(source, 0, 0, index)))?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

async fn serve(
    bridge: String,
    index: u32,
    listener: UdpSocket,
    mut changes: watch::Receiver<Advertising>,
) {
    let mut speaking: Option<(Option<[u8; 6]>, Socket)> = None;
    let mut next = Instant::now();
    let mut last_answer: Option<Instant> = None;
    let mut buffer = vec![0u8; 1500];
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            heard = listener.recv(&mut buffer) => {
                let Ok(len) = heard else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let solicited = {
                    let state = changes.borrow();
                    solicitation_from(&buffer[..len], &state.ports)
                };
                let too_soon =
                    last_answer.is_some_and(|at| at.elapsed() < MIN_DELAY_BETWEEN_ANSWERS);
                if !solicited || too_soon {
                    continue;
                }
                last_answer = Some(Instant::now());
            }
        }
        let advertisement = changes.borrow_and_update().advertisement.clone();
        let to = SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, index));
        if speaking.as_ref().map(|(router, _)| *router) != Some(advertisement.router) {
            // A router that is no longer the default says so itself, or guests would
            // keep it for its whole lifetime.
            if let Some((Some(router), socket)) = &speaking {
                let farewell = message(&advertisement, Some(*router), 0);
                if let Err(error) = socket.send_to(&farewell, &to) {
                    tracing::warn!(%bridge, %error, "cannot withdraw a router");
                }
            }
            let source = advertisement.router.map(|mac| link_local_of(&mac));
            match speaker(&bridge, index, source) {
                Ok(socket) => speaking = Some((advertisement.router, socket)),
                Err(error) => {
                    tracing::warn!(%bridge, %error, "cannot send router advertisements");
                    speaking = None;
                }
            }
        }
        if let Some((_, socket)) = &speaking {
            let bytes = message(
                &advertisement,
                advertisement.router,
                ROUTER_LIFETIME_SECONDS,
            );
            if let Err(error) = socket.send_to(&bytes, &to) {
                tracing::warn!(%bridge, %error, "cannot send a router advertisement");
            }
        }
        next = Instant::now() + INTERVAL;
    }
}

/// Whether `icmp` (an ICMPv6 message) is a router solicitation to be answered: one from
/// a port among `ports`, or from a guest that has no address yet (and so names no MAC).
pub fn solicitation_from(icmp: &[u8], ports: &BTreeSet<[u8; 6]>) -> bool {
    if icmp.len() < 8 || icmp[0] != ROUTER_SOLICITATION || icmp[1] != 0 {
        return false;
    }
    let mut options = &icmp[8..];
    while options.len() >= 8 {
        let kind = options[0];
        let len = usize::from(options[1]) * 8;
        if len == 0 || len > options.len() {
            return false;
        }
        if kind == option::SOURCE_LINK_ADDRESS {
            return <[u8; 6]>::try_from(&options[2..8]).is_ok_and(|mac| ports.contains(&mac));
        }
        options = &options[len..];
    }
    true
}

/// The advertisement as an ICMPv6 message from `router` (the kernel fills in the
/// checksum), naming it the default for `lifetime` seconds (none without a router).
pub fn message(advertisement: &Advertisement, router: Option<[u8; 6]>, lifetime: u16) -> Vec<u8> {
    let mut out = vec![ROUTER_ADVERTISEMENT, 0, 0, 0];
    // Current hop limit: the guests' own default.
    out.push(0);
    let mut flags = 0u8;
    if advertisement.managed {
        flags |= 0x80;
    }
    if advertisement.other || advertisement.managed {
        flags |= 0x40;
    }
    out.push(flags);
    let lifetime = if router.is_some() { lifetime } else { 0 };
    out.extend_from_slice(&lifetime.to_be_bytes());
    // Reachable time and retransmission timer: the guests' own.
    out.extend_from_slice(&[0; 8]);
    if let Some(mac) = router {
        out.extend_from_slice(&[option::SOURCE_LINK_ADDRESS, 1]);
        out.extend_from_slice(&mac);
    }
    out.extend_from_slice(&[option::MTU, 1, 0, 0]);
    out.extend_from_slice(&advertisement.mtu.to_be_bytes());
    for prefix in &advertisement.prefixes {
        out.extend_from_slice(&[option::PREFIX, 4, prefix.len]);
        // On-link, and autonomous when guests make their addresses from it.
        out.push(if prefix.autonomous { 0xc0 } else { 0x80 });
        out.extend_from_slice(&VALID_LIFETIME_SECONDS.to_be_bytes());
        out.extend_from_slice(&PREFERRED_LIFETIME_SECONDS.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&prefix.network.octets());
    }
    if !advertisement.dns_servers.is_empty() {
        let Ok(len) = u8::try_from(1 + 2 * advertisement.dns_servers.len()) else {
            return out;
        };
        out.extend_from_slice(&[option::DNS_SERVERS, len, 0, 0]);
        out.extend_from_slice(&DNS_LIFETIME_SECONDS.to_be_bytes());
        for server in &advertisement.dns_servers {
            out.extend_from_slice(&server.octets());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 1];
    const ROUTER: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 0xfe];

    #[test]
    fn an_advertisement_carries_the_router_the_prefixes_and_the_dns_servers() {
        let advertisement = Advertisement {
            managed: false,
            other: false,
            router: Some(ROUTER),
            prefixes: vec![
                Prefix {
                    network: "fd00:a::".parse().unwrap(),
                    len: 64,
                    autonomous: true,
                },
                Prefix {
                    network: "fd00:b::".parse().unwrap(),
                    len: 64,
                    autonomous: false,
                },
            ],
            mtu: 1450,
            dns_servers: vec!["fd00:a::53".parse().unwrap()],
        };
        let bytes = message(&advertisement, Some(ROUTER), ROUTER_LIFETIME_SECONDS);
        assert_eq!(&bytes[..4], &[134, 0, 0, 0]);
        assert_eq!(bytes[5], 0, "neither M nor O");
        assert_eq!(u16::from_be_bytes([bytes[6], bytes[7]]), 1800);
        // Options: the router's MAC, the MTU, two prefixes, the DNS server.
        assert_eq!(&bytes[16..24], &[1, 1, 0xfa, 0x16, 0x3e, 0, 0, 0xfe]);
        assert_eq!(&bytes[24..32], &[5, 1, 0, 0, 0, 0, 0x05, 0xaa]);
        assert_eq!(&bytes[32..36], &[3, 4, 64, 0xc0]);
        assert_eq!(
            &bytes[48..64],
            &"fd00:a::".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(&bytes[64..68], &[3, 4, 64, 0x80]);
        assert_eq!(&bytes[96..100], &[25, 3, 0, 0]);
        assert_eq!(bytes.len(), 96 + 24);
        // A router withdrawn says so with a zero lifetime.
        let farewell = message(&advertisement, Some(ROUTER), 0);
        assert_eq!(&farewell[6..8], &[0, 0]);
        assert_eq!(&farewell[16..24], &bytes[16..24]);
    }

    #[test]
    fn without_a_router_the_lifetime_is_zero_and_dhcpv6_sets_both_flags() {
        let advertisement = Advertisement {
            managed: true,
            mtu: 1500,
            ..Advertisement::default()
        };
        let bytes = message(&advertisement, None, ROUTER_LIFETIME_SECONDS);
        assert_eq!(bytes[5], 0xc0);
        assert_eq!(&bytes[6..8], &[0, 0]);
        assert_eq!(bytes[16], 5, "no source link-layer option without a router");
    }

    #[test]
    fn solicitations_are_answered_for_the_nodes_own_ports() {
        let ports = BTreeSet::from([GUEST]);
        let mut solicitation = vec![133, 0, 0, 0, 0, 0, 0, 0];
        assert!(solicitation_from(&solicitation, &ports), "no address yet");
        solicitation.extend_from_slice(&[1, 1]);
        solicitation.extend_from_slice(&GUEST);
        assert!(solicitation_from(&solicitation, &ports));
        assert!(!solicitation_from(&solicitation, &BTreeSet::new()));
        let mut advertisement = solicitation.clone();
        advertisement[0] = 134;
        assert!(!solicitation_from(&advertisement, &ports));
        let mut broken = solicitation;
        broken[9] = 0;
        assert!(!solicitation_from(&broken, &ports));
    }
}
