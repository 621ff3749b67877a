//! VMs for the integration tests: a control plane holding a guest image, and `nefos node`
//! processes enrolled with it and driven over their RPC API as the control plane drives
//! them, through `nefos_compute::NodeRpc`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nefos_compute::{ComputeError, NodeRegistry, NodeRpc};
use nefos_db::{Database, PoolSettings};
use nefos_node_api::{
    ClusterSecret, DiskFormat, EnsureVm, ImageContent, NodeClient, NodeClientError, NodeCredential,
    VmStatus,
};
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

/// A control plane (`nefos up --no-node`) with its internal API on a port of its own, and
/// the test's own handle on its nodes: [`NodeRpc`] over the cloud's database and key, as
/// the control plane holds them.
pub struct Cloud {
    pub process: NefosProcess,
    /// How the process was started, to start it again.
    pub args: Vec<String>,
    pub data: TempDir,
    pub internal_url: String,
    pub nodes: NodeRpc,
    /// The cloud's database, for what tests set up behind its back.
    pub db: Database,
    /// The guest image, when the cloud was started with one.
    pub image: ImageContent,
}

impl Cloud {
    /// A control plane with the tiny guest image.
    pub async fn start() -> Cloud {
        Cloud::with_image(&guest_image()).await
    }

    /// A control plane with the image at `path` in the admin's `images` container.
    pub async fn with_image(path: &Path) -> Cloud {
        let mut cloud = Cloud::empty().await;
        let name = path.file_name().unwrap().to_str().unwrap();
        let file = tokio::fs::File::open(path).await.unwrap();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        cloud.image = cloud.upload("admin", "images", name, body).await;
        cloud
    }

    /// A control plane with no image.
    pub async fn empty() -> Cloud {
        Cloud::serving(&[]).await
    }

    /// A control plane that registered the tiny guest as the public image `nefos-tiny`,
    /// as `nefos up` does, for servers to boot from.
    pub async fn with_public_guest() -> Cloud {
        let image = guest_image();
        Cloud::serving(&["--guest-image", image.to_str().unwrap()]).await
    }

    /// [`Cloud::with_public_guest`] with `config` as its configuration file.
    pub async fn with_public_guest_configured(config: &str) -> Cloud {
        let image = guest_image();
        Cloud::serving_with(&["--guest-image", image.to_str().unwrap()], Some(config)).await
    }

    async fn serving(extra: &[&str]) -> Cloud {
        Cloud::serving_with(extra, None).await
    }

    async fn serving_with(extra: &[&str], config: Option<&str>) -> Cloud {
        let data = tempfile::tempdir().unwrap();
        let internal = format!("127.0.0.1:{}", free_port());
        let port = free_port();
        let mut args = NefosProcess::up_args(data.path(), port);
        if let Some(config) = config {
            // Beside the data directory's contents, which `nefos up` leaves alone.
            let path = data.path().join("test-config.toml");
            std::fs::write(&path, config).unwrap();
            args.extend(["--config".to_owned(), path.display().to_string()]);
        }
        args.extend(["--internal-listen".to_owned(), internal.clone()]);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let process = NefosProcess::spawn(&binary(), &args, &format!("http://127.0.0.1:{port}"));
        let db = Database::connect(
            &Database::sqlite_url(&data.path().join("nefos.db")),
            &PoolSettings::default(),
        )
        .await
        .unwrap();
        let key = ClusterSecret::load(&data.path().join("cluster-secret")).unwrap();
        Cloud {
            process,
            args,
            data,
            internal_url: format!("http://{internal}"),
            nodes: NodeRpc::new(NodeRegistry::new(db.clone()), key),
            db,
            image: ImageContent {
                size: 0,
                block_size: 0,
                hashes: Vec::new(),
                format: DiskFormat::Raw,
            },
        }
    }

    /// Kills the control plane with SIGKILL, mid-whatever, and starts it again on the same
    /// data, ports and arguments.
    pub fn kill9_and_restart(&mut self) {
        self.process.kill9();
        self.process = NefosProcess::spawn(&binary(), &self.args, &self.process.url.clone());
    }

