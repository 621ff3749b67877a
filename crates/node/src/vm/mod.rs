//! The VMs of a node: defining them (image, root disk, config drive), running them under
//! QEMU, and reporting what they really do. Every operation that changes a VM holds that
//! VM's lock, is checked against its generation (see `record.rs`) and converges: calling
//! it again after success changes nothing. Reads (status, list, console) take no lock:
//! the record is replaced atomically, so they never wait behind an image download or a
//! guest's slow shutdown. File I/O that syncs or walks trees runs off the async runtime,
//! which `nefos up` shares with the control plane.

mod diagnostics;
mod durable;
mod export;
mod incoming;
mod nics;
mod outgoing;
mod rebuild;
mod record;
mod resize;
mod suspend;
mod tombstone;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nefos_node_api::{
    ConsoleOutput, DiskFormat, DiskStatus, EnsureVm, NicSpec, PauseVm, PowerState, RebootVm,
    StartVm, StopVm, VmSpec, VmState, VmStatus,
};
use nefos_qmp::Qmp;
use nefos_qmp::commands::{
    Cont, HumanMonitorCommand, QueryStatus, Stop, SystemPowerdown, SystemReset,
};
use thiserror::Error;
use tokio::sync::Mutex;

use crate::config_drive::{self, ConfigDriveError};
use crate::control_plane::ControlPlaneClient;
use crate::image_cache::{CacheError, ImageCache, ImageKey};
use crate::qcow2::{self, OverlayError};
use crate::qemu::{self, QemuError, QemuSettings, VmPaths};
use crate::qemu_img::QemuImgError;
use record::{Admission, Operation, VmRecord};
use tombstone::Tombstones;

pub use export::ExportedDisk;

