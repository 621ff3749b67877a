//! `nefos node`: the agent on a hypervisor host. It takes the node's lock, enrols with its
//! join token if it has no credential yet, adopts the VMs already running, registers with
//! the control plane, heartbeats, and serves the RPC API.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nefos_node_api::{Accelerator, Heartbeat, NodeCredential, NodeInfo, Secret};
use serde::Deserialize;
use thiserror::Error;
use tokio::net::TcpListener;

use crate::control_plane::{ControlPlaneClient, ControlPlaneError};
use crate::credential::{self, CREDENTIAL_FILE, CredentialError};
use crate::image_cache::{CacheError, ImageCache};
use crate::net::{DEFAULT_LEASE_SECONDS, NetError, NetSettings, NetworkManager};
use crate::qemu::QemuSettings;
use crate::rpc::{self, RpcState};
use crate::vm::{VmError, VmManager};
use crate::{accel, host};

/// Which accelerator to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AcceleratorChoice {
    /// KVM if a probe guest boots under it, else TCG.
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// The node agent's settings (the `[node]` part of the configuration file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// This node's name in the cloud: the name it was enrolled under. Given, it must match
    /// the credential's.
    pub id: Option<String>,
    /// Where the RPC API listens.
    pub listen: SocketAddr,
    /// The URL the control plane reaches the RPC API at. Default: `http://<listen>`.
    pub advertise_url: Option<String>,
    /// Where VMs and the image cache live. Keep the path short: QEMU's unix sockets live
    /// under it and their paths may not exceed 107 bytes.
    pub data_dir: PathBuf,
    /// The URL of the control plane's internal API.
    pub control_plane_url: String,
    /// The one-time token from `nefos admin node enroll`, exchanged at the first start for
    /// the node's credential (kept in `DATA/credential.json`); ignored once the node has
    /// one.
    pub join_token: Option<String>,
    pub accelerator: AcceleratorChoice,
    /// The CPU model guests see. A named baseline lets VMs move between hosts of
    /// different CPU generations and vendors.
    pub cpu_model: String,
    pub qemu_binary: PathBuf,
    pub heartbeat_seconds: u64,
    /// The node's address for VXLAN tunnels to the other nodes (on the operators'
    /// network). Without one the node realises no cloud networks.
    pub tunnel_address: Option<IpAddr>,
    /// The device on the provider's public network; the node joins it to the bridges of
    /// external networks (for routers' gateways and VMs on public networks).
    pub public_interface: Option<String>,
    /// How long the DHCP leases the node gives guests last.
    pub dhcp_lease_seconds: u32,
    /// The host CPU the node reports, instead of the one `/proc/cpuinfo` names: for a test
    /// cloud whose nodes, on one machine, stand for different hosts.
    pub host_cpu: Option<String>,
    /// Offer guests only these of the CPU features the accelerator has (QEMU's names):
    /// an operator may hold features back, and a test cloud give each node the features
    /// of the host it stands for. The scheduler places and moves a server only where
    /// its CPU model's features are offered.
    pub cpu_features: Option<Vec<String>>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            advertise_url: None,
            data_dir: PathBuf::from("nefos-node"),
            control_plane_url: "http://127.0.0.1:8082".to_owned(),
            join_token: None,
            accelerator: AcceleratorChoice::Auto,
            cpu_model: DEFAULT_CPU_MODEL.to_owned(),
            qemu_binary: PathBuf::from("qemu-system-x86_64"),
            heartbeat_seconds: 10,
            tunnel_address: None,
            public_interface: None,
            dhcp_lease_seconds: DEFAULT_LEASE_SECONDS,
            host_cpu: None,
            cpu_features: None,
        }
    }
}

/// x86-64-v2 (SSE4.2, POPCNT, CX16) on QEMU's vendor-neutral model: runs under TCG and on
/// every Intel and AMD host of the last decade.
pub const DEFAULT_CPU_MODEL: &str = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16";

