//! Queries of compute: the nodes that run VMs, their credentials, and the blocks each may
//! read.

mod credentials;
mod grants;
mod nodes;

pub use credentials::*;
pub use grants::*;
pub use nodes::*;
