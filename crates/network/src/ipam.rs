//! IPAM: the addresses of a subnet a port may get, and taking one without a race.
//!
//! An allocation is a row keyed by (subnet, address), inserted only if no row has the
//! key: whatever the interleaving of concurrent transactions, on SQLite or PostgreSQL,
//! two ports never hold one address. A port that loses a race for an address reads the
//! subnet again and tries another. Candidates are drawn at random from the first few
//! free addresses, so that concurrent allocations seldom collide at all; in large pools
//! a few random addresses are tried first, without reading what is held.

use std::collections::HashSet;
use std::net::IpAddr;
use std::str::FromStr;

use nefos_db::Connection;
use nefos_db::network::{self as q, AllocationRow};
use rand::seq::SliceRandom;

use crate::address::{Cidr, IpVersion, Range, eui64_interface, parse_mac, to_number};
use crate::{NetworkError, Subnet};

/// How many of the first free addresses a new allocation picks from.
const CANDIDATES: usize = 16;

/// How often a port retries after losing every candidate to other ports.
const ATTEMPTS: usize = 64;

/// Whether a subnet's hosts configure themselves from router advertisements (SLAAC),
/// taking an address from their MAC rather than from the pools.
pub(crate) fn autoconfigured(subnet: &Subnet) -> bool {
    subnet.cidr.version() == IpVersion::V6
        && matches!(
            subnet.ipv6_address_mode.as_deref(),
            Some("slaac") | Some("dhcpv6-stateless")
        )
}

/// The address a SLAAC host with `mac` takes in `subnet`.
pub(crate) fn slaac_address(subnet: &Subnet, mac: &str) -> Result<IpAddr, NetworkError> {
    let mac = parse_mac(mac)
        .ok_or_else(|| NetworkError::invalid(format!("'{mac}' is not a valid MAC address")))?;
    subnet
        .cidr
        .address(subnet.cidr.first() | eui64_interface(mac))
        .ok_or_else(|| NetworkError::invalid("SLAAC needs an IPv6 /64"))
}

/// The first free addresses of `subnet`'s pools, skipping `held` and the gateway.
fn free_candidates(subnet: &Subnet, held: &HashSet<u128>) -> Vec<u128> {
    let gateway = subnet.gateway_ip.map(to_number);
    let mut free = Vec::with_capacity(CANDIDATES);
    for pool in &subnet.allocation_pools {
        let mut number = pool.first;
        loop {
            if !held.contains(&number) && Some(number) != gateway {
                free.push(number);
                if free.len() == CANDIDATES {
                    return free;
                }
            }
            if number == pool.last {
                break;
            }
            number += 1;
        }
    }
    free
}

/// The addresses ports hold in a subnet.
async fn held(conn: &mut Connection, subnet: &Subnet) -> Result<HashSet<u128>, NetworkError> {
    Ok(q::subnet_addresses(&mut *conn, &subnet.id)
        .await?
        .iter()
        .filter_map(|text| IpAddr::from_str(text).ok())
        .map(to_number)
        .collect())
}

/// Pools at least this large are first tried at random addresses: reading every held
/// address of a big subnet for each port would cost more the fuller it gets.
const PROBED_POOL: u128 = 1024;
/// Random addresses tried before reading what is held.
const PROBES: usize = 4;

/// A random free address of `subnet`'s pools taken for `port`, when its pools are large
/// (and so, unless nearly full, mostly free); `None` to fall back to reading them.
async fn probe(
    conn: &mut Connection,
    subnet: &Subnet,
    port: &str,
) -> Result<Option<IpAddr>, NetworkError> {
    let size: u128 = subnet
        .allocation_pools
        .iter()
        .map(|pool| pool.last - pool.first + 1)
        .sum();
    if size < PROBED_POOL {
        return Ok(None);
    }
    let gateway = subnet.gateway_ip.map(to_number);
    for _ in 0..PROBES {
        let mut offset = rand::Rng::gen_range(&mut rand::thread_rng(), 0..size);
        let Some(number) = subnet.allocation_pools.iter().find_map(|pool| {
            let length = pool.last - pool.first + 1;
            if offset < length {
                Some(pool.first + offset)
            } else {
                offset -= length;
                None
            }
        }) else {
            continue;
        };
        if Some(number) == gateway {
            continue;
        }
        let Some(address) = subnet.cidr.address(number) else {
            continue;
        };
        if take(conn, subnet, port, address).await? {
            return Ok(Some(address));
        }
    }
    Ok(None)
}

