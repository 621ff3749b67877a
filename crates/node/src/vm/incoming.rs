//! Receiving a running VM from another node (see `nefos_node_api::IncomingVm`).
//!
//! The VM is defined as any other (image in the cache, an empty overlay on it, the config
//! drive), and QEMU starts with the source's devices, waiting for the guest's state
//! (`-incoming defer`) with its vCPUs held (`-S`). It serves the new overlay over NBD and
//! waits for the state on unix sockets in the VM's directory, which the agent joins to
//! the source's connections once they present the migration's secret. Until the guest
//! runs here, the record says it is incoming: its disk is incomplete, so nothing boots it
//! afresh, and the control plane may still discard it. The finish lets the received
//! guest run, once QEMU says the whole state arrived, and checks it runs on.

use std::time::Duration;

use nefos_node_api::{
    EnsureVm, FinishIncoming, IncomingVm, MigrationChannel, PowerState, Secret, VmSpec, VmStatus,
};
use nefos_qmp::Qmp;
use nefos_qmp::commands::{
    BlockExportAdd, BlockExportDel, Cont, MigrateIncoming, NbdServerStart, NbdServerStop,
    QueryMigrate, QueryStatus, SocketAddressLegacy,
};

use super::record::{Admission, IncomingRecord, Operation, VmRecord};
use super::{
    QMP_TIMEOUT, VmError, VmManager, blocking, check_taps, discard_off_runtime, execute, kill_qemu,
    record_launch, save, slots_for, validate,
};
use crate::config_drive;
use crate::image_cache::ImageKey;
use crate::qemu::{self, VmPaths};

/// The export the source's mirror writes to.
const DISK_EXPORT: &str = "root";
/// How long the last of the guest's state may take to arrive and load once the source has
/// sent it all.
const LOAD_WAIT: Duration = Duration::from_secs(30);
/// How long a received guest must keep running to be called healthy.
const HEALTH_WINDOW: Duration = Duration::from_millis(500);
/// QEMU run states in which a guest is not well.
const UNHEALTHY: &[&str] = &[
    "guest-panicked",
    "internal-error",
    "io-error",
    "shutdown",
    "watchdog",
];

