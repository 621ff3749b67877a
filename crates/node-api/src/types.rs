//! What travels between control plane and nodes.

use std::collections::BTreeMap;

use nefos_disk_format::DiskFormat;
use serde::{Deserialize, Serialize};

/// An image as its content: the Pithos hashmap of its bytes (hex SHA-256 of each 4 MiB
/// block, trailing zeros stripped) and its size, and the format it was declared with. A
/// node caches images by this content, so the control plane's names for them do not
/// matter to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageContent {
    pub size: u64,
    pub block_size: u64,
    pub hashes: Vec<String>,
    /// The node inspects the image against it and opens the image as it says.
    #[serde(default = "raw")]
    pub format: DiskFormat,
}

/// Images were raw before the spec said which format they have.
fn raw() -> DiskFormat {
    DiskFormat::Raw
}

/// Which layout the config drive uses; both are read by cloud-init.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigDriveLayout {
    /// OpenStack's config drive: ISO 9660 labelled `config-2`, `openstack/latest/…`.
    #[default]
    OpenStack,
    /// cloud-init's NoCloud: ISO 9660 labelled `cidata`, `meta-data`, `user-data`, ….
    NoCloud,
}

/// What the guest learns from its config drive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestConfig {
    pub hostname: String,
    #[serde(default)]
    pub layout: ConfigDriveLayout,
    /// The initial password of the guest's administrator account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_pass: Option<String>,
    /// SSH public keys by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub public_keys: BTreeMap<String, String>,
    /// User data, base64-encoded as in Nova's API (it may be binary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
}

/// A network interface of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NicSpec {
    /// QEMU's user-mode network, closed to the outside (`restrict=on`): the guest reaches
    /// nothing, and the node forwards a port on its loopback to each listed guest TCP port.
    UserForward {
        mac: String,
        #[serde(default)]
        forward_tcp: Vec<u16>,
    },
    /// A port of a cloud network: the tap the node made for it ([`crate::tap_name`]).
    Port {
        port_id: String,
        mac: String,
        /// The MTU the guest's NIC announces (virtio's `host_mtu`).
        mtu: u32,
    },
}

impl NicSpec {
    pub fn mac(&self) -> &str {
        match self {
            NicSpec::UserForward { mac, .. } | NicSpec::Port { mac, .. } => mac,
        }
    }
}

/// Everything a node needs to run a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSpec {
    /// The user's name for the VM (shown in QEMU's process list).
    pub name: String,
    pub vcpus: u32,
    pub ram_mib: u64,
    /// Size of the root disk; at least the image's size.
    pub disk_bytes: u64,
    pub image: ImageContent,
    pub guest: GuestConfig,
    #[serde(default)]
    pub nics: Vec<NicSpec>,
    /// The VM's CPU model, by name ([`crate::CPU_MODELS`]); absent, the node's default.
    /// A change applies at the next start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
}

/// What a VM should be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    Running,
    /// QEMU runs with the guest's vCPUs stopped: the guest keeps its memory and resumes
    /// where it was.
    Paused,
    Stopped,
    /// No QEMU: the guest's memory and device state are saved on the node's disk, and
    /// resuming restores them, so the guest goes on where it was. Only a running or
    /// paused VM can be suspended; a fresh boot discards what was saved.
    Suspended,
}

/// Define the VM if the node lacks it (disk, config drive), then bring it to `power`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnsureVm {
    pub generation: u64,
    pub spec: VmSpec,
    pub power: PowerState,
}

/// Stop: ACPI power button, then, after `timeout_seconds`, force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopVm {
    pub generation: u64,
    #[serde(default = "default_stop_timeout")]
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartVm {
    pub generation: u64,
}

/// Pause or unpause: stop or resume the guest's vCPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseVm {
    pub generation: u64,
}

/// Suspend (save the guest's state to disk and end QEMU) or resume (restore it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspendVm {
    pub generation: u64,
}