#[derive(Debug, Error)]
pub enum VmError {
    #[error("no VM {id} on this node")]
    NotFound { id: String },
    #[error(
        "the node has no tap for port {port}: the control plane has not given it that port's \
         network yet"
    )]
    PortMissing { port: String },
    #[error("the guest did not release NIC {device}")]
    UnplugTimeout { device: String },
    #[error("a VM has at most {most} ports")]
    TooManyNics { most: usize },
    #[error("{reason}")]
    Invalid { reason: String },
    #[error("generation {got} is older than the VM's generation {current}")]
    Stale { got: u64, current: u64 },
    #[error("generation {generation} was already used for another operation on this VM")]
    GenerationReused { generation: u64 },
    #[error(
        "the VM was destroyed at generation {destroyed}; generation {got} cannot define it again"
    )]
    Destroyed { got: u64, destroyed: u64 },
    #[error("the VM is not running")]
    NotRunning,
    #[error("the VM is running; it must be stopped first")]
    Running,
    #[error("the VM is not suspended")]
    NotSuspended,
    #[error("the VM is suspended; resume it or reboot it first")]
    Suspended,
    #[error("QEMU could not {what}: {reason}")]
    StateTransfer { what: &'static str, reason: String },
    /// A suspend that failed; the guest was given back as it was.
    #[error("the suspend failed; the VM runs on as it was")]
    SuspendFailed(#[source] Box<VmError>),
    /// A resume that failed; the VM is still suspended, its state kept.
    #[error("the resume failed; the VM is still suspended")]
    ResumeFailed(#[source] Box<VmError>),
    #[error("an operation on the VM is unfinished; retry it first")]
    Busy,
    #[error("the VM's last resize is neither confirmed nor reverted")]
    ResizeUnfinished,
    #[error("the VM has no resize to confirm or revert")]
    NotResized,
    #[error("a root disk cannot shrink (from {from} to {to} bytes)")]
    DiskShrink { from: u64, to: u64 },
    #[error("qemu-img failed")]
    QemuImg(#[source] QemuImgError),
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
    #[error("QEMU set up {got} of the VM's {wanted} port forwards")]
    Forwards { wanted: usize, got: usize },
    #[error("the VM is defined on this node already")]
    AlreadyHere,
    #[error("the VM is not being received by this node")]
    NotIncoming,
    #[error("the VM is being received from another node and has not run here yet")]
    Incoming,
    #[error("the migration's secret is wrong, or no VM is being received under that id")]
    MigrationSecret,
    #[error("the received guest may have run here: its move cannot be undone")]
    GuestMayHaveRun,
    #[error("the VM has not been sent from this node")]
    NoMigration,
    #[error("the received guest is not healthy: {reason}")]
    Unhealthy { reason: String },
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
/// How long a status read waits for QEMU's monitor, which serves one client at a time: a
/// monitor busy with an operation makes the status say less, not wait.
const STATUS_QMP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a killed QEMU may take to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// What a running QEMU was started with (`launched.json`): the parts of a spec it cannot
/// take on while it runs, which apply when it next starts.
type Launched = nefos_node_api::VmLaunch;

/// What QEMU started from `spec`, its ports' NICs in `nic_slots`, runs with.
fn launch_of(spec: &VmSpec, nic_slots: &BTreeMap<String, u8>) -> Launched {
    Launched {
        vcpus: spec.vcpus,
        ram_mib: spec.ram_mib,
        nics: spec.nics.clone(),
        guest: spec.guest.clone(),
        cpu_model: spec.cpu_model.clone(),
        nic_slots: nic_slots.clone(),
    }
}

/// The names of what differs between what QEMU runs (`launched`) and `spec`.
fn changes_to(launched: &Launched, spec: &VmSpec) -> Vec<String> {
    let wanted = launch_of(spec, &launched.nic_slots);
    [
        ("vcpus", launched.vcpus != wanted.vcpus),
        ("ram_mib", launched.ram_mib != wanted.ram_mib),
        ("nics", launched.nics != wanted.nics),
        ("guest", launched.guest != wanted.guest),
        ("cpu_model", launched.cpu_model != wanted.cpu_model),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(name, _)| name.to_owned())
    .collect()
}

#[derive(Debug)]
pub struct VmManager {
    root: PathBuf,
    tombstones: Tombstones,
    cache: ImageCache,
    qemu: QemuSettings,
    blocks: ControlPlaneClient,
    locks: Arc<std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>>,
    /// VMs found running with an export's leftovers, or in a suspend or resume that did
    /// not finish: see `resume_interrupted`.
    interrupted: std::sync::Mutex<Vec<String>>,
    outgoing: outgoing::Outgoing,
}

/// The directory under the VMs' root that holds tombstones; not a VM id (ids have no `.`).
const TOMBSTONES: &str = ".destroyed";

/// Removes what an interrupted export or resize left in a VM's directory; whether an
/// export was among it. Blocking.
fn remove_leftovers(paths: &VmPaths) -> bool {
    let mut exporting = false;
    let Ok(entries) = std::fs::read_dir(&paths.dir) else {
        return false;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if export::is_leftover(&name) {
            exporting |= name.starts_with("export-");
            if let Err(error) = std::fs::remove_file(entry.path()) {
                tracing::warn!(file = %entry.path().display(), %error, "cannot remove a leftover");
            }
        }
    }
    exporting
}

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T, VmError> + Send + 'static,
) -> Result<T, VmError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| VmError::Io {
            path: path.to_owned(),
            source: io::Error::other(error),
        })?
}

async fn save(paths: &VmPaths, record: &VmRecord) -> Result<(), VmError> {
    let (path, record) = (paths.state(), record.clone());
    blocking(&path.clone(), move || record.save(&path)).await
}

/// A VM's lock, held for one operation. Dropping the last holder of a VM's lock removes it
/// from the map, so the map holds only VMs being operated on.
struct VmGuard {
    id: String,
    lock: Arc<Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    locks: Arc<std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>>,
}

impl Drop for VmGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // One reference in the map and ours: nobody else waits for this VM.
        if Arc::strong_count(&self.lock) == 2 {
            locks.remove(&self.id);
        }
    }
}

