//! The RPC between the control plane and node agents (docs/design.md §2, §5).
//!
//! Nodes serve `/rpc/v1/…` and the control plane serves `/internal/v1/…` on a listener of
//! its own; both are HTTP/JSON and never exposed to tenants. Each node has its own
//! credential from its enrolment: a token it presents to the internal API, and the RPC
//! key the control plane presents to it, derived from the control plane's key
//! ([`ClusterSecret::node_rpc_key`]), so one node's credential opens no other node. Every
//! operation on a VM carries a generation number chosen by the control plane: a node
//! refuses a generation older than the last it applied to that VM, and treats the same
//! generation again as a retry, so every call is safe to repeat.

mod client;
mod cpu_models;
mod migration;
mod network;
pub mod routes;
mod secret;
mod types;

pub use client::{NodeClient, NodeClientError, open_migration_channel};
pub use cpu_models::{CPU_MODELS, CpuModel, DEFAULT_CPU_MODEL, cpu_model};
pub use migration::*;
pub use nefos_disk_format::DiskFormat;
pub use network::*;
pub use secret::{ClusterSecret, Secret, SecretError, SigningKey};
pub use types::*;

/// Where a node serves its RPC API.
pub const RPC_PREFIX: &str = "/rpc/v1";
/// Where the control plane serves what nodes call.
pub const INTERNAL_PREFIX: &str = "/internal/v1";
