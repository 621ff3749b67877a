//! Placement: which node a new server goes to. A node qualifies when it is up (heard from
//! within its missed-heartbeat allowance), not drained, and has room for the server's
//! vCPUs, RAM and disk under the configured overcommit ratios, counting every server
//! placed there, and whose accelerator offers the CPU features of the server's CPU model.
//! Among those, the one with the most free RAM (relative to its capacity) wins, then the
//! one running fewer VMs: servers spread over nodes.

use nefos_db::Connection;
use nefos_db::compute::{self as q, NodeLoad};
use nefos_db::time::now_micros;

use crate::{ComputeError, Node, Services};

/// What a server needs of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    pub vcpus: u64,
    pub ram_mib: u64,
    pub disk_gib: u64,
    /// The CPU model it runs, if it is to be placed (a resize stays where it runs).
    pub cpu_model: Option<&'static nefos_node_api::CpuModel>,
}

/// The key under which placements run one at a time (with [`nefos_db::Database::lock_key`]):
/// a placement reads every node's load and records its choice in one transaction, so the
/// next one counts it. Two creates that read the loads side by side would otherwise both
/// choose the emptier node.
pub(crate) const PLACEMENT_LOCK: &str = "compute.placement";

/// Nova's message when nothing fits.
pub const NO_VALID_HOST: &str = "No valid host was found. There are not enough hosts available.";

impl Services {
    /// The node for a new server, counting the loads as `conn` sees them (a transaction
    /// holding [`PLACEMENT_LOCK`], which records the choice before it commits).
    pub(crate) async fn place(
        &self,
        conn: &mut Connection,
        demand: Demand,
    ) -> Result<String, ComputeError> {
        self.place_excluding(conn, demand, None).await
    }

    async fn place_excluding(
        &self,
        conn: &mut Connection,
        demand: Demand,
        excluded: Option<&str>,
    ) -> Result<String, ComputeError> {
        let nodes = self.nodes.registry().list().await?;
        let loads = q::node_loads(conn).await?;
        let now = now_micros();
        let mut best: Option<(f64, u32, String)> = None;
        for node in nodes {
            if excluded == Some(node.info.id.as_str()) {
                continue;
            }
            // A move (`excluded` is its source) needs an agent that receives VMs.
            if excluded.is_some()
                && node.info.api_version < nefos_node_api::LIVE_MIGRATION_API_VERSION
            {
                continue;
            }
            let load = loads.get(&node.info.id).copied().unwrap_or_default();
            let Some(free_ram) = self.room(&node, load, demand, now) else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((ram, running, _)) => {
                    free_ram > *ram || (free_ram == *ram && node.running_vms < *running)
                }
            };
            if better {
                best = Some((free_ram, node.running_vms, node.info.id));
            }
        }
        best.map(|(_, _, id)| id)
            .ok_or_else(|| ComputeError::conflict(NO_VALID_HOST))
    }

    /// The node a server on `source` moves to: the best other node, as for a new server.
    pub(crate) async fn place_away(
        &self,
        conn: &mut Connection,
        demand: Demand,
        source: &str,
    ) -> Result<String, ComputeError> {
        self.place_excluding(conn, demand, Some(source)).await
    }

    /// Checks that a server can move to node `host`: it is registered, up, not drained,
    /// runs the server's CPU model (`model_name`) and has room for it. Nova's messages.
    pub(crate) async fn check_destination(
        &self,
        conn: &mut Connection,
        host: &str,
        demand: Demand,
        model_name: &str,
    ) -> Result<(), ComputeError> {
        let nodes = self.nodes.registry().list().await?;
        let Some(node) = nodes.into_iter().find(|node| node.info.id == host) else {
            return Err(ComputeError::invalid(format!(
                "Compute host {host} could not be found."
            )));
        };
        let now = now_micros();
        let refuse = |reason: String| {
            Err(ComputeError::invalid(format!(
                "Migration pre-check error: {reason}"
            )))
        };
        if !node.is_up(now) {
            return refuse(format!(
                "Compute service of {host} is unavailable at this time."
            ));
        }
        if node.drained {
            return refuse(format!("Compute host {host} is drained."));
        }
        if node.info.api_version < nefos_node_api::LIVE_MIGRATION_API_VERSION {
            return refuse(format!(
                "Compute host {host}'s agent is too old for live migration (API version {}); \
                 upgrade it first.",
                node.info.api_version
            ));
        }
        if let Some(model) = demand.cpu_model
            && !model.runs_on(&node.info.cpu_features)
        {
            let missing: Vec<&str> = model
                .features
                .iter()
                .filter(|f| !node.info.cpu_features.iter().any(|o| o == *f))
                .copied()
                .collect();
            return refuse(format!(
                "The server's CPU model {model_name} does not run on {host}: its CPU lacks {}.",
                missing.join(", ")
            ));
        }
        let loads = q::node_loads(conn).await?;
        let load = loads.get(host).copied().unwrap_or_default();
        if self.room(&node, load, demand, now).is_none() {
            return refuse(format!("{host} has not enough room for the server."));
        }
        Ok(())
    }

    /// Whether `demand` more fits on node `node_id` (a resize's growth).
    pub(crate) async fn fits_on(
        &self,
        node_id: &str,
        demand: Demand,
    ) -> Result<bool, ComputeError> {
        let nodes = self.nodes.registry().list().await?;
        let loads = q::node_loads(self.db.pool()).await?;
        let Some(node) = nodes.into_iter().find(|node| node.info.id == node_id) else {
            return Ok(false);
        };
        let load = loads.get(node_id).copied().unwrap_or_default();
        // A drained node keeps its servers and lets them resize.
        let node = Node {
            drained: false,
            ..node
        };
        Ok(self.room(&node, load, demand, now_micros()).is_some())
    }

    /// The share of `node`'s RAM capacity left after placing `demand`, or None when the
    /// node does not qualify.
    fn room(&self, node: &Node, load: NodeLoad, demand: Demand, now: i64) -> Option<f64> {
        if node.drained || !node.is_up(now) {
            return None;
        }
        if let Some(model) = demand.cpu_model
            && !model.runs_on(&node.info.cpu_features)
        {
            return None;
        }
        let settings = &self.settings;
        let as_f64 = |v: u64| v as f64;
        let used = |v: i64| as_f64(u64::try_from(v).unwrap_or(0));
        let cpu_capacity = as_f64(u64::from(node.info.cpus)) * settings.cpu_allocation_ratio;
        let ram_capacity = as_f64(
            node.info
                .ram_mib
                .saturating_sub(settings.reserved_host_ram_mib),
        ) * settings.ram_allocation_ratio;
        let disk_capacity =
            as_f64(node.info.disk_total_bytes >> 30) * settings.disk_allocation_ratio;
        let fits = used(load.vcpus) + as_f64(demand.vcpus) <= cpu_capacity
            && used(load.ram_mib) + as_f64(demand.ram_mib) <= ram_capacity
            && used(load.disk_gib) + as_f64(demand.disk_gib) <= disk_capacity;
        fits.then(|| {
            (ram_capacity - used(load.ram_mib) - as_f64(demand.ram_mib)) / ram_capacity.max(1.0)
        })
    }
}
