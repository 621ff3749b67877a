//! The addresses of servers, as Nova's `addresses` and Cyclades' `attachments` show
//! them: each port's fixed IPs, and after each the floating IPs forwarded to it.

use std::collections::HashMap;
use std::net::IpAddr;

use nefos_identity::AuthContext;

use super::Server;
use crate::{Compute, ComputeError};

/// One address of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    pub port_id: String,
    pub network_id: String,
    /// The network's name, or its id when it has none.
    pub network_name: String,
    pub mac_address: String,
    pub address: IpAddr,
    /// A floating IP forwarded to the port's fixed address before it.
    pub floating: bool,
}

impl Compute {
    /// The addresses of each of `servers` (by server id), its ports oldest first; the
    /// ports of the whole page are read at once.
    pub async fn server_addresses(
        &self,
        caller: &AuthContext,
        servers: &[Server],
    ) -> Result<HashMap<String, Vec<ServerAddress>>, ComputeError> {
        let networks = &self.inner.networks;
        let mut all = HashMap::new();
        if servers.iter().all(|s| s.deleted_at.is_some()) {
            return Ok(all);
        }
        let floating = networks
            .floating_ips(caller)
            .await
            .map_err(ComputeError::Network)?;
        let live: Vec<String> = servers
            .iter()
            .filter(|s| s.deleted_at.is_none())
            .map(|s| s.id.clone())
            .collect();
        // One read for the whole page, its ports in the order they were made.
        let ports = networks
            .ports_of_devices(caller, &live)
            .await
            .map_err(ComputeError::Network)?;
        let mut names: HashMap<String, String> = HashMap::new();
        for port in ports {
            if !names.contains_key(&port.network_id) {
                let name = match networks.network(caller, &port.network_id).await {
                    Ok(network) if !network.name.is_empty() => network.name,
                    _ => port.network_id.clone(),
                };
                names.insert(port.network_id.clone(), name);
            }
            let network_name = names
                .get(&port.network_id)
                .cloned()
                .unwrap_or_else(|| port.network_id.clone());
            let addresses: &mut Vec<ServerAddress> = all.entry(port.device_id.clone()).or_default();
            for fixed in &port.fixed_ips {
                let of = |address, floating| ServerAddress {
                    port_id: port.id.clone(),
                    network_id: port.network_id.clone(),
                    network_name: network_name.clone(),
                    mac_address: port.mac_address.clone(),
                    address,
                    floating,
                };
                addresses.push(of(fixed.ip_address, false));
                let forwarded = floating.iter().filter(|f| {
                    f.port_id.as_deref() == Some(port.id.as_str())
                        && f.fixed_ip_address.as_deref()
                            == Some(fixed.ip_address.to_string().as_str())
                });
                for f in forwarded {
                    if let Ok(address) = f.floating_ip_address.parse() {
                        addresses.push(of(address, true));
                    }
                }
            }
        }
        Ok(all)
    }
}
