//! Servers, flavors and images as Cyclades shows them.

use std::collections::BTreeMap;

use nefos_compute::{Flavor, Server, ServerAddress};
use nefos_compute_api::cyclades::{self as c, NumericId, Reference};
use nefos_compute_api::types::{Link, PortForwarding};
use nefos_db::compute::ActionRow;
use serde_json::json;

use super::Cyclades;

/// Cyclades' time format: ISO 8601 with `+00:00`, microseconds only when there are some.
pub(crate) fn time(micros: i64) -> String {
    let time = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    if micros % 1_000_000 == 0 {
        time.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        time.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
    }
}

/// Cyclades' status for Nova's: it has no SHUTOFF, PAUSED or VERIFY_RESIZE.
pub(super) fn status(nova: &str) -> &'static str {
    match nova {
        "BUILD" => "BUILD",
        "ACTIVE" | "PASSWORD" | "REBUILD" | "MIGRATING" => "ACTIVE",
        "SHUTOFF" | "PAUSED" | "SUSPENDED" => "STOPPED",
        "REBOOT" | "HARD_REBOOT" => "REBOOT",
        "RESIZE" | "VERIFY_RESIZE" | "REVERT_RESIZE" => "RESIZE",
        "ERROR" => "ERROR",
        "DELETED" => "DELETED",
        _ => "UNKNOWN",
    }
}

/// Cyclades' task state for Nova's.
fn task_state(task: Option<&str>) -> &'static str {
    match task.unwrap_or("") {
        "" => "",
        "scheduling" | "spawning" => "BUILDING",
        "powering-on" | "unpausing" | "resuming" => "STARTING",
        "powering-off" | "pausing" | "suspending" => "STOPPING",
        "rebooting" | "rebooting_hard" => "REBOOTING",
        "deleting" => "DESTROYING",
        "resize_prep" | "resize_confirming" | "resize_reverting" => "RESIZING",
        "image_snapshot" => "SNAPSHOTTING",
        _ => "BUSY",
    }
}

pub(super) fn brief(cyclades: &Cyclades, server: &Server) -> c::ServerBrief {
    c::ServerBrief {
        id: server.serial,
        name: server.name.clone(),
        links: cyclades.links(&format!("/servers/{}", server.serial)),
    }
}

/// Cyclades' `attachments` (one per port, as Synnefo's NICs, with the port's id) and
/// `addresses` (by network id).
pub(super) fn attachments(
    addresses: &[ServerAddress],
) -> (
    Vec<serde_json::Value>,
    BTreeMap<String, Vec<serde_json::Value>>,
) {
    let mut nics: Vec<serde_json::Value> = Vec::new();
    let mut by_network: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for address in addresses {
        let kind = if address.floating {
            "floating"
        } else {
            "fixed"
        };
        let version = if address.address.is_ipv4() { 4 } else { 6 };
        by_network
            .entry(address.network_id.clone())
            .or_default()
            .push(json!({
                "version": version,
                "addr": address.address.to_string(),
                "OS-EXT-IPS:type": kind,
            }));
        if address.floating {
            continue;
        }
        let nic = match nics
            .iter_mut()
            .find(|n| n["id"] == address.port_id.as_str())
        {
            Some(nic) => nic,
            None => {
                nics.push(json!({
                    "id": address.port_id,
                    "network_id": address.network_id,
                    "mac_address": address.mac_address,
                    "ipv4": "",
                    "ipv6": "",
                    "OS-EXT-IPS:type": "fixed",
                }));
                let last = nics.len() - 1;
                &mut nics[last]
            }
        };
        let family = if version == 4 { "ipv4" } else { "ipv6" };
        if nic[family] == "" {
            nic[family] = json!(address.address.to_string());
        }
    }
    (nics, by_network)
}

