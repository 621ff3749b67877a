//! The nodes as administrators see them through Nova: each node is a hypervisor and a
//! `nova-compute` service. Disabling the service drains the node (nothing new is placed
//! there, its servers stay), enabling it undrains it.

use nefos_db::compute as q;
use nefos_db::time::now_micros;
use nefos_identity::AuthContext;

use crate::{Compute, ComputeError, Node};

/// A node and what is placed on it.
#[derive(Debug, Clone)]
pub struct Hypervisor {
    pub node: Node,
    pub up: bool,
    pub servers: u64,
    pub vcpus_used: u64,
    pub ram_used_mib: u64,
    pub disk_used_gib: u64,
}

fn require_admin(caller: &AuthContext, rule: &str) -> Result<(), ComputeError> {
    if caller.is_cloud_admin() {
        Ok(())
    } else {
        Err(ComputeError::forbidden(format!(
            "Policy doesn't allow {rule} to be performed."
        )))
    }
}

impl Compute {
    /// Every node, with its load; administrators only.
    pub async fn hypervisors(
        &self,
        caller: &AuthContext,
        rule: &str,
    ) -> Result<Vec<Hypervisor>, ComputeError> {
        require_admin(caller, rule)?;
        let nodes = self.nodes().registry().list().await?;
        let loads = q::node_loads(self.db().pool()).await?;
        let now = now_micros();
        let count = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(nodes
            .into_iter()
            .map(|node| {
                let load = loads.get(&node.info.id).copied().unwrap_or_default();
                Hypervisor {
                    up: node.is_up(now),
                    servers: count(load.servers),
                    vcpus_used: count(load.vcpus),
                    ram_used_mib: count(load.ram_mib),
                    disk_used_gib: count(load.disk_gib),
                    node,
                }
            })
            .collect())
    }

    /// Disables (drains, saying why) or enables (undrains) a node's compute service;
    /// administrators only.
    pub async fn set_service_disabled(
        &self,
        caller: &AuthContext,
        node: &str,
        disabled: bool,
        reason: Option<&str>,
    ) -> Result<Hypervisor, ComputeError> {
        require_admin(caller, "os_compute_api:os-services:update")?;
        if let Some(reason) = reason
            && (reason.is_empty() || reason.chars().count() > 255)
        {
            return Err(ComputeError::invalid(
                "Invalid input for field/attribute disabled_reason. It must be 1 to 255 \
                 characters",
            ));
        }
        match self
            .nodes()
            .registry()
            .set_drained(node, disabled, reason)
            .await
        {
            Err(ComputeError::UnknownNode { .. }) => {
                return Err(ComputeError::not_found(format!(
                    "Service {node} could not be found."
                )));
            }
            other => other?,
        }
        self.hypervisors(caller, "os_compute_api:os-services:update")
            .await?
            .into_iter()
            .find(|h| h.node.info.id == node)
            .ok_or_else(|| ComputeError::not_found(format!("Service {node} could not be found.")))
    }
}
