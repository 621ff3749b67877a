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

pub use client::{NodeClient, NodeClientError, open_migration_channel, version_headers};
pub use cpu_models::{CPU_MODELS, CpuModel, DEFAULT_CPU_MODEL, cpu_model};
pub use migration::*;
pub use nefos_disk_format::DiskFormat;
pub use network::*;
pub use secret::{ClusterSecret, Secret, SecretError, SigningKey};
pub use types::*;

/// The version of the two internal APIs (the node RPC and what nodes call) this release
/// speaks; a release that changes either API raises it. Releases before versions were
/// carried are version 1. A control plane and a node agent work together when their
/// versions differ by at most one ([`api_compatible`]), each keeping to what the older of
/// the two has, so a cloud is upgraded one process at a time while its VMs run.
pub const API_VERSION: u32 = 2;

/// The header every call of the two APIs carries [`API_VERSION`] in; absent, version 1.
pub const API_VERSION_HEADER: &str = "nefos-api-version";

/// The first version with live migration (the `definition`, `incoming` and `migration`
/// calls): both nodes of a move must speak it.
pub const LIVE_MIGRATION_API_VERSION: u32 = 2;

/// Whether a peer speaking API `version` can be talked to.
pub fn api_compatible(version: u32) -> bool {
    version.abs_diff(API_VERSION) <= 1
}

/// The version a call's header value says (absent or unreadable: version 1, before
/// versions were carried).
pub fn api_version_of(header: Option<&str>) -> u32 {
    header.and_then(|v| v.trim().parse().ok()).unwrap_or(1)
}

/// Where a node serves its RPC API.
pub const RPC_PREFIX: &str = "/rpc/v1";
/// Where the control plane serves what nodes call.
pub const INTERNAL_PREFIX: &str = "/internal/v1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_one_version_apart_work_together() {
        assert!(api_compatible(API_VERSION));
        assert!(api_compatible(API_VERSION - 1));
        assert!(api_compatible(API_VERSION + 1));
        assert!(!api_compatible(API_VERSION + 2));
        assert_eq!(api_version_of(None), 1);
        assert_eq!(api_version_of(Some(" 7 ")), 7);
        assert_eq!(api_version_of(Some("x")), 1);
    }
}
