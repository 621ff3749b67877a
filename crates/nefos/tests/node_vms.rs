//! The node agent with real guests under TCG (issue: compute nodes). A control plane
//! (`nefos up --no-node`) holds the guest image in its object store; a `nefos node` process
//! fetches it from there and runs VMs when driven over its RPC API, as the control plane
//! will drive it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{NefosProcess, binary, free_port, http};
use nefos_node_api::{
    ClusterSecret, ConfigDriveLayout, EnsureVm, GuestConfig, ImageContent, NicSpec, NodeClient,
    PowerState, RebootVm, StartVm, StopVm, VmSpec, VmState, VmStatus,
};
use serde_json::Value;
use tempfile::TempDir;

const MARKER: &str = "NEFOS-GUEST-READY";
/// Generous: two cores, TCG, and other tests running beside this one.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// The tiny guest image `scripts/build-guest-image` makes.
fn guest_image() -> PathBuf {
    let path = std::env::var_os("NEFOS_GUEST_IMAGE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guest/nefos-tiny.raw"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "no guest image at {}: run scripts/build-guest-image (scripts/test does)",
        path.display()
    );
    path
}

/// A control plane with the guest image in the admin's object store.
struct Cloud {
    process: NefosProcess,
    data: TempDir,
    image: ImageContent,
}

