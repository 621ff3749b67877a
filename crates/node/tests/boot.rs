//! VMs on qcow2 bases, through the node's own path: `VmManager::ensure` fills the image
//! cache over HTTP from a block store (served here as the control plane's internal API
//! serves it), inspects the image, writes the overlay and starts QEMU under TCG.
//!
//! Booting needs the tiny guest image (`scripts/build-guest-image`); its path is
//! `$NEFOS_TEST_GUEST_IMAGE`, else `target/guest/nefos-tiny.raw`. As in the integration
//! tests, a missing image fails the test rather than skipping it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use bytes::Bytes;
use nefos_blocks::{BLOCK_SIZE, BlockHash, BlockStore, BlockStoreConfig};
use nefos_disk_format::{ContentFormat, InspectError};
use nefos_node::DEFAULT_CPU_MODEL;
use nefos_node::control_plane::ControlPlaneClient;
use nefos_node::image_cache::{CacheError, ImageCache};
use nefos_node::qemu::QemuSettings;
use nefos_node::vm::{VmError, VmManager};
use nefos_node_api::{
    Accelerator, DiskFormat, EnsureVm, GuestConfig, ImageContent, NicSpec, PowerState, Secret,
    StartVm, StopVm, SuspendVm, VmSpec, VmState,
};
use nefos_test_utils::ticks;
use tempfile::TempDir;

const MARKER: &str = "NEFOS-GUEST-READY";
/// Generous: two cores, TCG, and other tests running beside this one.
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

