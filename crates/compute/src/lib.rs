//! Compute (docs/design.md §2, §5): today the registry of the nodes that run VMs — what
//! each node says of itself when it registers, and when it was last heard from.

mod nodes;

pub use nodes::{ComputeError, Node, NodeRegistry};
