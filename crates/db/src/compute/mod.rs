//! Queries of compute: the nodes that run VMs, their credentials and the blocks each may
//! read; flavors, keypairs and servers.

mod credentials;
mod flavors;
mod grants;
mod keypairs;
mod migrations;
mod nodes;
mod server_pages;
mod server_ports;
mod servers;

pub use credentials::*;
pub use flavors::*;
pub use grants::*;
pub use keypairs::*;
pub use migrations::*;
pub use nodes::*;
pub use server_pages::*;
pub use server_ports::*;
pub use servers::*;
