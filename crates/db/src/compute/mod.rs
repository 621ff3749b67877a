//! Queries of compute: the nodes that run VMs.

mod nodes;

pub use nodes::*;