#[derive(Debug, Error)]
pub enum AgentError {
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use the data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another node agent already uses {path}")]
    Locked { path: PathBuf },
    #[error(
        "this node has no credential ({path}): enrol it with `nefos admin node enroll NAME` on \
         the control plane and start it once with the join token (--join-token)"
    )]
    NotEnrolled { path: PathBuf },
    #[error("cannot enrol with the control plane")]
    Join(#[source] ControlPlaneError),
    #[error("cannot make a client of the control plane")]
    ControlPlane(#[source] ControlPlaneError),
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error("this node is configured as {configured:?} but enrolled as {enrolled:?}")]
    WrongId {
        configured: String,
        enrolled: String,
    },
    #[error("the accelerator {accelerator} does not run guests here: {reason}")]
    Accelerator {
        accelerator: &'static str,
        reason: String,
    },
    #[error("cannot open the image cache")]
    Cache(#[source] CacheError),
    #[error("cannot open the VMs")]
    Vms(#[source] VmError),
    #[error("cannot open the node's networks")]
    Networks(#[source] NetError),
    #[error("the RPC server failed")]
    Serve(#[source] std::io::Error),
}

/// A node agent that has its lock, its VMs and its port, ready to serve.
#[derive(Debug)]
pub struct NodeAgent {
    listener: TcpListener,
    state: RpcState,
    control_plane: ControlPlaneClient,
    heartbeat: Duration,
    data_dir: PathBuf,
    _lock: std::fs::File,
}

impl NodeAgent {
    pub async fn start(config: &NodeConfig) -> Result<NodeAgent, AgentError> {
        let data = &config.data_dir;
        let dir_error = |source| AgentError::DataDir {
            path: data.clone(),
            source,
        };
        std::fs::create_dir_all(data).map_err(dir_error)?;
        let lock = lock_data_dir(data)?;
        let credential = credential(config).await?;
        if let Some(configured) = config.id.as_ref().filter(|id| **id != credential.node_id) {
            return Err(AgentError::WrongId {
                configured: configured.clone(),
                enrolled: credential.node_id,
            });
        }
        let accelerator = match config.accelerator {
            AcceleratorChoice::Auto => accel::choose(&config.qemu_binary).await,
            AcceleratorChoice::Kvm => {
                accel::probe(&config.qemu_binary, Accelerator::Kvm)
                    .await
                    .map_err(|reason| AgentError::Accelerator {
                        accelerator: "kvm",
                        reason,
                    })?;
                Accelerator::Kvm
            }
            AcceleratorChoice::Tcg => Accelerator::Tcg,
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| AgentError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let local = listener.local_addr().map_err(|source| AgentError::Listen {
            addr: config.listen,
            source,
        })?;
        let control_plane = ControlPlaneClient::new(
            &config.control_plane_url,
            Secret::new(credential.token.clone()),
        )
        .map_err(AgentError::ControlPlane)?;
        let cache = ImageCache::open(&data.join("images")).map_err(AgentError::Cache)?;
        let qemu = QemuSettings {
            binary: config.qemu_binary.clone(),
            accelerator,
            cpu_model: config.cpu_model.clone(),
        };
        // The VMs' taps must be there before any VM starts.
        let settings = NetSettings {
            tunnel: config.tunnel_address,
            public_interface: config.public_interface.clone(),
            lease_seconds: config.dhcp_lease_seconds.max(10),
        };
        let networks = NetworkManager::open(data, settings)
            .await
            .map_err(AgentError::Networks)?;
        let vms_dir = data.join("vms");
        let blocks = control_plane.clone();
        let vms =
            tokio::task::spawn_blocking(move || VmManager::open(&vms_dir, cache, qemu, blocks))
                .await
                .map_err(|error| AgentError::DataDir {
                    path: data.join("vms"),
                    source: std::io::Error::other(error),
                })?
                .map_err(AgentError::Vms)?;
        vms.resume_interrupted().await;
        let (disk_free_bytes, disk_total_bytes) = host::disk_space(data);
        let info = NodeInfo {
            id: credential.node_id.clone(),
            rpc_url: config
                .advertise_url
                .clone()
                .unwrap_or_else(|| format!("http://{local}")),
            cpus: host::cpus(),
            ram_mib: host::ram_mib(),
            disk_free_bytes,
            disk_total_bytes,
            guest_cpu_model: config.cpu_model.clone(),
            host_cpu: config.host_cpu.clone().unwrap_or_else(host::cpu_model),
            cpu_features: offered_features(
                host::cpu_features(&config.qemu_binary, accelerator, data).await,
                config.cpu_features.as_deref(),
            ),
            accelerator,
            qemu_version: host::qemu_version(&config.qemu_binary).await,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            api_version: nefos_node_api::API_VERSION,
            heartbeat_seconds: config.heartbeat_seconds.max(1),
            tunnel_address: config.tunnel_address,
            public_network: config.public_interface.is_some(),
        };
        tracing::info!(node = %info.id, rpc = %info.rpc_url, accelerator = accelerator.as_str(), "node agent ready");
        Ok(NodeAgent {
            listener,
            state: RpcState {
                vms: Arc::new(vms),
                networks: Arc::new(networks),
                info: Arc::new(info),
                rpc_key: Secret::new(credential.rpc_key),
            },
            control_plane,
            heartbeat: Duration::from_secs(config.heartbeat_seconds.max(1)),
            data_dir: data.clone(),
            _lock: lock,
        })
    }

    pub fn info(&self) -> &NodeInfo {
        &self.state.info
    }

    /// Registers, heartbeats and serves until `shutdown` resolves. VMs keep running.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AgentError> {
        let beats = tokio::spawn(register_and_heartbeat(
            self.control_plane.clone(),
            self.state.clone(),
            self.data_dir.clone(),
            self.heartbeat,
        ));
        let app = rpc::router(self.state.clone());
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        beats.abort();
        tracing::info!("node agent stopped; its VMs run on");
        served.map_err(AgentError::Serve)
    }
}

/// One agent per data directory: a second would start second QEMUs for the same VMs.
fn lock_data_dir(data: &std::path::Path) -> Result<std::fs::File, AgentError> {
    let path = data.join("node.lock");
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| AgentError::DataDir {
            path: path.clone(),
            source,
        })?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| AgentError::Locked { path })?;
    Ok(file)
}

/// The node's credential: the one it keeps, or else the one its join token is exchanged
/// for, saved before it is used.
async fn credential(config: &NodeConfig) -> Result<NodeCredential, AgentError> {
    let path = config.data_dir.join(CREDENTIAL_FILE);
    if let Some(kept) = credential::load(&path).await? {
        if config.join_token.is_some() {
            tracing::info!(node = %kept.node_id, path = %path.display(), "enrolled already; the join token is not needed (remove the credential file to enrol anew)");
        }
        return Ok(kept);
    }
    let Some(join_token) = &config.join_token else {
        return Err(AgentError::NotEnrolled { path });
    };
    let credential = ControlPlaneClient::join(&config.control_plane_url, join_token)
        .await
        .map_err(AgentError::Join)?;
    credential::save(&path, &credential).await?;
    tracing::info!(node = %credential.node_id, "enrolled with the control plane");
    Ok(credential)
}

/// Registers (retrying until the control plane answers), then heartbeats; registers again
/// whenever a heartbeat is refused, e.g. after the control plane lost the node.
async fn register_and_heartbeat(
    control_plane: ControlPlaneClient,
    state: RpcState,
    data_dir: PathBuf,
    every: Duration,
) {
    let mut registered = false;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !registered {
            match control_plane.register(&state.info).await {
                Ok(()) => {
                    tracing::info!(node = %state.info.id, "registered with the control plane");
                    registered = true;
                }
                Err(error) => {
                    tracing::warn!(error = %rpc::chain(&error), "cannot register; retrying");
                    continue;
                }
            }
        }
        let (disk_free_bytes, _) = host::disk_space(&data_dir);
        let beat = Heartbeat {
            running_vms: state.vms.running_count(),
            disk_free_bytes,
        };
        if let Err(error) = control_plane.heartbeat(&state.info.id, &beat).await {
            tracing::warn!(error = %rpc::chain(&error), "heartbeat failed");
            registered = false;
        }
    }
}

/// The features the accelerator has (`probed`), less those the configuration holds back
/// (`allowed`: only these, when given). Never more than the accelerator has: a guest
/// given a feature its host lacks would not start, or not migrate.
fn offered_features(probed: Vec<String>, allowed: Option<&[String]>) -> Vec<String> {
    match allowed {
        None => probed,
        Some(allowed) => probed
            .into_iter()
            .filter(|feature| allowed.contains(feature))
            .collect(),
    }
}