/// Takes a free address of `subnet`'s pools for `port`, or `None` when there is none.
pub(crate) async fn allocate_any(
    conn: &mut Connection,
    subnet: &Subnet,
    port: &str,
) -> Result<Option<IpAddr>, NetworkError> {
    if let Some(address) = probe(conn, subnet, port).await? {
        return Ok(Some(address));
    }
    for _ in 0..ATTEMPTS {
        let held = held(conn, subnet).await?;
        let mut candidates = free_candidates(subnet, &held);
        if candidates.is_empty() {
            return Ok(None);
        }
        candidates.shuffle(&mut rand::thread_rng());
        for number in candidates {
            let Some(address) = subnet.cidr.address(number) else {
                continue;
            };
            if take(conn, subnet, port, address).await? {
                return Ok(Some(address));
            }
        }
    }
    Err(NetworkError::conflict(
        "IpAddressGenerationFailure",
        format!(
            "No more IP addresses available on network {}.",
            subnet.network_id
        ),
    ))
}

/// Takes `address` of `subnet` for `port`: a 409 if another port holds it or it is the
/// gateway, a 400 if no host may hold it.
pub(crate) async fn allocate_exact(
    conn: &mut Connection,
    subnet: &Subnet,
    port: &str,
    address: IpAddr,
) -> Result<(), NetworkError> {
    check_host_address(subnet, address)?;
    if subnet.gateway_ip == Some(address) || !take(conn, subnet, port, address).await? {
        return Err(NetworkError::conflict(
            "IpAddressAlreadyAllocated",
            format!(
                "IP address {address} already allocated in subnet {}",
                subnet.id
            ),
        ));
    }
    Ok(())
}

/// Takes `subnet`'s gateway address for a router's interface `port`: a 409 if a port
/// holds it already.
pub(crate) async fn allocate_gateway(
    conn: &mut Connection,
    subnet: &Subnet,
    port: &str,
    address: IpAddr,
) -> Result<(), NetworkError> {
    if subnet.gateway_ip != Some(address) {
        return allocate_exact(conn, subnet, port, address).await;
    }
    if !take(conn, subnet, port, address).await? {
        return Err(NetworkError::conflict(
            "IpAddressAlreadyAllocated",
            format!(
                "IP address {address} already allocated in subnet {}",
                subnet.id
            ),
        ));
    }
    Ok(())
}

/// Refuses an address outside the subnet or one of IPv4's network and broadcast
/// addresses.
pub(crate) fn check_host_address(subnet: &Subnet, address: IpAddr) -> Result<(), NetworkError> {
    let host = subnet
        .cidr
        .hosts()
        .is_some_and(|hosts| hosts.contains(to_number(address)));
    if !subnet.cidr.contains(address) || (subnet.cidr.version() == IpVersion::V4 && !host) {
        return Err(NetworkError::bad_request(
            "InvalidIpForSubnet",
            format!("IP address {address} is not a valid IP for the specified subnet."),
        ));
    }
    Ok(())
}

async fn take(
    conn: &mut Connection,
    subnet: &Subnet,
    port: &str,
    address: IpAddr,
) -> Result<bool, NetworkError> {
    Ok(q::allocate_address(
        conn,
        &AllocationRow {
            subnet_id: subnet.id.clone(),
            address: address.to_string(),
            port_id: port.to_owned(),
            network_id: subnet.network_id.clone(),
        },
    )
    .await?)
}

/// The pools a subnet gets when its request names none: every host address but the
/// gateway's.
pub(crate) fn default_pools(cidr: &Cidr, gateway: Option<IpAddr>) -> Vec<Range> {
    let Some(hosts) = cidr.hosts() else {
        return Vec::new();
    };
    match gateway.map(to_number).filter(|g| hosts.contains(*g)) {
        None => vec![hosts],
        Some(gateway) => [
            gateway
                .checked_sub(1)
                .and_then(|last| Range::new(hosts.first, last)),
            gateway
                .checked_add(1)
                .and_then(|first| Range::new(first, hosts.last)),
        ]
        .into_iter()
        .flatten()
        .collect(),
    }
}

