//! `GET /servers/{id}/diagnostics`: what a running server uses. From 2.48 one shape for
//! every hypervisor; before it, the flat map of the libvirt driver (`cpu0_time`,
//! `memory`, `<disk>_read`, …), which older clients print as it comes.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use nefos_compute_api::types::{
    CpuDetails, DiskDetails, MemoryDetails, NicDetails, ServerDiagnostics,
};
use nefos_node_api::VmDiagnostics;
use serde_json::{Map, Value, json};

use super::NovaError;
use super::request::Nova;
use crate::ApiState;

pub(crate) async fn show(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Result<Response, NovaError> {
    let used = state.compute()?.diagnostics(&nova.caller, &id).await?;
    Ok(if nova.version.at_least(48) {
        Json(standard(&used)).into_response()
    } else {
        Json(legacy(&used)).into_response()
    })
}

fn standard(used: &VmDiagnostics) -> ServerDiagnostics {
    ServerDiagnostics {
        state: "running".to_owned(),
        driver: "nefos".to_owned(),
        hypervisor: "qemu".to_owned(),
        hypervisor_os: "linux".to_owned(),
        uptime: used.uptime_seconds,
        config_drive: true,
        num_cpus: used.vcpus.len(),
        num_disks: used.disks.len(),
        num_nics: used.nics.len(),
        memory_details: MemoryDetails {
            maximum: used.memory_mib,
            used: used.resident_mib.min(used.memory_mib),
        },
        cpu_details: used
            .vcpus
            .iter()
            .map(|vcpu| CpuDetails {
                id: vcpu.id,
                time: vcpu.time_ns,
                utilisation: None,
            })
            .collect(),
        disk_details: used
            .disks
            .iter()
            .map(|disk| DiskDetails {
                read_bytes: disk.read_bytes,
                read_requests: disk.read_requests,
                write_bytes: disk.write_bytes,
                write_requests: disk.write_requests,
                errors_count: disk.errors,
            })
            .collect(),
        nic_details: used
            .nics
            .iter()
            .map(|nic| NicDetails {
                mac_address: nic.mac.clone(),
                rx_octets: nic.rx_bytes,
                rx_errors: None,
                rx_drop: None,
                rx_packets: nic.rx_packets,
                rx_rate: None,
                tx_octets: nic.tx_bytes,
                tx_errors: None,
                tx_drop: None,
                tx_packets: nic.tx_packets,
                tx_rate: None,
            })
            .collect(),
    }
}

fn legacy(used: &VmDiagnostics) -> Map<String, Value> {
    let mut map = Map::new();
    for vcpu in &used.vcpus {
        map.insert(format!("cpu{}_time", vcpu.id), json!(vcpu.time_ns));
    }
    map.insert("memory".to_owned(), json!(used.memory_mib * 1024));
    map.insert("memory-rss".to_owned(), json!(used.resident_mib * 1024));
    for disk in &used.disks {
        let name = &disk.name;
        map.insert(format!("{name}_read"), json!(disk.read_bytes));
        map.insert(format!("{name}_read_req"), json!(disk.read_requests));
        map.insert(format!("{name}_write"), json!(disk.write_bytes));
        map.insert(format!("{name}_write_req"), json!(disk.write_requests));
        map.insert(format!("{name}_errors"), json!(disk.errors));
    }
    map
}