pub(super) fn server(
    cyclades: &Cyclades,
    server: &Server,
    addresses: &[ServerAddress],
    diagnostics: Vec<c::Diagnostic>,
) -> c::Server {
    let (attachments, addresses) = attachments(addresses);
    let status = status(server.status());
    let image_id = server.image_id.clone().unwrap_or_default();
    let port_forwarding: BTreeMap<String, PortForwarding> = server
        .forwards
        .iter()
        .map(|f| {
            (
                f.guest.to_string(),
                PortForwarding {
                    host: "127.0.0.1".to_owned(),
                    port: f.host.to_string(),
                },
            )
        })
        .collect();
    c::Server {
        id: server.serial,
        name: server.name.clone(),
        links: cyclades.links(&format!("/servers/{}", server.serial)),
        user_id: server.user_id.clone(),
        tenant_id: server.project_id.clone(),
        shared_to_project: false,
        status: status.to_owned(),
        task_state: task_state(server.task_state.as_deref()).to_owned(),
        progress: if status == "BUILD" { 0 } else { 100 },
        host_id: String::new(),
        created: time(server.created_at),
        updated: time(server.updated_at),
        flavor: Reference {
            id: NumericId::of(&server.flavor.id),
            links: cyclades.links(&format!("/flavors/{}", server.flavor.id)),
        },
        image: Reference {
            id: NumericId::Text(image_id.clone()),
            links: cyclades.links(&format!("/images/{image_id}")),
        },
        suspended: false,
        metadata: server.metadata.clone(),
        tags: server.tags.clone(),
        attachments,
        addresses,
        volumes: Vec::new(),
        diagnostics,
        security_groups: vec![c::SecurityGroup {
            name: "default".to_owned(),
        }],
        key_name: server.key_name.clone(),
        key_names: server.key_name.iter().cloned().collect(),
        config_drive: String::new(),
        access_ipv4: server.access_ipv4.clone().unwrap_or_default(),
        access_ipv6: server.access_ipv6.clone().unwrap_or_default(),
        fqdn: None,
        port_forwarding,
        deleted: server.deleted_at.is_some(),
        rescue: false,
        admin_pass: None,
    }
}

/// A server's instance actions as Cyclades diagnostics, newest first.
pub(super) fn diagnostics(actions: &[ActionRow]) -> Vec<c::Diagnostic> {
    actions
        .iter()
        .map(|action| {
            let (level, message) = match (&action.finish_time, &action.message) {
                (Some(_), Some(error)) => ("ERROR", format!("{} failed: {error}", action.action)),
                (Some(_), None) => ("INFO", format!("{} done", action.action)),
                (None, _) => ("INFO", format!("{} started", action.action)),
            };
            c::Diagnostic {
                source: "compute".to_owned(),
                created: time(action.finish_time.unwrap_or(action.start_time)),
                message,
                details: Some(format!("request {}", action.request_id)),
                level: level.to_owned(),
            }
        })
        .collect()
}

pub(super) fn flavor_brief(cyclades: &Cyclades, flavor: &Flavor) -> c::FlavorBrief {
    c::FlavorBrief {
        id: NumericId::of(&flavor.id),
        name: flavor.name.clone(),
        links: cyclades.links(&format!("/flavors/{}", flavor.id)),
    }
}

pub(super) fn flavor(cyclades: &Cyclades, flavor: &Flavor) -> c::Flavor {
    c::Flavor {
        id: NumericId::of(&flavor.id),
        name: flavor.name.clone(),
        links: cyclades.links(&format!("/flavors/{}", flavor.id)),
        ram: flavor.ram_mib,
        disk: flavor.disk_gib,
        vcpus: flavor.vcpus,
        is_public: flavor.is_public,
        // Root disks are qcow2 overlays on the node's local disk.
        disk_template: "file".to_owned(),
        allow_create: !flavor.disabled,
    }
}

pub(super) fn image(cyclades: &Cyclades, image: &nefos_image::Image) -> c::Image {
    use nefos_image::ImageStatus;
    let status = match image.status {
        ImageStatus::Active => "ACTIVE",
        ImageStatus::Queued
        | ImageStatus::Saving
        | ImageStatus::Uploading
        | ImageStatus::Importing => "SAVING",
        ImageStatus::Killed => "ERROR",
        ImageStatus::Deactivated => "UNKNOWN",
    };
    let mut links = cyclades.links(&format!("/images/{}", image.id));
    links.push(Link::new(
        "alternate",
        format!(
            "{}{}/v2/images/{}",
            cyclades.public_url,
            nefos_image_api::PREFIX,
            image.id
        ),
    ));
    c::Image {
        id: image.id.clone(),
        name: image.name.clone().unwrap_or_default(),
        links,
        created: time(image.created_at),
        updated: time(image.updated_at),
        status: status.to_owned(),
        progress: if status == "ACTIVE" { 100 } else { 0 },
        user_id: image.owner.clone(),
        tenant_id: image.owner.clone(),
        public: image.visibility == nefos_image::Visibility::Public,
        is_snapshot: image.properties.get("image_type").map(String::as_str) == Some("snapshot"),
        metadata: image.properties.clone(),
    }
}
