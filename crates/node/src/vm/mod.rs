//! The VMs of a node: defining them (image, root disk, config drive), running them under
//! QEMU, and reporting what they really do. Every operation on a VM holds that VM's lock,
//! is checked against its generation (see `record.rs`) and converges: calling it again
//! after success changes nothing.

mod record;
mod validate;

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nefos_node_api::{
    ConsoleOutput, DiskFormat, DiskStatus, EnsureVm, NicSpec, PortForward, PowerState, RebootVm,
    StartVm, StopVm, VmSpec, VmState, VmStatus,
};
use nefos_qmp::Qmp;
use nefos_qmp::commands::{QueryStatus, SystemPowerdown, SystemReset};
use thiserror::Error;
use tokio::sync::Mutex;

use crate::config_drive::{self, ConfigDriveError};
use crate::control_plane::ControlPlaneClient;
use crate::image_cache::{CacheError, ImageCache, ImageKey};
use crate::qcow2::{self, OverlayError};
use crate::qemu::{self, QemuError, QemuSettings, VmPaths};
use record::{Admission, Operation, VmRecord};

#[derive(Debug, Error)]
pub enum VmError {
    #[error("no VM {id} on this node")]
    NotFound { id: String },
    #[error("{reason}")]
    Invalid { reason: String },
    #[error("generation {got} is older than the VM's generation {current}")]
    Stale { got: u64, current: u64 },
    #[error("generation {generation} was already used for another operation on this VM")]
    GenerationReused { generation: u64 },
    #[error("the VM is not running")]
    NotRunning,
    #[error(
        "the root disk ({disk} bytes) would be smaller than the image ({image} bytes of \
         virtual disk)"
    )]
    DiskTooSmall { disk: u64, image: u64 },
    #[error("a VM's image and disk size cannot change (asked: {what})")]
    Immutable { what: &'static str },
    #[error("cannot get the image")]
    Image(#[source] CacheError),
    #[error("cannot create the root disk")]
    Disk(#[source] OverlayError),
    #[error("cannot build the config drive")]
    ConfigDrive(#[source] ConfigDriveError),
    #[error("cannot start QEMU")]
    Qemu(#[source] QemuError),
    #[error("cannot talk to the VM's QEMU")]
    Qmp(#[source] nefos_qmp::QmpError),
    #[error("QEMU did not exit after SIGKILL")]
    Unkillable,
    #[error("I/O on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How long QMP commands may take.
const QMP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a killed QEMU may take to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct VmManager {
    root: PathBuf,
    cache: ImageCache,
    qemu: QemuSettings,
    blocks: ControlPlaneClient,
    locks: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl VmManager {
    /// Opens the VMs under `root`, adopting those whose QEMU still runs and removing what a
    /// crash left of VMs that were never fully defined.
    pub fn open(
        root: &Path,
        cache: ImageCache,
        qemu: QemuSettings,
        blocks: ControlPlaneClient,
    ) -> Result<VmManager, VmError> {
        let io = |source| VmError::Io {
            path: root.to_owned(),
            source,
        };
        std::fs::create_dir_all(root).map_err(io)?;
        for entry in std::fs::read_dir(root).map_err(io)? {
            let dir = entry.map_err(io)?.path();
            if !dir.is_dir() {
                continue;
            }
            let paths = VmPaths::new(dir.clone());
            match VmRecord::load(&paths.state()) {
                Ok(Some(record)) => match qemu::running_pid(&paths) {
                    Some(pid) => tracing::info!(vm = %record.id, pid, "adopted a running VM"),
                    None => {
                        qemu::remove_runtime_files(&paths);
                        tracing::info!(vm = %record.id, "found a stopped VM");
                    }
                },
                Ok(None) => {
                    tracing::warn!(dir = %dir.display(), "removing a VM whose definition never finished");
                    discard(&paths);
                }
                Err(error) => {
                    tracing::error!(dir = %dir.display(), %error, "unreadable VM record; leaving it alone");
                }
            }
        }
        Ok(VmManager {
            root: root.to_owned(),
            cache,
            qemu,
            blocks,
            locks: std::sync::Mutex::new(HashMap::new()),
        })
    }

    pub fn qemu_settings(&self) -> &QemuSettings {
        &self.qemu
    }

    fn paths(&self, id: &str) -> VmPaths {
        VmPaths::new(self.root.join(id))
    }

    async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(id.to_owned())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    fn existing(&self, id: &str) -> Result<(VmPaths, VmRecord), VmError> {
        validate::vm_id(id)?;
        let paths = self.paths(id);
        match VmRecord::load(&paths.state())? {
            Some(record) => Ok((paths, record)),
            None => Err(VmError::NotFound { id: id.to_owned() }),
        }
    }

    /// Defines the VM if needed and brings it to the asked power state.
    pub async fn ensure(&self, id: &str, request: &EnsureVm) -> Result<VmStatus, VmError> {
        validate::vm_id(id)?;
        validate::spec(&request.spec)?;
        let key = ImageKey::new(&request.spec.image).map_err(VmError::Image)?;
        // A raw image's disk is its length, known before it is fetched; a qcow2 image's
        // is in its header, checked once it is cached.
        if key.format == DiskFormat::Raw && request.spec.disk_bytes < key.size {
            return Err(VmError::DiskTooSmall {
                disk: request.spec.disk_bytes,
                image: key.size,
            });
        }
        let _guard = self.lock(id).await;
        let paths = self.paths(id);
        let record = match VmRecord::load(&paths.state())? {
            None => {
                let record = self.define(id, request, &key, &paths).await?;
                if request.power == PowerState::Running
                    && let Err(error) = self.start_qemu(&paths, &record).await
                {
                    // A VM that never ran leaves nothing behind.
                    discard(&paths);
                    return Err(error);
                }
                record
            }
            Some(mut record) => {
                if record.admit(request.generation, Operation::Ensure)? == Admission::Retry
                    && (record.spec != request.spec || record.power != request.power)
                {
                    return Err(VmError::GenerationReused {
                        generation: request.generation,
                    });
                }
                if record.spec.image != request.spec.image {
                    return Err(VmError::Immutable {
                        what: "another image",
                    });
                }
                if record.spec.disk_bytes != request.spec.disk_bytes {
                    return Err(VmError::Immutable {
                        what: "another disk size",
                    });
                }
                record.generation = request.generation;
                record.operation = Operation::Ensure;
                record.spec = request.spec.clone();
                record.power = request.power;
                record.save(&paths.state())?;
                self.converge(&paths, &record).await?;
                record
            }
        };
        self.status_of(&paths, &record).await
    }

    /// Fetches the image and creates the disk and record of a new VM; on failure removes
    /// everything it made.
    async fn define(
        &self,
        id: &str,
        request: &EnsureVm,
        key: &ImageKey,
        paths: &VmPaths,
    ) -> Result<VmRecord, VmError> {
        let (image, stats) = self
            .cache
            .ensure(key, &self.blocks)
            .await
            .map_err(VmError::Image)?;
        tracing::info!(vm = id, image = %image.id, format = %image.inspection.format, fetched = stats.fetched, reused = stats.reused, "image ready");
        if request.spec.disk_bytes < image.inspection.virtual_size {
            return Err(VmError::DiskTooSmall {
                disk: request.spec.disk_bytes,
                image: image.inspection.virtual_size,
            });
        }
        for problem in &image.inspection.boot_problems {
            tracing::warn!(vm = id, image = %image.id, %problem, "the VM is unlikely to boot");
        }
        let make = || -> Result<VmRecord, VmError> {
            std::fs::create_dir(&paths.dir).map_err(|source| VmError::Io {
                path: paths.dir.clone(),
                source,
            })?;
            qcow2::create_overlay(
                &paths.disk(),
                &image.path,
                image.inspection.format,
                request.spec.disk_bytes,
            )
            .map_err(VmError::Disk)?;
            let record = VmRecord {
                id: id.to_owned(),
                generation: request.generation,
                operation: Operation::Ensure,
                power: request.power,
                spec: request.spec.clone(),
                image_id: image.id.clone(),
            };
            record.save(&paths.state())?;
            Ok(record)
        };
        make().inspect_err(|_| discard(paths))
    }

    /// Starts or stops QEMU to match the record's power state.
    async fn converge(&self, paths: &VmPaths, record: &VmRecord) -> Result<(), VmError> {
        let pid = qemu::running_pid(paths);
        match (record.power, pid) {
            (PowerState::Running, None) => self.start_qemu(paths, record).await,
            (PowerState::Stopped, Some(pid)) => {
                stop_qemu(
                    paths,
                    pid,
                    Duration::from_secs(nefos_node_api::default_stop_timeout()),
                )
                .await
            }
            _ => Ok(()),
        }
    }

    pub async fn start(&self, id: &str, request: &StartVm) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, mut record) = self.existing(id)?;
        record.admit(request.generation, Operation::Start)?;
        record.generation = request.generation;
        record.operation = Operation::Start;
        record.power = PowerState::Running;
        record.save(&paths.state())?;
        self.converge(&paths, &record).await?;
        self.status_of(&paths, &record).await
    }

    pub async fn stop(&self, id: &str, request: &StopVm) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, mut record) = self.existing(id)?;
        record.admit(request.generation, Operation::Stop)?;
        record.generation = request.generation;
        record.operation = Operation::Stop;
        record.power = PowerState::Stopped;
        record.save(&paths.state())?;
        if let Some(pid) = qemu::running_pid(&paths) {
            stop_qemu(&paths, pid, Duration::from_secs(request.timeout_seconds)).await?;
        }
        self.status_of(&paths, &record).await
    }

    pub async fn reboot(&self, id: &str, request: &RebootVm) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, mut record) = self.existing(id)?;
        let operation = Operation::Reboot { hard: request.hard };
        if record.admit(request.generation, operation)? == Admission::New {
            let pid = qemu::running_pid(&paths).ok_or(VmError::NotRunning)?;
            record.generation = request.generation;
            record.operation = operation;
            record.power = PowerState::Running;
            record.save(&paths.state())?;
            if request.hard {
                let qmp = Qmp::connect(&paths.qmp(), QMP_TIMEOUT)
                    .await
                    .map_err(VmError::Qmp)?;
                qmp.execute(&SystemReset {}).await.map_err(VmError::Qmp)?;
            } else {
                stop_qemu(&paths, pid, Duration::from_secs(request.timeout_seconds)).await?;
                self.start_qemu(&paths, &record).await?;
            }
        }
        self.status_of(&paths, &record).await
    }

    /// Kills QEMU and removes the VM's directory. A VM the node lacks is already gone.
    pub async fn destroy(&self, id: &str, generation: u64) -> Result<(), VmError> {
        validate::vm_id(id)?;
        let _guard = self.lock(id).await;
        let paths = self.paths(id);
        if let Some(record) = VmRecord::load(&paths.state())?
            && generation < record.generation
        {
            return Err(VmError::Stale {
                got: generation,
                current: record.generation,
            });
        }
        if let Some(pid) = qemu::running_pid(&paths) {
            qemu::kill(pid);
            if !qemu::wait_exit(&paths, pid, KILL_WAIT).await {
                return Err(VmError::Unkillable);
            }
        }
        match std::fs::remove_dir_all(&paths.dir) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(VmError::Io {
                    path: paths.dir.clone(),
                    source,
                });
            }
        }
        tracing::info!(vm = id, "destroyed");
        Ok(())
    }

    pub async fn status(&self, id: &str) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, record) = self.existing(id)?;
        self.status_of(&paths, &record).await
    }

    pub async fn list(&self) -> Result<Vec<VmStatus>, VmError> {
        let io = |source| VmError::Io {
            path: self.root.clone(),
            source,
        };
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io)? {
            let entry = entry.map_err(io)?;
            if let Some(name) = entry.file_name().to_str() {
                ids.push(name.to_owned());
            }
        }
        ids.sort();
        let mut statuses = Vec::new();
        for id in ids {
            match self.status(&id).await {
                Ok(status) => statuses.push(status),
                // Destroyed meanwhile, or a stray file.
                Err(VmError::NotFound { .. } | VmError::Invalid { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(statuses)
    }

    /// How many VMs have a live QEMU.
    pub fn running_count(&self) -> u32 {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return 0;
        };
        let running = entries
            .filter_map(Result::ok)
            .filter(|e| qemu::running_pid(&VmPaths::new(e.path())).is_some())
            .count();
        u32::try_from(running).unwrap_or(u32::MAX)
    }

    /// The last `max_bytes` of the serial console, across restarts.
    pub async fn console(&self, id: &str, max_bytes: u64) -> Result<ConsoleOutput, VmError> {
        let (paths, _) = self.existing(id)?;
        let path = paths.console();
        let output = tokio::task::spawn_blocking(move || tail(&path, max_bytes))
            .await
            .map_err(|e| VmError::Io {
                path: paths.console(),
                source: io::Error::other(e),
            })??;
        Ok(ConsoleOutput { output })
    }

    /// Starts the VM's QEMU on its overlay, whose base is the cached image the VM was
    /// defined on (by this agent or an earlier one: the record and the cache persist).
    async fn start_qemu(&self, paths: &VmPaths, record: &VmRecord) -> Result<(), VmError> {
        let (id, spec) = (record.id.as_str(), &record.spec);
        let base = self.cache.path_of(&record.image_id, spec.image.format);
        qemu::remove_runtime_files(paths);
        let files = config_drive::files(id, &spec.name, &spec.guest, &spec.nics)
            .map_err(VmError::ConfigDrive)?;
        config_drive::build(&paths.config_drive(), spec.guest.layout, &files)
            .await
            .map_err(VmError::ConfigDrive)?;
        let forwards = allocate_forwards(spec)?;
        let args = qemu::command_line(&self.qemu, id, spec, paths, &base, &forwards);
        let pid = qemu::launch(&self.qemu, &args, paths)
            .await
            .map_err(VmError::Qemu)?;
        let forwards_json = serde_json::to_vec(&forwards).unwrap_or_default();
        std::fs::write(paths.forwards(), forwards_json).map_err(|source| VmError::Io {
            path: paths.forwards(),
            source,
        })?;
        tracing::info!(vm = id, pid, "started");
        Ok(())
    }

    async fn status_of(&self, paths: &VmPaths, record: &VmRecord) -> Result<VmStatus, VmError> {
        let pid = qemu::running_pid(paths);
        let (state, qemu_status) = match pid {
            None => (VmState::Stopped, None),
            Some(_) => match query_status(paths).await {
                Ok(status) if status.running => (VmState::Running, Some(status.status)),
                Ok(status) => (VmState::Paused, Some(status.status)),
                Err(error) => {
                    // QEMU is alive but its monitor did not answer; it may be exiting.
                    tracing::warn!(vm = %record.id, %error, "query-status failed");
                    (VmState::Running, None)
                }
            },
        };
        let forwards = if pid.is_some() {
            std::fs::read(paths.forwards())
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let allocated_bytes = std::fs::metadata(paths.disk())
            .map(|m| m.blocks() * 512)
            .unwrap_or(0);
        Ok(VmStatus {
            id: record.id.clone(),
            name: record.spec.name.clone(),
            generation: record.generation,
            power: record.power,
            state,
            qemu_status,
            pid,
            forwards,
            disk: DiskStatus {
                virtual_bytes: record.spec.disk_bytes,
                allocated_bytes,
            },
            image_id: record.image_id.clone(),
        })
    }
}

async fn query_status(paths: &VmPaths) -> Result<nefos_qmp::commands::StatusInfo, VmError> {
    let qmp = Qmp::connect(&paths.qmp(), QMP_TIMEOUT)
        .await
        .map_err(VmError::Qmp)?;
    qmp.execute(&QueryStatus {}).await.map_err(VmError::Qmp)
}

/// ACPI power button, then SIGKILL if the guest has not powered off within `timeout`.
async fn stop_qemu(paths: &VmPaths, pid: u32, timeout: Duration) -> Result<(), VmError> {
    let asked = async {
        let qmp = Qmp::connect(&paths.qmp(), QMP_TIMEOUT).await?;
        qmp.execute(&SystemPowerdown {}).await
    };
    let exited = match asked.await {
        Ok(_) => {
            let exited = qemu::wait_exit(paths, pid, timeout).await;
            if !exited {
                tracing::warn!(pid, ?timeout, "guest ignored the ACPI shutdown; killing it");
            }
            exited
        }
        Err(error) => {
            tracing::warn!(pid, %error, "cannot ask for an ACPI shutdown; killing");
            false
        }
    };
    // Only a process still known to be this VM's QEMU is killed: its pid may be reused.
    if !exited && qemu::running_pid(paths) == Some(pid) {
        qemu::kill(pid);
        if !qemu::wait_exit(paths, pid, KILL_WAIT).await {
            return Err(VmError::Unkillable);
        }
    }
    qemu::remove_runtime_files(paths);
    Ok(())
}

/// A free loopback port for each forwarded guest port.
fn allocate_forwards(spec: &VmSpec) -> Result<Vec<PortForward>, VmError> {
    let mut forwards = Vec::new();
    // Held until all are chosen so that no two forwards get the same port.
    let mut held = Vec::new();
    for nic in &spec.nics {
        let NicSpec::UserForward { forward_tcp, .. } = nic;
        for &guest in forward_tcp {
            let listener =
                std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| VmError::Io {
                    path: PathBuf::from("127.0.0.1:0"),
                    source,
                })?;
            let host = listener
                .local_addr()
                .map_err(|source| VmError::Io {
                    path: PathBuf::from("127.0.0.1:0"),
                    source,
                })?
                .port();
            held.push(listener);
            forwards.push(PortForward { guest, host });
        }
    }
    Ok(forwards)
}

/// Removes a VM's directory after a failed definition, killing a QEMU that may run in it.
fn discard(paths: &VmPaths) {
    if let Some(pid) = qemu::running_pid(paths) {
        qemu::kill(pid);
    }
    if let Err(error) = std::fs::remove_dir_all(&paths.dir)
        && error.kind() != io::ErrorKind::NotFound
    {
        tracing::error!(dir = %paths.dir.display(), %error, "cannot remove a failed VM's directory");
    }
}

fn tail(path: &Path, max_bytes: u64) -> Result<String, VmError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(source) => {
            return Err(VmError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let io = |source| VmError::Io {
        path: path.to_owned(),
        source,
    };
    let len = file.metadata().map_err(io)?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)))
        .map_err(io)?;
    let mut bytes = Vec::new();
    file.take(max_bytes).read_to_end(&mut bytes).map_err(io)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
