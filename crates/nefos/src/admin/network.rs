//! `nefos admin network`: the operator's side of IPAM (Synnefo's `snf-manage
//! pool-modify` and its IP log): another address block for a network, at once and with
//! no restart, a subnet renumbered with every port of it, and who held an address when.

use std::net::IpAddr;

use anyhow::Context;
use clap::Subcommand;
use nefos_network::Networks;

use super::output::{date, print_json, rfc3339, table};

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Address pools.
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Moves a subnet of a network to another block, with every address held in it (each
    /// keeps its place in the block where it can); guests follow at their next DHCP
    /// renewal, within a lease time. Prints what moved.
    Renumber {
        /// The network's id.
        network: String,
        /// The new block, e.g. 10.9.0.0/24.
        #[arg(long)]
        to: String,
        /// The subnet to move, when the network has several of the block's IP version.
        #[arg(long)]
        subnet: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Who held an address (any network), most recent first: for abuse reports.
    IpHistory {
        address: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Gives a network another address block: a new subnet of CIDR, or, with --range, more
    /// addresses of the network's subnet of exactly CIDR. Ports take them at once.
    Add {
        /// The network's id.
        network: String,
        /// The block, e.g. 198.51.100.0/24.
        cidr: String,
        /// Only these addresses of the block: FIRST-LAST.
        #[arg(long)]
        range: Option<String>,
        /// The new subnet's gateway (default: its first host address), or `none`.
        #[arg(long)]
        gateway: Option<String>,
    },
}

pub async fn run(networks: &Networks, command: NetworkCommand) -> anyhow::Result<()> {
    match command {
        NetworkCommand::Pool(PoolCommand::Add {
            network,
            cidr,
            range,
            gateway,
        }) => {
            let range = match range {
                Some(text) => Some(parse_range(&text)?),
                None => None,
            };
            let gateway = match gateway.as_deref() {
                None => None,
                Some("none") => Some(None),
                Some(text) => Some(Some(
                    text.parse::<IpAddr>()
                        .with_context(|| format!("{text:?} is not an IP address"))?,
                )),
            };
            let added = networks.add_pool(&network, &cidr, range, gateway).await?;
            let pools: Vec<String> = added
                .subnet
                .allocation_pools
                .iter()
                .filter_map(|pool| {
                    let cidr = added.subnet.cidr;
                    Some(format!(
                        "{}-{}",
                        cidr.address(pool.first)?,
                        cidr.address(pool.last)?
                    ))
                })
                .collect();
            println!(
                "network {network}: {} subnet {} ({}), pools {}",
                if added.created { "new" } else { "grew" },
                added.subnet.id,
                added.subnet.cidr,
                pools.join(", ")
            );
            Ok(())
        }
        NetworkCommand::Renumber {
            network,
            to,
            subnet,
            json,
        } => {
            let done = networks.renumber(&network, &to, subnet.as_deref()).await?;
            if json {
                let moves: Vec<serde_json::Value> = done
                    .moves
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "port_id": m.port_id, "device_id": m.device_id,
                            "from": m.from, "to": m.to,
                        })
                    })
                    .collect();
                return print_json(&serde_json::json!({
                    "subnet_id": done.subnet_id, "from": done.from.to_string(),
                    "to": done.to.to_string(), "gateway_ip": done.gateway,
                    "moves": moves,
                }));
            }
            println!(
                "subnet {}: {} -> {}, gateway {}; {} addresses moved (nodes are told within \
                 seconds; guests follow at their next DHCP renewal)",
                done.subnet_id,
                done.from,
                done.to,
                done.gateway
                    .map_or_else(|| "none".to_owned(), |g| g.to_string()),
                done.moves.len()
            );
            let mut out = table(&["port", "device", "from", "to"]);
            for m in &done.moves {
                out.add_row(vec![
                    m.port_id.clone(),
                    m.device_id.clone(),
                    m.from.to_string(),
                    m.to.to_string(),
                ]);
            }
            println!("{out}");
            Ok(())
        }
        NetworkCommand::IpHistory { address, json } => {
            let history = networks.address_history(&address).await?;
            if json {
                let rows: Vec<serde_json::Value> = history
                    .iter()
                    .map(|h| {
                        serde_json::json!({
                            "address": h.address, "network_id": h.network_id,
                            "subnet_id": h.subnet_id, "port_id": h.port_id,
                            "project_id": h.project_id, "device_id": h.device_id,
                            "allocated_at": rfc3339(h.allocated_at),
                            "released_at": h.released_at.map(rfc3339),
                        })
                    })
                    .collect();
                return print_json(&rows);
            }
            let mut out = table(&["from", "until", "project", "device", "port", "network"]);
            for h in &history {
                out.add_row(vec![
                    date(h.allocated_at),
                    h.released_at
                        .map(date)
                        .unwrap_or_else(|| "(holds it)".to_owned()),
                    h.project_id.clone(),
                    h.device_id.clone(),
                    h.port_id.clone(),
                    h.network_id.clone(),
                ]);
            }
            println!("{out}");
            Ok(())
        }
    }
}

fn parse_range(text: &str) -> anyhow::Result<(IpAddr, IpAddr)> {
    let (first, last) = text
        .split_once('-')
        .with_context(|| format!("{text:?} is not a range FIRST-LAST"))?;
    let parse = |part: &str| {
        part.trim()
            .parse::<IpAddr>()
            .with_context(|| format!("{part:?} is not an IP address"))
    };
    Ok((parse(first)?, parse(last)?))
}
