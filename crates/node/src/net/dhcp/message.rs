//! DHCPv4 messages (RFC 2131, options of RFC 2132 and RFC 3442): what a guest's client
//! asks, and the answers the node gives it.

use std::net::Ipv4Addr;

/// The fixed part of a message, before the magic cookie and the options.
const FIXED_LEN: usize = 236;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
const ETHERNET: u8 = 1;

mod option {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS_SERVERS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const INTERFACE_MTU: u8 = 26;
    pub const REQUESTED_ADDRESS: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLASSLESS_ROUTES: u8 = 121;
    pub const END: u8 = 255;
}

/// DHCP's message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
}

impl MessageType {
    fn code(self) -> u8 {
        match self {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
        }
    }

    fn from_code(code: u8) -> Option<MessageType> {
        Some(match code {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            _ => return None,
        })
    }
}

/// A client's message, as far as a server answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: MessageType,
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    /// Option 50: the address a client in SELECTING or INIT-REBOOT asks for.
    pub requested: Option<Ipv4Addr>,
    /// Option 54: the server a client in SELECTING chose.
    pub server_id: Option<Ipv4Addr>,
}

impl Request {
    /// The address the client asks to keep or take, if it names one.
    pub fn wanted_address(&self) -> Option<Ipv4Addr> {
        self.requested
            .or((!self.ciaddr.is_unspecified()).then_some(self.ciaddr))
    }
}

/// Parses a client's message; `None` for anything that is not a well-formed Ethernet
/// client's request.
pub fn parse(bytes: &[u8]) -> Option<Request> {
    if bytes.len() < FIXED_LEN + MAGIC_COOKIE.len()
        || bytes[0] != BOOTREQUEST
        || bytes[1] != ETHERNET
        || bytes[2] != 6
        || bytes[FIXED_LEN..FIXED_LEN + 4] != MAGIC_COOKIE
    {
        return None;
    }
    let u32_at =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let address_at = |at: usize| Ipv4Addr::from(u32_at(at));
    let mut chaddr = [0; 6];
    chaddr.copy_from_slice(&bytes[28..34]);
    let mut kind = None;
    let mut requested = None;
    let mut server_id = None;
    let mut options = &bytes[FIXED_LEN + 4..];
    while let [code, rest @ ..] = options {
        match *code {
            option::PAD => {
                options = rest;
                continue;
            }
            option::END => break,
            _ => {}
        }
        let [len, rest @ ..] = rest else { return None };
        let len = usize::from(*len);
        if rest.len() < len {
            return None;
        }
        let (value, rest) = rest.split_at(len);
        match (*code, value) {
            (option::MESSAGE_TYPE, [kind_code]) => kind = MessageType::from_code(*kind_code),
            (option::REQUESTED_ADDRESS, [a, b, c, d]) => {
                requested = Some(Ipv4Addr::new(*a, *b, *c, *d));
            }
            (option::SERVER_ID, [a, b, c, d]) => server_id = Some(Ipv4Addr::new(*a, *b, *c, *d)),
            _ => {}
        }
        options = rest;
    }
    Some(Request {
        kind: kind?,
        xid: u32_at(4),
        flags: u16::from_be_bytes([bytes[10], bytes[11]]),
        ciaddr: address_at(12),
        giaddr: address_at(24),
        chaddr,
        requested,
        server_id,
    })
}

/// What the node gives one port: its address and how to reach the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
    /// Destination, prefix length, next hop.
    pub routes: Vec<(Ipv4Addr, u8, Ipv4Addr)>,
    pub mtu: u16,
    pub hostname: Option<String>,
    pub lease_seconds: u32,
}

/// The reply of kind `kind` (offer, ack or nak) to `request` from server `server_id`.
pub fn reply(request: &Request, kind: MessageType, lease: &Lease, server_id: Ipv4Addr) -> Vec<u8> {
    let mut out = vec![0; FIXED_LEN];
    out[0] = BOOTREPLY;
    out[1] = ETHERNET;
    out[2] = 6;
    out[4..8].copy_from_slice(&request.xid.to_be_bytes());
    out[10..12].copy_from_slice(&request.flags.to_be_bytes());
    if kind == MessageType::Ack && request.kind == MessageType::Inform {
        out[12..16].copy_from_slice(&request.ciaddr.octets());
    } else if kind != MessageType::Nak {
        out[16..20].copy_from_slice(&lease.address.octets());
    }
    out[24..28].copy_from_slice(&request.giaddr.octets());
    out[28..34].copy_from_slice(&request.chaddr);
    out.extend_from_slice(&MAGIC_COOKIE);
    let mut put = |code: u8, value: &[u8]| {
        // Every value here is far shorter than 255 bytes but a hostname, cut to fit.
        let len = value.len().min(255);
        out.push(code);
        out.push(u8::try_from(len).unwrap_or(u8::MAX));
        out.extend_from_slice(&value[..len]);
    };
    put(option::MESSAGE_TYPE, &[kind.code()]);
    put(option::SERVER_ID, &server_id.octets());
    if kind != MessageType::Nak {
        if request.kind != MessageType::Inform {
            let seconds = lease.lease_seconds;
            put(option::LEASE_TIME, &seconds.to_be_bytes());
            put(option::RENEWAL_TIME, &(seconds / 2).to_be_bytes());
            put(option::REBINDING_TIME, &(seconds / 8 * 7).to_be_bytes());
        }
        put(option::SUBNET_MASK, &mask(lease.prefix_len).octets());
        if let Some(gateway) = lease.gateway {
            put(option::ROUTER, &gateway.octets());
        }
        if !lease.dns_servers.is_empty() {
            let servers: Vec<u8> = lease.dns_servers.iter().flat_map(|a| a.octets()).collect();
            put(option::DNS_SERVERS, &servers);
        }
        put(option::INTERFACE_MTU, &lease.mtu.to_be_bytes());
        if let Some(hostname) = &lease.hostname {
            put(option::HOSTNAME, hostname.as_bytes());
        }
        if !lease.routes.is_empty() {
            // A client that takes option 121 ignores option 3 (RFC 3442), so the
            // default route goes in it too.
            let mut routes = lease.routes.clone();
            if let Some(gateway) = lease.gateway {
                routes.push((Ipv4Addr::UNSPECIFIED, 0, gateway));
            }
            put(option::CLASSLESS_ROUTES, &classless_routes(&routes));
        }
    }
    out.push(option::END);
    out
}

