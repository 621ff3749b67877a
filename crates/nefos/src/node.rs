//! `nefos node`: the node agent of a hypervisor host.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use nefos_node::{AcceleratorChoice, NodeAgent, NodeConfig};

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Configuration file (TOML, the fields of docs/configuration.md's `nefos node`).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// This node's id in the cloud; if given, it must be the name it was enrolled under.
    #[arg(long)]
    id: Option<String>,
    /// Where VMs and the image cache live.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where the RPC API listens.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The URL of the control plane's internal API.
    #[arg(long)]
    control_plane: Option<String>,
    /// The one-time token from `nefos admin node enroll NAME`, needed at the first start
    /// only: the node exchanges it for its own credential and keeps that.
    #[arg(long, env = "NEFOS_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,
    #[arg(long, value_enum)]
    accelerator: Option<AcceleratorArg>,
    /// How often the node tells the control plane it is alive; it counts as down after
    /// three missed heartbeats.
    #[arg(long)]
    heartbeat_seconds: Option<u64>,
    /// The node's address for VXLAN tunnels to the other nodes; without one the node
    /// realises no cloud networks.
    #[arg(long)]
    tunnel_address: Option<IpAddr>,
    /// The device on the provider's public network, joined to the bridges of external
    /// networks.
    #[arg(long)]
    public_interface: Option<String>,
    /// How long the DHCP leases the node gives guests last.
    #[arg(long)]
    dhcp_lease_seconds: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AcceleratorArg {
    Auto,
    Kvm,
    Tcg,
}

impl From<AcceleratorArg> for AcceleratorChoice {
    fn from(arg: AcceleratorArg) -> Self {
        match arg {
            AcceleratorArg::Auto => AcceleratorChoice::Auto,
            AcceleratorArg::Kvm => AcceleratorChoice::Kvm,
            AcceleratorArg::Tcg => AcceleratorChoice::Tcg,
        }
    }
}

pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read configuration file {}", path.display()))?;
            toml::from_str::<NodeConfig>(&text)
                .with_context(|| format!("invalid configuration in {}", path.display()))?
        }
        None => NodeConfig::default(),
    };
    if let Some(id) = args.id {
        config.id = Some(id);
    }
    if let Some(data) = args.data {
        config.data_dir = data;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(url) = args.control_plane {
        config.control_plane_url = url;
    }
    if let Some(token) = args.join_token {
        config.join_token = Some(token);
    }
    if let Some(accelerator) = args.accelerator {
        config.accelerator = accelerator.into();
    }
    if let Some(seconds) = args.heartbeat_seconds {
        config.heartbeat_seconds = seconds;
    }
    if let Some(address) = args.tunnel_address {
        config.tunnel_address = Some(address);
    }
    if let Some(device) = args.public_interface {
        config.public_interface = Some(device);
    }
    if let Some(seconds) = args.dhcp_lease_seconds {
        config.dhcp_lease_seconds = seconds;
    }
    let agent = NodeAgent::start(&config).await?;
    println!(
        "nefos node {} serving its RPC API at {}",
        agent.info().id,
        agent.info().rpc_url
    );
    agent.serve(crate::server::shutdown_signal()).await?;
    Ok(())
}