impl VmManager {
    /// Opens the VMs under `root`, adopting those whose QEMU still runs, finishing destroys
    /// a crash interrupted and removing what a crash left of VMs that were never fully
    /// defined. Blocking: call it before serving, or from `spawn_blocking`.
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
        let tombstones = Tombstones::open(&root.join(TOMBSTONES))?;
        tombstones.prune(tombstone::KEEP);
        let mut interrupted = Vec::new();
        for entry in std::fs::read_dir(root).map_err(io)? {
            let dir = entry.map_err(io)?.path();
            if !dir.is_dir() || dir.file_name().is_some_and(|name| name == TOMBSTONES) {
                continue;
            }
            let paths = VmPaths::new(dir.clone());
            match VmRecord::load(&paths.state()) {
                Ok(Some(record))
                    if tombstones
                        .generation(&record.id)?
                        .is_some_and(|destroyed| destroyed >= record.generation) =>
                {
                    tracing::info!(vm = %record.id, "finishing an interrupted destroy");
                    discard(&paths);
                }
                Ok(Some(record)) => {
                    let exporting = remove_leftovers(&paths);
                    match qemu::running_pid(&paths) {
                        Some(pid) => {
                            tracing::info!(vm = %record.id, pid, "adopted a running VM");
                            // A guest an agent paused for an export it never finished runs
                            // on once the agent is back (`resume_interrupted`).
                            if exporting && record.power == PowerState::Running {
                                interrupted.push(record.id.clone());
                            }
                            // A suspend, resume or migration cut short is finished the
                            // same way.
                            if record.unfinished
                                && matches!(
                                    record.operation,
                                    Operation::Suspend | Operation::Resume | Operation::MigrateOut
                                )
                            {
                                interrupted.push(record.id.clone());
                            }
                        }
                        None => {
                            qemu::remove_runtime_files(&paths);
                            tracing::info!(vm = %record.id, "found a stopped VM");
                        }
                    }
                }
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
            tombstones,
            cache,
            qemu,
            blocks,
            locks: Arc::default(),
            interrupted: std::sync::Mutex::new(interrupted),
            outgoing: outgoing::Outgoing::default(),
        })
    }

    /// Brings the VMs whose export a crash interrupted back to running, if the export had
    /// paused them, and takes those whose suspend or resume it interrupted to the state
    /// recorded (saved and ended, or restored). Call once after [`VmManager::open`].
    pub async fn resume_interrupted(&self) {
        let ids = std::mem::take(
            &mut *self
                .interrupted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for id in ids {
            let _guard = self.lock(&id).await;
            let resumed = match self.existing(&id) {
                Ok((paths, mut record))
                    if record.unfinished && record.operation == Operation::MigrateOut =>
                {
                    self.recover_outgoing(&paths, &mut record).await
                }
                Ok((paths, record)) => self.converge(&paths, &record).await,
                Err(error) => Err(error),
            };
            match resumed {
                Ok(()) => tracing::info!(vm = %id, "converged after an interrupted operation"),
                Err(error) => {
                    tracing::warn!(vm = %id, %error, "cannot converge after an interrupted operation")
                }
            }
        }
    }

    pub fn qemu_settings(&self) -> &QemuSettings {
        &self.qemu
    }

    fn paths(&self, id: &str) -> VmPaths {
        VmPaths::new(self.root.join(id))
    }

    async fn lock(&self, id: &str) -> VmGuard {
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(id.to_owned())
            .or_default()
            .clone();
        let guard = lock.clone().lock_owned().await;
        VmGuard {
            id: id.to_owned(),
            lock,
            guard: Some(guard),
            locks: self.locks.clone(),
        }
    }

    /// How many VMs have a lock entry: those being operated on. For tests.
    pub fn locked_vm_count(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    fn existing(&self, id: &str) -> Result<(VmPaths, VmRecord), VmError> {
        validate::vm_id(id)?;
        let paths = self.paths(id);
        match VmRecord::load(&paths.state())? {
            Some(record) => Ok((paths, record)),
            None => Err(VmError::NotFound { id: id.to_owned() }),
        }
    }

    /// Defines the VM if needed and brings it to the asked power state. Changes to the
    /// vCPUs, RAM, NICs or guest configuration of a running VM are recorded and apply at
    /// its next start (the status lists them as `pending_changes`).
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
        let tombstones = self.tombstones.clone();
        let owned_id = id.to_owned();
        let destroyed = blocking(&self.root, move || tombstones.generation(&owned_id)).await?;
        if let Some(destroyed) = destroyed
            && request.generation <= destroyed
        {
            return Err(VmError::Destroyed {
                got: request.generation,
                destroyed,
            });
        }
        let record = match VmRecord::load(&paths.state())? {
            None => {
                let record = self.define(id, request, &key, &paths).await?;
                if destroyed.is_some() {
                    let (tombstones, id) = (self.tombstones.clone(), id.to_owned());
                    blocking(&self.root, move || tombstones.remove(&id)).await?;
                }
                if let Err(error) = self.converge(&paths, &record).await {
                    // A VM that never ran leaves nothing behind.
                    discard_off_runtime(&paths).await;
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
                record.unfinished = false;
                save(&paths, &record).await?;
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
        let record = VmRecord {
            id: id.to_owned(),
            generation: request.generation,
            operation: Operation::Ensure,
            power: request.power,
            spec: request.spec.clone(),
            image_id: image.id.clone(),
            unfinished: false,
            resized_from: None,
            suspended_from: None,
            incoming: None,
        };
        let (paths, saved) = (paths.clone(), record.clone());
        blocking(&paths.dir.clone(), move || {
            let make = || -> Result<(), VmError> {
                std::fs::create_dir(&paths.dir).map_err(|source| VmError::Io {
                    path: paths.dir.clone(),
                    source,
                })?;
                qcow2::create_overlay(
                    &paths.disk(),
                    &image.path,
                    image.inspection.format,
                    saved.spec.disk_bytes,
                )
                .map_err(VmError::Disk)?;
                saved.save(&paths.state())
            };
            make().inspect_err(|_| discard(&paths))
        })
        .await?;
        Ok(record)
    }

    /// Brings QEMU to the record's power state.
    async fn converge(&self, paths: &VmPaths, record: &VmRecord) -> Result<(), VmError> {
        let pid = qemu::running_pid(paths);
        match (record.power, pid) {
            (PowerState::Running | PowerState::Paused, None)
                if suspend::has_saved_state(paths).await =>
            {
                self.restore_qemu(paths, record).await
            }
            (PowerState::Running | PowerState::Paused, None) => {
                self.start_qemu(paths, record).await?;
                if record.power == PowerState::Paused {
                    execute(paths, &Stop {}).await?;
                }
                Ok(())
            }
            // Suspended by a call that did not finish: finish it.
            (PowerState::Suspended, Some(pid)) => suspend::save_state(paths, pid).await,
            (PowerState::Suspended, None) => Ok(()),
            (PowerState::Stopped, Some(pid)) => {
                stop_qemu(
                    paths,
                    pid,
                    Duration::from_secs(nefos_node_api::default_stop_timeout()),
                )
                .await
            }
            // A restore cut short: finish it, or start it again.
            (PowerState::Running | PowerState::Paused, Some(pid))
                if suspend::has_saved_state(paths).await =>
            {
                self.converge_restore(paths, record, pid).await
            }
            (PowerState::Running, Some(_)) => {
                // Only a pause is undone: other non-running states (an incoming
                // migration, an I/O error) are not ours to resume.
                if execute(paths, &QueryStatus {}).await?.status == "paused" {
                    execute(paths, &Cont {}).await?;
                }
                Ok(())
            }
            (PowerState::Paused, Some(_)) => {
                if execute(paths, &QueryStatus {}).await?.running {
                    execute(paths, &Stop {}).await?;
                }
                Ok(())
            }
            // Off is off: a state saved before is not restored at the next start.
            (PowerState::Stopped, None) => suspend::remove_saved_state(paths).await,
        }
    }

    /// Records a new operation on an existing VM (or recognises a retry of it) and sets the
    /// power state it asks for.
    async fn apply(
        &self,
        id: &str,
        generation: u64,
        operation: Operation,
        power: PowerState,
    ) -> Result<(VmPaths, VmRecord), VmError> {
        let (paths, mut record) = self.existing(id)?;
        record.admit(generation, operation)?;
        record.generation = generation;
        record.operation = operation;
        record.power = power;
        record.unfinished = false;
        save(&paths, &record).await?;
        Ok((paths, record))
    }

    pub async fn start(&self, id: &str, request: &StartVm) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, record) = self
            .apply(
                id,
                request.generation,
                Operation::Start,
                PowerState::Running,
            )
            .await?;
        self.converge(&paths, &record).await?;
        self.status_of(&paths, &record).await
    }

    pub async fn stop(&self, id: &str, request: &StopVm) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, record) = self
            .apply(id, request.generation, Operation::Stop, PowerState::Stopped)
            .await?;
        if let Some(pid) = qemu::running_pid(&paths) {
            stop_qemu(&paths, pid, Duration::from_secs(request.timeout_seconds)).await?;
        }
        suspend::remove_saved_state(&paths).await?;
        self.status_of(&paths, &record).await
    }

    /// Stops the guest's vCPUs; it keeps its memory. Only a VM whose QEMU runs.
    pub async fn pause(&self, id: &str, request: &PauseVm) -> Result<VmStatus, VmError> {
        self.set_paused(id, request.generation, true).await
    }

    pub async fn unpause(&self, id: &str, request: &PauseVm) -> Result<VmStatus, VmError> {
        self.set_paused(id, request.generation, false).await
    }

    async fn set_paused(
        &self,
        id: &str,
        generation: u64,
        paused: bool,
    ) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, _) = self.existing(id)?;
        if qemu::running_pid(&paths).is_none() {
            return Err(VmError::NotRunning);
        }
        let (operation, power) = if paused {
            (Operation::Pause, PowerState::Paused)
        } else {
            (Operation::Unpause, PowerState::Running)
        };
        let (paths, record) = self.apply(id, generation, operation, power).await?;
        self.converge(&paths, &record).await?;
        self.status_of(&paths, &record).await
    }

    /// Reboots a running VM. A reboot is done once per generation: it is recorded as
    /// unfinished before it acts and finished after, so a retry after a failure reboots
    /// and a retry after success does not. Changes waiting for a restart make any reboot
    /// restart QEMU, as a hard reboot in Nova redefines the guest.
    pub async fn reboot(&self, id: &str, request: &RebootVm) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, mut record) = self.existing(id)?;
        let operation = Operation::Reboot { hard: request.hard };
        match record.admit(request.generation, operation)? {
            Admission::New => {
                // A hard reboot starts a stopped VM, as Nova's does; a soft one needs a guest
                // to ask.
                if !request.hard && qemu::running_pid(&paths).is_none() {
                    return Err(VmError::NotRunning);
                }
                record.generation = request.generation;
                record.operation = operation;
                record.power = PowerState::Running;
                record.unfinished = true;
                save(&paths, &record).await?;
            }
            Admission::Retry if !record.unfinished => {
                return self.status_of(&paths, &record).await;
            }
            Admission::Retry => {}
        }
        let restart = !self.pending_changes(&paths, &record).await.is_empty();
        match qemu::running_pid(&paths) {
            // A stopped VM's hard reboot, or a reboot cut short between its stop and its
            // start.
            None => self.start_qemu(&paths, &record).await?,
            Some(_) if request.hard && !restart => {
                execute(&paths, &SystemReset {}).await?;
                // A reset keeps paused vCPUs paused; the VM is to run.
                self.converge(&paths, &record).await?;
            }
            Some(pid) if request.hard => {
                kill_qemu(&paths, pid).await?;
                self.start_qemu(&paths, &record).await?;
            }
            Some(pid) => {
                stop_qemu(&paths, pid, Duration::from_secs(request.timeout_seconds)).await?;
                self.start_qemu(&paths, &record).await?;
            }
        }
        record.unfinished = false;
        save(&paths, &record).await?;
        self.status_of(&paths, &record).await
    }

    /// Kills QEMU and removes the VM's directory, leaving a tombstone of the generation so
    /// an older call cannot bring the VM back. A VM the node lacks is already gone.
    pub async fn destroy(&self, id: &str, generation: u64) -> Result<(), VmError> {
        validate::vm_id(id)?;
        let _guard = self.lock(id).await;
        self.destroy_held(id, generation).await
    }

    /// [`VmManager::destroy`], its caller holding the VM's lock.
    async fn destroy_held(&self, id: &str, generation: u64) -> Result<(), VmError> {
        let paths = self.paths(id);
        if let Some(record) = VmRecord::load(&paths.state())?
            && generation < record.generation
        {
            return Err(VmError::Stale {
                got: generation,
                current: record.generation,
            });
        }
        let (tombstones, owned_id) = (self.tombstones.clone(), id.to_owned());
        blocking(&self.root, move || {
            // A tombstone never goes back: a destroy older than the last is a no-op.
            match tombstones.generation(&owned_id)? {
                Some(destroyed) if destroyed >= generation => Ok(()),
                _ => tombstones.bury(&owned_id, generation),
            }
        })
        .await?;
        if let Some(pid) = qemu::running_pid(&paths) {
            kill_qemu(&paths, pid).await?;
        }
        let dir = paths.dir.clone();
        blocking(&dir.clone(), move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => durable::sync_parent(&dir).map_err(|source| VmError::Io {
                path: dir.clone(),
                source,
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(VmError::Io { path: dir, source }),
        })
        .await?;
        tracing::info!(vm = id, generation, "destroyed");
        Ok(())
    }

    pub async fn status(&self, id: &str) -> Result<VmStatus, VmError> {
        let (paths, record) = self.existing(id)?;
        self.status_of(&paths, &record).await
    }

    pub async fn list(&self) -> Result<Vec<VmStatus>, VmError> {
        let io = |source| VmError::Io {
            path: self.root.clone(),
            source,
        };
        let mut ids = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.root).await.map_err(io)?;
        while let Some(entry) = entries.next_entry().await.map_err(io)? {
            if let Some(name) = entry.file_name().to_str() {
                ids.push(name.to_owned());
            }
        }
        ids.sort();
        let mut statuses = Vec::new();
        for id in ids {
            match self.status(&id).await {
                Ok(status) => statuses.push(status),
                // Destroyed or being defined meanwhile, a tombstone, or a stray file.
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

    /// The VNC socket of a VM whose QEMU runs.
    pub fn vnc_socket(&self, id: &str) -> Result<PathBuf, VmError> {
        let (paths, _) = self.existing(id)?;
        if qemu::running_pid(&paths).is_none() {
            return Err(VmError::NotRunning);
        }
        Ok(paths.vnc())
    }

    /// The last `max_bytes` of the serial console, across restarts.
    pub async fn console(&self, id: &str, max_bytes: u64) -> Result<ConsoleOutput, VmError> {
        let (paths, _) = self.existing(id)?;
        let path = paths.console();
        let output = blocking(&path.clone(), move || tail(&path, max_bytes)).await?;
        Ok(ConsoleOutput { output })
    }

    /// Starts the VM's QEMU on its overlay, whose base is the cached image the VM was
    /// defined on (by this agent or an earlier one: the record and the cache persist).
    /// Boots the VM afresh; a state saved by a suspend is discarded first.
    async fn start_qemu(&self, paths: &VmPaths, record: &VmRecord) -> Result<(), VmError> {
        // Its disk is incomplete until the migration ends: it must never boot from it.
        if record.incoming.is_some() {
            return Err(VmError::Incoming);
        }
        let (id, spec) = (record.id.as_str(), &record.spec);
        let base = self.cache.path_of(&record.image_id, spec.image.format);
        suspend::remove_saved_state(paths).await?;
        qemu::remove_runtime_files(paths);
        let files = config_drive::files(id, &spec.name, &spec.guest, &spec.nics)
            .map_err(VmError::ConfigDrive)?;
        config_drive::build(&paths.config_drive(), spec.guest.layout, &files)
            .await
            .map_err(VmError::ConfigDrive)?;
        check_taps(spec).await?;
        let slots = slots_for(&spec.nics, &BTreeMap::new())?;
        let args = qemu::command_line(&self.qemu, id, spec, &slots, paths, &base);
        let pid = qemu::launch(&self.qemu, &args, paths)
            .await
            .map_err(VmError::Qemu)?;
        if let Err(error) = record_launch(paths, spec, &slots).await {
            // A QEMU whose forwards are unknown is of no use to the control plane.
            kill_qemu(paths, pid).await?;
            return Err(error);
        }
        tracing::info!(vm = id, pid, "started");
        Ok(())
    }

    /// What of the record's spec the running QEMU lacks; nothing when QEMU is not running
    /// or was started by an agent that did not record it.
    async fn pending_changes(&self, paths: &VmPaths, record: &VmRecord) -> Vec<String> {
        match tokio::fs::read(paths.launched()).await {
            Ok(bytes) => serde_json::from_slice::<Launched>(&bytes)
                .map(|launched| changes_to(&launched, &record.spec))
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    async fn status_of(&self, paths: &VmPaths, record: &VmRecord) -> Result<VmStatus, VmError> {
        let pid = qemu::running_pid(paths);
        let (state, qemu_status) = match pid {
            None if suspend::has_saved_state(paths).await => (VmState::Suspended, None),
            None => (VmState::Stopped, None),
            // The migration holds QEMU's monitor; the guest runs until its switch.
            Some(_) if self.outgoing.active(&record.id) => (
                match record.power {
                    PowerState::Paused => VmState::Paused,
                    _ => VmState::Running,
                },
                Some("migrating".to_owned()),
            ),
            Some(_) => match query_status(paths).await {
                Ok(status) if status.running => (VmState::Running, Some(status.status)),
                Ok(status) => (VmState::Paused, Some(status.status)),
                Err(error) => {
                    // QEMU is alive but its monitor did not answer: busy with another
                    // client, or exiting.
                    tracing::debug!(vm = %record.id, %error, "query-status failed");
                    (VmState::Running, None)
                }
            },
        };
        let (forwards, pending_changes) = if pid.is_some() {
            let forwards = tokio::fs::read(paths.forwards())
                .await
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_default();
            (forwards, self.pending_changes(paths, record).await)
        } else {
            (Vec::new(), Vec::new())
        };
        let allocated_bytes = tokio::fs::metadata(paths.disk())
            .await
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
            pending_changes,
            resized_from: record.resized_from,
            size: Some(record.size()),
        })
    }
}

/// QEMU would make a tap the node did not (on no bridge) rather than fail: every port's
/// tap must be there first.
pub(super) async fn check_taps(spec: &VmSpec) -> Result<(), VmError> {
    for nic in &spec.nics {
        if let NicSpec::Port { port_id, .. } = nic {
            let device = Path::new("/sys/class/net").join(nefos_node_api::tap_name(port_id));
            if !tokio::fs::try_exists(&device).await.unwrap_or(false) {
                return Err(VmError::PortMissing {
                    port: port_id.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Reads back the ports QEMU bound for the VM's forwards and writes them, with what QEMU
/// was started with, to the run directory.
/// The PCI slots of `nics`' ports, those of `kept` kept.
pub(super) fn slots_for(
    nics: &[NicSpec],
    kept: &BTreeMap<String, u8>,
) -> Result<BTreeMap<String, u8>, VmError> {
    qemu::nic_slots(nics, kept).ok_or(VmError::TooManyNics {
        most: usize::from(qemu::LAST_NIC_SLOT - qemu::FIRST_NIC_SLOT) + 1,
    })
}

async fn record_launch(
    paths: &VmPaths,
    spec: &VmSpec,
    slots: &BTreeMap<String, u8>,
) -> Result<(), VmError> {
    let wanted: usize = spec
        .nics
        .iter()
        .map(|nic| match nic {
            NicSpec::UserForward { forward_tcp, .. } => forward_tcp.len(),
            NicSpec::Port { .. } => 0,
        })
        .sum();
    let forwards = if wanted == 0 {
        Vec::new()
    } else {
        let usernet = execute(
            paths,
            &HumanMonitorCommand {
                command_line: "info usernet".to_owned(),
            },
        )
        .await?;
        qemu::forwards_in(&usernet)
    };
    if forwards.len() != wanted {
        return Err(VmError::Forwards {
            wanted,
            got: forwards.len(),
        });
    }
    let write = |path: PathBuf, value: serde_json::Result<Vec<u8>>| async move {
        let bytes = value.map_err(|e| VmError::Io {
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        tokio::fs::write(&path, bytes)
            .await
            .map_err(|source| VmError::Io { path, source })
    };
    write(paths.forwards(), serde_json::to_vec(&forwards)).await?;
    write(
        paths.launched(),
        serde_json::to_vec(&launch_of(spec, slots)),
    )
    .await
}

/// Runs one QMP command on the VM's QEMU.
async fn execute<C: nefos_qmp::commands::QmpCommand>(
    paths: &VmPaths,
    command: &C,
) -> Result<C::Reply, VmError> {
    let qmp = Qmp::connect(&paths.qmp(), QMP_TIMEOUT)
        .await
        .map_err(VmError::Qmp)?;
    qmp.execute(command).await.map_err(VmError::Qmp)
}

async fn query_status(paths: &VmPaths) -> Result<nefos_qmp::commands::StatusInfo, VmError> {
    let qmp = Qmp::connect(&paths.qmp(), STATUS_QMP_TIMEOUT)
        .await
        .map_err(VmError::Qmp)?;
    qmp.execute(&QueryStatus {}).await.map_err(VmError::Qmp)
}

/// Kills the VM's QEMU at once and waits for it to go.
async fn kill_qemu(paths: &VmPaths, pid: u32) -> Result<(), VmError> {
    qemu::kill(pid);
    if !qemu::wait_exit(paths, pid, KILL_WAIT).await {
        return Err(VmError::Unkillable);
    }
    qemu::remove_runtime_files(paths);
    Ok(())
}

/// ACPI power button, then SIGKILL if the guest has not powered off within `timeout`.
async fn stop_qemu(paths: &VmPaths, pid: u32, timeout: Duration) -> Result<(), VmError> {
    let exited = match execute(paths, &SystemPowerdown {}).await {
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
        return kill_qemu(paths, pid).await;
    }
    qemu::remove_runtime_files(paths);
    Ok(())
}

/// Removes a VM's directory after a failed definition, killing a QEMU that may run in it.
/// Blocking.
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

async fn discard_off_runtime(paths: &VmPaths) {
    let paths = paths.clone();
    if let Err(error) = tokio::task::spawn_blocking(move || discard(&paths)).await {
        tracing::error!(%error, "cannot remove a failed VM's directory");
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