fn guest_image() -> PathBuf {
    let path = std::env::var_os("NEFOS_TEST_GUEST_IMAGE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guest/nefos-tiny.raw"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "no guest image at {}: run scripts/build-guest-image (scripts/test does), or set \
         NEFOS_TEST_GUEST_IMAGE",
        path.display()
    );
    path
}

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A block store behind `GET /internal/v1/blocks/<hash>`, as the control plane serves the
/// blocks of images to nodes.
struct Blocks {
    store: BlockStore,
    url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Blocks {
    async fn start(dir: &Path) -> Blocks {
        let store = BlockStore::open(&BlockStoreConfig::Fs {
            path: dir.to_owned(),
        })
        .await
        .unwrap();
        let app = axum::Router::new()
            .route(
                "/internal/v1/blocks/{hash}",
                axum::routing::get(serve_block),
            )
            .with_state(store.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Blocks { store, url, server }
    }

    /// Stores the file's blocks; its content, declared as `format`.
    async fn put_file(&self, path: &Path, format: DiskFormat) -> ImageContent {
        let bytes = tokio::fs::read(path).await.unwrap();
        let mut hashes = Vec::new();
        for block in bytes.chunks(BLOCK_SIZE) {
            let hash = self.store.put(Bytes::copy_from_slice(block)).await.unwrap();
            hashes.push(hash.to_hex());
        }
        ImageContent {
            size: bytes.len() as u64,
            block_size: BLOCK_SIZE as u64,
            hashes,
            format,
        }
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve_block(
    State(store): State<BlockStore>,
    UrlPath(hash): UrlPath<String>,
) -> axum::response::Response {
    let Ok(hash) = hash.parse::<BlockHash>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match store.get(&hash).await {
        Ok(Some(data)) => data.into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A node's data directory with a short path (QEMU's unix sockets live under it); on drop
/// it kills any QEMU left running in it.
struct NodeDir {
    dir: TempDir,
}

impl NodeDir {
    fn new() -> NodeDir {
        NodeDir {
            dir: tempfile::Builder::new()
                .prefix("nfq")
                .tempdir_in("/tmp")
                .unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The VM directories (not the tombstones of destroyed VMs).
    fn vm_dirs(&self) -> Vec<String> {
        match std::fs::read_dir(self.path().join("vms")) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.'))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The VM manager the agent would open over this directory.
    fn manager(&self, blocks: &Blocks) -> VmManager {
        let cache = ImageCache::open(&self.path().join("images")).unwrap();
        let qemu = QemuSettings {
            binary: PathBuf::from("qemu-system-x86_64"),
            accelerator: Accelerator::Tcg,
            cpu_model: DEFAULT_CPU_MODEL.to_owned(),
        };
        let control_plane =
            ControlPlaneClient::new(&blocks.url, Secret::new("node-token")).unwrap();
        VmManager::open(&self.path().join("vms"), cache, qemu, control_plane).unwrap()
    }
}

impl Drop for NodeDir {
    fn drop(&mut self) {
        for vm in self.vm_dirs() {
            let pidfile = self.path().join("vms").join(vm).join("qemu.pid");
            if let Ok(pid) = std::fs::read_to_string(pidfile) {
                let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            }
        }
    }
}

fn spec(name: &str, image: ImageContent, disk_bytes: u64) -> VmSpec {
    VmSpec {
        name: name.to_owned(),
        vcpus: 1,
        ram_mib: 128,
        disk_bytes,
        image,
        guest: GuestConfig {
            hostname: name.to_owned(),
            ..GuestConfig::default()
        },
        nics: Vec::new(),
        cpu_model: None,
    }
}

/// A spec with a NIC forwarding the guest's SSH port and a CPU model, as the control
/// plane gives them.
fn forwarding_spec(name: &str, image: ImageContent, disk_bytes: u64) -> VmSpec {
    VmSpec {
        nics: vec![NicSpec::UserForward {
            mac: "52:54:00:12:34:56".to_owned(),
            forward_tcp: vec![22],
        }],
        cpu_model: Some("x86-64-v2".to_owned()),
        ..spec(name, image, disk_bytes)
    }
}

fn ensure(generation: u64, spec: VmSpec) -> EnsureVm {
    EnsureVm {
        generation,
        spec,
        power: PowerState::Running,
    }
}

/// Waits until the console holds `needle` `count` times.
async fn wait_for_console_count(vms: &VmManager, id: &str, needle: &str, count: usize) {
    let started = Instant::now();
    loop {
        let output = vms.console(id, 1 << 20).await.unwrap().output;
        if output.matches(needle).count() >= count {
            return;
        }
        assert!(
            started.elapsed() < BOOT_TIMEOUT,
            "VM {id} did not print {needle:?} {count} times within {BOOT_TIMEOUT:?}; console:\n{output}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_for_console(vms: &VmManager, id: &str, needle: &str) -> String {
    let started = Instant::now();
    loop {
        let output = vms.console(id, 1 << 20).await.unwrap().output;
        if output.contains(needle) {
            return output;
        }
        assert!(
            started.elapsed() < BOOT_TIMEOUT,
            "VM {id} did not print {needle:?} within {BOOT_TIMEOUT:?}; console:\n{output}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The tiny guest, converted to qcow2 by `qemu-img`, boots through the node's normal
/// path; its cache entry is the qcow2 file itself; QEMU opens the base as qcow2 with no
/// backing; the VM is adopted by a new manager and starts again after a stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_boots_from_a_qcow2_base() {
    let guest = guest_image();
    let node = NodeDir::new();
    let qcow2 = node.path().join("guest.qcow2");
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        guest.to_str().unwrap(),
        qcow2.to_str().unwrap(),
    ]);
    let blocks = Blocks::start(&node.path().join("blocks")).await;
    let image = blocks.put_file(&qcow2, DiskFormat::Qcow2).await;
    let virtual_size = std::fs::metadata(&guest).unwrap().len();
    assert!(
        image.size < virtual_size,
        "the qcow2 file ({} bytes) should be smaller than its disk ({virtual_size})",
        image.size
    );
    let vms = node.manager(&blocks);

    // A root disk as large as the qcow2 file, but smaller than the disk it holds.
    let small = vms
        .ensure(
            "vm-small",
            &ensure(1, spec("small", image.clone(), image.size)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(small, VmError::DiskTooSmall { image: size, .. } if size == virtual_size),
        "{small:?}"
    );
    assert!(node.vm_dirs().is_empty(), "{:?}", node.vm_dirs());

    let id = "vm-qcow2";
    let status = vms
        .ensure(
            id,
            &ensure(1, forwarding_spec("qcowguest", image.clone(), 1 << 30)),
        )
        .await
        .unwrap();
    assert_eq!(status.state, VmState::Running, "{status:?}");
    assert_eq!(status.disk.virtual_bytes, 1 << 30);
    let output = wait_for_console(&vms, id, MARKER).await;
    assert!(
        output.contains("NEFOS-GUEST-READY hostname=qcowguest"),
        "{output}"
    );

    // The cache holds the qcow2 bytes as they were stored, not a conversion.
    let cached = node
        .path()
        .join("images")
        .join(format!("{}.qcow2", status.image_id));
    assert!(std::fs::read(&cached).unwrap() == std::fs::read(&qcow2).unwrap());

    // QEMU was told the base's format and that it has no backing file.
    let pid = status.pid.unwrap();
    let base = block_node(pid, "base");
    assert_eq!(base["driver"], "qcow2");
    assert_eq!(base["read-only"], true);
    assert!(base["backing"].is_null() && base.get("backing").is_some());
    assert_eq!(base["file"]["filename"], cached.to_str().unwrap());
    assert_eq!(block_node(pid, "root")["backing"], "base");
    // The CPU model of the spec, as its QEMU line.
    let cmdline =
        String::from_utf8(std::fs::read(format!("/proc/{pid}/cmdline")).unwrap()).unwrap();
    let v2 = nefos_node_api::cpu_model("x86-64-v2").unwrap().qemu;
    assert!(cmdline.split('\0').any(|arg| arg == v2), "{cmdline:?}");

    // A new manager over the same directory (an agent restart) adopts the running VM.
    let adopted = node.manager(&blocks);
    let again = adopted.status(id).await.unwrap();
    assert_eq!(again.state, VmState::Running);
    assert_eq!(again.pid, Some(pid));

    // Suspended: the guest's state goes to the node's disk and QEMU ends. Resumed, by a
    // new manager, the guest goes on counting where it stopped, without booting again.
    wait_for_console(&adopted, id, "nefos-tick 2").await;
    let suspend = SuspendVm { generation: 2 };
    let not_suspended = adopted.resume(id, &suspend).await.unwrap_err();
    assert!(
        matches!(not_suspended, VmError::NotSuspended),
        "{not_suspended:?}"
    );
    let suspended = adopted.suspend(id, &suspend).await.unwrap();
    assert_eq!(suspended.state, VmState::Suspended, "{suspended:?}");
    assert_eq!(suspended.power, PowerState::Suspended);
    assert_eq!(suspended.pid, None);
    // Gone, or a zombie waiting for init to reap it: either way, no memory held.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(cmdline.is_empty(), "QEMU {pid} still runs");
    let vm_dir = node.path().join("vms").join(id);
    assert!(vm_dir.join("suspended.state").exists());
    // A retry of the suspend changes nothing.
    let again = adopted.suspend(id, &suspend).await.unwrap();
    assert_eq!(again.state, VmState::Suspended);
    let last_tick = *ticks(&adopted.console(id, 1 << 20).await.unwrap().output)
        .last()
        .unwrap();
    let restarted = node.manager(&blocks);
    assert_eq!(
        restarted.status(id).await.unwrap().state,
        VmState::Suspended
    );
    let resumed = restarted
        .resume(id, &SuspendVm { generation: 3 })
        .await
        .unwrap();
    assert_eq!(resumed.state, VmState::Running, "{resumed:?}");
    // The restored QEMU forwards the guest's port again, from a port of its own.
    assert_eq!(resumed.forwards.len(), 1, "{resumed:?}");
    assert!(!vm_dir.join("suspended.state").exists());
    let output = wait_for_console(&restarted, id, &format!("nefos-tick {}", last_tick + 2)).await;
    assert_eq!(output.matches(MARKER).count(), 1, "{output}");
    let ticked = ticks(&output);
    assert!(
        ticked.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "the guest counted on from {last_tick}: {ticked:?}"
    );

    // Stopped and started again, from the record alone: QEMU takes the same disks. The
    // guest watches its power button only once booted, ticking by then.
    let stopped = restarted
        .stop(
            id,
            &StopVm {
                generation: 4,
                timeout_seconds: 20,
            },
        )
        .await
        .unwrap();
    assert_eq!(stopped.state, VmState::Stopped);
    let started = restarted
        .start(id, &StartVm { generation: 5 })
        .await
        .unwrap();
    assert_eq!(started.state, VmState::Running, "{started:?}");
    assert_ne!(started.pid, Some(pid));

    // A suspended VM that is stopped boots afresh at its next start: what was saved
    // is gone.
    wait_for_console(&restarted, id, "nefos-tick 1").await;
    restarted
        .suspend(id, &SuspendVm { generation: 6 })
        .await
        .unwrap();
    let stopped = restarted
        .stop(
            id,
            &StopVm {
                generation: 7,
                timeout_seconds: 20,
            },
        )
        .await
        .unwrap();
    assert_eq!(stopped.state, VmState::Stopped);
    assert!(!vm_dir.join("suspended.state").exists());
    let output = restarted.console(id, 1 << 20).await.unwrap().output;
    let boots = output.matches(MARKER).count();
    restarted
        .start(id, &StartVm { generation: 8 })
        .await
        .unwrap();
    wait_for_console_count(&restarted, id, MARKER, boots + 1).await;
    restarted.destroy(id, 9).await.unwrap();
    assert!(node.vm_dirs().is_empty(), "{:?}", node.vm_dirs());
}

/// The command line of a VM, as QEMU runs it, and the `-blockdev` node named `name` on it.
fn block_node(pid: u32, name: &str) -> serde_json::Value {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    args.iter()
        .filter_map(|a| serde_json::from_str::<serde_json::Value>(a).ok())
        .find(|node| node["node-name"] == name)
        .unwrap_or_else(|| panic!("no block node {name} in {args:?}"))
}

/// A raw base is opened as raw, read-only, under the overlay (the guest's boot from raw
/// bases is the integration tests' business: here QEMU only has to take the disks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_starts_on_a_raw_base() {
    let guest = guest_image();
    let node = NodeDir::new();
    let blocks = Blocks::start(&node.path().join("blocks")).await;
    let image = blocks.put_file(&guest, DiskFormat::Raw).await;
    let vms = node.manager(&blocks);
    let id = "vm-raw";
    let status = vms
        .ensure(id, &ensure(1, spec("rawguest", image, 1 << 30)))
        .await
        .unwrap();
    assert_eq!(status.state, VmState::Running, "{status:?}");
    let base = block_node(status.pid.unwrap(), "base");
    let cached = node
        .path()
        .join("images")
        .join(format!("{}.raw", status.image_id));
    assert_eq!(base["driver"], "raw");
    assert_eq!(base["read-only"], true);
    assert_eq!(base["file"]["filename"], cached.to_str().unwrap());
    assert_eq!(block_node(status.pid.unwrap(), "root")["backing"], "base");
    vms.destroy(id, 2).await.unwrap();
    assert!(node.vm_dirs().is_empty(), "{:?}", node.vm_dirs());
}

/// A qcow2 base that names a backing file on the host, and a qcow2 image declared raw,
/// are refused by the node itself, leaving no VM, no QEMU and nothing in the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_or_mislabelled_bases_are_refused() {
    let node = NodeDir::new();
    let backed = node.path().join("backed.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        "/etc/passwd",
        "-F",
        "raw",
        backed.to_str().unwrap(),
        "1G",
    ]);
    let plain = node.path().join("plain.qcow2");
    qemu_img(&["create", "-f", "qcow2", plain.to_str().unwrap(), "64M"]);
    let blocks = Blocks::start(&node.path().join("blocks")).await;
    let vms = node.manager(&blocks);

    let image = blocks.put_file(&backed, DiskFormat::Qcow2).await;
    let error = vms
        .ensure("vm-backed", &ensure(1, spec("backed", image, 1 << 30)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            VmError::Image(CacheError::Refused(InspectError::BackingFile { name: Some(name) }))
                if name == "/etc/passwd"
        ),
        "{error:?}"
    );

    let image = blocks.put_file(&plain, DiskFormat::Raw).await;
    let error = vms
        .ensure(
            "vm-mislabelled",
            &ensure(1, spec("mislabelled", image, 1 << 30)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            VmError::Image(CacheError::Refused(InspectError::Mismatch {
                declared: DiskFormat::Raw,
                found: ContentFormat::Qcow2,
            }))
        ),
        "{error:?}"
    );

    assert!(node.vm_dirs().is_empty(), "{:?}", node.vm_dirs());
    let cached: Vec<_> = std::fs::read_dir(node.path().join("images"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(cached.is_empty(), "{cached:?}");
}

/// `qemu-io` runs `command` on the VM's root disk (not open in a QEMU); it must succeed
/// (`read -P` that finds other bytes fails).
fn qemu_io(disk: &Path, command: &str) {
    let out = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", command, disk.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !text.contains("fail"),
        "qemu-io {command:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn image_info(path: &Path) -> serde_json::Value {
    let out = Command::new("qemu-img")
        .args(["info", "-U", "--output=json", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A resize grows the disk and keeps the old one; a revert brings the old disk and sizes
/// back (losing what was written since, as in Nova); a confirm deletes the kept disk.
/// Each refuses what it cannot do, and each is a no-op when retried. An export is one
/// self-contained qcow2 with the VM's bytes, of a stopped VM or a running one (paused for
/// the copy, running after), and leaves no file behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resizes_revert_and_confirm_and_disks_export_whole() {
    use nefos_node_api::{ResizeEnd, ResizeVm, VmSize};
    const GIB: u64 = 1 << 30;
    let guest = guest_image();
    let node = NodeDir::new();
    let blocks = Blocks::start(&node.path().join("blocks")).await;
    let image = blocks.put_file(&guest, DiskFormat::Raw).await;
    let vms = node.manager(&blocks);
    let id = "vm-resize";
    let dir = node.path().join("vms").join(id);
    let (disk, kept) = (dir.join("root.qcow2"), dir.join("root.pre-resize.qcow2"));
    let mut defined = ensure(1, spec("resized", image, GIB));
    defined.power = PowerState::Stopped;
    vms.ensure(id, &defined).await.unwrap();
    qemu_io(&disk, "write -P 0xab 0 64k");

    let bigger = VmSize {
        vcpus: 2,
        ram_mib: 256,
        disk_bytes: 2 * GIB,
    };
    let resize = |generation, size| ResizeVm { generation, size };
    let resized = vms.resize(id, &resize(2, bigger)).await.unwrap();
    assert_eq!(resized.disk.virtual_bytes, 2 * GIB);
    assert_eq!(resized.resized_from.unwrap().disk_bytes, GIB);
    assert_eq!(image_info(&disk)["virtual-size"], 2 * GIB);
    assert_eq!(image_info(&kept)["virtual-size"], GIB);
    // A retry changes nothing; a second resize waits for this one to end.
    assert_eq!(vms.resize(id, &resize(2, bigger)).await.unwrap(), resized);
    let again = vms.resize(id, &resize(3, bigger)).await.unwrap_err();
    assert!(matches!(again, VmError::ResizeUnfinished), "{again:?}");

    // The new sizes apply when QEMU starts; a running VM cannot be resized.
    let started = vms.start(id, &StartVm { generation: 4 }).await.unwrap();
    assert_eq!(started.state, VmState::Running, "{started:?}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", started.pid.unwrap())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        cmdline.contains("-m 256") && cmdline.contains("-smp 2"),
        "{cmdline}"
    );

    // A revert stops the VM and puts the old disk and sizes back.
    let reverted = vms
        .revert_resize(id, &ResizeEnd { generation: 5 })
        .await
        .unwrap();
    assert_eq!(reverted.state, VmState::Stopped);
    assert_eq!(reverted.disk.virtual_bytes, GIB);
    assert!(reverted.resized_from.is_none());
    assert!(!kept.exists());
    assert_eq!(image_info(&disk)["virtual-size"], GIB);
    qemu_io(&disk, "read -P 0xab 0 64k");
    let nothing = vms
        .revert_resize(id, &ResizeEnd { generation: 6 })
        .await
        .unwrap_err();
    assert!(matches!(nothing, VmError::NotResized), "{nothing:?}");
    let shrink = VmSize {
        disk_bytes: GIB / 2,
        ..bigger
    };
    let shrink = vms.resize(id, &resize(7, shrink)).await.unwrap_err();
    assert!(matches!(shrink, VmError::DiskShrink { .. }), "{shrink:?}");

    // Resized again and confirmed: the kept disk goes, the new sizes stay.
    vms.resize(id, &resize(8, bigger)).await.unwrap();
    qemu_io(&disk, "write -P 0xcd 0 64k");
    let confirmed = vms
        .confirm_resize(id, &ResizeEnd { generation: 9 })
        .await
        .unwrap();
    assert!(confirmed.resized_from.is_none() && !kept.exists());
    assert_eq!(confirmed.disk.virtual_bytes, 2 * GIB);
    vms.confirm_resize(id, &ResizeEnd { generation: 9 })
        .await
        .unwrap();

    // The export of the stopped VM: its bytes, with no backing file.
    let exported = vms.export_disk(id).await.unwrap();
    let info = image_info(exported.path());
    assert_eq!(info["format"], "qcow2");
    assert!(info.get("backing-filename").is_none(), "{info}");
    assert_eq!(info["virtual-size"], 2 * GIB);
    assert_eq!(
        exported.bytes(),
        std::fs::metadata(exported.path()).unwrap().len()
    );
    qemu_io(exported.path(), "read -P 0xcd 0 64k");
    let compare = Command::new("qemu-img")
        .args(["compare", "-U"])
        .arg(exported.path())
        .arg(&disk)
        .output()
        .unwrap();
    assert!(compare.status.success(), "{compare:?}");
    let path = exported.path().to_owned();
    drop(exported);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!path.exists());

    // A running VM runs on after its export.
    vms.start(id, &StartVm { generation: 10 }).await.unwrap();
    let exported = vms.export_disk(id).await.unwrap();
    assert_eq!(image_info(exported.path())["virtual-size"], 2 * GIB);
    let status = vms.status(id).await.unwrap();
    assert_eq!(status.state, VmState::Running, "{status:?}");
    drop(exported);
    vms.destroy(id, 11).await.unwrap();
    assert!(node.vm_dirs().is_empty(), "{:?}", node.vm_dirs());
}

/// A rebuild gives the VM a fresh disk from the image (what the guest wrote is gone) and
/// the new guest configuration, keeping its sizes; a retry changes nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_gives_a_fresh_disk() {
    use nefos_node_api::RebuildVm;
    let guest = guest_image();
    let node = NodeDir::new();
    let blocks = Blocks::start(&node.path().join("blocks")).await;
    let image = blocks.put_file(&guest, DiskFormat::Raw).await;
    let vms = node.manager(&blocks);
    let id = "vm-rebuild";
    let disk = node.path().join("vms").join(id).join("root.qcow2");
    let mut defined = ensure(1, spec("before", image.clone(), 1 << 30));
    defined.power = PowerState::Stopped;
    vms.ensure(id, &defined).await.unwrap();
    qemu_io(&disk, "write -P 0xab 0 64k");

    let rebuild = RebuildVm {
        generation: 2,
        name: Some("after".to_owned()),
        image,
        guest: GuestConfig {
            hostname: "after".to_owned(),
            ..GuestConfig::default()
        },
        power: PowerState::Running,
    };
    let rebuilt = vms.rebuild(id, &rebuild).await.unwrap();
    assert_eq!(rebuilt.state, VmState::Running, "{rebuilt:?}");
    assert_eq!(rebuilt.disk.virtual_bytes, 1 << 30);
    let output = wait_for_console(&vms, id, "NEFOS-GUEST-READY hostname=after").await;
    assert!(output.contains("hostname=after"), "{output}");
    // The retry is a no-op: same QEMU.
    assert_eq!(vms.rebuild(id, &rebuild).await.unwrap().pid, rebuilt.pid);
    vms.stop(
        id,
        &StopVm {
            generation: 3,
            timeout_seconds: 1,
        },
    )
    .await
    .unwrap();
    let old = Command::new("qemu-io")
        .args([
            "-f",
            "qcow2",
            "-c",
            "read -P 0xab 0 64k",
            disk.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&old.stdout);
    assert!(text.contains("Pattern verification failed"), "{text}");
    vms.destroy(id, 4).await.unwrap();
}