impl Cloud {
    async fn start() -> Cloud {
        let data = tempfile::tempdir().unwrap();
        let process = common::up(data.path());
        let client = http();
        let (token, body) = common::token(
            &client,
            &process.url,
            "admin",
            &common::read_credentials(data.path())["admin"],
            Some("admin"),
        )
        .await;
        let project = body["token"]["project"]["id"].as_str().unwrap().to_owned();
        let container = format!("{}/object/v1/AUTH_{project}/images", process.url);
        let put = |url: String, body: Vec<u8>| {
            client
                .put(url)
                .header("x-auth-token", &token)
                .body(body)
                .send()
        };
        assert!(
            put(container.clone(), Vec::new())
                .await
                .unwrap()
                .status()
                .is_success()
        );
        let bytes = std::fs::read(guest_image()).unwrap();
        let object = format!("{container}/nefos-tiny.raw");
        assert_eq!(put(object.clone(), bytes).await.unwrap().status(), 201);
        let hashmap: Value = client
            .get(format!("{object}?hashmap&format=json"))
            .header("x-auth-token", &token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let image = ImageContent {
            size: hashmap["bytes"].as_u64().unwrap(),
            block_size: hashmap["block_size"].as_u64().unwrap(),
            hashes: hashmap["hashes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_str().unwrap().to_owned())
                .collect(),
        };
        Cloud {
            process,
            data,
            image,
        }
    }

    fn secret_file(&self) -> PathBuf {
        self.data.path().join("cluster-secret")
    }

    fn secret(&self) -> ClusterSecret {
        ClusterSecret::load(&self.secret_file()).unwrap()
    }

    fn block_file(&self, hash: &str) -> PathBuf {
        self.data
            .path()
            .join("blocks")
            .join("blocks")
            .join(&hash[0..2])
            .join(&hash[2..4])
            .join(hash)
    }
}

/// A `nefos node` process; on drop it kills the QEMUs it left running.
struct Node {
    process: Option<NefosProcess>,
    dir: TempDir,
    port: u16,
    args: Vec<String>,
    rpc: NodeClient,
}

impl Node {
    fn start(cloud: &Cloud, id: &str) -> Node {
        // QEMU's unix sockets live under the data directory: keep its path short.
        let dir = tempfile::Builder::new()
            .prefix("nfn")
            .tempdir_in("/tmp")
            .unwrap();
        let port = free_port();
        let args: Vec<String> = [
            "node",
            "--id",
            id,
            "--data",
            dir.path().to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--control-plane",
            &cloud.process.url,
            "--cluster-secret-file",
            cloud.secret_file().to_str().unwrap(),
            "--accelerator",
            "tcg",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let url = format!("http://127.0.0.1:{port}");
        let process = NefosProcess::spawn(&binary(), &args, &url);
        let rpc = NodeClient::new(&url, cloud.secret());
        Node {
            process: Some(process),
            dir,
            port,
            args,
            rpc,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn kill9(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill9();
        }
    }

    fn restart(&mut self) {
        self.kill9();
        self.process = Some(NefosProcess::spawn(&binary(), &self.args, &self.url()));
    }

    fn vm_dirs(&self) -> Vec<String> {
        match std::fs::read_dir(self.dir.path().join("vms")) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// QEMU processes whose command line names this node's data directory.
    fn qemu_pids(&self) -> Vec<u32> {
        let needle = self.dir.path().to_str().unwrap().as_bytes().to_vec();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                    return false;
                };
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let zombie = stat
                    .rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z'));
                !zombie
                    && cmdline.starts_with(b"qemu-system")
                    && cmdline
                        .windows(needle.len())
                        .any(|w| w == needle.as_slice())
            })
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
        for pid in self.qemu_pids() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

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
    }
}

async fn console(node: &Node, id: &str) -> String {
    node.rpc.console(id, 1 << 20).await.unwrap().output
}

/// Waits until the VM's console shows `count` boot markers.
async fn wait_for_boots(node: &Node, id: &str, count: usize) -> String {
    let started = Instant::now();
    loop {
        let output = console(node, id).await;
        if output.matches(MARKER).count() >= count {
            return output;
        }
        assert!(
            started.elapsed() < BOOT_TIMEOUT,
            "VM {id} did not boot {count} time(s) within {BOOT_TIMEOUT:?}; console:\n{output}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn forward(status: &VmStatus, guest: u16) -> u16 {
    status
        .forwards
        .iter()
        .find(|f| f.guest == guest)
        .unwrap_or_else(|| panic!("no forward to guest port {guest}: {status:?}"))
        .host
}

/// The numbers of the `nefos-tick N` lines, in order.
fn ticks(console: &str) -> Vec<u64> {
    console
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nefos-tick ")?.parse().ok())
        .collect()
}

fn ssh_key(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("id_ed25519");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_owned())
}

fn ssh(key: &Path, port: u16, command: &str) -> String {
    let output = Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=20",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg("-i")
        .arg(key)
        .args(["-p", &port.to_string(), "root@127.0.0.1", command])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ssh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn a_vm_runs_stops_starts_reboots_and_is_destroyed() {
    let cloud = Cloud::start().await;
    let node = Node::start(&cloud, "node-a");
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = ssh_key(keys.path());
    let id = "6a1e0f2c-0000-4000-8000-000000000001";
    let request = EnsureVm {
        generation: 1,
        spec: spec(&cloud, "alpha", ConfigDriveLayout::OpenStack, Some(&public)),
        power: PowerState::Running,
    };
    let status = node.rpc.ensure_vm(id, &request).await.unwrap();
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
    let again = node.rpc.ensure_vm(id, &request).await.unwrap();
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

    // Destroy removes the process, the disk and the run directory; again is still fine.
    node.rpc.destroy_vm(id, 5).await.unwrap();
    assert!(node.qemu_pids().is_empty());
    assert!(node.vm_dirs().is_empty(), "{:?}", node.vm_dirs());
    let missing = node.rpc.vm_status(id).await.unwrap_err();
    assert_eq!(missing.status().map(|s| s.as_u16()), Some(404));
    node.rpc.destroy_vm(id, 6).await.unwrap();
}

#[tokio::test]
async fn vms_run_on_through_a_kill_9_of_the_agent() {
    let cloud = Cloud::start().await;
    let mut node = Node::start(&cloud, "node-b");
    let ids = ["vm-one", "vm-two", "vm-three"];
    let mut requests = Vec::new();
    for id in ids {
        let request = EnsureVm {
            generation: 1,
            spec: spec(&cloud, id, ConfigDriveLayout::NoCloud, None),
            power: PowerState::Running,
        };
        node.rpc.ensure_vm(id, &request).await.unwrap();
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
        let again = node.rpc.ensure_vm(id, request).await.unwrap();
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
    let node = Node::start(&cloud, "node-c");
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
        node.rpc.ensure_vm("vm-missing", &ensure(missing)).await,
        502,
        "no block",
    );

    // A disk smaller than the image.
    let mut small = good.clone();
    small.disk_bytes = good.image.size - 1;
    expect(
        node.rpc.ensure_vm("vm-small", &ensure(small)).await,
        400,
        "smaller than the image",
    );

    // Malformed ids and specs.
    expect(
        node.rpc.ensure_vm("bad.id", &ensure(good.clone())).await,
        400,
        "invalid VM id",
    );
    let mut bad_host = good.clone();
    bad_host.guest.hostname = "-nope".into();
    expect(
        node.rpc.ensure_vm("vm-host", &ensure(bad_host)).await,
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
        node.rpc
            .ensure_vm("vm-corrupt", &ensure(good.clone()))
            .await,
        502,
        "corrupt",
    );
    std::fs::write(&block, original).unwrap();

    // QEMU refuses to start: more memory than the host can address.
    let mut huge = good.clone();
    huge.ram_mib = 1 << 40;
    expect(
        node.rpc.ensure_vm("vm-huge", &ensure(huge)).await,
        500,
        "QEMU failed to start",
    );

    // Without the cluster secret, or with another, nothing is served.
    for auth in [None, Some("Bearer not-the-cluster-secret")] {
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
                .contains("cluster secret")
        );
    }
    let stranger = NodeClient::new(&node.url(), ClusterSecret::generate());
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
