//! Queries of networking (migration 13): networks, subnets with their allocation pools,
//! ports, the addresses ports hold, the history of who held each address, and the nodes
//! ports are bound to.

mod addresses;
mod bindings;
mod networks;
mod ports;
mod routers;
mod security_groups;
mod subnets;

pub use addresses::*;
pub use bindings::*;
pub use networks::*;
pub use ports::*;
pub use routers::*;
pub use security_groups::*;
pub use subnets::*;