/// Reboot: `hard` resets the machine; soft asks the guest to shut down (ACPI) and starts
/// it again, resetting it instead if it has not stopped after `timeout_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootVm {
    pub generation: u64,
    #[serde(default)]
    pub hard: bool,
    #[serde(default = "default_stop_timeout")]
    pub timeout_seconds: u64,
}

/// The sizes a resize changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSize {
    pub vcpus: u32,
    pub ram_mib: u64,
    pub disk_bytes: u64,
}

/// The NICs a VM has from now on: a running VM's are plugged in and out of it (PCI
/// hot-plug) as they differ from what it runs with, a stopped VM's apply at its start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetNics {
    pub generation: u64,
    pub nics: Vec<NicSpec>,
}

/// Resize a stopped VM to `size`: vCPUs and RAM apply at its next start, the root disk
/// grows (it never shrinks). The disk as it was is kept until a confirm or a revert
/// ([`ResizeEnd`]), as Nova keeps the source of a resize until it is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResizeVm {
    pub generation: u64,
    pub size: VmSize,
}

/// Confirm a resize (the kept disk is deleted) or revert it (the VM is stopped and gets
/// its earlier sizes and disk back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResizeEnd {
    pub generation: u64,
}

/// Rebuild: the VM gets a fresh root disk from `image` (its sizes and NICs kept: what
/// the guest wrote is gone) and the guest configuration `guest`, and is brought to
/// `power`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildVm {
    pub generation: u64,
    /// A new name for the VM, when the rebuild renames it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub image: ImageContent,
    pub guest: GuestConfig,
    pub power: PowerState,
}

pub fn default_stop_timeout() -> u64 {
    60
}

/// What a VM is doing, as the node sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    /// QEMU runs and the guest's vCPUs run.
    Running,
    /// QEMU runs with the vCPUs paused (or in another non-running QEMU state).
    Paused,
    /// No QEMU process.
    Stopped,
    /// No QEMU process; the guest's state is saved on disk for a resume.
    Suspended,
}

/// A guest TCP port and the node's loopback port forwarded to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForward {
    pub guest: u16,
    pub host: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskStatus {
    pub virtual_bytes: u64,
    /// Bytes the VM's own overlay occupies on the node's disk.
    pub allocated_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmStatus {
    pub id: String,
    pub name: String,
    /// The last generation the node applied to this VM.
    pub generation: u64,
    /// What the control plane last asked for.
    pub power: PowerState,
    pub state: VmState,
    /// QEMU's own run state (`running`, `paused`, `shutdown`, …) when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default)]
    pub forwards: Vec<PortForward>,
    pub disk: DiskStatus,
    /// The content id of the image the root disk grew from.
    pub image_id: String,
    /// Parts of the spec the running QEMU does not have yet (`vcpus`, `ram_mib`, `nics`,
    /// `guest`): an ensure while it ran changed them. They apply when QEMU next starts:
    /// a stop and start, or a reboot, which restarts QEMU for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_changes: Vec<String>,
    /// The sizes before a resize that is neither confirmed nor reverted yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resized_from: Option<VmSize>,
    /// The sizes the node gives the VM (its next start's, if `pending_changes` has them);
    /// absent from older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<VmSize>,
}

/// What a running VM uses, from its QEMU and the node's kernel (Nova's server
/// diagnostics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmDiagnostics {
    /// Seconds since QEMU started.
    pub uptime_seconds: u64,
    pub vcpus: Vec<VcpuUsage>,
    /// The guest's RAM.
    pub memory_mib: u64,
    /// What the VM's QEMU holds resident: the guest's touched RAM and QEMU's own.
    pub resident_mib: u64,
    pub disks: Vec<DiskUsage>,
    pub nics: Vec<NicUsage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VcpuUsage {
    pub id: u32,
    /// CPU time its thread has used, in nanoseconds.
    pub time_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// The block node: `root` or `config`.
    pub name: String,
    pub read_bytes: u64,
    pub read_requests: u64,
    pub write_bytes: u64,
    pub write_requests: u64,
    pub errors: u64,
}

/// A NIC; its traffic counters are absent where its backend keeps none (QEMU's
/// user-mode network).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicUsage {
    pub mac: String,
    pub rx_bytes: Option<u64>,
    pub rx_packets: Option<u64>,
    pub tx_bytes: Option<u64>,
    pub tx_packets: Option<u64>,
}

