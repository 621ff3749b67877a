//! Addresses, CIDRs and ranges as numbers: an IPv4 or IPv6 address is a `u128` with its
//! version beside it, so pool arithmetic is the same for both families.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP version, as Neutron numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpVersion {
    V4,
    V6,
}

impl IpVersion {
    pub fn number(self) -> u8 {
        match self {
            IpVersion::V4 => 4,
            IpVersion::V6 => 6,
        }
    }

    pub fn from_number(number: i64) -> Option<IpVersion> {
        match number {
            4 => Some(IpVersion::V4),
            6 => Some(IpVersion::V6),
            _ => None,
        }
    }

    fn bits(self) -> u8 {
        match self {
            IpVersion::V4 => 32,
            IpVersion::V6 => 128,
        }
    }

    pub fn of(address: IpAddr) -> IpVersion {
        match address {
            IpAddr::V4(_) => IpVersion::V4,
            IpAddr::V6(_) => IpVersion::V6,
        }
    }
}

/// An address as a number of its version.
pub fn to_number(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address `number` of `version`; `None` when it does not fit the version.
pub fn from_number(version: IpVersion, number: u128) -> Option<IpAddr> {
    match version {
        IpVersion::V4 => u32::try_from(number)
            .ok()
            .map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        IpVersion::V6 => Some(IpAddr::V6(Ipv6Addr::from(number))),
    }
}

/// Why a CIDR was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    /// Not `address/prefix` with a prefix the address's version allows.
    Malformed,
    /// Host bits are set: `recommended` is the network it names.
    HostBits { recommended: String },
}

/// A network prefix: `10.0.0.0/24`, `2001:db8::/64`. Host bits are always zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    version: IpVersion,
    network: u128,
    prefix: u8,
}

impl Cidr {
    /// Parses `address/prefix` (a bare address is its own /32 or /128), refusing host bits.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = IpAddr::from_str(address).map_err(|_| CidrError::Malformed)?;
        let version = IpVersion::of(address);
        let prefix = match prefix {
            Some(prefix) if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) => {
                prefix.parse::<u8>().map_err(|_| CidrError::Malformed)?
            }
            Some(_) => return Err(CidrError::Malformed),
            None => version.bits(),
        };
        if prefix > version.bits() {
            return Err(CidrError::Malformed);
        }
        let number = to_number(address);
        let cidr = Cidr {
            version,
            network: number & mask(version, prefix),
            prefix,
        };
        if cidr.network != number {
            return Err(CidrError::HostBits {
                recommended: cidr.to_string(),
            });
        }
        Ok(cidr)
    }

    pub fn version(&self) -> IpVersion {
        self.version
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The first address (the network's own).
    pub fn first(&self) -> u128 {
        self.network
    }

    /// The last address (IPv4's broadcast).
    pub fn last(&self) -> u128 {
        self.network | (!mask(self.version, self.prefix) & all_ones(self.version))
    }

    /// How many addresses the prefix spans, saturating for an IPv6 /0.
    pub fn size(&self) -> u128 {
        (self.last() - self.first()).saturating_add(1)
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        IpVersion::of(address) == self.version && self.contains_number(to_number(address))
    }

    pub fn contains_number(&self, number: u128) -> bool {
        (self.first()..=self.last()).contains(&number)
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.version == other.version
            && self.first() <= other.last()
            && other.first() <= self.last()
    }

    /// The addresses a host may hold: all but IPv4's network and broadcast addresses
    /// (on prefixes of /30 and wider) and IPv6's subnet-router anycast address.
    pub fn hosts(&self) -> Option<Range> {
        let (first, last) = match self.version {
            IpVersion::V4 if self.prefix >= 31 => (self.first(), self.last()),
            IpVersion::V4 => (self.first() + 1, self.last() - 1),
            IpVersion::V6 if self.prefix == 128 => (self.first(), self.last()),
            IpVersion::V6 => (self.first() + 1, self.last()),
        };
        Range::new(first, last)
    }

    pub fn address(&self, number: u128) -> Option<IpAddr> {
        from_number(self.version, number)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match from_number(self.version, self.network) {
            Some(address) => write!(f, "{address}/{}", self.prefix),
            None => write!(f, "?/{}", self.prefix),
        }
    }
}

fn all_ones(version: IpVersion) -> u128 {
    match version {
        IpVersion::V4 => u128::from(u32::MAX),
        IpVersion::V6 => u128::MAX,
    }
}

fn mask(version: IpVersion, prefix: u8) -> u128 {
    let host_bits = u32::from(version.bits() - prefix);
    let host = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    all_ones(version) & !host
}

/// An inclusive range of addresses of one version, as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Range {
    pub first: u128,
    pub last: u128,
}

