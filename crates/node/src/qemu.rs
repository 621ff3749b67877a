//! QEMU processes: the command line of a VM, starting it detached, and finding, watching
//! and ending the processes of VMs started earlier — by this agent or a previous one.
//!
//! QEMU runs with `-daemonize`: it forks into its own session, writes its pidfile (which
//! it keeps locked, so a second QEMU for the same VM cannot start) and only then lets the
//! launching process exit. An agent that dies or restarts therefore never takes its VMs
//! with it (docs/design.md §5).
//!
//! The root disk is two block nodes, both spelled out so that QEMU opens no file the
//! node did not name: `base`, the cached image, read-only, with the driver of its declared
//! format (raw or qcow2) and, for qcow2, `"backing": null`, so that a base whose header
//! named a file (which inspection refuses anyway) still could not make QEMU open it; and
//! `root`, the VM's qcow2 overlay, whose backing is the node `base` rather than the name
//! in the overlay's header. These use -blockdev's JSON form, which has `null` and needs no
//! escaping of commas in paths.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nefos_node_api::{Accelerator, DiskFormat, NicSpec, PortForward, VmSpec};
use rustix::process::{Pid, Signal};
use thiserror::Error;

/// How a node runs QEMU.
#[derive(Debug, Clone)]
pub struct QemuSettings {
    pub binary: PathBuf,
    pub accelerator: Accelerator,
    /// The CPU model guests see: a named baseline, so VMs can move between hosts.
    pub cpu_model: String,
}