/// Checks a subnet's pools as Neutron does: each inside the subnet, none overlapping
/// another, none holding the gateway. Returns them sorted.
pub(crate) fn check_pools(
    cidr: &Cidr,
    gateway: Option<IpAddr>,
    mut pools: Vec<Range>,
) -> Result<Vec<Range>, NetworkError> {
    let show = |pool: &Range| {
        format!(
            "{}-{}",
            cidr.address(pool.first)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            cidr.address(pool.last)
                .map(|a| a.to_string())
                .unwrap_or_default()
        )
    };
    // Pools hold only addresses a host may have: not IPv4's network and broadcast
    // addresses, nor IPv6's subnet-router anycast address.
    let hosts = cidr.hosts();
    for pool in &pools {
        let inside = hosts.is_some_and(|h| h.contains(pool.first) && h.contains(pool.last));
        if !inside {
            return Err(NetworkError::bad_request(
                "OutOfBoundsAllocationPool",
                format!(
                    "The allocation pool {} spans beyond the subnet cidr {cidr}.",
                    show(pool)
                ),
            ));
        }
    }
    pools.sort();
    for pair in pools.windows(2) {
        if pair[0].overlaps(&pair[1]) {
            return Err(NetworkError::conflict(
                "OverlappingAllocationPools",
                format!(
                    "Found overlapping allocation pools: {} {} for subnet {cidr}.",
                    show(&pair[0]),
                    show(&pair[1])
                ),
            ));
        }
    }
    if let Some(gateway) = gateway
        && let Some(pool) = pools.iter().find(|p| p.contains(to_number(gateway)))
    {
        return Err(NetworkError::conflict(
            "GatewayConflictWithAllocationPools",
            format!(
                "Gateway ip {gateway} conflicts with allocation pool {}",
                show(pool)
            ),
        ));
    }
    Ok(pools)
}

/// A pool from the two ends of its range, both of the subnet's version.
pub(crate) fn pool(cidr: &Cidr, start: IpAddr, end: IpAddr) -> Result<Range, NetworkError> {
    let invalid = || {
        NetworkError::bad_request(
            "InvalidAllocationPool",
            format!("The allocation pool {start}-{end} is not valid."),
        )
    };
    if IpVersion::of(start) != cidr.version() || IpVersion::of(end) != cidr.version() {
        return Err(invalid());
    }
    Range::new(to_number(start), to_number(end)).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn default_pools_leave_out_the_gateway() {
        let cidr = Cidr::parse("10.0.0.0/24").unwrap();
        let pools = default_pools(&cidr, Some(ip("10.0.0.1")));
        assert_eq!(pools.len(), 1);
        assert_eq!(cidr.address(pools[0].first), Some(ip("10.0.0.2")));
        assert_eq!(cidr.address(pools[0].last), Some(ip("10.0.0.254")));
        let split = default_pools(&cidr, Some(ip("10.0.0.100")));
        assert_eq!(split.len(), 2);
        assert_eq!(cidr.address(split[0].last), Some(ip("10.0.0.99")));
        assert_eq!(cidr.address(split[1].first), Some(ip("10.0.0.101")));
        assert_eq!(
            default_pools(&cidr, None)[0].first,
            to_number(ip("10.0.0.1"))
        );
    }

    #[test]
    fn pools_are_checked_as_neutron_checks_them() {
        let cidr = Cidr::parse("10.0.0.0/24").unwrap();
        let range = |a, b| pool(&cidr, ip(a), ip(b)).unwrap();
        let outside = check_pools(&cidr, None, vec![range("10.0.0.10", "10.0.1.5")]);
        assert_eq!(outside.unwrap_err().kind(), "OutOfBoundsAllocationPool");
        for no_host in [
            range("10.0.0.0", "10.0.0.9"),
            range("10.0.0.200", "10.0.0.255"),
        ] {
            let refused = check_pools(&cidr, None, vec![no_host]);
            assert_eq!(refused.unwrap_err().kind(), "OutOfBoundsAllocationPool");
        }
        let overlapping = check_pools(
            &cidr,
            None,
            vec![
                range("10.0.0.50", "10.0.0.60"),
                range("10.0.0.10", "10.0.0.50"),
            ],
        );
        assert_eq!(
            overlapping.unwrap_err().kind(),
            "OverlappingAllocationPools"
        );
        let gateway = check_pools(
            &cidr,
            Some(ip("10.0.0.20")),
            vec![range("10.0.0.10", "10.0.0.50")],
        );
        assert_eq!(
            gateway.unwrap_err().kind(),
            "GatewayConflictWithAllocationPools"
        );
        assert_eq!(
            pool(&cidr, ip("10.0.0.9"), ip("10.0.0.8"))
                .unwrap_err()
                .kind(),
            "InvalidAllocationPool"
        );
        assert_eq!(
            pool(&cidr, ip("::1"), ip("::2")).unwrap_err().kind(),
            "InvalidAllocationPool"
        );
        let sorted = check_pools(
            &cidr,
            Some(ip("10.0.0.1")),
            vec![
                range("10.0.0.50", "10.0.0.60"),
                range("10.0.0.10", "10.0.0.20"),
            ],
        )
        .unwrap();
        assert_eq!(sorted[0].first, to_number(ip("10.0.0.10")));
    }
}
