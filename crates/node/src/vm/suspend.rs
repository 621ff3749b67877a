//! Suspending a VM to the node's disk and resuming it (Nova's suspend, libvirt's managed
//! save): the guest's vCPUs stop, QEMU writes the machine's memory and device state to a
//! file as an outgoing migration, and QEMU ends, so a suspended VM holds no memory on the
//! node. A resume starts QEMU with `-incoming defer`, loads the file and lets the guest go
//! on where it was.
//!
//! The saved state is only valid with the disk as the saved guest left it, so it is
//! written under a temporary name and renamed once complete (a partial file is never
//! taken for a state), any fresh boot removes it first, and a resume removes it before
//! the guest runs again. Both are recorded unfinished before they act: a retry after a
//! failure does the rest, and an agent that restarts converges a VM recorded suspended
//! (save it if QEMU still runs) or running (restore it if only the state is left).

use std::io;
use std::time::{Duration, Instant};

use nefos_node_api::{PowerState, SuspendVm, VmSpec, VmStatus};
use nefos_qmp::commands::{Cont, Migrate, MigrateIncoming, QueryMigrate, Stop};

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

impl VmManager {
    /// Saves a running or paused VM's state to disk and ends its QEMU.
    pub async fn suspend(&self, id: &str, request: &SuspendVm) -> Result<VmStatus, VmError> {
        let _guard = self.lock(id).await;
        let (paths, mut record) = self.existing(id)?;
        let before = record.power;
        match record.admit(request.generation, Operation::Suspend)? {
            Admission::Retry if !record.unfinished => {
                return self.status_of(&paths, &record).await;
            }
            Admission::Retry => {}
            Admission::New => {
                if qemu::running_pid(&paths).is_none() {
                    return Err(VmError::NotRunning);
                }
                record.generation = request.generation;
                record.operation = Operation::Suspend;
                record.power = PowerState::Suspended;
                record.unfinished = true;
                save(&paths, &record).await?;
            }
        }
        if let Some(pid) = qemu::running_pid(&paths)
            && let Err(error) = save_state(&paths, pid).await
        {
            // The guest goes on as it was: nothing half-saved is left to be restored.
            remove_saved_state(&paths).await?;
            if before == PowerState::Running {
                let _ = execute(&paths, &Cont {}).await;
            }
            record.power = before;
            record.unfinished = false;
            save(&paths, &record).await?;
            return Err(error);
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
        self.converge(&paths, &record).await?;
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
        let launch_path = paths.saved_launch();
        let launched: Launched = match tokio::fs::read(&launch_path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| VmError::Io {
                path: launch_path.clone(),
                source: io::Error::new(io::ErrorKind::InvalidData, error),
            })?,
            Err(source) => {
                return Err(VmError::Io {
                    path: launch_path,
                    source,
                });
            }
        };
        // The devices must be the ones the state was saved from; changes made since apply
        // at the next fresh boot.
        let spec = VmSpec {
            vcpus: launched.vcpus,
            ram_mib: launched.ram_mib,
            nics: launched.nics.clone(),
            guest: launched.guest.clone(),
            ..record.spec.clone()
        };
        let base = self.cache.path_of(&record.image_id, spec.image.format);
        qemu::remove_runtime_files(paths);
        let mut args = qemu::command_line(&self.qemu, &record.id, &spec, paths, &base);
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
            wait_for_migration(&qmp, "load the saved state").await?;
            // QEMU takes one monitor client at a time.
            drop(qmp);
            record_launch(paths, &spec).await
        }
        .await;
        if let Err(error) = loaded {
            // The saved state stays for another try; a hard reboot discards it.
            kill_qemu(paths, pid).await?;
            return Err(error);
        }
        // The guest is about to change its disk: the state no longer matches it.
        remove_saved_state(paths).await?;
        if record.power == PowerState::Running {
            execute(paths, &Cont {}).await?;
        }
        tracing::info!(vm = %record.id, pid, "restored from its saved state");
        Ok(())
    }
}

/// Stops the guest, writes its state to the saved-state file and ends QEMU.
pub(super) async fn save_state(paths: &VmPaths, pid: u32) -> Result<(), VmError> {
    let launched = tokio::fs::read(paths.launched()).await.ok();
    let partial = paths.dir.join("suspended.state.partial");
    let qmp = Qmp::connect(&paths.qmp(), QMP_TIMEOUT)
        .await
        .map_err(VmError::Qmp)?;
    qmp.execute(&Stop {}).await.map_err(VmError::Qmp)?;
    let uri = format!("file:{}", partial.display());
    qmp.execute(&Migrate { uri }).await.map_err(VmError::Qmp)?;
    wait_for_migration(&qmp, "save the guest's state").await?;
    drop(qmp);
    let (state, launch) = (paths.saved_state(), paths.saved_launch());
    // What QEMU ran with: recorded at its launch, or (started by an older agent) the
    // record's spec, which it then had.
    let launched = match launched {
        Some(bytes) => bytes,
        None => {
            let record = VmRecord::load(&paths.state())?.ok_or(VmError::NotRunning)?;
            serde_json::to_vec(&Launched::of(&record.spec)).map_err(|error| VmError::Io {
                path: launch.clone(),
                source: io::Error::other(error),
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
