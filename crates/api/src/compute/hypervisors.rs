//! Administrators' views of the nodes: `os-hypervisors` (each node a QEMU hypervisor) and
//! `os-services` (each node's `nova-compute`), whose disabling drains the node.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use bytes::Bytes;
use nefos_compute::Hypervisor;
use nefos_compute_api::types::{self, HypervisorService, Service};
use serde_json::Value;

use super::NovaError;
use super::request::{Nova, iso_micros, query_pairs};
use crate::ApiState;

const LIST_RULE: &str = "os_compute_api:os-hypervisors:list";
const SERVICES_RULE: &str = "os_compute_api:os-services:list";
/// The only service a node runs, as Nova names it.
const BINARY: &str = "nova-compute";

/// QEMU's version as Nova's integer: 10.0.2 is 10000002.
fn version_number(version: &str) -> u64 {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let (major, minor, patch) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    major * 1_000_000 + minor * 1_000 + patch
}

/// The host of a node's RPC URL.
fn host_ip(rpc_url: &str) -> String {
    let rest = rpc_url.split_once("://").map_or(rpc_url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6).to_owned(),
        None => authority.split(':').next().unwrap_or(authority).to_owned(),
    }
}

fn state(up: bool) -> String {
    if up { "up" } else { "down" }.to_owned()
}

fn status(drained: bool) -> String {
    if drained { "disabled" } else { "enabled" }.to_owned()
}

fn view(nova: &Nova, hypervisor: &Hypervisor, detail: bool) -> types::Hypervisor {
    let node = &hypervisor.node;
    let info = &node.info;
    let mut view = types::Hypervisor {
        id: info.id.clone(),
        hypervisor_hostname: info.id.clone(),
        state: state(hypervisor.up),
        status: status(node.drained),
        hypervisor_type: None,
        hypervisor_version: None,
        host_ip: None,
        service: None,
        vcpus: None,
        vcpus_used: None,
        memory_mb: None,
        memory_mb_used: None,
        free_ram_mb: None,
        local_gb: None,
        local_gb_used: None,
        free_disk_gb: None,
        disk_available_least: None,
        running_vms: None,
        current_workload: None,
        cpu_info: None,
    };
    if !detail {
        return view;
    }
    view.hypervisor_type = Some("QEMU".to_owned());
    view.hypervisor_version = Some(version_number(&info.qemu_version));
    view.host_ip = Some(host_ip(&info.rpc_url));
    view.service = Some(HypervisorService {
        host: info.id.clone(),
        id: info.id.clone(),
        disabled_reason: node.drained_reason.clone(),
    });
    // 2.88 took the resource counts out of the view (placement has them in Nova).
    if !nova.version.at_least(88) {
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let local_gb = info.disk_total_bytes >> 30;
        view.vcpus = Some(u64::from(info.cpus));
        view.vcpus_used = Some(hypervisor.vcpus_used);
        view.memory_mb = Some(info.ram_mib);
        view.memory_mb_used = Some(hypervisor.ram_used_mib);
        view.free_ram_mb = Some(signed(info.ram_mib) - signed(hypervisor.ram_used_mib));
        view.local_gb = Some(local_gb);
        view.local_gb_used = Some(hypervisor.disk_used_gib);
        view.free_disk_gb = Some(signed(local_gb) - signed(hypervisor.disk_used_gib));
        view.disk_available_least = Some(info.disk_free_bytes >> 30);
        view.running_vms = Some(u64::from(node.running_vms));
        view.current_workload = Some(0);
        view.cpu_info = Some(
            serde_json::json!({
                "model": info.guest_cpu_model,
                "host": info.host_cpu,
                "features": info.cpu_features,
            })
            .to_string(),
        );
    }
    view
}

async fn select(
    state: &ApiState,
    nova: &Nova,
    raw: Option<&str>,
) -> Result<Vec<Hypervisor>, NovaError> {
    let pattern = query_pairs(raw)
        .into_iter()
        .find(|(key, _)| key == "hypervisor_hostname_pattern")
        .map(|(_, value)| value);
    let hypervisors = state
        .compute()?
        .hypervisors(&nova.caller, LIST_RULE)
        .await?;
    let selected: Vec<Hypervisor> = hypervisors
        .into_iter()
        .filter(|h| {
            pattern
                .as_deref()
                .is_none_or(|p| h.node.info.id.contains(p))
        })
        .collect();
    if pattern.is_some() && selected.is_empty() {
        return Err(NovaError::new(
            http::StatusCode::NOT_FOUND,
            "No hypervisor matching the pattern could be found.",
        ));
    }
    Ok(selected)
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    nova: Nova,
    RawQuery(raw): RawQuery,
) -> Result<Json<types::Hypervisors>, NovaError> {
    let hypervisors = select(&state, &nova, raw.as_deref()).await?;
    Ok(Json(types::Hypervisors {
        hypervisors: hypervisors.iter().map(|h| view(&nova, h, false)).collect(),
    }))
}

