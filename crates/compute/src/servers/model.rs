//! A server as compute's callers see it.

use std::collections::BTreeMap;

use nefos_db::compute::{FlavorColumns, ServerRow};
use nefos_node_api::PortForward;
use serde::{Deserialize, Serialize};

use super::state;

/// The flavor a server has: a copy, kept when the flavor itself changes or goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerFlavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub ram_mib: u64,
    pub disk_gib: u64,
    pub ephemeral_gib: u64,
    pub swap_mib: u64,
    pub extra_specs: BTreeMap<String, String>,
}

/// Why a server is in ERROR, as Nova shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub code: u16,
    pub message: String,
    /// Microseconds since the epoch.
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub id: String,
    /// The integer id Synnefo's Cyclades API shows.
    pub serial: i64,
    pub project_id: String,
    pub user_id: String,
    pub name: String,
    pub description: Option<String>,
    pub image_id: Option<String>,
    pub flavor: ServerFlavor,
    pub vm_state: String,
    pub task_state: Option<String>,
    pub power_state: i64,
    pub node_id: Option<String>,
    /// Whether the server's node missed its heartbeats.
    pub node_down: bool,
    pub forwards: Vec<PortForward>,
    pub reservation_id: String,
    pub key_name: Option<String>,
    pub user_data: Option<String>,
    pub locked_by: Option<String>,
    pub locked_reason: Option<String>,
    pub access_ipv4: Option<String>,
    pub access_ipv6: Option<String>,
    pub fault: Option<Fault>,
    pub launched_at: Option<i64>,
    pub terminated_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    /// The flavor before a resize that is neither confirmed nor reverted.
    pub resized_from: Option<ServerFlavor>,
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl ServerFlavor {
    /// The columns of a server's row that hold its flavor.
    pub(crate) fn columns(&self) -> FlavorColumns {
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        FlavorColumns {
            flavor_id: self.id.clone(),
            flavor_name: self.name.clone(),
            vcpus: i64::from(self.vcpus),
            ram_mib: int(self.ram_mib),
            disk_gib: int(self.disk_gib),
            ephemeral_gib: int(self.ephemeral_gib),
            swap_mib: int(self.swap_mib),
            flavor_extra_specs: serde_json::to_string(&self.extra_specs)
                .unwrap_or_else(|_| "{}".to_owned()),
        }
    }

    /// What the server is charged for with this flavor.
    pub(crate) fn size(&self) -> super::charges::Size {
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        super::charges::Size {
            vcpus: i64::from(self.vcpus),
            ram_mib: int(self.ram_mib),
            disk_gib: int(self.disk_gib),
        }
    }

    /// What a node gives a VM of this flavor.
    pub(crate) fn vm_size(&self) -> nefos_node_api::VmSize {
        nefos_node_api::VmSize {
            vcpus: self.vcpus,
            ram_mib: self.ram_mib,
            disk_bytes: self.disk_gib << 30,
        }
    }
}

impl Server {
    pub(crate) fn from_row(
        row: ServerRow,
        metadata: BTreeMap<String, String>,
        tags: Vec<String>,
        down_nodes: &[String],
    ) -> Server {
        let node_down = row
            .node_id
            .as_ref()
            .is_some_and(|node| down_nodes.contains(node));
        Server {
            flavor: ServerFlavor {
                id: row.flavor_id,
                name: row.flavor_name,
                vcpus: u32::try_from(row.vcpus).unwrap_or(0),
                ram_mib: to_u64(row.ram_mib),
                disk_gib: to_u64(row.disk_gib),
                ephemeral_gib: to_u64(row.ephemeral_gib),
                swap_mib: to_u64(row.swap_mib),
                extra_specs: serde_json::from_str(&row.flavor_extra_specs).unwrap_or_default(),
            },
            forwards: row
                .forwards
                .as_deref()
                .and_then(|f| serde_json::from_str(f).ok())
                .unwrap_or_default(),
            resized_from: row
                .resized_from
                .as_deref()
                .and_then(|f| serde_json::from_str(f).ok()),
            serial: row.serial,
            fault: row
                .fault
                .as_deref()
                .and_then(|f| serde_json::from_str(f).ok()),
            id: row.id,
            project_id: row.project_id,
            user_id: row.user_id,
            name: row.name,
            description: row.description,
            image_id: row.image_id,
            vm_state: row.vm_state,
            task_state: row.task_state,
            power_state: row.power_state,
            node_id: row.node_id,
            node_down,
            reservation_id: row.reservation_id,
            key_name: row.key_name,
            user_data: row.user_data,
            locked_by: row.locked_by,
            locked_reason: row.locked_reason,
            access_ipv4: row.access_ipv4,
            access_ipv6: row.access_ipv6,
            launched_at: row.launched_at,
            terminated_at: row.terminated_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            deleted_at: row.deleted_at,
            metadata,
            tags,
        }
    }

    /// The status users see (`ACTIVE`, `BUILD`, `SHUTOFF`, …).
    pub fn status(&self) -> &'static str {
        state::status(
            &self.vm_state,
            self.task_state.as_deref(),
            self.deleted_at.is_some(),
            self.node_down,
        )
    }

    pub fn locked(&self) -> bool {
        self.locked_by.is_some()
    }
}