#[derive(Debug, Error)]
pub enum QemuError {
    #[error("cannot run {binary}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("QEMU failed to start ({status}): {log}")]
    Start { status: String, log: String },
    #[error("QEMU did not daemonize within {0:?}")]
    StartTimeout(Duration),
    #[error("QEMU started but its pidfile {path} is unreadable")]
    Pidfile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The files of one VM, all in its directory. Unix socket paths are limited to 107 bytes,
/// so the node's data directory should have a short path.
#[derive(Debug, Clone)]
pub struct VmPaths {
    pub dir: PathBuf,
}

impl VmPaths {
    pub fn new(dir: PathBuf) -> VmPaths {
        VmPaths { dir }
    }
    /// The qcow2 overlay that is the VM's root disk.
    pub fn disk(&self) -> PathBuf {
        self.dir.join("root.qcow2")
    }
    /// The root disk as it was before a resize, kept until the resize is confirmed or
    /// reverted.
    pub fn disk_before_resize(&self) -> PathBuf {
        self.dir.join("root.pre-resize.qcow2")
    }
    /// A self-contained copy of the root disk while it is exported; `nonce` keeps
    /// concurrent exports apart.
    pub fn export(&self, nonce: &str) -> PathBuf {
        self.dir.join(format!("export-{nonce}.qcow2"))
    }
    pub fn config_drive(&self) -> PathBuf {
        self.dir.join("config.iso")
    }
    /// The last spec and generation applied (JSON).
    pub fn state(&self) -> PathBuf {
        self.dir.join("vm.json")
    }
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }
    pub fn qmp(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }
    pub fn vnc(&self) -> PathBuf {
        self.dir.join("vnc.sock")
    }
    /// The serial console, appended to across restarts.
    pub fn console(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    /// QEMU's own messages while it starts.
    pub fn qemu_log(&self) -> PathBuf {
        self.dir.join("qemu.log")
    }
    /// The loopback ports forwarded to the running QEMU (JSON).
    pub fn forwards(&self) -> PathBuf {
        self.dir.join("forwards.json")
    }
    /// The parts of the spec the running QEMU was started with (JSON), to tell which
    /// changes wait for its next start.
    pub fn launched(&self) -> PathBuf {
        self.dir.join("launched.json")
    }
    /// The guest's memory and device state saved by a suspend (QEMU's migration stream).
    /// It exists only while the disk is as the saved guest left it: a fresh boot removes
    /// it first, a resume once the state is loaded.
    pub fn saved_state(&self) -> PathBuf {
        self.dir.join("suspended.state")
    }
    /// The parts of the spec the suspended QEMU ran with (JSON), which the QEMU that
    /// restores it must have too.
    pub fn saved_launch(&self) -> PathBuf {
        self.dir.join("suspended.json")
    }
    /// The files that exist only while QEMU runs.
    pub fn runtime_files(&self) -> [PathBuf; 5] {
        [
            self.pidfile(),
            self.qmp(),
            self.vnc(),
            self.forwards(),
            self.launched(),
        ]
    }
}

/// The command line that runs `spec` as VM `id`, whose root disk stands on the cached
/// image `base` (of the format `spec` declares). Forwarded ports are bound by QEMU itself
/// on a port of the kernel's choosing (`hostfwd=tcp:127.0.0.1:0-…`), so no other process
/// can take a port between its choice and its use; [`forwards_in`] reads them back.
pub fn command_line(
    settings: &QemuSettings,
    id: &str,
    spec: &VmSpec,
    slots: &BTreeMap<String, u8>,
    paths: &VmPaths,
    base: &Path,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut arg = |a: &str| args.push(a.into());
    let path = |p: PathBuf| p.display().to_string();
    arg("-name");
    arg(&format!(
        "guest={},debug-threads=on",
        qemu_escape(&spec.name)
    ));
    if uuid::Uuid::parse_str(id).is_ok() {
        arg("-uuid");
        arg(id);
    }
    arg("-machine");
    arg(&format!("q35,accel={}", settings.accelerator.as_str()));
    // The VM's own model, or the node's default for a spec that names none.
    arg("-cpu");
    arg(spec
        .cpu_model
        .as_deref()
        .and_then(nefos_node_api::cpu_model)
        .map_or(settings.cpu_model.as_str(), |model| model.qemu));
    arg("-smp");
    arg(&spec.vcpus.to_string());
    arg("-m");
    arg(&format!("{}M", spec.ram_mib));
    for fixed in [
        "-nodefaults",
        "-no-user-config",
        "-daemonize",
        "-msg",
        "timestamp=on",
    ] {
        arg(fixed);
    }
    arg("-pidfile");
    arg(&path(paths.pidfile()));
    arg("-qmp");
    arg(&format!(
        "unix:{},server=on,wait=off",
        qemu_escape(&path(paths.qmp()))
    ));
    arg("-vnc");
    arg(&format!("unix:{}", qemu_escape(&path(paths.vnc()))));
    arg("-device");
    arg("VGA");
    arg("-chardev");
    arg(&format!(
        "file,id=console,path={},append=on",
        qemu_escape(&path(paths.console()))
    ));
    arg("-serial");
    arg("chardev:console");
    arg("-device");
    arg("virtio-rng-pci");
    for node in root_disk(
        &path(base.to_owned()),
        spec.image.format,
        &path(paths.disk()),
    ) {
        arg("-blockdev");
        arg(&node);
    }
    arg("-device");
    arg("virtio-blk-pci,drive=root,bootindex=1");
    arg("-blockdev");
    arg(&format!(
        "driver=raw,node-name=config,read-only=on,file.driver=file,file.filename={}",
        qemu_escape(&path(paths.config_drive()))
    ));
    arg("-device");
    arg("virtio-blk-pci,drive=config");
    // q35's root bus takes no hot-plugged devices: each port's NIC sits alone behind a
    // PCIe root port of its own, which can take it out and put another in.
    for slot in FIRST_NIC_SLOT..=LAST_NIC_SLOT {
        arg("-device");
        arg(&format!(
            "pcie-root-port,id={},bus=pcie.0,chassis={},addr={slot:#x}",
            root_port(slot),
            slot - FIRST_NIC_SLOT + 1
        ));
    }
    for (index, nic) in spec.nics.iter().enumerate() {
        match nic {
            NicSpec::UserForward { mac, forward_tcp } => {
                let mut netdev = format!("user,id=net{index},restrict=on");
                for guest in forward_tcp {
                    netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:0-:{guest}"));
                }
                arg("-netdev");
                arg(&netdev);
                arg("-device");
                arg(&format!("virtio-net-pci,netdev=net{index},mac={mac}"));
            }
            NicSpec::Port { port_id, mac, mtu } => {
                // The node made the tap and put it on its network's bridge; QEMU only
                // opens it.
                let tap = nefos_node_api::tap_name(port_id);
                let names = NicNames::of(port_id);
                let slot = slots.get(port_id).copied().unwrap_or(FIRST_NIC_SLOT);
                arg("-netdev");
                arg(&format!(
                    "tap,id={},ifname={tap},script=no,downscript=no,vhost=off",
                    names.netdev
                ));
                arg("-device");
                arg(&format!(
                    "virtio-net-pci,id={},netdev={},mac={mac},host_mtu={mtu},bus={}",
                    names.device,
                    names.netdev,
                    root_port(slot)
                ));
            }
        }
    }
    args
}

/// The first slot of the root bus whose PCIe root port a port's NIC may take. Each NIC
/// has a root port of its own, recorded when it is plugged (`Launched::nic_slots`), so
/// that a hot-plugged NIC, or one that stays when another is unplugged, sits where it did
/// when a saved state is restored.
pub const FIRST_NIC_SLOT: u8 = 0x10;
/// The last: a VM has at most eight ports.
pub const LAST_NIC_SLOT: u8 = 0x17;

/// The id of the PCIe root port in root-bus slot `slot`.
pub fn root_port(slot: u8) -> String {
    format!("nicport{slot:x}")
}

/// The QEMU ids of a port's NIC: its backend and its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicNames {
    pub netdev: String,
    pub device: String,
}

