//! Routers on the node. Each runs in a network namespace of its own (networks may share
//! addresses; a namespace keeps each router's routes and connections apart), named
//! after the node and the router so that a node removes only its own. A router has a leg
//! on each network it joins: a veth pair whose node end is on the network's bridge and
//! whose router end holds the port's MAC and addresses. Forwarding between legs is the
//! namespace's own; an `ip nefos_router` nftables table there does the NAT: DNAT of each
//! floating IP to its fixed address, SNAT of that address back to it, and SNAT of the
//! rest of what leaves by the gateway to the gateway's address.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::IpAddr;

use nefos_node_api::{
    NetworkSpec, NodeNetworks, RouterPortSpec, RouterSpec, bridge_name, router_leg_inner_name,
    router_leg_name,
};

use super::link::{self, Kind};
use super::{NetError, attach, parse_cidr};

/// The router ends of legs, in a router's namespace, start with this.
const INNER_PREFIX: &str = "leg";

/// The namespaces of this node's routers.
#[derive(Debug, Clone)]
pub struct RouterNamespaces {
    /// `nfr-<the node's tag>-`: every namespace this node makes starts with it.
    prefix: String,
}

impl RouterNamespaces {
    pub fn new(tag: &str) -> RouterNamespaces {
        RouterNamespaces {
            prefix: format!("nfr-{tag}-"),
        }
    }

    pub fn name(&self, router_id: &str) -> String {
        format!("{}{router_id}", self.prefix)
    }

    /// Makes each router of `desired` what it describes, removes the namespaces of
    /// routers no longer described, and returns the node ends of the legs (devices the
    /// caller must keep). `rulesets` holds the NAT table last loaded in each namespace.
    pub async fn converge(
        &self,
        desired: &NodeNetworks,
        existing: &BTreeMap<String, link::Link>,
        rulesets: &mut BTreeMap<String, String>,
    ) -> Result<BTreeSet<String>, NetError> {
        let networks: BTreeMap<&str, &NetworkSpec> = desired
            .networks
            .iter()
            .map(|n| (n.id.as_str(), n))
            .collect();
        let present: BTreeSet<String> = link::namespaces(&self.prefix).await?.into_iter().collect();
        let mut legs = BTreeSet::new();
        let mut wanted_namespaces = BTreeSet::new();
        for router in &desired.routers {
            let namespace = self.name(&router.id);
            if !present.contains(&namespace) {
                tracing::info!(router = %router.id, %namespace, "making a router's namespace");
                link::add_namespace(&namespace).await?;
            }
            let mut inner_wanted = BTreeSet::new();
            for (leg, is_gateway) in router
                .interfaces
                .iter()
                .map(|leg| (leg, false))
                .chain(router.gateway.iter().map(|leg| (leg, true)))
            {
                let Some(network) = networks.get(leg.network_id.as_str()) else {
                    continue;
                };
                let floating = if is_gateway {
                    router.floating_ips.iter().map(|f| f.address).collect()
                } else {
                    Vec::new()
                };
                self.converge_leg(&namespace, leg, network, &floating, existing)
                    .await?;
                legs.insert(router_leg_name(&leg.port_id));
                inner_wanted.insert(router_leg_inner_name(&leg.port_id));
            }
            for stale in link::list_in(&namespace, INNER_PREFIX).await? {
                if !inner_wanted.contains(&stale) {
                    link::delete_in(&namespace, &stale).await?;
                }
            }
            if let Some(gateway) = &router.gateway
                && let Some(network) = networks.get(gateway.network_id.as_str())
            {
                for via in default_routes(gateway, network) {
                    link::replace_default_route_in(
                        &namespace,
                        &router_leg_inner_name(&gateway.port_id),
                        via,
                    )
                    .await?;
                }
            }
            let rules = nat_ruleset(router);
            if rulesets.get(&namespace) != Some(&rules) {
                let script =
                    format!("table ip nefos_router\ndelete table ip nefos_router\n{rules}");
                link::run_with_input(
                    "ip",
                    &["netns", "exec", &namespace, "nft", "-f", "-"],
                    &script,
                )
                .await?;
                rulesets.insert(namespace.clone(), rules);
            }
            wanted_namespaces.insert(namespace);
        }
        for namespace in present.difference(&wanted_namespaces) {
            tracing::info!(%namespace, "removing a router's namespace no longer described");
            link::delete_namespace(namespace).await?;
            rulesets.remove(namespace);
        }
        Ok(legs)
    }

