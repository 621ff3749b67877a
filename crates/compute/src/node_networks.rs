//! Sending nodes their networks: what a node must realise (the ports bound to it, their
//! networks and subnets, the other nodes of each network) goes to it whole, under a
//! generation, whenever a server's ports come or go — to the server's node and to the
//! other nodes of its networks, whose VXLAN peers change with it. The reconciler sends
//! every node its networks again on each pass, so a node that missed one catches up.

use std::collections::BTreeSet;
use std::net::IpAddr;

use nefos_network::{
    Direction, IpVersion, NodeNetwork, NodeRouter, NodeView, Port, ResolvedRule, Subnet,
};
use nefos_node_api::{
    AddressPair, FloatingIpSpec, HostRouteSpec, IpFamily, Ipv6Mode, NetworkSpec, NodeNetworks,
    PortAddress, PortSpec, RouterPortSpec, RouterSpec, RuleDirection, RuleSpec, SubnetSpec,
};

use crate::{ComputeError, Services};

impl Services {
    /// The description of node `node`'s networks, with a fresh generation.
    pub(crate) async fn node_networks(&self, node: &str) -> Result<NodeNetworks, ComputeError> {
        let mut tx = self.db.begin().await?;
        let generation = nefos_db::network::next_network_generation(&mut tx).await?;
        let view = self
            .networks
            .node_view(&mut tx, node)
            .await
            .map_err(ComputeError::Network)?;
        tx.commit().await.map_err(nefos_db::DbError::query(
            "commit a read of a node's networks",
        ))?;
        Ok(describe(u64::try_from(generation).unwrap_or(0), view))
    }

    /// Sends node `node` its networks.
    pub(crate) async fn push_networks(&self, node: &str) -> Result<(), ComputeError> {
        let description = self.node_networks(node).await?;
        let client = self.nodes.client(node).await?;
        match client.put_networks(&description).await {
            Ok(_) => Ok(()),
            // A newer description overtook this one: the node has at least this much.
            Err(error) if error.status().is_some_and(|s| s.as_u16() == 409) => Ok(()),
            Err(source) => Err(ComputeError::Rpc {
                node: node.to_owned(),
                source,
            }),
        }
    }

    /// Sends each of `nodes` its networks; one that cannot be reached is logged and left
    /// to the reconciler.
    pub(crate) async fn push_networks_to(&self, nodes: impl IntoIterator<Item = String>) {
        for node in nodes.into_iter().collect::<BTreeSet<_>>() {
            if let Err(error) = self.push_networks(&node).await {
                tracing::warn!(%node, error = %crate::servers::sagas::chain(&error), "cannot send a node its networks");
            }
        }
    }

    /// The nodes on the networks of `ports`.
    pub(crate) async fn hosts_of(&self, ports: &[Port]) -> Result<Vec<String>, ComputeError> {
        let networks: Vec<String> = ports
            .iter()
            .map(|p| p.network_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut conn = self
            .db
            .pool()
            .acquire()
            .await
            .map_err(nefos_db::DbError::query("connect"))?;
        self.networks
            .hosts_on_networks(&mut conn, &networks)
            .await
            .map_err(ComputeError::Network)
    }
}

impl crate::Compute {
    /// Sends each of `nodes` its networks again (after a change of ports or security
    /// groups the network service made); a node that cannot be reached is left to the
    /// reconciler.
    pub async fn sync_networks(&self, nodes: Vec<String>) {
        self.inner.push_networks_to(nodes).await;
    }

    /// Sends their networks to the nodes of every network whose subnets changed after
    /// `since` (microseconds; changes made outside the API, by `nefos admin network`);
    /// returns the time of the latest change seen, the next call's `since`.
    pub async fn sync_changed_networks(&self, since: i64) -> i64 {
        let changed = self.inner.networks.networks_changed_since(since).await;
        let (networks, latest) = match changed {
            Ok(changed) => changed,
            Err(error) => {
                tracing::warn!(error = %crate::servers::sagas::chain(&error), "cannot read which networks changed");
                return since;
            }
        };
        if networks.is_empty() {
            return since;
        }
        let hosts = async {
            let mut conn = self
                .inner
                .db
                .pool()
                .acquire()
                .await
                .map_err(nefos_db::DbError::query("connect"))?;
            self.inner
                .networks
                .hosts_on_networks(&mut conn, &networks)
                .await
                .map_err(ComputeError::Network)
        };
        match hosts.await {
            Ok(hosts) => {
                tracing::info!(?networks, "sending nodes their changed networks");
                self.sync_networks(hosts).await;
                latest.unwrap_or(since)
            }
            Err(error) => {
                tracing::warn!(error = %crate::servers::sagas::chain(&error), "cannot find the nodes of changed networks");
                since
            }
        }
    }

    /// [`Self::sync_networks`] for the nodes a change of router `router` concerns (its
    /// own and those of its networks).
    pub async fn sync_router(&self, router: &str) {
        match self.inner.networks.hosts_of_router(router).await {
            Ok(nodes) => self.sync_networks(nodes).await,
            Err(error) => {
                tracing::warn!(router, error = %crate::servers::sagas::chain(&error), "cannot find the nodes of a router");
            }
        }
    }

