//! Queries of networking (migration 13): networks, subnets with their allocation pools,
//! ports, the addresses ports hold, and the history of who held each address.

mod addresses;
mod networks;
mod ports;
mod subnets;

pub use addresses::*;
pub use networks::*;
pub use ports::*;
pub use subnets::*;
