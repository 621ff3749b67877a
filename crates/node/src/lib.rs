//! The nefos node agent (docs/design.md §5): runs VMs under QEMU on one hypervisor host,
//! on the control plane's behalf and only through its RPC API.
//!
//! - `image_cache`: images by content, filled block by block from the block store;
//! - `qcow2`: O(1) root disks as overlays on cached images;
//! - `config_drive`: what guests learn at boot, for cloud-init;
//! - `qemu`: command lines and detached QEMU processes that outlive the agent;
//! - `net`: bridges, VXLAN, taps, DHCP and nftables for the cloud's networks;
//! - `vm`: the VM lifecycle, generation-checked and idempotent;
//! - `credential`: the node's own credential, from its enrolment;
//! - `rpc` and `agent`: the HTTP API and the process around it.

pub mod accel;
mod agent;
pub mod config_drive;
pub mod control_plane;
pub mod credential;
pub mod host;
pub mod image_cache;
pub mod net;
pub mod qcow2;
pub mod qemu;
mod qemu_img;
mod rpc;
pub mod vm;

pub use agent::{AcceleratorChoice, AgentError, DEFAULT_CPU_MODEL, NodeAgent, NodeConfig};
