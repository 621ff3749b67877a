//! Ports as servers use them: a server's creation makes ports on the networks it asks for
//! or takes ports the project made, its placement binds them to its node, and its
//! deletion deletes the ports it made and frees the others (Nova's
//! `preserve_on_delete`). And what a node must realise: the ports bound to it, their
//! networks and subnets, and the other nodes each of those networks spans.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use nefos_db::network::{self as q, PortSelection};
use nefos_db::time::now_micros;
use nefos_db::{Connection, Transaction};
use nefos_identity::AuthContext;
use nefos_quota::Provision;

use crate::ports::{fixed_ips, is_service_port, port, release, with_groups};
use crate::subnets::subnet;
use crate::{
    Network, NetworkError, Networks, PORT_RESOURCE, Port, ROUTER_GATEWAY, ROUTER_INTERFACE,
    SecurityGroupRule, Subnet, owns,
};

/// A network as one node realises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNetwork {
    pub network: Network,
    pub subnets: Vec<Subnet>,
    /// The tunnel addresses of the other nodes with ports on it.
    pub peers: Vec<String>,
    /// Subnet id → the MAC of the router interface holding that subnet's gateway.
    pub gateway_macs: BTreeMap<String, String>,
}

/// A router as the node it runs on realises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRouter {
    pub id: String,
    /// Whether what its private subnets send out leaves with the gateway's address.
    pub enable_snat: bool,
    /// Its ports on private subnets (each holding the subnet's gateway address).
    pub interfaces: Vec<Port>,
    /// Its port on the external network.
    pub gateway: Option<Port>,
    /// Floating address → the fixed address it is forwarded to.
    pub floating_ips: Vec<(IpAddr, IpAddr)>,
}

/// Everything of the networks one node must realise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeView {
    pub networks: Vec<NodeNetwork>,
    /// The ports of VMs bound to the node (not those of routers).
    pub ports: Vec<Port>,
    pub routers: Vec<NodeRouter>,
    /// The rules of the ports' security groups, by group.
    pub groups: BTreeMap<String, Vec<ResolvedRule>>,
}

/// A security group rule with its remote group resolved to that group's addresses now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRule {
    pub rule: SecurityGroupRule,
    /// `None`: any address (or `remote_ip_prefix`); otherwise the remote group's members.
    pub remote_addresses: Option<Vec<String>>,
}

impl Networks {
    /// Gives the caller's port `port_id` to `device`, in the caller's transaction. A port
    /// another device has is Neutron's 409 `PortInUse`.
    pub async fn attach_port_in(
        &self,
        tx: &mut Transaction,
        caller: &AuthContext,
        port_id: &str,
        device_id: &str,
        device_owner: &str,
    ) -> Result<Port, NetworkError> {
        // Read on the transaction's own connection: it must not wait for another.
        match q::get_port(&mut **tx, port_id).await? {
            Some(row) if owns(caller, &row.project_id) => {}
            _ => return Err(NetworkError::no_port(port_id)),
        }
        if !q::lock_port(tx, port_id).await? {
            return Err(NetworkError::no_port(port_id));
        }
        let Some(mut row) = q::get_port(&mut **tx, port_id).await? else {
            return Err(NetworkError::no_port(port_id));
        };
        if !row.device_id.is_empty() {
            return Err(NetworkError::conflict(
                "PortInUse",
                format!(
                    "Unable to complete operation on port {port_id} for network {}. Port \
                     already has an attached device {}.",
                    row.network_id, row.device_id
                ),
            ));
        }
        row.device_id = device_id.to_owned();
        row.device_owner = device_owner.to_owned();
        row.updated_at = now_micros();
        row.revision += 1;
        q::update_port(tx, &row).await?;
        let addresses = q::port_addresses(&mut **tx, port_id).await?;
        Ok(port(row, fixed_ips(&addresses)))
    }

    /// Binds the ports of `device` to node `host`, or unbinds them.
    pub async fn bind_device_ports(
        &self,
        conn: &mut Connection,
        device: &str,
        host: Option<&str>,
    ) -> Result<(), NetworkError> {
        let status = if host.is_some() { "BUILD" } else { "DOWN" };
        q::bind_device_ports(conn, device, host, status, now_micros()).await?;
        Ok(())
    }

    /// Marks the ports of `device` as moving with it to node `to` (their taps, rules and
    /// tunnels are made there too), or, with `None`, as staying where they are.
    pub async fn set_device_ports_moving(
        &self,
        conn: &mut Connection,
        device: &str,
        to: Option<&str>,
    ) -> Result<(), NetworkError> {
        q::set_device_ports_moving(conn, device, to, now_micros()).await?;
        Ok(())
    }