/// The prefix of the ids of ports' NIC devices.
pub const NIC_DEVICE_PREFIX: &str = "nic-";

impl NicNames {
    pub fn of(port_id: &str) -> NicNames {
        let key: String = port_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(24)
            .collect();
        NicNames {
            netdev: format!("net-{key}"),
            device: format!("{NIC_DEVICE_PREFIX}{key}"),
        }
    }
}

/// The PCI slots of the ports' NICs in `nics`: those in `kept` stay where they are, the
/// others take the lowest free slots in order. `None` when there are more NICs than
/// slots.
pub fn nic_slots(nics: &[NicSpec], kept: &BTreeMap<String, u8>) -> Option<BTreeMap<String, u8>> {
    let ports: Vec<&str> = nics
        .iter()
        .filter_map(|nic| match nic {
            NicSpec::Port { port_id, .. } => Some(port_id.as_str()),
            NicSpec::UserForward { .. } => None,
        })
        .collect();
    let mut slots: BTreeMap<String, u8> = kept
        .iter()
        .filter(|(port, _)| ports.contains(&port.as_str()))
        .map(|(port, slot)| (port.clone(), *slot))
        .collect();
    for port in ports {
        if slots.contains_key(port) {
            continue;
        }
        let taken: Vec<u8> = slots.values().copied().collect();
        let free = (FIRST_NIC_SLOT..=LAST_NIC_SLOT).find(|slot| !taken.contains(slot))?;
        slots.insert(port.to_owned(), free);
    }
    Some(slots)
}

/// The forwards QEMU set up, from its `info usernet` text: a line per listening socket,
/// `TCP[HOST_FORWARD]  fd  host-address host-port  guest-address guest-port  …`.
pub fn forwards_in(usernet: &str) -> Vec<PortForward> {
    usernet
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            if fields.next()? != "TCP[HOST_FORWARD]" {
                return None;
            }
            let fields: Vec<&str> = fields.collect();
            let host = fields.get(2)?.parse().ok()?;
            let guest = fields.get(4)?.parse().ok()?;
            Some(PortForward { guest, host })
        })
        .collect()
}

/// The `-blockdev` definitions of the root disk: the read-only base, then the overlay on
/// it.
fn root_disk(base: &str, base_format: DiskFormat, overlay: &str) -> [String; 2] {
    let mut base_node = serde_json::json!({
        "driver": base_format.as_str(),
        "node-name": "base",
        "read-only": true,
        "file": {"driver": "file", "filename": base, "read-only": true},
    });
    if base_format == DiskFormat::Qcow2 {
        base_node["backing"] = serde_json::Value::Null;
    }
    let root_node = serde_json::json!({
        "driver": "qcow2",
        "node-name": "root",
        "discard": "unmap",
        "file": {"driver": "file", "filename": overlay},
        "backing": "base",
    });
    [base_node.to_string(), root_node.to_string()]
}

/// QEMU's option syntax splits on commas; a comma in a value is written twice.
fn qemu_escape(value: &str) -> String {
    value.replace(',', ",,")
}

