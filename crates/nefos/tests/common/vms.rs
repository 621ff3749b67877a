//! VMs for the integration tests: a control plane holding a guest image, and a `nefos
//! node` process driven over its RPC API, as the control plane will drive it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nefos_node_api::{ClusterSecret, ImageContent, NodeClient, VmStatus};
use serde_json::Value;
use tempfile::TempDir;

use super::{NefosProcess, binary, free_port, http};

pub const MARKER: &str = "NEFOS-GUEST-READY";
/// Generous: two cores, TCG, and other tests running beside this one.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// The tiny guest image `scripts/build-guest-image` makes.
pub fn guest_image() -> PathBuf {
    let path = std::env::var_os("NEFOS_TEST_GUEST_IMAGE").map_or_else(
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
pub struct Cloud {
    pub process: NefosProcess,
    pub data: TempDir,
    pub image: ImageContent,
}

impl Cloud {
    /// A control plane with the tiny guest image.
    pub async fn start() -> Cloud {
        Cloud::with_image(&guest_image()).await
    }

    /// A control plane with the image at `path` in the admin's `images` container.
    pub async fn with_image(path: &Path) -> Cloud {
        let data = tempfile::tempdir().unwrap();
        let process = super::up(data.path());
        let client = http();
        let (token, body) = super::token(
            &client,
            &process.url,
            "admin",
            &super::read_credentials(data.path())["admin"],
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
        let name = path.file_name().unwrap().to_str().unwrap();
        let object = format!("{container}/{name}");
        let file = tokio::fs::File::open(path).await.unwrap();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let response = client
            .put(&object)
            .header("x-auth-token", &token)
            .timeout(Duration::from_secs(600))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
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

    pub fn secret_file(&self) -> PathBuf {
        self.data.path().join("cluster-secret")
    }

    pub fn secret(&self) -> ClusterSecret {
        ClusterSecret::load(&self.secret_file()).unwrap()
    }

    pub fn block_file(&self, hash: &str) -> PathBuf {
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
pub struct Node {
    pub process: Option<NefosProcess>,
    pub dir: TempDir,
    pub port: u16,
    pub args: Vec<String>,
    pub rpc: NodeClient,
}

impl Node {
    pub fn start(cloud: &Cloud, id: &str) -> Node {
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

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn kill9(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill9();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.process = Some(NefosProcess::spawn(&binary(), &self.args, &self.url()));
    }

    pub fn vm_dirs(&self) -> Vec<String> {
        match std::fs::read_dir(self.dir.path().join("vms")) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// QEMU processes whose command line names this node's data directory.
    pub fn qemu_pids(&self) -> Vec<u32> {
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

pub async fn console(node: &Node, id: &str) -> String {
    node.rpc.console(id, 1 << 20).await.unwrap().output
}

/// Waits until the VM's console shows `count` boot markers of the tiny guest.
pub async fn wait_for_boots(node: &Node, id: &str, count: usize) -> String {
    wait_for_console(node, id, MARKER, count, BOOT_TIMEOUT).await
}

/// Waits until the VM's console shows `needle` `count` times.
pub async fn wait_for_console(
    node: &Node,
    id: &str,
    needle: &str,
    count: usize,
    timeout: Duration,
) -> String {
    let started = Instant::now();
    loop {
        let output = console(node, id).await;
        if output.matches(needle).count() >= count {
            return output;
        }
        assert!(
            started.elapsed() < timeout,
            "VM {id} did not print {needle:?} {count} time(s) within {timeout:?}; console:\n{output}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn forward(status: &VmStatus, guest: u16) -> u16 {
    status
        .forwards
        .iter()
        .find(|f| f.guest == guest)
        .unwrap_or_else(|| panic!("no forward to guest port {guest}: {status:?}"))
        .host
}

/// The numbers of the `nefos-tick N` lines, in order.
pub fn ticks(console: &str) -> Vec<u64> {
    console
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nefos-tick ")?.parse().ok())
        .collect()
}

pub fn ssh_key(dir: &Path) -> (PathBuf, String) {
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

/// Runs `command` as root in the guest.
pub fn ssh(key: &Path, port: u16, command: &str) -> String {
    ssh_as("root", key, port, command)
}

pub fn ssh_as(user: &str, key: &Path, port: u16, command: &str) -> String {
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
        .args([
            "-p",
            &port.to_string(),
            &format!("{user}@127.0.0.1"),
            command,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ssh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
