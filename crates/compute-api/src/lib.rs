//! The compute API declared once (docs/servers.md): Nova v2.1 under [`PREFIX`], its
//! microversions ([`microversion`]), paths ([`paths`]) and JSON bodies ([`types`]), in the
//! shapes the `openstack` CLI and openstacksdk send and read. The server (`nefos-api`)
//! renders these types and the `nefos server` client reads them.

pub mod cyclades;
pub mod microversion;
pub mod paths;
pub mod types;

pub use microversion::Microversion;
pub use nefos_route::fill;

/// Where compute is served, under the cloud's public URL; its version list is the root.
pub const PREFIX: &str = "/compute";

/// The catalog's service type and name.
pub const CATALOG_TYPE: &str = "compute";
pub const CATALOG_NAME: &str = "nova";
