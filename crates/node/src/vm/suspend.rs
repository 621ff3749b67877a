//! Suspending a VM to the node's disk and resuming it (Nova's suspend, libvirt's managed
//! save): the guest's vCPUs stop, QEMU writes the machine's memory and device state to a
//! file as an outgoing migration, and QEMU ends, so a suspended VM holds no memory on the
//! node. A resume starts QEMU with `-incoming defer`, loads the file and lets the guest go
//! on where it was.
//!
//! The saved state is only valid with the disk as the saved guest left it, so it is
//! written under a temporary name and renamed once complete (a partial file is never
//! taken for a state), any fresh boot, rebuild or revert removes it first, and a restore
//! removes it before it lets the guest run. Hence a QEMU found beside a saved state has
//! not run the guest since the save: either the suspend had saved and not yet ended QEMU
//! (end it), or a restore had started (finish the load, or start it again).
//!
//! Both are recorded unfinished before they act, so the control plane's retry after a
//! crash does the rest. A suspend that fails gives the guest back as it was (the
//! migration cancelled, the vCPUs resumed) and is refused, not retried; a resume that
//! fails leaves the VM suspended with its state kept.

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use nefos_node_api::{PowerState, SuspendVm, VmSpec, VmStatus};
use nefos_qmp::commands::{
    Cont, Migrate, MigrateCancel, MigrateIncoming, MigrateSetCapabilities, MigrateSetParameters,
    MigrationCapability, QueryMigrate, QueryStatus, Stop,
};

use super::record::{Admission, Operation, VmRecord};
use super::{
    Launched, QMP_TIMEOUT, VmError, VmManager, blocking, durable, execute, kill_qemu,
    record_launch, save,
};
use crate::qemu::{self, VmPaths};
use nefos_qmp::Qmp;

/// How long saving or loading a guest's state may take: its RAM written to or read from
/// the node's disk.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Bytes per second a save may write: as fast as the node's disk takes it.
const SAVE_BANDWIDTH: u64 = 1 << 40;

