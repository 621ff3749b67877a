use std::time::Duration;

use nefos_db::compute::{self as queries, NodeRow};
use nefos_db::{Database, DbError};
use nefos_node_api::{Heartbeat, NodeInfo};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ComputeError {
    #[error("no node {id} is registered")]
    UnknownNode { id: String },
    #[error("invalid node registration: {reason}")]
    InvalidNode { reason: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A registered node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub info: NodeInfo,
    pub running_vms: u32,
    /// Microseconds since the epoch.
    pub registered_at: i64,
    pub heartbeat_at: i64,
}

impl Node {
    /// Whether the node was heard from within `silence` before `now` (microseconds).
    pub fn is_alive(&self, now: i64, silence: Duration) -> bool {
        let silence = i64::try_from(silence.as_micros()).unwrap_or(i64::MAX);
        now.saturating_sub(self.heartbeat_at) <= silence
    }
}

#[derive(Debug, Clone)]
pub struct NodeRegistry {
    db: Database,
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl NodeRegistry {
    pub fn new(db: Database) -> NodeRegistry {
        NodeRegistry { db }
    }

    /// Records a node's self-description; registering again replaces it.
    pub async fn register(&self, info: &NodeInfo) -> Result<Node, ComputeError> {
        let id_ok = !info.id.is_empty()
            && info.id.len() <= 64
            && info
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !id_ok {
            return Err(ComputeError::InvalidNode {
                reason: format!("node id {:?} must be 1 to 64 of A-Z a-z 0-9 - _ .", info.id),
            });
        }
        if !(info.rpc_url.starts_with("http://") || info.rpc_url.starts_with("https://")) {
            return Err(ComputeError::InvalidNode {
                reason: format!("rpc_url {:?} is not an http(s) URL", info.rpc_url),
            });
        }
        let now = nefos_db::time::now_micros();
        let row = NodeRow {
            id: info.id.clone(),
            rpc_url: info.rpc_url.clone(),
            cpus: i64::from(info.cpus),
            ram_mib: to_i64(info.ram_mib),
            disk_free_bytes: to_i64(info.disk_free_bytes),
            disk_total_bytes: to_i64(info.disk_total_bytes),
            guest_cpu_model: info.guest_cpu_model.clone(),
            host_cpu: info.host_cpu.clone(),
            accelerator: info.accelerator.as_str().to_owned(),
            qemu_version: info.qemu_version.clone(),
            agent_version: info.agent_version.clone(),
            running_vms: 0,
            registered_at: now,
            heartbeat_at: now,
        };
        queries::upsert_node(self.db.pool(), &row).await?;
        tracing::info!(node = %info.id, rpc = %info.rpc_url, "node registered");
        Ok(node_of(row))
    }

    pub async fn heartbeat(&self, id: &str, beat: &Heartbeat) -> Result<(), ComputeError> {
        let known = queries::record_heartbeat(
            self.db.pool(),
            id,
            i64::from(beat.running_vms),
            to_i64(beat.disk_free_bytes),
            nefos_db::time::now_micros(),
        )
        .await?;
        if known {
            Ok(())
        } else {
            Err(ComputeError::UnknownNode { id: id.to_owned() })
        }
    }

    pub async fn list(&self) -> Result<Vec<Node>, ComputeError> {
        Ok(queries::list_nodes(self.db.pool())
            .await?
            .into_iter()
            .map(node_of)
            .collect())
    }

    pub async fn get(&self, id: &str) -> Result<Node, ComputeError> {
        queries::get_node(self.db.pool(), id)
            .await?
            .map(node_of)
            .ok_or_else(|| ComputeError::UnknownNode { id: id.to_owned() })
    }
}

fn node_of(row: NodeRow) -> Node {
    let to_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
    let accelerator = if row.accelerator == "kvm" {
        nefos_node_api::Accelerator::Kvm
    } else {
        nefos_node_api::Accelerator::Tcg
    };
    Node {
        info: NodeInfo {
            id: row.id,
            rpc_url: row.rpc_url,
            cpus: u32::try_from(row.cpus).unwrap_or(0),
            ram_mib: to_u64(row.ram_mib),
            disk_free_bytes: to_u64(row.disk_free_bytes),
            disk_total_bytes: to_u64(row.disk_total_bytes),
            guest_cpu_model: row.guest_cpu_model,
            host_cpu: row.host_cpu,
            accelerator,
            qemu_version: row.qemu_version,
            agent_version: row.agent_version,
        },
        running_vms: u32::try_from(row.running_vms).unwrap_or(0),
        registered_at: row.registered_at,
        heartbeat_at: row.heartbeat_at,
    }
}