    /// Leg `leg` of the router in `namespace`: the veth pair, its node end on the
    /// network's bridge, its router end with the port's MAC and addresses (and the
    /// floating addresses the router answers for, on its gateway).
    async fn converge_leg(
        &self,
        namespace: &str,
        leg: &RouterPortSpec,
        network: &NetworkSpec,
        floating: &[IpAddr],
        existing: &BTreeMap<String, link::Link>,
    ) -> Result<(), NetError> {
        let outer = router_leg_name(&leg.port_id);
        let inner = router_leg_inner_name(&leg.port_id);
        let fresh = !existing.get(&outer).is_some_and(|l| l.kind == Kind::Veth);
        if fresh {
            if existing.contains_key(&outer) {
                link::delete(&outer).await?;
            }
            link::add_veth(&outer, &inner, namespace).await?;
            link::set_up_in(namespace, &inner, &leg.mac, network.mtu).await?;
        }
        let current = if fresh { None } else { existing.get(&outer) };
        attach_leg(current, &outer, &bridge_name(network.vni), network.mtu).await?;
        let mut want: BTreeSet<String> = leg
            .fixed_ips
            .iter()
            .filter_map(|fixed| {
                let subnet = network.subnets.iter().find(|s| s.id == fixed.subnet_id)?;
                let (_, len) = parse_cidr(&subnet.cidr)?;
                Some(format!("{}/{len}", fixed.address))
            })
            .collect();
        want.extend(floating.iter().map(|address| match address {
            IpAddr::V4(_) => format!("{address}/32"),
            IpAddr::V6(_) => format!("{address}/128"),
        }));
        let have: BTreeSet<String> = link::addresses_in(namespace, &inner)
            .await?
            .into_iter()
            .collect();
        for address in want.difference(&have) {
            link::add_address_in(namespace, &inner, address).await?;
        }
        for address in have.difference(&want) {
            link::delete_address_in(namespace, &inner, address).await?;
        }
        Ok(())
    }
}

/// [`attach`] for a leg made just now (nothing known of it) or one that was there.
async fn attach_leg(
    current: Option<&link::Link>,
    name: &str,
    bridge: &str,
    mtu: u32,
) -> Result<(), NetError> {
    let known: BTreeMap<String, link::Link> = current
        .map(|l| (l.name.clone(), l.clone()))
        .into_iter()
        .collect();
    attach(&known, name, bridge, mtu).await
}

/// The gateways of the external subnets the router's gateway has addresses on.
fn default_routes(gateway: &RouterPortSpec, network: &NetworkSpec) -> Vec<IpAddr> {
    let mut seen_v4 = false;
    let mut seen_v6 = false;
    gateway
        .fixed_ips
        .iter()
        .filter_map(|fixed| {
            let subnet = network.subnets.iter().find(|s| s.id == fixed.subnet_id)?;
            let via = subnet.gateway?;
            let first = match via {
                IpAddr::V4(_) => !std::mem::replace(&mut seen_v4, true),
                IpAddr::V6(_) => !std::mem::replace(&mut seen_v6, true),
            };
            first.then_some(via)
        })
        .collect()
}

/// The router's NAT table.
fn nat_ruleset(router: &RouterSpec) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "table ip nefos_router {{");
    let _ = writeln!(text, "  chain prerouting {{");
    let _ = writeln!(
        text,
        "    type nat hook prerouting priority dstnat; policy accept;"
    );
    let floating: Vec<(&IpAddr, &IpAddr)> = router
        .floating_ips
        .iter()
        .filter(|f| f.address.is_ipv4() && f.fixed.is_ipv4())
        .map(|f| (&f.address, &f.fixed))
        .collect();
    for (address, fixed) in &floating {
        let _ = writeln!(text, "    ip daddr {address} dnat to {fixed}");
    }
    let _ = writeln!(text, "  }}");
    let _ = writeln!(text, "  chain postrouting {{");
    let _ = writeln!(
        text,
        "    type nat hook postrouting priority srcnat; policy accept;"
    );
    if let Some(gateway) = &router.gateway {
        let out = router_leg_inner_name(&gateway.port_id);
        for (address, fixed) in &floating {
            let _ = writeln!(
                text,
                "    oifname \"{out}\" ip saddr {fixed} snat to {address}"
            );
        }
        let own = gateway.fixed_ips.iter().find(|f| f.address.is_ipv4());
        if let (true, Some(own)) = (router.snat, own) {
            let _ = writeln!(text, "    oifname \"{out}\" snat to {}", own.address);
        }
    }
    let _ = writeln!(text, "  }}");
    let _ = writeln!(text, "}}");
    text
}

#[cfg(test)]
mod tests {
    use nefos_node_api::{FloatingIpSpec, PortAddress};

    use super::*;

    fn leg(port: &str, address: &str) -> RouterPortSpec {
        RouterPortSpec {
            port_id: port.to_owned(),
            network_id: "net".to_owned(),
            mac: "fa:16:3e:00:00:01".to_owned(),
            fixed_ips: vec![PortAddress {
                subnet_id: "sub".to_owned(),
                address: address.parse().unwrap(),
            }],
        }
    }

    #[test]
    fn nat_forwards_floating_ips_and_masquerades_the_rest() {
        let router = RouterSpec {
            id: "r".to_owned(),
            interfaces: vec![leg("0a0a0a0a-1", "10.0.0.1")],
            gateway: Some(leg("0b0b0b0b-2", "203.0.113.5")),
            snat: true,
            floating_ips: vec![FloatingIpSpec {
                address: "203.0.113.20".parse().unwrap(),
                fixed: "10.0.0.7".parse().unwrap(),
            }],
        };
        let rules = nat_ruleset(&router);
        assert!(rules.contains("ip daddr 203.0.113.20 dnat to 10.0.0.7"));
        assert!(rules.contains("oifname \"leg0b0b0b0b2\" ip saddr 10.0.0.7 snat to 203.0.113.20"));
        assert!(rules.contains("snat to 203.0.113.5"));
        let no_snat = nat_ruleset(&RouterSpec {
            snat: false,
            ..router
        });
        assert!(!no_snat.contains("snat to 203.0.113.5"));
    }
}