fn mask(prefix_len: u8) -> Ipv4Addr {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(bits)
}

/// RFC 3442's encoding: the prefix length, the destination's significant octets, the
/// router.
fn classless_routes(routes: &[(Ipv4Addr, u8, Ipv4Addr)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (destination, len, router) in routes {
        out.push(*len);
        let significant = usize::from(len.div_ceil(8));
        out.extend_from_slice(&destination.octets()[..significant]);
        out.extend_from_slice(&router.octets());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discover() -> Vec<u8> {
        let mut bytes = vec![0; FIXED_LEN];
        bytes[0] = BOOTREQUEST;
        bytes[1] = ETHERNET;
        bytes[2] = 6;
        bytes[4..8].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
        bytes[10] = 0x80;
        bytes[28..34].copy_from_slice(&[0x52, 0x54, 0, 1, 2, 3]);
        bytes.extend_from_slice(&MAGIC_COOKIE);
        bytes.extend_from_slice(&[53, 1, 1, 0, 50, 4, 10, 0, 0, 9, 255]);
        bytes
    }

    fn lease() -> Lease {
        Lease {
            address: Ipv4Addr::new(10, 0, 0, 5),
            prefix_len: 24,
            gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
            dns_servers: vec![Ipv4Addr::new(9, 9, 9, 9)],
            routes: vec![(
                Ipv4Addr::new(192, 168, 0, 0),
                16,
                Ipv4Addr::new(10, 0, 0, 254),
            )],
            mtu: 1450,
            hostname: Some("vm-1".to_owned()),
            lease_seconds: 600,
        }
    }

    #[test]
    fn a_discover_parses() {
        let request = parse(&discover()).unwrap();
        assert_eq!(request.kind, MessageType::Discover);
        assert_eq!(request.xid, 0xdead_beef);
        assert_eq!(request.flags, 0x8000);
        assert_eq!(request.chaddr, [0x52, 0x54, 0, 1, 2, 3]);
        assert_eq!(request.wanted_address(), Some(Ipv4Addr::new(10, 0, 0, 9)));
    }

    #[test]
    fn malformed_messages_are_ignored() {
        let good = discover();
        assert!(parse(&good[..100]).is_none());
        let mut reply = good.clone();
        reply[0] = BOOTREPLY;
        assert!(parse(&reply).is_none());
        let mut overrun = good.clone();
        let at = overrun.len() - 1;
        overrun[at] = 12; // an option whose length runs past the end
        overrun.push(40);
        assert!(parse(&overrun).is_none());
        let mut no_type = good;
        no_type[FIXED_LEN + 6] = 0; // option 53 → a pad and stray bytes
        assert!(
            parse(&no_type).is_none() || parse(&no_type).unwrap().kind != MessageType::Discover
        );
    }

    #[test]
    fn an_offer_carries_the_lease() {
        let request = parse(&discover()).unwrap();
        let bytes = reply(
            &request,
            MessageType::Offer,
            &lease(),
            Ipv4Addr::new(10, 0, 0, 1),
        );
        assert_eq!(bytes[0], BOOTREPLY);
        assert_eq!(&bytes[4..8], &0xdead_beef_u32.to_be_bytes());
        assert_eq!(&bytes[16..20], &[10, 0, 0, 5]);
        assert_eq!(&bytes[28..34], &[0x52, 0x54, 0, 1, 2, 3]);
        let options = &bytes[FIXED_LEN + 4..];
        let find = |code: u8| -> Vec<u8> {
            let mut at = 0;
            while options[at] != option::END {
                let len = usize::from(options[at + 1]);
                if options[at] == code {
                    return options[at + 2..at + 2 + len].to_vec();
                }
                at += 2 + len;
            }
            panic!("no option {code}");
        };
        assert_eq!(find(option::MESSAGE_TYPE), [2]);
        assert_eq!(find(option::SUBNET_MASK), [255, 255, 255, 0]);
        assert_eq!(find(option::ROUTER), [10, 0, 0, 1]);
        assert_eq!(find(option::LEASE_TIME), 600u32.to_be_bytes());
        assert_eq!(find(option::INTERFACE_MTU), 1450u16.to_be_bytes());
        assert_eq!(find(option::HOSTNAME), b"vm-1");
        assert_eq!(
            find(option::CLASSLESS_ROUTES),
            [16, 192, 168, 10, 0, 0, 254, 0, 10, 0, 0, 1]
        );
    }

    #[test]
    fn a_nak_gives_no_address() {
        let request = parse(&discover()).unwrap();
        let bytes = reply(
            &request,
            MessageType::Nak,
            &lease(),
            Ipv4Addr::new(10, 0, 0, 1),
        );
        assert_eq!(&bytes[16..20], &[0, 0, 0, 0]);
        assert_eq!(&bytes[FIXED_LEN + 4..FIXED_LEN + 7], &[53, 1, 6]);
    }
}
