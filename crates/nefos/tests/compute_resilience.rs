//! Compute under failure, with real processes: the control plane killed with SIGKILL at
//! random points of creates and deletes, a node agent killed during creates, nodes going
//! down and coming back, a drained node, and what the reconciler repairs. Afterwards no
//! server is stuck, no VM or disk is left on a node that the database does not have, and
//! the quota used is what exists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::compute::{ComputeApi, settled};
use common::vms::{Cloud, Node};
use nefos_db::compute::{self as q, FlavorColumns};
use nefos_node_api::{EnsureVm, GuestConfig, PowerState, VmSpec};
use nefos_quota::{Provision, Quotas};
use rand::Rng;
use serde_json::json;

/// Waits until every server of the project has settled; the servers.
async fn all_settled(api: &ComputeApi, limit: Duration) -> Vec<serde_json::Value> {
    let started = std::time::Instant::now();
    loop {
        let servers = api.servers().await;
        if servers.iter().all(settled) {
            return servers;
        }
        assert!(
            started.elapsed() < limit,
            "servers never settled: {servers:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Deletes every server of the project and waits until they are gone and the node is
/// empty.
async fn delete_all(api: &ComputeApi, nodes: &[&Node]) {
    for server in api.servers().await {
        let id = server["id"].as_str().unwrap();
        let (status, body) = api
            .call("DELETE", &format!("/servers/{id}"), None)
            .await
            .unwrap();
        assert_eq!(status, 204, "{body}");
    }
    let started = std::time::Instant::now();
    while !api.servers().await.is_empty()
        || nodes
            .iter()
            .any(|n| !n.vm_dirs().is_empty() || !n.qemu_pids().is_empty())
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "servers or VMs left: {:?}",
            nodes.iter().map(|n| n.vm_dirs()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn killing_the_control_plane_mid_operation_leaves_nothing_stuck_or_leaked() {
    let mut cloud = Cloud::with_public_guest().await;
    let node = Node::start(&cloud, "node-a").await;
    common::compute::generous_quota(&cloud);
    let api = ComputeApi::login(&cloud, "demo").await;
    let mut rng = rand::thread_rng();
    for cycle in 0..20 {
        // A create, then SIGKILL at a random point of it.
        let created = api.create(&format!("crash-{cycle}")).await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..1500))).await;
        cloud.kill9_and_restart();
        // Delete whatever exists (the create may or may not have been answered), and
        // SIGKILL again at a random point of that.
        for server in api.servers().await {
            let id = server["id"].as_str().unwrap();
            let _ = api.call("DELETE", &format!("/servers/{id}"), None).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..1500))).await;
        cloud.kill9_and_restart();
        if let Err(error) = created {
            eprintln!("cycle {cycle}: the create was not answered: {error}");
        }
    }
    // Every server ends ACTIVE or deleted: none stuck in BUILD or a task.
    let servers = all_settled(&api, Duration::from_secs(180)).await;
    for server in &servers {
        assert_eq!(server["status"], "ACTIVE", "{server}");
    }
    // What the node runs is exactly what the database has.
    let mut on_node = node.vm_dirs();
    on_node.sort();
    let mut in_db: Vec<String> = servers
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    in_db.sort();
    assert_eq!(on_node, in_db);
    let (instances, cores, _) = api.usage().await;
    assert_eq!(instances, i64::try_from(servers.len()).unwrap());
    assert_eq!(cores, i64::try_from(servers.len()).unwrap());
    delete_all(&api, &[&node]).await;
    assert_eq!(api.usage().await, (0, 0, 0));
}

#[tokio::test]
async fn a_node_killed_during_creates_finishes_them_once_back() {
    let cloud = Cloud::with_public_guest().await;
    let mut node = Node::start(&cloud, "node-a").await;
    common::compute::generous_quota(&cloud);
    let api = ComputeApi::login(&cloud, "demo").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(api.create(&format!("n{i}")).await.unwrap());
    }
    node.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    node.restart();
    for id in &ids {
        let server = api
            .wait(id, Duration::from_secs(120), |s| s.is_some_and(settled))
            .await
            .unwrap();
        assert_eq!(server["status"], "ACTIVE", "{server}");
    }
    let mut on_node = node.vm_dirs();
    on_node.sort();
    ids.sort();
    assert_eq!(on_node, ids);
    delete_all(&api, &[&node]).await;
    assert_eq!(api.usage().await, (0, 0, 0));
}