impl Range {
    pub fn new(first: u128, last: u128) -> Option<Range> {
        (first <= last).then_some(Range { first, last })
    }

    pub fn contains(&self, number: u128) -> bool {
        (self.first..=self.last).contains(&number)
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// The modified EUI-64 interface identifier of a MAC address (RFC 4291 appendix A), which
/// SLAAC puts after a /64's prefix.
pub fn eui64_interface(mac: [u8; 6]) -> u128 {
    let bytes = [
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ];
    u128::from(u64::from_be_bytes(bytes))
}

/// A MAC address from its colon-separated hex form.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_strictly() {
        let cidr = Cidr::parse("10.0.0.0/24").unwrap();
        assert_eq!(cidr.to_string(), "10.0.0.0/24");
        assert_eq!(cidr.size(), 256);
        assert_eq!(
            Cidr::parse("10.0.0.1/24"),
            Err(CidrError::HostBits {
                recommended: "10.0.0.0/24".into()
            })
        );
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0/24",
            "x/8",
            "10.0.0.0/+8",
        ] {
            assert_eq!(Cidr::parse(bad), Err(CidrError::Malformed), "{bad}");
        }
        let v6 = Cidr::parse("2001:db8::/64").unwrap();
        assert_eq!(v6.version(), IpVersion::V6);
        assert_eq!(v6.size(), 1 << 64);
        assert_eq!(Cidr::parse("::/0").unwrap().size(), u128::MAX);
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().size(), 1 << 32);
    }

    #[test]
    fn hosts_leave_out_what_no_host_may_hold() {
        let hosts = Cidr::parse("192.168.1.0/24").unwrap().hosts().unwrap();
        assert_eq!(hosts.last - hosts.first + 1, 254);
        let point = Cidr::parse("192.168.1.6/31").unwrap().hosts().unwrap();
        assert_eq!(point.last - point.first + 1, 2);
        let v6 = Cidr::parse("2001:db8::/126").unwrap().hosts().unwrap();
        assert_eq!(v6.last - v6.first + 1, 3);
    }

    #[test]
    fn overlaps_are_seen_across_prefix_lengths_only_within_a_version() {
        let a = Cidr::parse("10.0.0.0/16").unwrap();
        assert!(a.overlaps(&Cidr::parse("10.0.200.0/24").unwrap()));
        assert!(!a.overlaps(&Cidr::parse("10.1.0.0/24").unwrap()));
        assert!(!a.overlaps(&Cidr::parse("::/0").unwrap()));
    }

    #[test]
    fn eui64_follows_rfc_4291() {
        let mac = parse_mac("fa:16:3e:12:34:56").unwrap();
        let prefix = Cidr::parse("2001:db8::/64").unwrap();
        let address = prefix
            .address(prefix.first() | eui64_interface(mac))
            .unwrap();
        assert_eq!(address.to_string(), "2001:db8::f816:3eff:fe12:3456");
        assert_eq!(format_mac(mac), "fa:16:3e:12:34:56");
        assert_eq!(parse_mac("fa:16:3e:12:34"), None);
        assert_eq!(parse_mac("fa:16:3e:12:34:56:00"), None);
    }
}
