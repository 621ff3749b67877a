//! A server as Nova shows it at a microversion.

use std::collections::BTreeMap;

use nefos_compute::{Server, ServerAddress};
use nefos_compute_api::types::{
    self, PortForwarding, SecurityGroupName, ServerBrief, ServerFault, ServerFlavor, ServerImage,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha224};

use super::request::{Nova, iso_micros, iso_seconds};

/// Nova's `hostId`: a hash of the project and host, so that a project can tell which of
/// its servers share a host without learning the host.
fn host_id(server: &Server) -> String {
    match &server.node_id {
        Some(node) => hex::encode(Sha224::digest(format!("{}{node}", server.project_id))),
        None => String::new(),
    }
}

pub(crate) fn brief(nova: &Nova, id: &str, name: &str) -> ServerBrief {
    ServerBrief {
        id: id.to_owned(),
        name: name.to_owned(),
        links: nova.links(&format!("/servers/{id}")),
    }
}

/// The full view; `show` adds what only `GET /servers/{id}` has.
/// Nova's `addresses`: by network name, each fixed IP and the floating IPs forwarded
/// to it.
pub(crate) fn addresses(list: &[ServerAddress]) -> BTreeMap<String, Vec<Value>> {
    let mut by_network: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for address in list {
        by_network
            .entry(address.network_name.clone())
            .or_default()
            .push(json!({
                "version": if address.address.is_ipv4() { 4 } else { 6 },
                "addr": address.address.to_string(),
                "OS-EXT-IPS:type": if address.floating { "floating" } else { "fixed" },
                "OS-EXT-IPS-MAC:mac_addr": address.mac_address,
            }));
    }
    by_network
}

pub(crate) fn server(
    nova: &Nova,
    server: &Server,
    addresses: &[ServerAddress],
    show: bool,
) -> types::Server {
    let version = nova.version;
    let admin = nova.is_admin();
    let status = server.status();
    let image = match &server.image_id {
        Some(id) => ServerImage::Reference {
            id: id.clone(),
            links: vec![types::Link::new(
                "bookmark",
                format!("{}/images/{id}", nova.base),
            )],
        },
        None => ServerImage::None(String::new()),
    };
    let flavor = if version.at_least(47) {
        ServerFlavor::Embedded {
            vcpus: server.flavor.vcpus,
            ram: server.flavor.ram_mib,
            disk: server.flavor.disk_gib,
            ephemeral: server.flavor.ephemeral_gib,
            swap: server.flavor.swap_mib,
            original_name: server.flavor.name.clone(),
            extra_specs: server.flavor.extra_specs.clone(),
        }
    } else {
        ServerFlavor::Reference {
            id: server.flavor.id.clone(),
            links: vec![types::Link::new(
                "bookmark",
                format!("{}/flavors/{}", nova.base, server.flavor.id),
            )],
        }
    };
    let progress = matches!(
        status,
        "ACTIVE" | "BUILD" | "REBUILD" | "RESIZE" | "VERIFY_RESIZE" | "MIGRATING"
    )
    .then_some(0);
    let fault = server
        .fault
        .as_ref()
        .filter(|_| matches!(status, "ERROR" | "DELETED"))
        .map(|fault| ServerFault {
            code: fault.code,
            created: iso_seconds(fault.created),
            message: fault.message.clone(),
            details: None,
        });
    let hostname = nefos_compute::servers::hostname_of(server);
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
    types::Server {
        id: server.id.clone(),
        name: server.name.clone(),
        status: status.to_owned(),
        tenant_id: server.project_id.clone(),
        user_id: server.user_id.clone(),
        metadata: server.metadata.clone(),
        host_id: host_id(server),
        image,
        flavor,
        created: iso_seconds(server.created_at),
        updated: iso_seconds(server.updated_at),
        addresses: self::addresses(addresses),
        access_ipv4: server.access_ipv4.clone().unwrap_or_default(),
        access_ipv6: server.access_ipv6.clone().unwrap_or_default(),
        links: nova.links(&format!("/servers/{}", server.id)),
        disk_config: "MANUAL".to_owned(),
        progress,
        fault,
        availability_zone: "nova".to_owned(),
        config_drive: "True".to_owned(),
        key_name: server.key_name.clone(),
        launched_at: server.launched_at.map(iso_micros),
        terminated_at: server.terminated_at.map(iso_micros),
        task_state: server.task_state.clone(),
        vm_state: server.vm_state.clone(),
        power_state: server.power_state,
        volumes_attached: Vec::new(),
        security_groups: None::<Vec<SecurityGroupName>>,
        locked: version.at_least(9).then(|| server.locked()),
        host_status: (admin && version.at_least(16)).then(|| {
            match (&server.node_id, server.node_down) {
                (None, _) => String::new(),
                (Some(_), true) => "DOWN".to_owned(),
                (Some(_), false) => "UP".to_owned(),
            }
        }),
        description: version.at_least(19).then(|| server.description.clone()),
        tags: version.at_least(26).then(|| server.tags.clone()),
        trusted_image_certificates: version.at_least(63).then_some(None),
        server_groups: (show && version.at_least(71)).then(Vec::new),
        locked_reason: version.at_least(73).then(|| server.locked_reason.clone()),
        hostname: (version.at_least(90) || (admin && version.at_least(3))).then_some(hostname),
        host: admin.then(|| server.node_id.clone()),
        hypervisor_hostname: admin.then(|| server.node_id.clone()),
        instance_name: admin.then(|| format!("instance-{}", server.id)),
        pinned_availability_zone: version.at_least(96).then_some(None),
        port_forwarding,
        snf_task_state: server.task_state.clone(),
    }
}