impl VmManager {
    /// Saves a running or paused VM's state to disk and ends its QEMU.
    pub async fn suspend(&self, id: &str, request: &SuspendVm) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, mut record) = self.existing(id)?;
        match record.admit(request.generation, Operation::Suspend)? {
            Admission::Retry if !record.unfinished => {
                return self.status_of(&paths, &record).await;
            }
            Admission::Retry => {}
            Admission::New => {
                if qemu::running_pid(&paths).is_none() {
                    return Err(VmError::NotRunning);
                }
                if record.resized_from.is_some() {
                    return Err(VmError::ResizeUnfinished);
                }
                record.generation = request.generation;
                record.operation = Operation::Suspend;
                record.suspended_from = Some(record.power);
                record.power = PowerState::Suspended;
                record.unfinished = true;
                save(&paths, &record).await?;
            }
        }
        if let Some(pid) = qemu::running_pid(&paths)
            && let Err(error) = save_state(&paths, pid).await
        {
            // The guest goes on as it was, and nothing half-saved is left to restore.
            let before = record.suspended_from.unwrap_or(PowerState::Running);
            give_back(&paths, before).await;
            remove_saved_state(&paths).await?;
            record.power = before;
            record.unfinished = false;
            save(&paths, &record).await?;
            return Err(VmError::SuspendFailed(Box::new(error)));
        }
        record.unfinished = false;
        save(&paths, &record).await?;
        tracing::info!(vm = id, generation = request.generation, "suspended");
        self.status_of(&paths, &record).await
    }

    /// Restores a suspended VM; it runs on from where it was saved.
    pub async fn resume(&self, id: &str, request: &SuspendVm) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, mut record) = self.existing(id)?;
        match record.admit(request.generation, Operation::Resume)? {
            Admission::Retry if !record.unfinished => {
                return self.status_of(&paths, &record).await;
            }
            Admission::Retry => {}
            Admission::New => {
                if qemu::running_pid(&paths).is_some() || !has_saved_state(&paths).await {
                    return Err(VmError::NotSuspended);
                }
                record.generation = request.generation;
                record.operation = Operation::Resume;
                record.power = PowerState::Running;
                record.unfinished = true;
                save(&paths, &record).await?;
            }
        }
        if let Err(error) = self.converge(&paths, &record).await {
            // Still suspended, its state kept for another try (a hard reboot discards it).
            if qemu::running_pid(&paths).is_none() && has_saved_state(&paths).await {
                record.power = PowerState::Suspended;
                record.unfinished = false;
                save(&paths, &record).await?;
                return Err(VmError::ResumeFailed(Box::new(error)));
            }
            return Err(error);
        }
        record.unfinished = false;
        save(&paths, &record).await?;
        tracing::info!(vm = id, generation = request.generation, "resumed");
        self.status_of(&paths, &record).await
    }

    /// Starts a QEMU that loads the saved state, paused, removes the state, and lets the
    /// guest run unless the record wants it paused.
    pub(super) async fn restore_qemu(
        &self,
        paths: &VmPaths,
        record: &VmRecord,
    ) -> Result<(), VmError> {
        let (spec, slots) = self.restored_spec(paths, record).await?;
        let base = self.cache.path_of(&record.image_id, spec.image.format);
        qemu::remove_runtime_files(paths);
        super::check_taps(&spec).await?;
        let mut args = qemu::command_line(&self.qemu, &record.id, &spec, &slots, paths, &base);
        for arg in ["-incoming", "defer", "-S"] {
            args.push(arg.into());
        }
        let pid = qemu::launch(&self.qemu, &args, paths)
            .await
            .map_err(VmError::Qemu)?;
        let loaded = async {
            let qmp = Qmp::connect(&paths.qmp(), QMP_TIMEOUT)
                .await
                .map_err(VmError::Qmp)?;
            let uri = format!("file:{}", paths.saved_state().display());
            qmp.execute(&MigrateIncoming { uri })
                .await
                .map_err(VmError::Qmp)?;
            wait_for_migration(&qmp, "load the saved state").await
        }
        .await;
        if let Err(error) = loaded {
            // The saved state stays for another try; a hard reboot discards it.
            kill_qemu(paths, pid).await?;
            return Err(error);
        }
        self.finish_restore(paths, record, &spec, &slots).await?;
        tracing::info!(vm = %record.id, pid, "restored from its saved state");
        Ok(())
    }

    /// The spec the saved state was taken under: the devices must be the ones it was
    /// saved from; changes made since apply at the next fresh boot.
    async fn restored_spec(
        &self,
        paths: &VmPaths,
        record: &VmRecord,
    ) -> Result<(VmSpec, BTreeMap<String, u8>), VmError> {
        let launch_path = paths.saved_launch();
        let bytes = tokio::fs::read(&launch_path)
            .await
            .map_err(|source| VmError::Io {
                path: launch_path.clone(),
                source,
            })?;
        let launched: Launched = serde_json::from_slice(&bytes).map_err(|error| VmError::Io {
            path: launch_path,
            source: io::Error::new(io::ErrorKind::InvalidData, error),
        })?;
        // Saved by an agent that did not record slots: they were given in order.
        let slots = super::slots_for(&launched.nics, &launched.nic_slots)?;
        let spec = VmSpec {
            vcpus: launched.vcpus,
            ram_mib: launched.ram_mib,
            nics: launched.nics,
            guest: launched.guest,
            cpu_model: launched.cpu_model,
            ..record.spec.clone()
        };
        Ok((spec, slots))
    }

    /// The end of a restore whose state QEMU has loaded: the state goes, then the guest
    /// runs (unless the record wants it paused).
    async fn finish_restore(
        &self,
        paths: &VmPaths,
        record: &VmRecord,
        spec: &VmSpec,
        slots: &BTreeMap<String, u8>,
    ) -> Result<(), VmError> {
        record_launch(paths, spec, slots).await?;
        // The guest is about to change its disk: the state no longer matches it.
        remove_saved_state(paths).await?;
        if record.power == PowerState::Running {
            execute(paths, &Cont {}).await?;
        }
        Ok(())
    }

    /// Brings a QEMU found beside a saved state to the record's power state: a QEMU that
    /// loaded the state finishes its restore, one that did not is ended and the restore
    /// begins again (it has not run the guest since the save; see the module's comment).
    pub(super) async fn converge_restore(
        &self,
        paths: &VmPaths,
        record: &VmRecord,
        pid: u32,
    ) -> Result<(), VmError> {
        let loaded = match Qmp::connect(&paths.qmp(), QMP_TIMEOUT).await {
            Ok(qmp) => qmp
                .execute(&QueryMigrate {})
                .await
                .is_ok_and(|info| info.status.as_deref() == Some("completed")),
            Err(_) => false,
        };
        let incoming = matches!(
            execute(paths, &QueryStatus {}).await.map(|s| s.status),
            Ok(status) if status == "paused" || status == "inmigrate" || status == "prelaunch"
        );
        if loaded && incoming {
            let (spec, slots) = self.restored_spec(paths, record).await?;
            return self.finish_restore(paths, record, &spec, &slots).await;
        }
        kill_qemu(paths, pid).await?;
        self.restore_qemu(paths, record).await
    }
}