    /// [`Self::sync_networks`] for the nodes whose rules depend on security group `group`.
    pub async fn sync_security_group(&self, group: &str) {
        match self.inner.networks.hosts_of_group(group).await {
            Ok(nodes) => self.sync_networks(nodes).await,
            Err(error) => {
                tracing::warn!(group, error = %crate::servers::sagas::chain(&error), "cannot find the nodes of a security group");
            }
        }
    }
}

fn describe(generation: u64, view: NodeView) -> NodeNetworks {
    let NodeView {
        networks,
        ports,
        routers,
        groups,
    } = view;
    NodeNetworks {
        generation,
        routers: routers.into_iter().map(router_spec).collect(),
        networks: networks.into_iter().map(network_spec).collect(),
        ports: ports
            .into_iter()
            .map(|port| {
                let rules =
                    (port.port_security_enabled && !port.security_groups.is_empty()).then(|| {
                        port.security_groups
                            .iter()
                            .filter_map(|group| groups.get(group))
                            .flatten()
                            .map(rule_spec)
                            .collect()
                    });
                let mut spec = port_spec(port);
                spec.security_rules = rules;
                spec
            })
            .collect(),
    }
}

fn router_spec(router: NodeRouter) -> RouterSpec {
    RouterSpec {
        id: router.id,
        interfaces: router
            .interfaces
            .into_iter()
            .map(router_port_spec)
            .collect(),
        gateway: router.gateway.map(router_port_spec),
        snat: router.enable_snat,
        floating_ips: router
            .floating_ips
            .into_iter()
            .map(|(address, fixed)| FloatingIpSpec { address, fixed })
            .collect(),
    }
}

fn router_port_spec(port: Port) -> RouterPortSpec {
    RouterPortSpec {
        port_id: port.id,
        network_id: port.network_id,
        mac: port.mac_address,
        fixed_ips: port_addresses(port.fixed_ips),
    }
}

fn port_addresses(fixed_ips: Vec<nefos_network::FixedIp>) -> Vec<PortAddress> {
    fixed_ips
        .into_iter()
        .map(|ip| PortAddress {
            subnet_id: ip.subnet_id,
            address: ip.ip_address,
        })
        .collect()
}

fn rule_spec(resolved: &ResolvedRule) -> RuleSpec {
    let rule = &resolved.rule;
    RuleSpec {
        direction: match rule.direction {
            Direction::Ingress => RuleDirection::Ingress,
            Direction::Egress => RuleDirection::Egress,
        },
        family: match rule.ethertype {
            IpVersion::V4 => IpFamily::V4,
            IpVersion::V6 => IpFamily::V6,
        },
        protocol: rule.protocol_number(),
        port_min: rule.port_range_min,
        port_max: rule.port_range_max,
        remotes: match (&rule.remote_ip_prefix, &resolved.remote_addresses) {
            (Some(prefix), _) => Some(vec![prefix.clone()]),
            (None, Some(members)) => Some(members.clone()),
            (None, None) => None,
        },
    }
}

fn network_spec(node_network: NodeNetwork) -> NetworkSpec {
    let NodeNetwork {
        network,
        subnets,
        peers,
        gateway_macs,
    } = node_network;
    NetworkSpec {
        id: network.id,
        vni: u32::try_from(network.vni).unwrap_or(0),
        mtu: u32::try_from(network.mtu).unwrap_or(1450),
        subnets: subnets
            .into_iter()
            .map(|subnet| SubnetSpec {
                cidr: subnet.cidr.to_string(),
                gateway: subnet.gateway_ip,
                dhcp: subnet.enable_dhcp,
                dns_servers: subnet
                    .dns_nameservers
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                    .collect(),
                host_routes: subnet
                    .host_routes
                    .iter()
                    .filter_map(|route| {
                        Some(HostRouteSpec {
                            destination: route.destination.clone(),
                            nexthop: route.nexthop.parse().ok()?,
                        })
                    })
                    .collect(),
                ipv6_mode: ipv6_mode(&subnet),
                gateway_mac: gateway_macs.get(&subnet.id).cloned(),
                id: subnet.id,
            })
            .collect(),
        peers: peers.iter().filter_map(|a| a.parse().ok()).collect(),
        external: network.external,
    }
}

/// How the subnet's router advertisements tell guests to configure themselves: as its
/// `ipv6_ra_mode` says, or, with none, as its `ipv6_address_mode` (no router outside
/// the cloud advertises on its private networks, so the node does).
fn ipv6_mode(subnet: &Subnet) -> Option<Ipv6Mode> {
    let mode = subnet
        .ipv6_ra_mode
        .as_deref()
        .or(subnet.ipv6_address_mode.as_deref())?;
    match mode {
        "slaac" => Some(Ipv6Mode::Slaac),
        "dhcpv6-stateful" => Some(Ipv6Mode::Dhcpv6Stateful),
        "dhcpv6-stateless" => Some(Ipv6Mode::Dhcpv6Stateless),
        _ => None,
    }
}

fn port_spec(port: Port) -> PortSpec {
    PortSpec {
        id: port.id,
        network_id: port.network_id,
        mac: port.mac_address,
        fixed_ips: port_addresses(port.fixed_ips),
        port_security: port.port_security_enabled,
        allowed_address_pairs: port
            .allowed_address_pairs
            .into_iter()
            .map(|pair| AddressPair {
                ip_address: pair.ip_address,
                mac_address: Some(pair.mac_address),
            })
            .collect(),
        hostname: None,
        security_rules: None,
    }
}