    /// Binds the ports of `device` to node `host`, where it moved.
    pub async fn move_device_ports(
        &self,
        conn: &mut Connection,
        device: &str,
        host: &str,
    ) -> Result<(), NetworkError> {
        q::move_device_ports(conn, device, host, now_micros()).await?;
        Ok(())
    }

    /// Marks the bound ports of `device` up: its node has realised them.
    pub async fn device_ports_active(&self, device: &str) -> Result<(), NetworkError> {
        let mut conn = self
            .db
            .pool()
            .acquire()
            .await
            .map_err(nefos_db::DbError::query("connect"))?;
        q::set_device_port_status(&mut conn, device, "ACTIVE").await?;
        Ok(())
    }

    /// The ports of `device`, oldest first.
    pub async fn device_ports(
        &self,
        conn: &mut Connection,
        device: &str,
    ) -> Result<Vec<Port>, NetworkError> {
        let selection = PortSelection {
            device: Some(device),
            ..PortSelection::default()
        };
        let rows = q::list_ports(&mut *conn, selection).await?;
        let mut ports = Vec::new();
        for row in rows {
            let addresses = q::port_addresses(&mut *conn, &row.id).await?;
            ports.push(port(row, fixed_ips(&addresses)));
        }
        Ok(ports)
    }

    /// Lets go of the ports of `device`, in the caller's transaction: those in `delete`
    /// are deleted (their addresses and quota freed), the others stay the project's,
    /// unbound and free for another device.
    pub async fn release_device_ports(
        &self,
        tx: &mut Transaction,
        device: &str,
        delete: &BTreeSet<String>,
    ) -> Result<(), NetworkError> {
        for port in self.device_ports(tx, device).await? {
            self.release_port_in(tx, &port.id, delete.contains(&port.id))
                .await?;
        }
        Ok(())
    }

    /// Lets go of port `port_id`, in the caller's transaction: deleted (its addresses and
    /// quota freed) when `delete`, otherwise the project's again, unbound and free.
    pub async fn release_port_in(
        &self,
        tx: &mut Transaction,
        port_id: &str,
        delete: bool,
    ) -> Result<(), NetworkError> {
        let now = now_micros();
        if !q::lock_port(tx, port_id).await? {
            return Ok(());
        }
        let Some(mut row) = q::get_port(&mut **tx, port_id).await? else {
            return Ok(());
        };
        if !delete {
            row.device_id = String::new();
            row.device_owner = String::new();
            row.binding_host = None;
            row.status = "DOWN".to_owned();
            row.updated_at = now;
            row.revision += 1;
            q::update_port(tx, &row).await?;
            return Ok(());
        }
        for allocation in q::port_addresses(&mut **tx, &row.id).await? {
            release(tx, &row.id, &allocation, now).await?;
        }
        q::delete_port(tx, &row.id).await?;
        q::set_port_security_groups(tx, &row.id, &[]).await?;
        q::disassociate_port(tx, &row.id, now).await?;
        if let Some(user) = &row.charged_to {
            self.quotas
                .charge_in(
                    tx,
                    &[Provision::new(&row.project_id, user, PORT_RESOURCE, -1)],
                )
                .await
                .map_err(NetworkError::Quota)?;
        }
        tracing::info!(port = %row.id, device = %row.device_id, "port deleted with its device");
        Ok(())
    }

    /// The networks of `networks`' ports: the nodes that realise any of them.
    pub async fn hosts_on_networks(
        &self,
        conn: &mut Connection,
        networks: &[String],
    ) -> Result<Vec<String>, NetworkError> {
        Ok(q::hosts_on_networks(conn, networks).await?)
    }