pub(crate) async fn detail(
    State(state): State<ApiState>,
    nova: Nova,
    RawQuery(raw): RawQuery,
) -> Result<Json<types::Hypervisors>, NovaError> {
    let hypervisors = select(&state, &nova, raw.as_deref()).await?;
    Ok(Json(types::Hypervisors {
        hypervisors: hypervisors.iter().map(|h| view(&nova, h, true)).collect(),
    }))
}

pub(crate) async fn show(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Result<Json<types::HypervisorBody>, NovaError> {
    let hypervisor = state
        .compute()?
        .hypervisors(&nova.caller, LIST_RULE)
        .await?
        .into_iter()
        .find(|h| h.node.info.id == id)
        .ok_or_else(|| {
            NovaError::new(
                http::StatusCode::NOT_FOUND,
                format!("Hypervisor with ID {id} could not be found."),
            )
        })?;
    Ok(Json(types::HypervisorBody {
        hypervisor: view(&nova, &hypervisor, true),
    }))
}

fn service(hypervisor: &Hypervisor) -> Service {
    let node = &hypervisor.node;
    Service {
        id: node.info.id.clone(),
        binary: BINARY.to_owned(),
        host: node.info.id.clone(),
        zone: "nova".to_owned(),
        status: status(node.drained),
        state: state(hypervisor.up),
        updated_at: Some(iso_micros(node.heartbeat_at)),
        disabled_reason: node.drained_reason.clone(),
        forced_down: false,
    }
}

pub(crate) async fn services(
    State(state): State<ApiState>,
    nova: Nova,
    RawQuery(raw): RawQuery,
) -> Result<Json<types::Services>, NovaError> {
    let pairs = query_pairs(raw.as_deref());
    let wanted = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let (host, binary) = (wanted("host"), wanted("binary"));
    let hypervisors = state
        .compute()?
        .hypervisors(&nova.caller, SERVICES_RULE)
        .await?;
    let services = hypervisors
        .iter()
        .filter(|h| host.as_deref().is_none_or(|host| h.node.info.id == host))
        .filter(|_| binary.as_deref().is_none_or(|b| b == BINARY))
        .map(service)
        .collect();
    Ok(Json(types::Services { services }))
}

/// `PUT /os-services/{id}` (2.53+): `status` disabled (with a `disabled_reason`) drains
/// the node; enabled undrains it. `forced_down` is Nova's fencing of a host it cannot
/// reach, which a node's missed heartbeats already are here: refused.
pub(crate) async fn update_service(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<types::ServiceBody>, NovaError> {
    if !nova.version.at_least(53) {
        return Err(NovaError::new(
            http::StatusCode::NOT_FOUND,
            "Services are updated by id from microversion 2.53.",
        ));
    }
    let document: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| NovaError::malformed())?;
    if document.contains_key("forced_down") {
        return Err(NovaError::bad_request(
            "forced_down is not served: a node that misses its heartbeats is down already.",
        ));
    }
    let disabled = match document.get("status").and_then(Value::as_str) {
        Some("disabled") => true,
        Some("enabled") => false,
        _ => {
            return Err(NovaError::bad_request(
                "Invalid input for field/attribute status. It must be 'enabled' or 'disabled'",
            ));
        }
    };
    let reason = match document.get("disabled_reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(reason)) if disabled => Some(reason.as_str()),
        Some(_) => {
            return Err(NovaError::bad_request(
                "Specifying 'disabled_reason' with status 'enabled' is invalid.",
            ));
        }
    };
    let hypervisor = state
        .compute()?
        .set_service_disabled(&nova.caller, &id, disabled, reason)
        .await?;
    Ok(Json(types::ServiceBody {
        service: service(&hypervisor),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_versions_are_novas_integers() {
        assert_eq!(version_number("10.0.2"), 10_000_002);
        assert_eq!(version_number("7.2.15 (Debian 1:7.2+dfsg-7)"), 7_002_015);
        assert_eq!(host_ip("http://10.0.0.5:8081"), "10.0.0.5");
        assert_eq!(host_ip("http://[fd00::1]:8081/"), "fd00::1");
    }
}
