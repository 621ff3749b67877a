//! The node agent with real guests under TCG (issue: compute nodes). A control plane
//! (`nefos up --no-node`) holds the guest image in its object store; a `nefos node` process
//! fetches it from there and runs VMs when driven over its RPC API, as the control plane
//! will drive it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use common::http;
use common::vms::{Cloud, MARKER, Node, console, forward, ssh, ssh_key, wait_for_boots};
use nefos_node_api::{
    ConfigDriveLayout, EnsureVm, GuestConfig, NicSpec, NodeClient, PauseVm, PowerState, RebootVm,
    Secret, StartVm, StopVm, VmSpec, VmState, VmStatus,
};
use nefos_test_utils::ticks;
use serde_json::Value;

fn spec(cloud: &Cloud, name: &str, layout: ConfigDriveLayout, key: Option<&str>) -> VmSpec {
    let user_data = "#!/bin/sh\necho USERDATA-RAN-$(hostname) > /dev/ttyS0\n";
    VmSpec {
        name: name.to_owned(),
        vcpus: 1,
        ram_mib: 128,
        disk_bytes: 1 << 30,
        image: cloud.image.clone(),
        guest: GuestConfig {
            hostname: name.to_owned(),
            layout,
            admin_pass: Some("s3cret-pass".to_owned()),
            public_keys: key
                .map(|k| BTreeMap::from([("default".to_owned(), k.to_owned())]))
                .unwrap_or_default(),
            user_data: Some(base64::engine::general_purpose::STANDARD.encode(user_data)),
        },
        nics: vec![NicSpec::UserForward {
            mac: format!("52:54:00:{:02x}:{:02x}:01", name.len(), name.as_bytes()[0]),
            forward_tcp: vec![22, 80],
        }],
        cpu_model: None,
    }
}

