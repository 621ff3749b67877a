//! Queries of object storage: accounts, containers, object versions and per-path attributes.

mod accounts;
mod containers;
mod objects;
mod paths;
mod pithos;

pub use accounts::*;
pub use containers::*;
pub use objects::*;
pub use paths::*;
pub use pithos::*;
