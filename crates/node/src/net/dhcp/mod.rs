//! The node's DHCPv4 server, one per bridge, answering only the ports of that bridge on
//! this node, each with its own allocated address (what Synnefo's nfdhcpd does for its
//! taps). The bridge has no address of its own, so networks of any tenants may use the
//! same CIDR on one node: the server listens on the bridge alone (`SO_BINDTODEVICE`),
//! and broadcasts its answers, which clients match by transaction id and MAC.

pub mod message;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use self::message::{Lease, MessageType, Request};
use super::NetError;

const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;

/// The server identifier of a subnet without a gateway: link-local, so it is nobody's
/// address (a client renewing to it falls back to broadcasting).
pub const NO_GATEWAY_SERVER_ID: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// What the server answers: a MAC's lease and the server id it speaks as.
pub type Leases = HashMap<[u8; 6], (Lease, Ipv4Addr)>;

/// A running server on one bridge; it stops when dropped.
#[derive(Debug)]
pub struct DhcpServer {
    leases: Arc<RwLock<Leases>>,
    task: JoinHandle<()>,
}

impl DhcpServer {
    pub fn start(bridge: &str, leases: Leases) -> Result<DhcpServer, NetError> {
        let socket = listen(bridge).map_err(|source| NetError::Dhcp {
            bridge: bridge.to_owned(),
            source,
        })?;
        let leases = Arc::new(RwLock::new(leases));
        let task = tokio::spawn(serve(bridge.to_owned(), socket, leases.clone()));
        Ok(DhcpServer { leases, task })
    }

    pub fn set_leases(&self, leases: Leases) {
        if let Ok(mut current) = self.leases.write() {
            *current = leases;
        }
    }
}

impl Drop for DhcpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn listen(bridge: &str) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // Each bridge has a server of its own on port 67.
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    socket.bind_device(Some(bridge.as_bytes()))?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, SERVER_PORT)).into())?;
    UdpSocket::from_std(socket.into())
}

async fn serve(bridge: String, socket: UdpSocket, leases: Arc<RwLock<Leases>>) {
    let mut buffer = vec![0u8; 1500];
    loop {
        let len = match socket.recv_from(&mut buffer).await {
            Ok((len, _)) => len,
            Err(error) => {
                tracing::warn!(%bridge, %error, "DHCP server cannot receive");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(request) = message::parse(&buffer[..len]) else {
            continue;
        };
        let found = leases
            .read()
            .ok()
            .and_then(|leases| leases.get(&request.chaddr).cloned());
        // Another node's port (the request came over VXLAN), or no port at all.
        let Some((lease, server_id)) = found else {
            continue;
        };
        let Some(kind) = answer(&request, &lease, server_id) else {
            continue;
        };
        let reply = message::reply(&request, kind, &lease, server_id);
        let to = SocketAddr::from((Ipv4Addr::BROADCAST, CLIENT_PORT));
        if let Err(error) = socket.send_to(&reply, to).await {
            tracing::warn!(%bridge, %error, "DHCP server cannot answer");
        } else {
            tracing::debug!(%bridge, ?kind, address = %lease.address, "DHCP answer");
        }
    }
}

/// How to answer `request` for a port whose lease is `lease`; `None` to stay silent.
pub fn answer(request: &Request, lease: &Lease, server_id: Ipv4Addr) -> Option<MessageType> {
    match request.kind {
        MessageType::Discover => Some(MessageType::Offer),
        // A client that chose another server's offer.
        MessageType::Request if request.server_id.is_some_and(|id| id != server_id) => None,
        MessageType::Request => match request.wanted_address() {
            Some(wanted) if wanted != lease.address => Some(MessageType::Nak),
            _ => Some(MessageType::Ack),
        },
        MessageType::Inform => Some(MessageType::Ack),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> Lease {
        Lease {
            address: Ipv4Addr::new(10, 0, 0, 5),
            prefix_len: 24,
            gateway: None,
            dns_servers: Vec::new(),
            routes: Vec::new(),
            mtu: 1450,
            hostname: None,
            lease_seconds: 60,
        }
    }

    fn request(kind: MessageType, requested: Option<Ipv4Addr>) -> Request {
        Request {
            kind,
            xid: 1,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [2, 0, 0, 0, 0, 1],
            requested,
            server_id: None,
        }
    }

    #[test]
    fn a_client_keeps_only_its_own_address() {
        let id = NO_GATEWAY_SERVER_ID;
        let ours = Some(Ipv4Addr::new(10, 0, 0, 5));
        let old = Some(Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(
            answer(&request(MessageType::Discover, old), &lease(), id),
            Some(MessageType::Offer)
        );
        assert_eq!(
            answer(&request(MessageType::Request, ours), &lease(), id),
            Some(MessageType::Ack)
        );
        // After a renumbering the client asks for its old address and is told no, so it
        // starts over and gets the new one.
        assert_eq!(
            answer(&request(MessageType::Request, old), &lease(), id),
            Some(MessageType::Nak)
        );
        assert_eq!(
            answer(&request(MessageType::Release, ours), &lease(), id),
            None
        );
        let mut elsewhere = request(MessageType::Request, ours);
        elsewhere.server_id = Some(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(answer(&elsewhere, &lease(), id), None);
    }
}
