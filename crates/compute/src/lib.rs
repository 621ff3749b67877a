//! Compute (docs/design.md §2, §5; docs/servers.md): the nodes that run VMs, flavors,
//! keypairs, and servers — their state machine, placement, and the sagas that drive nodes
//! through their RPC API.
//!
//! - `nodes`: the registry of nodes (enrolment, credentials, heartbeats) and [`NodeRpc`];
//! - `flavors`, `keypairs`: what servers are made of;
//! - `servers`: the server state machine and its operations, each a saga
//!   (`servers/sagas`);
//! - `hypervisors`: the nodes as Nova's hypervisors and compute services;
//! - `scheduler`: where a new server goes;
//! - `reconcile`: the database against what nodes run, repaired by named rules.

mod console;
mod error;
mod flavors;
mod hypervisors;
mod keypairs;
mod node_networks;
mod nodes;
mod reconcile;
mod scheduler;
pub mod servers;

use std::sync::Arc;

use nefos_db::Database;
use nefos_image::Images;
use nefos_network::Networks;
use nefos_quota::Quotas;
use nefos_saga::Sagas;

pub use console::{ConsoleTicket, TICKET_LIFETIME_SECONDS};
pub use error::ComputeError;
pub use flavors::{Flavor, NewFlavor};
pub use hypervisors::Hypervisor;
pub use keypairs::{Keypair, fingerprint};
pub use nodes::{Enrolment, Joined, MISSED_HEARTBEATS, Node, NodeRegistry, NodeRpc};
pub use reconcile::{Mode as ReconcileMode, ReconcileReport, Reconciler, Repair};
pub use servers::migrate::{LIVE_MIGRATION, MigrationFilter, ServerMigration};
pub use servers::{
    CreateServer, CreatedServers, Fault, ListFilter, NetworkRequest, PowerAction, Rebuild, Server,
    ServerAddress, ServerFlavor, ServerNetworks, ServerPage, SortColumn,
};

/// How compute places and equips servers.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputeSettings {
    /// How many vCPUs may be placed per host CPU.
    pub cpu_allocation_ratio: f64,
    /// How much guest RAM may be placed per byte of host RAM.
    pub ram_allocation_ratio: f64,
    /// How many bytes of root disk may be placed per byte of the node's disk (overlays
    /// are thin: they grow only as guests write).
    pub disk_allocation_ratio: f64,
    /// Host RAM kept for the node itself.
    pub reserved_host_ram_mib: u64,
    /// The guest TCP ports each server's node forwards from its loopback, while servers
    /// have only user-mode networking.
    pub forward_tcp: Vec<u16>,
    /// The network (an id) a server gets a port on when it names none (Nova's `auto`):
    /// the provider's public network, say. `None`: user-mode networking.
    pub auto_network: Option<String>,
    /// The CPU model (a name of [`nefos_node_api::CPU_MODELS`]) of servers whose flavor
    /// names none in `nefos:cpu_model`.
    pub cpu_model: String,
    /// How live migrations go: the guest's longest pause, the bandwidth, what is done
    /// when a busy guest does not converge.
    pub migration: nefos_node_api::MigrationLimits,
}

impl Default for ComputeSettings {
    fn default() -> Self {
        ComputeSettings {
            cpu_allocation_ratio: 16.0,
            ram_allocation_ratio: 1.5,
            disk_allocation_ratio: 4.0,
            reserved_host_ram_mib: 512,
            forward_tcp: vec![22],
            auto_network: None,
            cpu_model: nefos_node_api::DEFAULT_CPU_MODEL.to_owned(),
            migration: nefos_node_api::MigrationLimits::default(),
        }
    }
}

/// The compute service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Compute {
    inner: Arc<Services>,
}

/// What compute's operations and sagas reach.
#[derive(Debug)]
pub struct Services {
    pub(crate) db: Database,
    pub(crate) nodes: NodeRpc,
    pub(crate) quotas: Quotas,
    pub(crate) images: Images,
    pub(crate) networks: Networks,
    pub(crate) sagas: Sagas,
    pub(crate) settings: ComputeSettings,
}

impl Compute {
    /// The compute service; registers its sagas with `sagas`, which then also resumes
    /// those a stopped process left.
    pub fn new(
        db: Database,
        nodes: NodeRpc,
        quotas: Quotas,
        images: Images,
        networks: Networks,
        sagas: Sagas,
        settings: ComputeSettings,
    ) -> Compute {
        let inner = Arc::new(Services {
            db,
            nodes,
            quotas,
            images,
            networks,
            sagas: sagas.clone(),
            settings,
        });
        servers::sagas::register(&sagas, &inner);
        Compute { inner }
    }

    pub(crate) fn db(&self) -> &Database {
        &self.inner.db
    }

    pub fn nodes(&self) -> &NodeRpc {
        &self.inner.nodes
    }

    /// The networks service servers take their ports from.
    pub fn networks(&self) -> &Networks {
        &self.inner.networks
    }

    pub fn sagas(&self) -> &Sagas {
        &self.inner.sagas
    }

    /// The reconciler of this cloud's servers and nodes.
    pub fn reconciler(&self) -> Reconciler {
        Reconciler::with_services(self.inner.clone())
    }
}
