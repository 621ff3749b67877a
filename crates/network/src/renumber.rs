//! Renumbering: the operator moves a subnet of a network to another block (the provider
//! changed, or a private range clashes with one the users need), and every port of it
//! with it. Each address keeps its place in the block where the new block has room for
//! it (10.0.0.11 of a /24 becomes 10.9.0.11), so do the gateway and the pools; an address
//! that does not fit takes a free one. The IP history closes the old addresses and opens
//! the new ones, floating IPs follow their fixed addresses, and nodes hear of it through
//! the subnet's change (see `Networks::networks_changed_since`): their DHCP servers
//! refuse the old address at a guest's next renewal, so the guest asks again and takes
//! the new one within a lease time.

use std::net::IpAddr;
use std::str::FromStr;

use nefos_db::DbError;
use nefos_db::network::{self as q, AllocationRow, PoolScope};
use nefos_db::time::now_micros;

use crate::address::{Cidr, Range, to_number};
use crate::ipam::{allocate_any, check_pools, default_pools};
use crate::subnets::{parse_cidr, pool_rows, subnet};
use crate::{NetworkError, Networks, Subnet};

/// One address moved by a renumbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressMove {
    pub port_id: String,
    pub device_id: String,
    pub from: IpAddr,
    pub to: IpAddr,
}

/// What a renumbering did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renumbered {
    pub subnet_id: String,
    pub from: Cidr,
    pub to: Cidr,
    pub gateway: Option<IpAddr>,
    pub moves: Vec<AddressMove>,
}

/// `address` of `from` at the same place in `to`, if `to`'s hosts have that place.
fn same_place(from: &Cidr, to: &Cidr, address: IpAddr) -> Option<IpAddr> {
    let offset = to_number(address).checked_sub(from.first())?;
    let number = to.first().checked_add(offset)?;
    to.hosts()
        .filter(|hosts| hosts.contains(number))
        .and_then(|_| to.address(number))
}