/// How long QEMU may take to set up and daemonize.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts QEMU detached and returns its pid once it runs on its own.
pub async fn launch(
    settings: &QemuSettings,
    args: &[OsString],
    paths: &VmPaths,
) -> Result<u32, QemuError> {
    let log_path = paths.qemu_log();
    let log = std::fs::File::create(&log_path).map_err(|source| QemuError::Io {
        path: log_path.clone(),
        source,
    })?;
    let mut child = tokio::process::Command::new(&settings.binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| QemuError::Spawn {
            binary: settings.binary.clone(),
            source,
        })?;
    let status = match tokio::time::timeout(START_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(source)) => {
            return Err(QemuError::Spawn {
                binary: settings.binary.clone(),
                source,
            });
        }
        Err(_) => return Err(QemuError::StartTimeout(START_TIMEOUT)),
    };
    if !status.success() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        return Err(QemuError::Start {
            status: status.to_string(),
            log: log.trim().to_owned(),
        });
    }
    read_pidfile(&paths.pidfile()).map_err(|source| QemuError::Pidfile {
        path: paths.pidfile(),
        source,
    })
}

fn read_pidfile(path: &Path) -> io::Result<u32> {
    let text = std::fs::read_to_string(path)?;
    text.trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not a pid"))
}

/// The pid of the VM's QEMU if it is alive. The pidfile alone is not trusted: the process
/// must be alive, not a zombie, and be a QEMU started with this very pidfile (pids are
/// reused).
pub fn running_pid(paths: &VmPaths) -> Option<u32> {
    let pidfile = paths.pidfile();
    let pid = read_pidfile(&pidfile).ok()?;
    is_our_qemu(pid, &pidfile).then_some(pid)
}

fn is_our_qemu(pid: u32, pidfile: &Path) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = std::fs::read_to_string(proc.join("stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X") | None) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(proc.join("cmdline")) else {
        return false;
    };
    let wanted = pidfile.as_os_str().as_encoded_bytes();
    let mut args = cmdline.split(|&b| b == 0);
    while let Some(arg) = args.next() {
        if arg == b"-pidfile" {
            return args.next() == Some(wanted);
        }
    }
    false
}

/// Sends SIGKILL; a process that is already gone is fine.
pub fn kill(pid: u32) {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    if let Err(error) = rustix::process::kill_process(pid, Signal::KILL) {
        tracing::debug!(%error, "kill of QEMU failed");
    }
}

/// Waits until the VM's QEMU has exited; false if it still runs after `timeout`.
pub async fn wait_exit(paths: &VmPaths, pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let pidfile = paths.pidfile();
    loop {
        if !is_our_qemu(pid, &pidfile) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Removes the files that only a running QEMU uses.
pub fn remove_runtime_files(paths: &VmPaths) {
    for file in paths.runtime_files() {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(path = %file.display(), %error, "cannot remove"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_are_read_from_info_usernet() {
        let usernet = "Hub -1 (net0):\r\n  Protocol[State]    FD  Source Address  Port   Dest. \
                       Address  Port RecvQ SendQ\r\n  TCP[HOST_FORWARD]   8       127.0.0.1 \
                       40047       10.0.2.15    22     0     0\r\n  TCP[HOST_FORWARD]   3 \
                       127.0.0.1 33893       10.0.2.15    80     0     0\r\n  \
                       TCP[ESTABLISHED]   9       127.0.0.1 40047       10.0.2.15    22     0 \
                       0\r\n";
        assert_eq!(
            forwards_in(usernet),
            [
                PortForward {
                    guest: 22,
                    host: 40047
                },
                PortForward {
                    guest: 80,
                    host: 33893
                }
            ]
        );
    }

    #[test]
    fn the_root_disk_names_its_base_and_nothing_else() {
        let nodes = |format| {
            root_disk("/cache/a,b.img", format, "/vms/x/root.qcow2")
                .map(|node| serde_json::from_str::<serde_json::Value>(&node).unwrap())
        };
        let [base, root] = nodes(DiskFormat::Qcow2);
        assert_eq!(
            base,
            serde_json::json!({
                "driver": "qcow2",
                "node-name": "base",
                "read-only": true,
                "file": {"driver": "file", "filename": "/cache/a,b.img", "read-only": true},
                "backing": null,
            })
        );
        assert_eq!(root["backing"], "base");
        assert_eq!(root["driver"], "qcow2");
        assert_eq!(root["file"]["filename"], "/vms/x/root.qcow2");
        // A raw base has no backing to refuse; QEMU's raw driver takes no such option.
        let [base, root] = nodes(DiskFormat::Raw);
        assert_eq!(base["driver"], "raw");
        assert_eq!(base["read-only"], true);
        assert!(base.get("backing").is_none());
        assert_eq!(root["backing"], "base");
    }
}