/// The tail of a VM's serial console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleOutput {
    pub output: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accelerator {
    Kvm,
    Tcg,
}

impl Accelerator {
    pub fn as_str(self) -> &'static str {
        match self {
            Accelerator::Kvm => "kvm",
            Accelerator::Tcg => "tcg",
        }
    }
}

/// A node as it registers with the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    /// Where the node serves its RPC API.
    pub rpc_url: String,
    pub cpus: u32,
    pub ram_mib: u64,
    /// Free and total bytes where the node keeps disks and its image cache.
    pub disk_free_bytes: u64,
    pub disk_total_bytes: u64,
    /// The CPU model given to guests (a named baseline, so that VMs can move between
    /// hosts), and the host's own.
    pub guest_cpu_model: String,
    pub host_cpu: String,
    /// The CPU features the node's accelerator offers guests (QEMU's names, from its
    /// `max` model), by which the scheduler tells which models the node runs.
    #[serde(default)]
    pub cpu_features: Vec<String>,
    pub accelerator: Accelerator,
    pub qemu_version: String,
    pub agent_version: String,
    /// The internal APIs' version the agent speaks ([`crate::API_VERSION`]); 1 for agents
    /// from before versions were carried.
    #[serde(default = "first_api_version")]
    pub api_version: u32,
    /// The node's address for VXLAN tunnels to the other nodes; absent, the node
    /// realises no networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_address: Option<std::net::IpAddr>,
    /// Whether the node has a public interface, joined to external networks: routers
    /// run on such nodes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public_network: bool,
    /// How often the node heartbeats: it is down once it has missed a few.
    #[serde(default = "default_heartbeat_seconds")]
    pub heartbeat_seconds: u64,
}

fn first_api_version() -> u32 {
    1
}

/// What nodes that did not say heartbeat at.
pub fn default_heartbeat_seconds() -> u64 {
    10
}

/// A node's periodic sign of life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub running_vms: u32,
    pub disk_free_bytes: u64,
}

/// An error in the OpenStack shape: `{"error": {"code", "title", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: u16,
    pub title: String,
    pub message: String,
}

/// A node's first call, `POST /internal/v1/enroll`: the one-time join token an operator
/// got from `nefos admin node enroll`.
#[derive(Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub join_token: String,
}

impl std::fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinRequest { join_token: … }")
    }
}

/// What a node receives, once, for its join token, and keeps in its data directory.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCredential {
    /// The name the operator enrolled the node under: its id in the cloud.
    pub node_id: String,
    /// What the node presents to the internal API (the control plane keeps its hash).
    pub token: String,
    /// What the control plane presents to the node's RPC API; no other node's RPC
    /// accepts it.
    pub rpc_key: String,
}

impl std::fmt::Debug for NodeCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCredential")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_without_a_format_is_raw() {
        let old: ImageContent =
            serde_json::from_str(r#"{"size": 5, "block_size": 4194304, "hashes": ["ab"]}"#)
                .unwrap();
        assert_eq!(old.format, DiskFormat::Raw);
        let qcow2 = ImageContent {
            format: DiskFormat::Qcow2,
            ..old
        };
        let json = serde_json::to_value(&qcow2).unwrap();
        assert_eq!(json["format"], "qcow2");
        assert_eq!(serde_json::from_value::<ImageContent>(json).unwrap(), qcow2);
        let vmdk = r#"{"size": 5, "block_size": 4194304, "hashes": [], "format": "vmdk"}"#;
        let error = serde_json::from_str::<ImageContent>(vmdk).unwrap_err();
        assert!(error.to_string().contains("not supported"), "{error}");
    }
}
