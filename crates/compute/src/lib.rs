//! Compute (docs/design.md §2, §5): today the registry of the nodes that run VMs — their
//! enrolment and credentials, what each says of itself when it registers, when it was last
//! heard from, and the image blocks each may read — and [`NodeRpc`], the control plane's
//! way to drive them.

mod nodes;

pub use nodes::{ComputeError, Enrolment, Joined, Node, NodeRegistry, NodeRpc};