#[tokio::test]
async fn a_vm_runs_stops_starts_reboots_and_is_destroyed() {
    let cloud = Cloud::start().await;
    let node = Node::start(&cloud, "node-a").await;
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = ssh_key(keys.path());
    let id = "6a1e0f2c-0000-4000-8000-000000000001";
    let request = EnsureVm {
        generation: 1,
        spec: spec(&cloud, "alpha", ConfigDriveLayout::OpenStack, Some(&public)),
        power: PowerState::Running,
    };
    let status = node.ensure_vm(id, &request).await.unwrap();
    assert_eq!(status.state, VmState::Running, "{status:?}");
    assert!(status.disk.allocated_bytes < 1 << 20, "{status:?}");

    // The config drive reached the guest: hostname, user data, key, network.
    let output = wait_for_boots(&node, id, 1).await;
    assert!(
        output.contains("NEFOS-GUEST-READY hostname=alpha"),
        "{output}"
    );
    assert!(output.contains("USERDATA-RAN-alpha"), "{output}");
    let http_port = forward(&status, 80);
    let page = http()
        .get(format!("http://127.0.0.1:{http_port}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(page, "nefos-tiny alpha\n");
    assert_eq!(ssh(&key, forward(&status, 22), "hostname").trim(), "alpha");

    // The node registered with the control plane.
    let nodes = common::admin_ok(&[
        "node",
        "list",
        "--data",
        cloud.data.path().to_str().unwrap(),
    ]);
    assert!(
        nodes.contains("node-a") && nodes.contains(&node.url()),
        "{nodes}"
    );

    // Repeating the ensure changes nothing.
    let again = node.ensure_vm(id, &request).await.unwrap();
    assert_eq!(again.pid, status.pid);

    // ACPI stop: the guest powers itself off well within the timeout.
    let started = Instant::now();
    let stopped = node
        .rpc
        .stop_vm(
            id,
            &StopVm {
                generation: 2,
                timeout_seconds: 60,
            },
        )
        .await
        .unwrap();
    assert_eq!(stopped.state, VmState::Stopped);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        console(&node, id)
            .await
            .contains("nefos-guest: powering off")
    );
    assert!(node.qemu_pids().is_empty());

    // An older generation is refused; a different operation may not reuse one.
    let stale = node
        .rpc
        .start_vm(id, &StartVm { generation: 1 })
        .await
        .unwrap_err();
    assert_eq!(stale.status().map(|s| s.as_u16()), Some(409), "{stale}");
    let reused = node
        .rpc
        .start_vm(id, &StartVm { generation: 2 })
        .await
        .unwrap_err();
    assert_eq!(reused.status().map(|s| s.as_u16()), Some(409), "{reused}");

    let started = node
        .rpc
        .start_vm(id, &StartVm { generation: 3 })
        .await
        .unwrap();
    assert_eq!(started.state, VmState::Running);
    wait_for_boots(&node, id, 2).await;

    // Hard reboot resets the machine in the same QEMU process; a retry does not reboot again.
    let reboot = RebootVm {
        generation: 4,
        hard: true,
        timeout_seconds: 60,
    };
    let rebooted = node.rpc.reboot_vm(id, &reboot).await.unwrap();
    assert_eq!(rebooted.state, VmState::Running);
    assert_eq!(rebooted.pid, started.pid);
    let output = wait_for_boots(&node, id, 3).await;
    let retried = node.rpc.reboot_vm(id, &reboot).await.unwrap();
    assert_eq!(retried.pid, started.pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = console(&node, id).await;
    assert_eq!(
        after.matches(MARKER).count(),
        output.matches(MARKER).count()
    );
    // The ticks after the reset restart from 1.
    assert_eq!(
        ticks(after.rsplit(MARKER).next().unwrap()).first(),
        Some(&1)
    );

    // Soft reboot: the guest shuts down on ACPI and starts again in a new QEMU.
    let soft = RebootVm {
        generation: 5,
        hard: false,
        timeout_seconds: 60,
    };
    // Reads do not wait for the VM's lock, which the reboot holds throughout.
    let rebooting = node.rpc.reboot_vm(id, &soft);
    let reading = async {
        let mut slowest = Duration::ZERO;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let asked = Instant::now();
            node.rpc.vm_status(id).await.unwrap();
            node.rpc.list_vms().await.unwrap();
            slowest = slowest.max(asked.elapsed());
        }
        slowest
    };
    let (rebooted, slowest) = tokio::join!(rebooting, reading);
    let rebooted = rebooted.unwrap();
    assert!(
        slowest < Duration::from_secs(3),
        "status waited {slowest:?}"
    );
    assert_eq!(rebooted.state, VmState::Running);
    assert_ne!(rebooted.pid, started.pid);
    let output = wait_for_boots(&node, id, 4).await;
    assert!(
        output.matches("nefos-guest: powering off").count() >= 2,
        "{output}"
    );

    // Pause stops the vCPUs in the same QEMU; unpause resumes them where they were.
    let paused = node
        .rpc
        .pause_vm(id, &PauseVm { generation: 6 })
        .await
        .unwrap();
    assert_eq!(paused.state, VmState::Paused, "{paused:?}");
    assert_eq!(paused.power, PowerState::Paused);
    let frozen = console(&node, id).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(console(&node, id).await, frozen, "a paused guest ticks on");
    let resumed = node
        .rpc
        .unpause_vm(id, &PauseVm { generation: 7 })
        .await
        .unwrap();
    assert_eq!(resumed.state, VmState::Running);
    assert_eq!(resumed.pid, paused.pid);

    // More RAM while running: recorded, reported as pending, applied by the next reboot.
    let mut bigger = request.spec.clone();
    bigger.ram_mib = 192;
    let pending = node
        .ensure_vm(
            id,
            &EnsureVm {
                generation: 8,
                spec: bigger,
                power: PowerState::Running,
            },
        )
        .await
        .unwrap();
    assert_eq!(pending.pending_changes, ["ram_mib"], "{pending:?}");
    assert_eq!(pending.pid, resumed.pid);
    let restarted = node
        .rpc
        .reboot_vm(
            id,
            &RebootVm {
                generation: 9,
                hard: true,
                timeout_seconds: 60,
            },
        )
        .await
        .unwrap();
    assert!(restarted.pending_changes.is_empty(), "{restarted:?}");
    assert_ne!(
        restarted.pid, pending.pid,
        "a hard reboot with changes restarts QEMU"
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", restarted.pid.unwrap())).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("192M"),
        "QEMU runs without the new RAM size"
    );
    wait_for_boots(&node, id, 5).await;

    // A soft reboot that fails (QEMU cannot open the base image) leaves the reboot
    // unfinished: its retry reboots, rather than reporting the stopped VM as done.
    let base = node
        .dir
        .path()
        .join("images")
        .join(format!("{}.raw", restarted.image_id));
    let hidden = base.with_extension("hidden");
    std::fs::rename(&base, &hidden).unwrap();
    let failing = RebootVm {
        generation: 10,
        hard: false,
        timeout_seconds: 60,
    };
    node.rpc.reboot_vm(id, &failing).await.unwrap_err();
    assert_eq!(
        node.rpc.vm_status(id).await.unwrap().state,
        VmState::Stopped
    );
    std::fs::rename(&hidden, &base).unwrap();
    let retried = node.rpc.reboot_vm(id, &failing).await.unwrap();
    assert_eq!(retried.state, VmState::Running, "{retried:?}");
    wait_for_boots(&node, id, 6).await;

    // Destroy removes the process, the disk and the run directory; again is still fine.
    node.rpc.destroy_vm(id, 11).await.unwrap();
    assert!(node.qemu_pids().is_empty());
    assert!(node.vm_dirs().is_empty(), "{:?}", node.vm_dirs());
    let missing = node.rpc.vm_status(id).await.unwrap_err();
    assert_eq!(missing.status().map(|s| s.as_u16()), Some(404));
    node.rpc.destroy_vm(id, 11).await.unwrap();

    // A late ensure of an older generation does not bring the VM back; a newer one may.
    let late = node.ensure_vm(id, &request).await.unwrap_err();
    assert_eq!(late.status().map(|s| s.as_u16()), Some(409), "{late}");
    assert!(late.to_string().contains("destroyed"), "{late}");
    assert!(node.vm_dirs().is_empty(), "{:?}", node.vm_dirs());
    let again = EnsureVm {
        generation: 12,
        power: PowerState::Stopped,
        ..request.clone()
    };
    assert_eq!(
        node.ensure_vm(id, &again).await.unwrap().state,
        VmState::Stopped
    );
    node.rpc.destroy_vm(id, 13).await.unwrap();
}

#[tokio::test]
async fn vms_run_on_through_a_kill_9_of_the_agent() {
    let cloud = Cloud::start().await;
    let mut node = Node::start(&cloud, "node-b").await;
    let ids = ["vm-one", "vm-two", "vm-three"];
    let mut requests = Vec::new();
    for id in ids {
        let request = EnsureVm {
            generation: 1,
            spec: spec(&cloud, id, ConfigDriveLayout::NoCloud, None),
            power: PowerState::Running,
        };
        node.ensure_vm(id, &request).await.unwrap();
        requests.push(request);
    }
    let mut pids = Vec::new();
    for id in ids {
        let output = wait_for_boots(&node, id, 1).await;
        assert!(output.contains(&format!("hostname={id}")), "{output}");
        pids.push(node.rpc.vm_status(id).await.unwrap().pid.unwrap());
    }

    let before: Vec<u64> = {
        let mut last = Vec::new();
        for id in ids {
            last.push(*ticks(&console(&node, id).await).last().unwrap_or(&0));
        }
        last
    };
    node.kill9();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    node.restart();
    let downtime = down.elapsed();

    let listed = node.rpc.list_vms().await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    for status in &listed {
        assert_eq!(status.state, VmState::Running, "{status:?}");
    }
    for ((id, request), pid) in ids.iter().zip(&requests).zip(&pids) {
        let status = node.rpc.vm_status(id).await.unwrap();
        assert_eq!(status.pid, Some(*pid), "{id} got another QEMU");
        // The same ensure again is a no-op: no second QEMU, no restart.
        let again = node.ensure_vm(id, request).await.unwrap();
        assert_eq!(again.pid, Some(*pid));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (id, last_before) in ids.iter().zip(before) {
        let output = console(&node, id).await;
        assert_eq!(
            output.matches(MARKER).count(),
            1,
            "{id} rebooted:\n{output}"
        );
        let ticks = ticks(&output);
        // One unbroken count from 1: the guest never stopped or restarted.
        let expected: Vec<u64> = (1..=ticks.len() as u64).collect();
        assert_eq!(ticks, expected, "{id}'s tick counter has a gap");
        let during = ticks.last().unwrap() - last_before;
        assert!(
            during + 2 >= downtime.as_secs(),
            "{id} ticked {during} times in {downtime:?} of agent downtime"
        );
    }
    assert_eq!(node.qemu_pids().len(), 3);
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_leave_nothing_behind() {
    let cloud = Cloud::start().await;
    let node = Node::start(&cloud, "node-c").await;
    let good = spec(&cloud, "gamma", ConfigDriveLayout::OpenStack, None);
    let ensure = |spec: VmSpec| EnsureVm {
        generation: 1,
        spec,
        power: PowerState::Running,
    };
    let expect =
        |result: Result<VmStatus, nefos_node_api::NodeClientError>, code: u16, words: &str| {
            let error = result.unwrap_err();
            assert_eq!(error.status().map(|s| s.as_u16()), Some(code), "{error}");
            assert!(error.to_string().contains(words), "{error} lacks {words:?}");
        };

    // An image whose blocks the store does not have.
    let mut missing = good.clone();
    missing.image.hashes[0] = "ab".repeat(32);
    expect(
        node.ensure_vm("vm-missing", &ensure(missing)).await,
        502,
        "no block",
    );

    // A disk smaller than the image.
    let mut small = good.clone();
    small.disk_bytes = good.image.size - 1;
    expect(
        node.ensure_vm("vm-small", &ensure(small)).await,
        400,
        "smaller than the image",
    );

    // Malformed ids and specs.
    expect(
        node.ensure_vm("bad.id", &ensure(good.clone())).await,
        400,
        "invalid VM id",
    );
    let mut bad_host = good.clone();
    bad_host.guest.hostname = "-nope".into();
    expect(
        node.ensure_vm("vm-host", &ensure(bad_host)).await,
        400,
        "hostname",
    );

    // A corrupt block in the store: its bytes no longer match its hash.
    let block = good
        .image
        .hashes
        .iter()
        .map(|h| cloud.block_file(h))
        .find(|path| path.exists())
        .unwrap();
    let original = std::fs::read(&block).unwrap();
    let mut damaged = original.clone();
    damaged[0] ^= 0xff;
    std::fs::write(&block, damaged).unwrap();
    expect(
        node.ensure_vm("vm-corrupt", &ensure(good.clone())).await,
        502,
        "corrupt",
    );
    std::fs::write(&block, original).unwrap();

    // QEMU refuses to start: more memory than the host can address.
    let mut huge = good.clone();
    huge.ram_mib = 1 << 40;
    expect(
        node.ensure_vm("vm-huge", &ensure(huge)).await,
        500,
        "QEMU failed to start",
    );

    // Without the node's RPC key, or with another, nothing is served.
    for auth in [None, Some("Bearer not-the-rpc-key-of-this-node")] {
        let mut request = http().get(format!("{}/rpc/v1/vms", node.url()));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("RPC key")
        );
    }
    let stranger = NodeClient::new(&node.url(), Secret::generate()).unwrap();
    assert_eq!(
        stranger
            .list_vms()
            .await
            .unwrap_err()
            .status()
            .map(|s| s.as_u16()),
        Some(401)
    );

    // Nothing was left: no VM directory, no QEMU, no partial image, nothing listed.
    assert!(node.vm_dirs().is_empty(), "{:?}", node.vm_dirs());
    assert!(node.qemu_pids().is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(node.dir.path().join("images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(node.rpc.list_vms().await.unwrap().is_empty());
}