#[tokio::test]
async fn servers_spread_drained_nodes_get_none_down_nodes_show_unknown() {
    let cloud = Cloud::with_public_guest().await;
    let mut a = Node::start_with(&cloud, "node-a", &["--heartbeat-seconds", "1"]).await;
    let b = Node::start_with(&cloud, "node-b", &["--heartbeat-seconds", "1"]).await;
    common::compute::generous_quota(&cloud);
    let api = ComputeApi::login(&cloud, "demo").await;
    let data = cloud.data.path().to_str().unwrap().to_owned();

    // Spread: the scheduler fills the emptier node.
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(api.create(&format!("s{i}")).await.unwrap());
    }
    all_settled(&api, Duration::from_secs(120)).await;
    assert_eq!((a.vm_dirs().len(), b.vm_dirs().len()), (2, 2));

    // A drained node gets nothing new.
    common::admin_ok(&["node", "drain", "node-b", "--keep-servers", "--data", &data]);
    let listed = common::admin_ok(&["node", "list", "--data", &data]);
    assert!(listed.contains("drained"), "{listed}");
    for i in 0..2 {
        ids.push(api.create(&format!("d{i}")).await.unwrap());
    }
    all_settled(&api, Duration::from_secs(120)).await;
    assert_eq!((a.vm_dirs().len(), b.vm_dirs().len()), (4, 2));
    common::admin_ok(&["node", "undrain", "node-b", "--data", &data]);

    // A node that stops heartbeating is down: its servers are UNKNOWN, then ACTIVE again
    // once it is back (its VMs ran on without it).
    let on_a: Vec<String> = a.vm_dirs();
    a.kill9();
    let first = on_a[0].clone();
    api.wait(&first, Duration::from_secs(30), |s| {
        s.is_some_and(|s| s["status"] == "UNKNOWN")
    })
    .await;
    a.restart();
    api.wait(&first, Duration::from_secs(60), |s| {
        s.is_some_and(|s| s["status"] == "ACTIVE")
    })
    .await;

    // The reconciler: a VM no server has is destroyed; a VM that stopped behind the
    // control plane's back makes its server SHUTOFF.
    let stray = "0b7c0b7c-0000-4000-8000-00000000dead";
    let file = tokio::fs::File::open(common::vms::guest_image())
        .await
        .unwrap();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    let image = cloud.upload("admin", "strays", "guest.raw", body).await;
    let spec = VmSpec {
        name: "stray".to_owned(),
        vcpus: 1,
        ram_mib: 128,
        disk_bytes: 1 << 30,
        image,
        guest: GuestConfig {
            hostname: "stray".to_owned(),
            ..GuestConfig::default()
        },
        nics: Vec::new(),
        cpu_model: None,
    };
    let request = EnsureVm {
        generation: 1,
        spec,
        power: PowerState::Running,
    };
    b.ensure_vm(stray, &request).await.unwrap();
    let victim = b.vm_dirs().into_iter().find(|dir| dir != stray).unwrap();
    let status = b.rpc.vm_status(&victim).await.unwrap();
    rustix_kill(status.pid.unwrap());
    let report = common::admin_ok(&["reconcile", "servers", "--dry-run", "--data", &data]);
    assert!(
        report.contains("stale_state") && report.contains(&victim),
        "{report}"
    );
    assert!(
        report.contains("unknown_vm") && report.contains(stray),
        "{report}"
    );
    // A VM the database never had is only reported, unless the operator says otherwise.
    common::admin_ok(&["reconcile", "servers", "--data", &data]);
    assert!(b.vm_dirs().contains(&stray.to_owned()), "{:?}", b.vm_dirs());
    common::admin_ok(&["reconcile", "servers", "--destroy-unknown", "--data", &data]);
    assert!(
        !b.vm_dirs().contains(&stray.to_owned()),
        "{:?}",
        b.vm_dirs()
    );
    let stopped = api.server(&victim).await.unwrap();
    assert_eq!(stopped["status"], "SHUTOFF", "{stopped}");
    let (status, body) = api
        .call(
            "POST",
            &format!("/servers/{victim}/action"),
            Some(json!({"os-start": null})),
        )
        .await
        .unwrap();
    assert_eq!(status, 202, "{body}");
    api.wait(&victim, Duration::from_secs(60), |s| {
        s.is_some_and(|s| s["status"] == "ACTIVE" && settled(s))
    })
    .await;

    // A server whose database row says m1.micro while its VM has m1.nano's sizes (the
    // database and its quota restored from before a resize was reverted) takes the
    // flavor of its VM's sizes, and its quota follows.
    let drifted = b.vm_dirs().into_iter().find(|dir| *dir != victim).unwrap();
    let before = api.usage().await;
    let row = q::get_server(cloud.db.pool(), &drifted)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.vcpus, row.ram_mib, row.disk_gib), (1, 128, 1));
    let micro = FlavorColumns {
        flavor_id: "7".to_owned(),
        flavor_name: "m1.micro".to_owned(),
        vcpus: 1,
        ram_mib: 256,
        disk_gib: 2,
        ephemeral_gib: 0,
        swap_mib: 0,
        flavor_extra_specs: "{}".to_owned(),
    };
    let mut tx = cloud.db.begin().await.unwrap();
    let now = nefos_db::time::now_micros();
    assert!(
        q::sync_flavor(&mut *tx, &drifted, (1, 128, 1), &micro, now)
            .await
            .unwrap()
    );
    let restored: Vec<Provision> = [
        ("cyclades.total_ram", 128 << 20),
        ("cyclades.ram", 128 << 20),
        ("cyclades.disk", 1 << 30),
    ]
    .into_iter()
    .map(|(resource, quantity)| Provision::new(&row.project_id, &row.user_id, resource, quantity))
    .collect();
    Quotas::new(cloud.db.clone())
        .force_in(&mut tx, &restored)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(api.usage().await.2, before.2 + 128);
    let report = common::admin_ok(&["reconcile", "servers", "--data", &data]);
    assert!(
        report.contains("unsynced_flavor") && report.contains(&drifted),
        "{report}"
    );
    let synced = api.server(&drifted).await.unwrap();
    assert_eq!(synced["flavor"]["original_name"], "m1.nano", "{synced}");
    assert_eq!(api.usage().await, before);

    delete_all(&api, &[&a, &b]).await;
    assert_eq!(api.usage().await, (0, 0, 0));
}

/// Kills a process with SIGKILL (a VM's QEMU, behind its node's back).
fn rustix_kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