impl VmManager {
    /// Makes this node ready to receive VM `id`; a retry finds it ready.
    pub async fn prepare_incoming(
        &self,
        id: &str,
        request: &IncomingVm,
    ) -> Result<VmStatus, VmError> {
        validate::vm_id(id)?;
        validate::spec(&request.spec)?;
        if request.power != PowerState::Running && request.power != PowerState::Paused {
            return Err(VmError::Invalid {
                reason: "only a running or paused VM can be received".to_owned(),
            });
        }
        let key = ImageKey::new(&request.spec.image).map_err(VmError::Image)?;
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
            Some(record) => {
                if record.admit(request.generation, Operation::Incoming)? == Admission::New {
                    return Err(VmError::AlreadyHere);
                }
                record
            }
            None => {
                let ensure = EnsureVm {
                    generation: request.generation,
                    spec: request.spec.clone(),
                    power: request.power,
                };
                let mut record = self.define(id, &ensure, &key, &paths).await?;
                record.operation = Operation::Incoming;
                record.incoming = Some(IncomingRecord {
                    secret_hash: Secret::new(request.secret.clone()).stored_hash(),
                });
                if let Err(error) = save(&paths, &record).await {
                    discard_off_runtime(&paths).await;
                    return Err(error);
                }
                if destroyed.is_some() {
                    let (tombstones, id) = (self.tombstones.clone(), id.to_owned());
                    blocking(&self.root, move || tombstones.remove(&id)).await?;
                }
                record
            }
        };
        if record.incoming.is_none() {
            // Received and running already: this was a late retry.
            return self.status_of(&paths, &record).await;
        }
        if qemu::running_pid(&paths).is_none()
            && let Err(error) = self.start_incoming(&paths, &record, request).await
        {
            // Nothing of the guest has run here: nothing is lost with it.
            discard_off_runtime(&paths).await;
            return Err(error);
        }
        self.status_of(&paths, &record).await
    }

    /// Starts the QEMU that waits for the guest's state, and its NBD export.
    async fn start_incoming(
        &self,
        paths: &VmPaths,
        record: &VmRecord,
        request: &IncomingVm,
    ) -> Result<(), VmError> {
        let launch = &request.launch;
        let spec = VmSpec {
            vcpus: launch.vcpus,
            ram_mib: launch.ram_mib,
            nics: launch.nics.clone(),
            guest: launch.guest.clone(),
            cpu_model: launch.cpu_model.clone(),
            ..record.spec.clone()
        };
        validate::spec(&spec)?;
        let slots = slots_for(&spec.nics, &launch.nic_slots)?;
        if slots != launch.nic_slots {
            return Err(VmError::Invalid {
                reason: "the NICs' slots do not match the NICs".to_owned(),
            });
        }
        let base = self.cache.path_of(&record.image_id, spec.image.format);
        qemu::remove_runtime_files(paths);
        for channel in MigrationChannel::ALL {
            remove_socket(&incoming_socket(paths, channel)).await?;
        }
        let files = config_drive::files(&record.id, &spec.name, &spec.guest, &spec.nics)
            .map_err(VmError::ConfigDrive)?;
        config_drive::build(&paths.config_drive(), spec.guest.layout, &files)
            .await
            .map_err(VmError::ConfigDrive)?;
        check_taps(&spec).await?;
        let mut args = qemu::command_line(&self.qemu, &record.id, &spec, &slots, paths, &base);
        for arg in ["-incoming", "defer", "-S"] {
            args.push(arg.into());
        }
        let pid = qemu::launch(&self.qemu, &args, paths)
            .await
            .map_err(VmError::Qemu)?;
        let listening = async {
            let qmp = Qmp::connect(&paths.qmp(), QMP_TIMEOUT)
                .await
                .map_err(VmError::Qmp)?;
            let socket = |channel| incoming_socket(paths, channel).display().to_string();
            qmp.execute(&NbdServerStart {
                addr: SocketAddressLegacy::Unix {
                    path: socket(MigrationChannel::Disk),
                },
            })
            .await
            .map_err(VmError::Qmp)?;
            qmp.execute(&BlockExportAdd {
                kind: "nbd",
                id: DISK_EXPORT.to_owned(),
                node_name: "root".to_owned(),
                name: DISK_EXPORT.to_owned(),
                writable: true,
            })
            .await
            .map_err(VmError::Qmp)?;
            qmp.execute(&MigrateIncoming {
                uri: format!("unix:{}", socket(MigrationChannel::Memory)),
            })
            .await
            .map_err(VmError::Qmp)?;
            drop(qmp);
            record_launch(paths, &spec, &slots).await
        }
        .await;
        if let Err(error) = listening {
            kill_qemu(paths, pid).await?;
            return Err(error);
        }
        tracing::info!(vm = %record.id, pid, "waiting for the guest's state");
        Ok(())
    }

    /// The unix socket of the waiting QEMU's `channel`, for a connection that presented
    /// `secret`.
    pub fn incoming_channel(
        &self,
        id: &str,
        channel: MigrationChannel,
        secret: &Secret,
    ) -> Result<std::path::PathBuf, VmError> {
        // One answer for every refusal: a caller without the secret learns nothing of
        // which VMs there are.
        let (paths, record) = self.existing(id).map_err(|_| VmError::MigrationSecret)?;
        let Some(incoming) = &record.incoming else {
            return Err(VmError::MigrationSecret);
        };
        if !secret.has_stored_hash(&incoming.secret_hash) {
            return Err(VmError::MigrationSecret);
        }
        if qemu::running_pid(&paths).is_none() {
            return Err(VmError::NotRunning);
        }
        Ok(incoming_socket(&paths, channel))
    }

    /// Undoes the reception of VM `id`: destroys the copy (at `generation`) unless its
    /// guest may have run here, which the finish's record says (it is recorded before the
    /// guest is let go). A VM the node lacks is already undone.
    pub async fn abort_incoming(&self, id: &str, generation: u64) -> Result<(), VmError> {
        validate::vm_id(id)?;
        let _guard = self.lock(id).await;
        let paths = self.paths(id);
        if let Some(record) = VmRecord::load(&paths.state())? {
            let finishing = record.operation == Operation::FinishIncoming;
            if record.incoming.is_none() || finishing {
                return Err(VmError::GuestMayHaveRun);
            }
        }
        self.destroy_held(id, generation).await?;
        tracing::info!(vm = id, generation, "reception undone");
        Ok(())
    }

    /// Lets the received guest run here (or stay paused, as it was sent), once its whole
    /// state has arrived, and checks that it runs on.
    pub async fn finish_incoming(
        &self,
        id: &str,
        request: &FinishIncoming,
    ) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, mut record) = self.existing(id)?;
        match record.admit(request.generation, Operation::FinishIncoming)? {
            Admission::Retry if !record.unfinished => {
                return self.status_of(&paths, &record).await;
            }
            Admission::Retry => {}
            Admission::New => {
                if record.incoming.is_none() {
                    return Err(VmError::NotIncoming);
                }
                record.generation = request.generation;
                record.operation = Operation::FinishIncoming;
                record.unfinished = true;
                save(&paths, &record).await?;
            }
        }
        let pid = qemu::running_pid(&paths).ok_or(VmError::NotRunning)?;
        // The source says completed once it has written the whole state; the last of it
        // may still be on its way here, or being loaded.
        let deadline = std::time::Instant::now() + LOAD_WAIT;
        let mut status = execute(&paths, &QueryStatus {}).await?;
        while status.status == "inmigrate" && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            status = execute(&paths, &QueryStatus {}).await?;
        }
        // A retry after the guest was let go finds it running: only check it again.
        if status.status == "inmigrate" || status.status == "prelaunch" || !status.running {
            let received = execute(&paths, &QueryMigrate {}).await?;
            if status.status == "inmigrate" || received.status.as_deref() != Some("completed") {
                return Err(VmError::StateTransfer {
                    what: "receive the guest",
                    reason: received
                        .error_desc
                        .unwrap_or_else(|| "its state has not all arrived".to_owned()),
                });
            }
        }
        stop_serving_disk(&paths).await;
        if record.power == PowerState::Running && !status.running {
            execute(&paths, &Cont {}).await?;
        }
        check_health(&paths, pid, record.power).await?;
        record.incoming = None;
        record.unfinished = false;
        save(&paths, &record).await?;
        for channel in MigrationChannel::ALL {
            remove_socket(&incoming_socket(&paths, channel)).await?;
        }
        tracing::info!(vm = id, pid, "received; the guest runs here");
        self.status_of(&paths, &record).await
    }
}

