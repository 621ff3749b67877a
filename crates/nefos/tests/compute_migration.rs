//! Live migration through the compute API and the `openstack` CLI (issue: live
//! migration): administrators move a running server between two nodes and back, follow
//! and abort moves, and see what each move measured; nobody else may.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::compute::{ComputeApi, settled};
use common::vms::{Cloud, MARKER, Node, console, wait_for_boots};
use nefos_test_utils::OpenStack;
use nefos_test_utils::ticks;
use serde_json::{Value, json};

const ADMIN: &str = "nefos-admin";

async fn host_of(admin: &ComputeApi, id: &str) -> String {
    admin.server(id).await.unwrap()["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn node<'a>(nodes: &'a [&'a Node], id: &str) -> &'a Node {
    nodes.iter().find(|n| n.id == id).unwrap()
}

/// Waits until the server has settled on `host`.
async fn wait_moved(admin: &ComputeApi, id: &str, host: &str) -> Value {
    admin
        .wait(id, Duration::from_secs(300), |s| {
            s.is_some_and(|s| settled(s) && s["OS-EXT-SRV-ATTR:host"] == host)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn administrators_move_running_servers_between_nodes_and_see_what_it_took() {
    let cloud = Cloud::with_public_guest().await;
    let a = Node::start(&cloud, "node-a").await;
    let b = Node::start(&cloud, "node-b").await;
    let nodes = [&a, &b];
    let demo = ComputeApi::login(&cloud, "demo").await;
    let admin = ComputeApi::login(&cloud, "admin").await;
    let id = demo.create("wanderer").await.unwrap();
    demo.wait(&id, Duration::from_secs(120), |s| {
        s.is_some_and(|s| s["status"] == "ACTIVE")
    })
    .await;
    let first = host_of(&admin, &id).await;
    let other = if first == "node-a" {
        "node-b"
    } else {
        "node-a"
    };
    wait_for_boots(node(&nodes, &first), &id, 1).await;

    // Only administrators move servers, and only to somewhere else that exists.
    let migrate =
        |host: Value| json!({"os-migrateLive": {"host": host, "block_migration": "auto"}});
    let path = format!("/servers/{id}/action");
    let (status, body) = demo
        .call("POST", &path, Some(migrate(Value::Null)))
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    for (host, message) in [
        (first.as_str(), "to current host"),
        ("node-nowhere", "could not be found"),
    ] {
        let (status, body) = admin
            .call("POST", &path, Some(migrate(json!(host))))
            .await
            .unwrap();
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains(message), "{body}");
    }

    // To wherever the scheduler says: the only other node.
    let (status, body) = admin
        .call("POST", &path, Some(migrate(Value::Null)))
        .await
        .unwrap();
    assert_eq!(status, 202, "{body}");
    let moved = wait_moved(&admin, &id, other).await;
    assert_eq!(moved["status"], "ACTIVE", "{moved}");
    let there = node(&nodes, other);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let output = console(there, &id).await;
    assert!(
        !output.contains(MARKER),
        "the guest booted again:\n{output}"
    );
    assert!(!ticks(&output).is_empty(), "{output}");
    assert!(node(&nodes, &first).vm_dirs().is_empty());

    // The move is recorded with what QEMU measured; none is under way.
    let (status, body) = admin
        .call("GET", &format!("/os-migrations?instance_uuid={id}"), None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let record = &body["migrations"][0];
    assert_eq!(record["status"], "completed", "{body}");
    assert_eq!(record["migration_type"], "live-migration");
    assert_eq!(record["source_compute"], first.as_str());
    assert_eq!(record["dest_compute"], other);
    assert!(record["nefos:downtime_ms"].as_i64().unwrap() > 0, "{body}");
    let (_, under_way) = admin
        .call("GET", &format!("/servers/{id}/migrations"), None)
        .await
        .unwrap();
    assert_eq!(under_way["migrations"], json!([]), "{under_way}");
    let (status, _) = demo.call("GET", "/os-migrations", None).await.unwrap();
    assert_eq!(status, 403);

    // Back, with the openstack CLI, naming the host.
    let os = OpenStack::new();
    let clouds = cloud.data.path().join("clouds.yaml");
    os.ok(
        &clouds,
        ADMIN,
        &[
            "--os-compute-api-version",
            "2.30",
            "server",
            "migrate",
            "--live-migration",
            "--host",
            &first,
            "--wait",
            &id,
        ],
    );
    wait_moved(&admin, &id, &first).await;
    let listed = os.json(
        &clouds,
        ADMIN,
        &[
            "--os-compute-api-version",
            "2.80",
            "server",
            "migration",
            "list",
            "--server",
            &id,
        ],
    );
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(rows.iter().all(|r| r["Status"] == "completed"), "{listed}");
    assert!(node(&nodes, other).vm_dirs().is_empty());

    // An abort while it is under way: the server stays where it is, the move is cancelled.
    let (status, body) = admin
        .call("POST", &path, Some(migrate(Value::Null)))
        .await
        .unwrap();
    assert_eq!(status, 202, "{body}");
    let (_, body) = admin
        .call(
            "GET",
            &format!("/os-migrations?instance_uuid={id}&limit=1"),
            None,
        )
        .await
        .unwrap();
    let migration = body["migrations"][0]["id"].as_i64().unwrap();
    let (status, body) = admin
        .call(
            "DELETE",
            &format!("/servers/{id}/migrations/{migration}"),
            None,
        )
        .await
        .unwrap();
    // The move takes seconds (the destination starts a QEMU); the abort comes at once.
    assert_eq!(status, 202, "{body}");
    let server = admin
        .wait(&id, Duration::from_secs(300), |s| s.is_some_and(settled))
        .await
        .unwrap();
    let (_, body) = admin
        .call(
            "GET",
            &format!("/os-migrations?instance_uuid={id}&limit=1"),
            None,
        )
        .await
        .unwrap();
    let record = &body["migrations"][0];
    assert_eq!(record["status"], "cancelled", "{body}");
    assert_eq!(server["status"], "ACTIVE", "{server}");
    assert_eq!(server["OS-EXT-SRV-ATTR:host"], first.as_str());
    assert!(node(&nodes, other).vm_dirs().is_empty());
    assert!(node(&nodes, other).qemu_pids().is_empty());
    assert_eq!(node(&nodes, &first).qemu_pids().len(), 1);
    // Aborting it again, now that it is over, is refused.
    let (status, body) = admin
        .call(
            "DELETE",
            &format!("/servers/{id}/migrations/{migration}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");

    // A server that was moved is deleted like any other: nothing is left anywhere.
    let (status, _) = demo
        .call("DELETE", &format!("/servers/{id}"), None)
        .await
        .unwrap();
    assert_eq!(status, 204);
    demo.wait(&id, Duration::from_secs(120), |s| s.is_none())
        .await;
    for node in nodes {
        assert!(
            node.vm_dirs().is_empty(),
            "{}: {:?}",
            node.id,
            node.vm_dirs()
        );
        assert!(node.qemu_pids().is_empty());
    }
}

#[tokio::test]
async fn a_drained_node_sends_its_servers_away_and_can_then_be_removed() {
    let cloud = Cloud::with_public_guest().await;
    let a = Node::start(&cloud, "node-a").await;
    let b = Node::start(&cloud, "node-b").await;
    let data = cloud.data.path().to_str().unwrap().to_owned();
    common::compute::generous_quota(&cloud);
    let demo = ComputeApi::login(&cloud, "demo").await;
    let admin = ComputeApi::login(&cloud, "admin").await;

    // Three servers on node-a (node-b takes none meanwhile), and one stopped there too.
    common::admin_ok(&["node", "drain", "node-b", "--keep-servers", "--data", &data]);
    let mut ids = Vec::new();
    for name in ["one", "two", "three", "sleeper"] {
        ids.push(demo.create(name).await.unwrap());
    }
    for id in &ids {
        demo.wait(id, Duration::from_secs(180), |s| {
            s.is_some_and(|s| s["status"] == "ACTIVE")
        })
        .await;
    }
    common::admin_ok(&["node", "undrain", "node-b", "--data", &data]);
    assert_eq!(a.vm_dirs().len(), 4);
    for id in &ids[..3] {
        wait_for_boots(&a, id, 1).await;
    }
    let sleeper = &ids[3];
    let (status, _) = demo
        .call(
            "POST",
            &format!("/servers/{sleeper}/action"),
            Some(json!({"os-stop": null})),
        )
        .await
        .unwrap();
    assert_eq!(status, 202);
    demo.wait(sleeper, Duration::from_secs(120), |s| {
        s.is_some_and(|s| s["status"] == "SHUTOFF")
    })
    .await;

    // The drain moves the running three, reports the stopped one as staying, and fails
    // for it.
    let output = common::admin(&["node", "drain", "node-a", "--data", &data]);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{report}");
    assert!(report.contains("still holds 1 server"), "{report}");
    assert!(
        report.contains("only running or paused servers move live"),
        "{report}"
    );
    for id in &ids[..3] {
        assert!(
            report.contains(&format!("{id}: moved to node-b")),
            "{report}"
        );
        let server = admin.server(id).await.unwrap();
        assert_eq!(server["OS-EXT-SRV-ATTR:host"], "node-b", "{server}");
        assert_eq!(server["status"], "ACTIVE");
        let output = console(&b, id).await;
        assert!(!output.contains(MARKER), "{id} booted again:\n{output}");
    }
    let listed = common::admin_ok(&["node", "list", "--data", &data]);
    assert!(listed.contains("drained"), "{listed}");
    let moves = common::admin_ok(&["server", "migrations", "--data", &data]);
    assert_eq!(moves.matches("completed").count(), 3, "{moves}");

    // New servers go elsewhere; a node that holds a server cannot be removed.
    let late = demo.create("late").await.unwrap();
    demo.wait(&late, Duration::from_secs(120), |s| {
        s.is_some_and(|s| s["status"] == "ACTIVE")
    })
    .await;
    assert_eq!(host_of(&admin, &late).await, "node-b");
    let refused = common::admin(&["node", "remove", "node-a", "--data", &data]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("drain it first"),
        "{refused:?}"
    );

    // Once the stopped server is gone, node-a is empty and can go.
    let (status, _) = demo
        .call("DELETE", &format!("/servers/{sleeper}"), None)
        .await
        .unwrap();
    assert_eq!(status, 204);
    demo.wait(sleeper, Duration::from_secs(120), |s| s.is_none())
        .await;
    common::admin_ok(&["node", "drain", "node-a", "--data", &data]);
    common::admin_ok(&["node", "remove", "node-a", "--data", &data]);
    assert!(a.vm_dirs().is_empty() && a.qemu_pids().is_empty());
    let listed = common::admin_ok(&["node", "list", "--data", &data]);
    assert!(!listed.contains("node-a"), "{listed}");
}

/// The CPU features of the hosts the two nodes stand for: an Intel host with AVX2 (x86-64-v3)
/// and an older AMD host (x86-64-v2). Both run on this machine, under TCG, which has them
/// all; each node offers guests only its host's.
const INTEL: &str = r#"host_cpu = "GenuineIntel Intel(R) Xeon(R) Gold 6230 (as configured)"
cpu_features = ["lm", "sse2", "cx16", "lahf-lm", "popcnt", "sse4.1", "sse4.2", "ssse3", "avx",
                "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"]
"#;
const AMD: &str = r#"host_cpu = "AuthenticAMD AMD Opteron(tm) 6376 (as configured)"
cpu_features = ["lm", "sse2", "cx16", "lahf-lm", "popcnt", "sse4.1", "sse4.2", "ssse3"]
"#;

#[tokio::test]
async fn servers_of_the_baseline_model_move_between_intel_and_amd_hosts() {
    let cloud = Cloud::with_public_guest().await;
    let configs = tempfile::tempdir().unwrap();
    let config = |name: &str, text: &str| {
        let path = configs.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (intel, amd) = (config("intel.toml", INTEL), config("amd.toml", AMD));
    let a = Node::start_with(&cloud, "node-intel", &["--config", &intel]).await;
    let b = Node::start_with(&cloud, "node-amd", &["--config", &amd]).await;
    let nodes = [&a, &b];
    let admin = ComputeApi::login(&cloud, "admin").await;
    let demo = ComputeApi::login(&cloud, "demo").await;
    let registered = cloud.nodes.registry().get("node-intel").await.unwrap();
    assert!(registered.info.host_cpu.starts_with("GenuineIntel"));
    assert!(registered.info.cpu_features.contains(&"avx2".to_owned()));
    let registered = cloud.nodes.registry().get("node-amd").await.unwrap();
    assert!(!registered.info.cpu_features.contains(&"avx2".to_owned()));

    // A flavor whose servers get x86-64-v3: only the Intel host runs it.
    let flavor = json!({"flavor": {"name": "v3.nano", "ram": 128, "vcpus": 1, "disk": 1,
                                    "id": "v3-nano"}});
    let (status, body) = admin.call("POST", "/flavors", Some(flavor)).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let specs = json!({"extra_specs": {"nefos:cpu_model": "x86-64-v3"}});
    let (status, body) = admin
        .call("POST", "/flavors/v3-nano/os-extra_specs", Some(specs))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");

    // The baseline server (the cloud's default model, x86-64-v2) goes both ways.
    let baseline = demo.create("baseline").await.unwrap();
    demo.wait(&baseline, Duration::from_secs(120), |s| {
        s.is_some_and(|s| s["status"] == "ACTIVE")
    })
    .await;
    let start = host_of(&admin, &baseline).await;
    wait_for_boots(node(&nodes, &start), &baseline, 1).await;
    let path = format!("/servers/{baseline}/action");
    let away = if start == "node-intel" {
        "node-amd"
    } else {
        "node-intel"
    };
    for host in [away, start.as_str()] {
        let body = json!({"os-migrateLive": {"host": host, "block_migration": "auto"}});
        let (status, answer) = admin.call("POST", &path, Some(body)).await.unwrap();
        assert_eq!(status, 202, "{answer}");
        wait_moved(&admin, &baseline, host).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let output = console(node(&nodes, host), &baseline).await;
        assert!(
            !output.contains(MARKER),
            "booted again on {host}:\n{output}"
        );
    }

    // The v3 server lands on the Intel host and cannot go to the AMD one: said why.
    let body = json!({"server": {"name": "modern", "imageRef": demo.image,
                                 "flavorRef": "v3-nano", "networks": "none"}});
    let (status, answer) = demo.call("POST", "/servers", Some(body)).await.unwrap();
    assert_eq!(status, 202, "{answer}");
    let modern = answer["server"]["id"].as_str().unwrap().to_owned();
    demo.wait(&modern, Duration::from_secs(120), |s| {
        s.is_some_and(|s| s["status"] == "ACTIVE")
    })
    .await;
    assert_eq!(host_of(&admin, &modern).await, "node-intel");
    let path = format!("/servers/{modern}/action");
    let to_amd = json!({"os-migrateLive": {"host": "node-amd", "block_migration": "auto"}});
    let (status, answer) = admin.call("POST", &path, Some(to_amd)).await.unwrap();
    assert_eq!(status, 400, "{answer}");
    let message = answer.to_string();
    assert!(
        message.contains("x86-64-v3") && message.contains("avx2"),
        "{message}"
    );
    let anywhere = json!({"os-migrateLive": {"host": null}});
    let (status, answer) = admin.call("POST", &path, Some(anywhere)).await.unwrap();
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("No valid host"), "{answer}");
    let server = admin.server(&modern).await.unwrap();
    assert!(settled(&server) && server["status"] == "ACTIVE", "{server}");
}

/// Waits until the server's move under way is sending memory; the move's id.
async fn wait_sending_memory(admin: &ComputeApi, id: &str) -> i64 {
    let started = std::time::Instant::now();
    loop {
        let (status, body) = admin
            .call("GET", &format!("/servers/{id}/migrations"), None)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        if let Some(row) = body["migrations"].as_array().and_then(|m| m.first())
            && row["memory_processed_bytes"].as_i64().unwrap_or(0) > 0
        {
            return row["id"].as_i64().unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no memory sent: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last of a server's moves.
async fn last_move(admin: &ComputeApi, id: &str) -> Value {
    let (_, body) = admin
        .call(
            "GET",
            &format!("/os-migrations?instance_uuid={id}&limit=1"),
            None,
        )
        .await
        .unwrap();
    body["migrations"][0].clone()
}

/// After a failure, the server is where the database says, running on, not booted
/// again, and the other node holds nothing of it (its agent may need a moment to be
/// asked).
async fn check_one_copy(admin: &ComputeApi, nodes: &[&Node], id: &str) -> String {
    let server = admin
        .wait(id, Duration::from_secs(300), |s| s.is_some_and(settled))
        .await
        .unwrap();
    assert_eq!(server["status"], "ACTIVE", "{server}");
    let host = server["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    for other in nodes.iter().filter(|n| n.id != host) {
        while !(other.vm_dirs().is_empty() && other.qemu_pids().is_empty()) {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{} keeps {:?}",
                other.id,
                other.vm_dirs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let here = node(nodes, &host);
    assert_eq!(here.qemu_pids().len(), 1);
    let before = ticks(&console(here, id).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let output = console(here, id).await;
    // The guest booted once, on the node it was created on: a moved guest's console there
    // has only its ticks, which go on from where they were.
    let boots = output.matches(MARKER).count();
    assert!(boots <= 1, "booted again:\n{output}");
    let after = ticks(&output);
    assert!(after.last() > before.last(), "the guest stopped:\n{output}");
    if boots == 0 {
        assert!(after[0] > 3, "the ticks began again:\n{output}");
    }
    host
}

#[tokio::test]
async fn a_move_cut_short_by_a_dead_agent_qemu_or_control_plane_leaves_one_running_copy() {
    // Memory goes at 16 MiB/s: a move takes seconds, long enough to be cut short.
    let mut cloud =
        Cloud::with_public_guest_configured("[compute]\nmigration_bandwidth = 16777216\n").await;
    let mut a = Node::start(&cloud, "node-a").await;
    let mut b = Node::start(&cloud, "node-b").await;
    let demo = ComputeApi::login(&cloud, "demo").await;
    let admin = ComputeApi::login(&cloud, "admin").await;
    let id = demo.create("survivor").await.unwrap();
    demo.wait(&id, Duration::from_secs(120), |s| {
        s.is_some_and(|s| s["status"] == "ACTIVE")
    })
    .await;
    let home = host_of(&admin, &id).await;
    wait_for_boots(if home == "node-a" { &a } else { &b }, &id, 1).await;
    let path = format!("/servers/{id}/action");
    let migrate = json!({"os-migrateLive": {"host": null}});

    // The destination's agent dies while memory goes: the move fails, the server stays,
    // and once the agent is back the destination's copy is removed.
    let (status, body) = admin
        .call("POST", &path, Some(migrate.clone()))
        .await
        .unwrap();
    assert_eq!(status, 202, "{body}");
    wait_sending_memory(&admin, &id).await;
    let destination = if home == "node-a" { &mut b } else { &mut a };
    destination.kill9();
    admin
        .wait(&id, Duration::from_secs(300), |s| s.is_some_and(settled))
        .await;
    // Its copy, which never ran, stays until the agent is back: the reconciler removes
    // it as the node registers again.
    assert_eq!(destination.vm_dirs().len(), 1);
    destination.restart();
    let host = check_one_copy(&admin, &[&a, &b], &id).await;
    assert_eq!(host, home);
    assert_eq!(last_move(&admin, &id).await["status"], "error");

    // The destination's QEMU dies while memory goes: the same.
    let (status, body) = admin
        .call("POST", &path, Some(migrate.clone()))
        .await
        .unwrap();
    assert_eq!(status, 202, "{body}");
    wait_sending_memory(&admin, &id).await;
    let destination = if home == "node-a" { &b } else { &a };
    for pid in destination.qemu_pids() {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    let host = check_one_copy(&admin, &[&a, &b], &id).await;
    assert_eq!(host, home);
    assert_eq!(last_move(&admin, &id).await["status"], "error");

    // The control plane dies while memory goes: the one that starts again finishes the
    // move from its log.
    let (status, body) = admin
        .call("POST", &path, Some(migrate.clone()))
        .await
        .unwrap();
    assert_eq!(status, 202, "{body}");
    wait_sending_memory(&admin, &id).await;
    cloud.kill9_and_restart();
    let host = check_one_copy(&admin, &[&a, &b], &id).await;
    assert_ne!(host, home);
    assert_eq!(last_move(&admin, &id).await["status"], "completed");
}