    /// What node `node` must realise, read in the caller's transaction.
    pub async fn node_view(
        &self,
        conn: &mut Connection,
        node: &str,
    ) -> Result<NodeView, NetworkError> {
        let selection = PortSelection {
            host: Some(node),
            ..PortSelection::default()
        };
        let rows = q::list_ports(&mut *conn, selection).await?;
        let addresses = q::selected_port_addresses(&mut *conn, selection).await?;
        let mut peers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (network, address) in q::network_peers(&mut *conn, node).await? {
            peers.entry(network).or_default().push(address);
        }
        let network_ids: BTreeSet<String> = rows.iter().map(|r| r.network_id.clone()).collect();
        let mut networks = Vec::new();
        for id in network_ids {
            let Some(row) = q::get_network(&mut *conn, &id).await? else {
                continue;
            };
            let subnet_rows = q::network_subnets(&mut *conn, &id).await?;
            let pools = q::subnet_pools(&mut *conn, q::PoolScope::Network(&id)).await?;
            let subnets = subnet_rows
                .into_iter()
                .map(|row| subnet(row, &pools))
                .collect::<Result<Vec<_>, _>>()?;
            let subnet_ids = subnets.iter().map(|s| s.id.clone()).collect();
            let gateway_macs = q::gateway_holders(&mut *conn, &id, ROUTER_INTERFACE)
                .await?
                .into_iter()
                .collect();
            networks.push(NodeNetwork {
                network: crate::networks::network(row, subnet_ids),
                subnets,
                peers: peers.remove(&id).unwrap_or_default(),
                gateway_macs,
            });
        }
        let (service_ports, ports): (Vec<Port>, Vec<Port>) = rows
            .into_iter()
            .map(|row| {
                let held: Vec<_> = addresses
                    .iter()
                    .filter(|a| a.port_id == row.id)
                    .cloned()
                    .collect();
                port(row, fixed_ips(&held))
            })
            .partition(|port| is_service_port(&port.device_owner));
        let ports = with_groups(&mut *conn, ports).await?;
        let groups = self.resolved_groups(&mut *conn, &ports).await?;
        let routers = node_routers(&mut *conn, node, service_ports).await?;
        Ok(NodeView {
            networks,
            ports,
            routers,
            groups,
        })
    }

    /// The rules of every group of `ports`, their remote groups resolved.
    async fn resolved_groups(
        &self,
        conn: &mut Connection,
        ports: &[Port],
    ) -> Result<BTreeMap<String, Vec<ResolvedRule>>, NetworkError> {
        let mut groups = BTreeMap::new();
        let wanted: BTreeSet<&String> = ports.iter().flat_map(|p| &p.security_groups).collect();
        for group in wanted {
            let mut resolved = Vec::new();
            for row in q::security_group_rules(&mut *conn, Some(group)).await? {
                let rule = crate::security_groups::rule(row)?;
                let remote_addresses = match &rule.remote_group_id {
                    Some(remote) => Some(group_members(&mut *conn, remote).await?),
                    None => None,
                };
                resolved.push(ResolvedRule {
                    rule,
                    remote_addresses,
                });
            }
            groups.insert(group.clone(), resolved);
        }
        Ok(groups)
    }
}

/// The addresses of the members of `group`: their ports' fixed IPs and allowed address
/// pairs.
async fn group_members(conn: &mut Connection, group: &str) -> Result<Vec<String>, NetworkError> {
    let mut addresses = q::group_member_addresses(&mut *conn, group).await?;
    for (port, pairs) in q::group_member_address_pairs(&mut *conn, group).await? {
        addresses.extend(
            crate::address_pairs::from_row(&pairs, &port)
                .into_iter()
                .map(|pair| pair.ip_address),
        );
    }
    addresses.sort();
    addresses.dedup();
    Ok(addresses)
}

/// The routers running on `node`, with their ports among `service_ports` (those bound to
/// the node) and the floating IPs they forward.
async fn node_routers(
    conn: &mut Connection,
    node: &str,
    service_ports: Vec<Port>,
) -> Result<Vec<NodeRouter>, NetworkError> {
    let mut routers = Vec::new();
    for row in q::node_routers(&mut *conn, node).await? {
        let mut floating_ips = Vec::new();
        for floating in q::router_floating_ips(&mut *conn, &row.id).await? {
            let (Ok(address), Some(Ok(fixed))) = (
                floating.floating_ip_address.parse(),
                floating.fixed_ip_address.as_deref().map(str::parse),
            ) else {
                continue;
            };
            floating_ips.push((address, fixed));
        }
        let mine = service_ports.iter().filter(|p| p.device_id == row.id);
        routers.push(NodeRouter {
            interfaces: mine
                .clone()
                .filter(|p| p.device_owner == ROUTER_INTERFACE)
                .cloned()
                .collect(),
            gateway: mine
                .filter(|p| p.device_owner == ROUTER_GATEWAY)
                .find(|_| row.external_network_id.is_some())
                .cloned(),
            id: row.id,
            enable_snat: row.enable_snat,
            floating_ips,
        });
    }
    Ok(routers)
}
