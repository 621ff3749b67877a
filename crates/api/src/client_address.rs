//! The address a request comes from: the peer of its connection, or, when that peer is a
//! trusted front proxy (a load balancer), the last address it appended to
//! `X-Forwarded-For`. Anyone can send that header, so it is believed only from the proxies
//! an operator named.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::Request;

/// Where a request came from, as a request extension set by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// Finds the client address of requests on one connection.
#[derive(Debug, Clone)]
pub(crate) struct ClientAddresses {
    pub(crate) peer: SocketAddr,
    pub(crate) trusted_proxies: Arc<[IpAddr]>,
}

impl ClientAddresses {
    pub(crate) fn of<B>(&self, request: &Request<B>) -> IpAddr {
        let peer = self.peer.ip().to_canonical();
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        // The last entry is the one the proxy added; anything before it is the client's
        // say. An entry the proxy wrote that does not parse falls back to the proxy itself,
        // never to an entry the client wrote.
        request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .and_then(|entry| entry.trim().parse::<IpAddr>().ok())
            .map_or(peer, |ip| ip.to_canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxy: IpAddr = [10, 0, 0, 2].into();
        let request = Request::builder()
            .header("x-forwarded-for", "203.0.113.9, 198.51.100.4")
            .body(())
            .unwrap();
        let via_proxy = ClientAddresses {
            peer: SocketAddr::new(proxy, 40000),
            trusted_proxies: Arc::from([proxy]),
        };
        assert_eq!(via_proxy.of(&request), IpAddr::from([198, 51, 100, 4]));
        let direct = ClientAddresses {
            peer: SocketAddr::new([192, 0, 2, 1].into(), 40000),
            trusted_proxies: Arc::from([proxy]),
        };
        assert_eq!(direct.of(&request), IpAddr::from([192, 0, 2, 1]));
        let no_header = Request::builder().body(()).unwrap();
        assert_eq!(via_proxy.of(&no_header), proxy);
        // A last entry that does not parse never lets an earlier, client-written one count.
        let spoofed = Request::builder()
            .header("x-forwarded-for", "203.0.113.9, unknown")
            .body(())
            .unwrap();
        assert_eq!(via_proxy.of(&spoofed), proxy);
        // A proxy seen through an IPv6 socket is still the trusted one.
        let mapped = ClientAddresses {
            peer: SocketAddr::new("::ffff:10.0.0.2".parse().unwrap(), 40000),
            trusted_proxies: Arc::from([proxy]),
        };
        assert_eq!(mapped.of(&request), IpAddr::from([198, 51, 100, 4]));
    }
}