    /// Stores `body` as `container/name` in `user`'s own project; its content.
    pub async fn upload(
        &self,
        user: &str,
        container: &str,
        name: &str,
        body: impl Into<reqwest::Body>,
    ) -> ImageContent {
        let client = http();
        let (token, answer) = super::token(
            &client,
            &self.process.url,
            user,
            &super::read_credentials(self.data.path())[user],
            Some(user),
        )
        .await;
        let project = answer["token"]["project"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let container = format!("{}/object/v1/AUTH_{project}/{container}", self.process.url);
        let response = client
            .put(&container)
            .header("x-auth-token", &token)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let object = format!("{container}/{name}");
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
        ImageContent {
            size: hashmap["bytes"].as_u64().unwrap(),
            block_size: hashmap["block_size"].as_u64().unwrap(),
            hashes: hashmap["hashes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_str().unwrap().to_owned())
                .collect(),
            format: DiskFormat::Raw,
        }
    }

    /// `nefos admin node enroll NAME`: the join token it prints.
    pub fn enroll(&self, name: &str, valid_minutes: u64) -> String {
        let out = super::admin_ok(&[
            "node",
            "enroll",
            name,
            "--valid-minutes",
            &valid_minutes.to_string(),
            "--data",
            self.data.path().to_str().unwrap(),
        ]);
        out.lines()
            .nth(1)
            .unwrap_or_else(|| panic!("no join token in:\n{out}"))
            .trim()
            .to_owned()
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

/// A `nefos node` process, enrolled as its id; on drop it kills the QEMUs it left running.
pub struct Node {
    pub id: String,
    pub process: Option<NefosProcess>,
    pub dir: TempDir,
    pub port: u16,
    pub args: Vec<String>,
    /// The control plane's client of this node, with the key it derives for it.
    pub rpc: NodeClient,
    nodes: NodeRpc,
}

/// A data directory for a node agent, with a short path (QEMU's unix sockets live under
/// it), and a free port for its RPC API.
pub fn node_dir_and_port() -> (TempDir, u16) {
    let dir = tempfile::Builder::new()
        .prefix("nfn")
        .tempdir_in("/tmp")
        .unwrap();
    (dir, free_port())
}

/// `nefos node` joining the control plane at `control_plane` (its internal API) with a
/// join token, under TCG.
pub fn node_args(data: &Path, port: u16, control_plane: &str, join_token: &str) -> Vec<String> {
    [
        "node",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--control-plane",
        control_plane,
        "--join-token",
        join_token,
        "--accelerator",
        "tcg",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

impl Node {
    /// Enrols node `id` with `nefos admin node enroll` and starts it with the join token.
    pub async fn start(cloud: &Cloud, id: &str) -> Node {
        Node::start_with(cloud, id, &[]).await
    }

    /// [`Node::start`] with more arguments of `nefos node`.
    pub async fn start_with(cloud: &Cloud, id: &str, extra: &[&str]) -> Node {
        let join_token = cloud.enroll(id, 60);
        // QEMU's unix sockets live under the data directory: keep its path short.
        let (dir, port) = node_dir_and_port();
        let mut args = node_args(dir.path(), port, &cloud.internal_url, &join_token);
        args.extend(["--id".to_owned(), id.to_owned()]);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let url = format!("http://127.0.0.1:{port}");
        let process = NefosProcess::spawn(&binary(), &args, &url);
        // The node serves once it has joined; it registers a moment later.
        let started = Instant::now();
        let rpc = loop {
            match cloud.nodes.client(id).await {
                Ok(rpc) => break rpc,
                Err(ComputeError::UnknownNode { .. }) if started.elapsed() < BOOT_TIMEOUT => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("node {id} did not register: {error}"),
            }
        };
        Node {
            id: id.to_owned(),
            process: Some(process),
            dir,
            port,
            args,
            rpc,
            nodes: cloud.nodes.clone(),
        }
    }

    /// Asks the node to ensure VM `vm` as the control plane does: the node is granted the
    /// image's blocks, then called.
    pub async fn ensure_vm(
        &self,
        vm: &str,
        request: &EnsureVm,
    ) -> Result<VmStatus, NodeClientError> {
        match self.nodes.ensure_vm(&self.id, vm, request).await {
            Ok(status) => Ok(status),
            Err(ComputeError::Rpc { source, .. }) => Err(source),
            Err(error) => panic!("cannot ask node {} for VM {vm}: {error}", self.id),
        }
    }

    /// The credential the node keeps in its data directory.
    pub fn credential(&self) -> NodeCredential {
        let text = std::fs::read(self.dir.path().join("credential.json")).unwrap();
        serde_json::from_slice(&text).unwrap()
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

    /// The VM directories on the node (not its tombstones of destroyed VMs).
    pub fn vm_dirs(&self) -> Vec<String> {
        match std::fs::read_dir(self.dir.path().join("vms")) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.'))
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