/// Stops the guest, writes its state to the saved-state file and ends QEMU. Run again
/// after a crash it ends a QEMU whose state is saved already, and starts over a save that
/// was under way.
pub(super) async fn save_state(paths: &VmPaths, pid: u32) -> Result<(), VmError> {
    if has_saved_state(paths).await {
        return kill_qemu(paths, pid).await;
    }
    let launched = tokio::fs::read(paths.launched()).await.ok();
    let partial = paths.dir.join("suspended.state.partial");
    let qmp = Qmp::connect(&paths.qmp(), QMP_TIMEOUT)
        .await
        .map_err(VmError::Qmp)?;
    cancel_migration(&qmp).await?;
    // A live migration's capability, should one have been left set, would stop this
    // save before its end.
    qmp.execute(&MigrateSetCapabilities {
        capabilities: vec![MigrationCapability {
            capability: "pause-before-switchover",
            state: false,
        }],
    })
    .await
    .map_err(VmError::Qmp)?;
    qmp.execute(&Stop {}).await.map_err(VmError::Qmp)?;
    qmp.execute(&MigrateSetParameters {
        max_bandwidth: Some(SAVE_BANDWIDTH),
        ..MigrateSetParameters::default()
    })
    .await
    .map_err(VmError::Qmp)?;
    let uri = format!("file:{}", partial.display());
    qmp.execute(&Migrate { uri }).await.map_err(VmError::Qmp)?;
    if let Err(error) = wait_for_migration(&qmp, "save the guest's state").await {
        cancel_migration(&qmp).await?;
        return Err(error);
    }
    drop(qmp);
    let (state, launch) = (paths.saved_state(), paths.saved_launch());
    // What QEMU ran with: recorded at its launch, or (started by an older agent) the
    // record's spec, which it then had.
    let launched = match launched {
        Some(bytes) => bytes,
        None => {
            let record = VmRecord::load(&paths.state())?.ok_or(VmError::NotRunning)?;
            let slots = super::slots_for(&record.spec.nics, &BTreeMap::new())?;
            serde_json::to_vec(&super::launch_of(&record.spec, &slots)).map_err(|error| {
                VmError::Io {
                    path: launch.clone(),
                    source: io::Error::other(error),
                }
            })?
        }
    };
    blocking(&state.clone(), move || {
        let io_error = |path: &std::path::Path| {
            let path = path.to_owned();
            move |source| VmError::Io { path, source }
        };
        durable::write(&launch, &launched).map_err(io_error(&launch))?;
        std::fs::File::open(&partial)
            .and_then(|file| file.sync_all())
            .map_err(io_error(&partial))?;
        std::fs::rename(&partial, &state).map_err(io_error(&state))?;
        durable::sync_parent(&state).map_err(io_error(&state))
    })
    .await?;
    // Migration left the guest stopped and its disks flushed and released.
    kill_qemu(paths, pid).await
}

/// Cancels an outgoing migration under way (one a crashed agent began), and waits until
/// it has stopped.
async fn cancel_migration(qmp: &Qmp) -> Result<(), VmError> {
    let started = Instant::now();
    loop {
        let info = qmp.execute(&QueryMigrate {}).await.map_err(VmError::Qmp)?;
        match info.status.as_deref() {
            Some("setup" | "active" | "pre-switchover" | "device" | "cancelling") => {
                if info.status.as_deref() != Some("cancelling") {
                    qmp.execute(&MigrateCancel {}).await.map_err(VmError::Qmp)?;
                }
                if started.elapsed() > TRANSFER_TIMEOUT {
                    return Err(VmError::StateTransfer {
                        what: "cancel a save under way",
                        reason: format!("not done after {} s", TRANSFER_TIMEOUT.as_secs()),
                    });
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            _ => return Ok(()),
        }
    }
}

/// Gives a guest whose suspend failed back its vCPUs, if it had them running. QEMU may
/// be gone (the failure was its end), which leaves the VM stopped: what its status says.
async fn give_back(paths: &VmPaths, before: PowerState) {
    if before != PowerState::Running || qemu::running_pid(paths).is_none() {
        return;
    }
    if let Err(error) = execute(paths, &Cont {}).await {
        tracing::warn!(dir = %paths.dir.display(), %error, "cannot resume a guest after a failed suspend");
    }
}

/// Polls QEMU's migration status until it completes; a failure carries QEMU's reason.
async fn wait_for_migration(qmp: &Qmp, what: &'static str) -> Result<(), VmError> {
    let started = Instant::now();
    loop {
        let info = qmp.execute(&QueryMigrate {}).await.map_err(VmError::Qmp)?;
        match info.status.as_deref() {
            Some("completed") => return Ok(()),
            Some("failed" | "cancelled") => {
                return Err(VmError::StateTransfer {
                    what,
                    reason: info
                        .error_desc
                        .unwrap_or_else(|| "QEMU gave no reason".to_owned()),
                });
            }
            _ if started.elapsed() > TRANSFER_TIMEOUT => {
                return Err(VmError::StateTransfer {
                    what,
                    reason: format!("not done after {} s", TRANSFER_TIMEOUT.as_secs()),
                });
            }
            _ => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

pub(super) async fn has_saved_state(paths: &VmPaths) -> bool {
    tokio::fs::try_exists(paths.saved_state())
        .await
        .unwrap_or(false)
}

/// Removes the saved state (and a partial one), durably: once this returns, no later
/// start can restore it.
pub(super) async fn remove_saved_state(paths: &VmPaths) -> Result<(), VmError> {
    let files = [
        paths.saved_state(),
        paths.dir.join("suspended.state.partial"),
        paths.saved_launch(),
    ];
    let dir = paths.dir.clone();
    blocking(&dir.clone(), move || {
        let mut removed = false;
        for file in &files {
            match std::fs::remove_file(file) {
                Ok(()) => removed = true,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(VmError::Io {
                        path: file.clone(),
                        source,
                    });
                }
            }
        }
        if removed {
            durable::sync_parent(&files[0]).map_err(|source| VmError::Io { path: dir, source })?;
        }
        Ok(())
    })
    .await
}
