//! The image APIs declared once (docs/images.md): Glance v2 ([`glance`]) and Synnefo's
//! Plankton ([`plankton`]), under [`PREFIX`]. The paths, headers and JSON bodies are those
//! the `openstack` CLI, openstacksdk and kamaki 0.16 send and read; the server
//! (`nefos-api`) renders these types and the `nefos image` client reads them.

pub mod glance;
pub mod plankton;

/// Where the image service is served, under the cloud's public URL; Glance's version
/// document is its root.
pub const PREFIX: &str = "/image";

/// The catalog's service type and name for Glance.
pub const CATALOG_TYPE: &str = "image";
pub const CATALOG_NAME: &str = "glance";

pub use nefos_route::fill;
