//! Rows as the services write them, for tests and benchmarks that fill a database
//! directly.

use nefos_db::compute::ServerRow;

/// An ACTIVE m1.nano server of `project` named `name`, created (and last changed) at
/// `created_at`, with Cyclades serial `serial`.
pub fn server_row(id: &str, project: &str, name: &str, created_at: i64, serial: i64) -> ServerRow {
    ServerRow {
        id: id.to_owned(),
        project_id: project.to_owned(),
        user_id: format!("{project}-user"),
        name: name.to_owned(),
        description: None,
        image_id: Some("00000000-0000-4000-8000-00000000beef".to_owned()),
        flavor_id: "6".to_owned(),
        flavor_name: "m1.nano".to_owned(),
        vcpus: 1,
        ram_mib: 128,
        disk_gib: 1,
        ephemeral_gib: 0,
        swap_mib: 0,
        flavor_extra_specs: "{}".to_owned(),
        vm_state: "active".to_owned(),
        task_state: None,
        power_state: 1,
        node_id: Some("node-a".to_owned()),
        forwards: Some("[]".to_owned()),
        reservation_id: format!("r-{id}"),
        generation: 1,
        key_name: None,
        key_data: None,
        user_data: None,
        locked_by: None,
        locked_reason: None,
        access_ipv4: None,
        access_ipv6: None,
        fault: None,
        active_charged: true,
        launched_at: Some(created_at),
        terminated_at: None,
        created_at,
        updated_at: created_at,
        deleted_at: None,
        resized_from: None,
        serial,
        cpu_model: None,
    }
}