impl Networks {
    /// Moves subnet `subnet_id` of `network` (by default its one subnet of the block's IP
    /// version) to block `to`, with every address held in it. Operators only: there is no
    /// caller to authorise.
    pub async fn renumber(
        &self,
        network: &str,
        to: &str,
        subnet_id: Option<&str>,
    ) -> Result<Renumbered, NetworkError> {
        let block = parse_cidr(to)?;
        let mut tx = self.db.begin().await?;
        if !q::lock_network(&mut tx, network).await? {
            return Err(NetworkError::no_network(network));
        }
        let rows = q::network_subnets(&mut *tx, network).await?;
        let pools = q::subnet_pools(&mut *tx, PoolScope::Network(network)).await?;
        let subnets = rows
            .into_iter()
            .map(|row| subnet(row, &pools))
            .collect::<Result<Vec<Subnet>, _>>()?;
        let candidates: Vec<&Subnet> = subnets
            .iter()
            .filter(|s| match subnet_id {
                Some(id) => s.id == id,
                None => s.cidr.version() == block.version(),
            })
            .collect();
        let current = match candidates.as_slice() {
            [one] => (*one).clone(),
            [] => {
                return Err(NetworkError::invalid(format!(
                    "network {network} has no {} subnet to renumber",
                    subnet_id.unwrap_or("such")
                )));
            }
            _ => {
                return Err(NetworkError::invalid(format!(
                    "network {network} has several subnets of that IP version: name one"
                )));
            }
        };
        if current.cidr.version() != block.version() {
            return Err(NetworkError::invalid(format!(
                "{block} is not of the IP version of subnet {}",
                current.id
            )));
        }
        if current.cidr.version() == crate::IpVersion::V6 && current.ipv6_address_mode.is_some() {
            return Err(NetworkError::invalid(format!(
                "subnet {} hands out addresses by SLAAC or DHCPv6; only its prefix's \
                 advertisement could move them",
                current.id
            )));
        }
        if let Some(other) = subnets
            .iter()
            .find(|s| s.id != current.id && s.cidr.overlaps(&block))
        {
            return Err(NetworkError::invalid(format!(
                "{block} overlaps subnet {} ({}) of the network",
                other.id, other.cidr
            )));
        }
        let from = current.cidr;
        let gateway = current.gateway_ip.map(|g| {
            same_place(&from, &block, g)
                .or_else(|| block.hosts().and_then(|h| block.address(h.first)))
                .unwrap_or(g)
        });
        let mapped: Option<Vec<Range>> = current
            .allocation_pools
            .iter()
            .map(|pool| {
                let first = same_place(&from, &block, from.address(pool.first)?)?;
                let last = same_place(&from, &block, from.address(pool.last)?)?;
                Range::new(to_number(first), to_number(last))
            })
            .collect();
        let ranges = match mapped.map(|ranges| check_pools(&block, gateway, ranges)) {
            Some(Ok(ranges)) if !ranges.is_empty() => ranges,
            _ => default_pools(&block, gateway),
        };
        let now = now_micros();
        let allocations = q::subnet_allocations(&mut *tx, &current.id).await?;
        for allocation in &allocations {
            q::release_address(&mut tx, &allocation.subnet_id, &allocation.address).await?;
            q::close_address_history(&mut tx, &allocation.port_id, &allocation.address, now)
                .await?;
        }
        let gateway_text = gateway.map(|g| g.to_string());
        q::renumber_subnet(
            &mut tx,
            &current.id,
            &block.to_string(),
            gateway_text.as_deref(),
            now,
        )
        .await?;
        q::replace_pools(
            &mut tx,
            &current.id,
            &pool_rows(&block, &current.id, &ranges),
        )
        .await?;
        let renumbered = Subnet {
            cidr: block,
            gateway_ip: gateway,
            allocation_pools: ranges,
            ..current.clone()
        };
        // Those that keep their place first, then those that take what is left.
        let mut moves = Vec::new();
        let mut homeless = Vec::new();
        for allocation in &allocations {
            let Ok(old) = IpAddr::from_str(&allocation.address) else {
                continue;
            };
            let row = AllocationRow {
                address: String::new(),
                ..allocation.clone()
            };
            match same_place(&from, &block, old) {
                Some(new) => {
                    let taken = q::allocate_address(
                        &mut tx,
                        &AllocationRow {
                            address: new.to_string(),
                            ..row
                        },
                    )
                    .await?;
                    if taken {
                        moves.push((allocation.port_id.clone(), old, new));
                    } else {
                        homeless.push((allocation.port_id.clone(), old));
                    }
                }
                None => homeless.push((allocation.port_id.clone(), old)),
            }
        }
        for (port, old) in homeless {
            let Some(new) = allocate_any(&mut tx, &renumbered, &port).await? else {
                return Err(NetworkError::conflict(
                    "IpAddressGenerationFailure",
                    format!(
                        "{block} has no room for every address of subnet {}",
                        current.id
                    ),
                ));
            };
            moves.push((port, old, new));
        }
        let mut report = Vec::new();
        for (port_id, old, new) in moves {
            let Some(port) = q::get_port(&mut *tx, &port_id).await? else {
                continue;
            };
            q::open_address_history(
                &mut tx,
                &q::AddressHistoryRow {
                    id: crate::new_id(),
                    address: new.to_string(),
                    network_id: port.network_id.clone(),
                    subnet_id: current.id.clone(),
                    port_id: port.id.clone(),
                    project_id: port.project_id.clone(),
                    device_id: port.device_id.clone(),
                    allocated_at: now,
                    released_at: None,
                },
            )
            .await?;
            q::move_fixed_address(&mut tx, &port.id, &old.to_string(), &new.to_string(), now)
                .await?;
            q::touch_port(&mut tx, &port.id, now).await?;
            report.push(AddressMove {
                port_id: port.id,
                device_id: port.device_id,
                from: old,
                to: new,
            });
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a renumbering"))?;
        report.sort_by_key(|m| to_number(m.to));
        tracing::info!(network, subnet = %current.id, %from, to = %block, moved = report.len(), "subnet renumbered");
        Ok(Renumbered {
            subnet_id: current.id,
            from,
            to: block,
            gateway,
            moves: report,
        })
    }

    /// The networks whose subnets changed after `since` (in microseconds), and the time
    /// of the latest change: how changes made outside the API (`nefos admin network`)
    /// reach the nodes within seconds.
    pub async fn networks_changed_since(
        &self,
        since: i64,
    ) -> Result<(Vec<String>, Option<i64>), NetworkError> {
        Ok(q::subnets_changed_since(self.db.pool(), since).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_keep_their_place_where_the_new_block_has_it() {
        let from = Cidr::parse("10.0.0.0/24").unwrap();
        let to = Cidr::parse("10.9.0.0/24").unwrap();
        let small = Cidr::parse("192.0.2.0/28").unwrap();
        let ip = |t: &str| IpAddr::from_str(t).unwrap();
        assert_eq!(
            same_place(&from, &to, ip("10.0.0.11")),
            Some(ip("10.9.0.11"))
        );
        assert_eq!(
            same_place(&from, &small, ip("10.0.0.11")),
            Some(ip("192.0.2.11"))
        );
        // Past the small block's hosts, or its broadcast address: no place.
        assert_eq!(same_place(&from, &small, ip("10.0.0.15")), None);
        assert_eq!(same_place(&from, &small, ip("10.0.0.200")), None);
    }
}