/// Ends the NBD export and server; they may be gone already (a retry).
async fn stop_serving_disk(paths: &VmPaths) {
    let export = BlockExportDel {
        id: DISK_EXPORT.to_owned(),
        mode: "hard",
    };
    if let Err(error) = execute(paths, &export).await {
        tracing::debug!(%error, "no disk export to end");
    }
    if let Err(error) = execute(paths, &NbdServerStop {}).await {
        tracing::debug!(%error, "no NBD server to stop");
    }
}

/// The guest is healthy when QEMU, after a short while, still runs it as asked (paused
/// if it came paused), in none of the states of a guest in trouble.
async fn check_health(paths: &VmPaths, pid: u32, power: PowerState) -> Result<(), VmError> {
    tokio::time::sleep(HEALTH_WINDOW).await;
    let unhealthy = |reason: String| VmError::Unhealthy { reason };
    if qemu::running_pid(paths) != Some(pid) {
        return Err(unhealthy("QEMU ended".to_owned()));
    }
    let status = execute(paths, &QueryStatus {}).await?;
    if UNHEALTHY.contains(&status.status.as_str()) {
        return Err(unhealthy(format!(
            "QEMU says the guest is {}",
            status.status
        )));
    }
    if power == PowerState::Running && !status.running {
        return Err(unhealthy(format!(
            "the guest is {}, not running",
            status.status
        )));
    }
    Ok(())
}

/// Where the waiting QEMU listens for `channel`.
pub(super) fn incoming_socket(paths: &VmPaths, channel: MigrationChannel) -> std::path::PathBuf {
    paths
        .dir
        .join(format!("incoming-{}.sock", channel.as_str()))
}

pub(super) async fn remove_socket(path: &std::path::Path) -> Result<(), VmError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(VmError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}
