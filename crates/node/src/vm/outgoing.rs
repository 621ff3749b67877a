//! Sending a running VM to another node (see `nefos_node_api::MigrateVm`).
//!
//! A task per migration, holding the VM's lock and QEMU's monitor until it ends:
//! 1. the agent serves QEMU's two outgoing channels on unix sockets in the VM's directory
//!    and carries each connection to the destination's agent (`relay`);
//! 2. QEMU mirrors the root disk's overlay (`sync=top`: the base is the same image at the
//!    destination) to the destination's NBD export, in `write-blocking` mode so that once
//!    in step every guest write reaches both;
//! 3. QEMU migrates memory, pausing before the switch-over (`pause-before-switchover`)
//!    so that the mirror can be ended (`block-job-cancel` of a ready job: the target is
//!    a copy as of that moment, no pivot) while the guest is stopped and its disk is
//!    still active here; then the device state goes and the guest waits, paused, on both
//!    nodes.
//!
//! A migration that fails or is cancelled leaves the guest running here and nothing of
//! it in QEMU (the mirror and its target removed). A completed one leaves QEMU paused
//! until the control plane either destroys it (the guest runs at the destination) or
//! cancels (it never ran there): this node never resumes a completed migration's guest
//! by itself. The completed status is written to disk before anyone can see it, so an
//! agent restarted after it still knows the guest must stay paused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nefos_node_api::{
    CancelMigration, Convergence, MigrateVm, MigrationChannel, MigrationState, MigrationStatus,
    PowerState, Secret, TransferProgress, VmDefinition, VmStatus, open_migration_channel,
};
use nefos_qmp::Qmp;
use nefos_qmp::commands::{
    BlockJobCancel, BlockdevAdd, BlockdevDel, BlockdevMirror, Cont, Migrate, MigrateCancel,
    MigrateContinue, MigrateSetCapabilities, MigrateSetParameters, MigrationCapability,
    QueryBlockJobs, QueryMigrate, QueryStatus, Stop,
};
use serde_json::json;
use tokio::sync::watch;

use super::incoming::remove_socket;
use super::record::{Admission, Operation, VmRecord};
use super::{QMP_TIMEOUT, VmError, VmGuard, VmManager, durable, execute, save, slots_for};
use crate::qemu::{self, VmPaths};

const MIRROR_JOB: &str = "migration-disk";
const MIRROR_TARGET: &str = "migration-target";
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long the disk may take to come in step, and memory to go.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long ending the mirror may take once the guest is paused.
const MIRROR_END_TIMEOUT: Duration = Duration::from_secs(120);
/// "No limit" for QEMU's bandwidth parameter.
const UNLIMITED_BANDWIDTH: u64 = 1 << 40;

/// The node's outgoing migrations under way or ended since the agent started, by VM.
#[derive(Debug, Default)]
pub(super) struct Outgoing {
    by_vm: Mutex<HashMap<String, Arc<Sending>>>,
}

/// One outgoing migration.
#[derive(Debug)]
struct Sending {
    status: Mutex<MigrationStatus>,
    cancel: watch::Sender<bool>,
    ended: watch::Sender<bool>,
}

impl Sending {
    fn status(&self) -> MigrationStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut MigrationStatus)) {
        change(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

impl Outgoing {
    fn get(&self, id: &str) -> Option<Arc<Sending>> {
        self.by_vm
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Whether a migration of VM `id` is under way: its QEMU's monitor is taken.
    pub(super) fn active(&self, id: &str) -> bool {
        self.get(id)
            .is_some_and(|sending| !sending.status().state.is_over())
    }
}

/// The status file of a VM's last outgoing migration.
fn status_file(paths: &VmPaths) -> PathBuf {
    paths.dir.join("migration.json")
}

/// Where QEMU connects for `channel`; the agent carries it on.
fn outgoing_socket(paths: &VmPaths, channel: MigrationChannel) -> PathBuf {
    paths.dir.join(format!("migrate-{}.sock", channel.as_str()))
}

impl VmManager {
    /// What a node receiving the running VM needs of it: its spec, the devices its QEMU
    /// runs with, its power state.
    pub async fn vm_definition(&self, id: &str) -> Result<VmDefinition, VmError> {
        let (paths, record) = self.existing(id)?;
        if qemu::running_pid(&paths).is_none() {
            return Err(VmError::NotRunning);
        }
        let launch = match super::nics::read_launched(&paths).await {
            Ok(launched) => launched,
            // Started by an agent that did not record it: the record's spec, slots in order.
            Err(_) => {
                let slots = slots_for(&record.spec.nics, &Default::default())?;
                super::launch_of(&record.spec, &slots)
            }
        };
        Ok(VmDefinition {
            spec: record.spec,
            launch,
            power: record.power,
        })
    }

    /// Starts sending VM `id` (see the module), or reports the migration of the same
    /// generation.
    pub async fn migrate(&self, id: &str, request: &MigrateVm) -> Result<MigrationStatus, VmError> {
        if let Some(sending) = self.outgoing.get(id) {
            let status = sending.status();
            if status.generation == request.generation {
                return Ok(status);
            }
            if !status.state.is_over() {
                return Err(VmError::Busy);
            }
        }
        let guard = self.lock(id).await;
        let (paths, mut record) = self.existing(id)?;
        match record.admit(request.generation, Operation::MigrateOut)? {
            Admission::Retry => return self.migration_status(id).await,
            Admission::New => {}
        }
        let pid = qemu::running_pid(&paths).ok_or(VmError::NotRunning)?;
        if record.resized_from.is_some() {
            return Err(VmError::ResizeUnfinished);
        }
        if record.incoming.is_some() {
            return Err(VmError::Busy);
        }
        let running = execute(&paths, &QueryStatus {}).await?;
        if running.status != "running" && running.status != "paused" {
            return Err(VmError::Invalid {
                reason: format!("a VM whose QEMU is {} cannot be sent", running.status),
            });
        }
        remove_file(&status_file(&paths)).await?;
        record.generation = request.generation;
        record.operation = Operation::MigrateOut;
        record.unfinished = true;
        save(&paths, &record).await?;
        let status = MigrationStatus {
            generation: request.generation,
            state: MigrationState::Disk,
            memory: TransferProgress::default(),
            disk: TransferProgress::default(),
            downtime_ms: None,
            total_ms: None,
            error: None,
        };
        let sending = Arc::new(Sending {
            status: Mutex::new(status.clone()),
            cancel: watch::Sender::new(false),
            ended: watch::Sender::new(false),
        });
        self.outgoing
            .by_vm
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), sending.clone());
        let task = Task {
            guard,
            paths,
            record,
            pid,
            request: request.clone(),
            sending,
        };
        let watched = task.sending.clone();
        tokio::spawn(async move {
            // A task that ended abnormally (a panic) still ends its migration for those
            // who follow it; its lock went with it.
            if let Err(error) = tokio::spawn(task.run()).await {
                tracing::error!(%error, "a migration task ended abnormally");
                watched.update(|status| {
                    status.state = MigrationState::Failed;
                    status.error = Some("the migration task ended abnormally".to_owned());
                });
                watched.ended.send_replace(true);
            }
        });
        tracing::info!(vm = id, destination = %request.destination, "migration started");
        Ok(status)
    }

    /// The VM's last outgoing migration: under way, or as it ended.
    pub async fn migration_status(&self, id: &str) -> Result<MigrationStatus, VmError> {
        if let Some(sending) = self.outgoing.get(id) {
            return Ok(sending.status());
        }
        let (paths, _) = self.existing(id)?;
        read_status(&paths).await?.ok_or(VmError::NoMigration)
    }

    /// Stops the outgoing migration of `request.generation` and gives the guest back its
    /// vCPUs here: one under way is cancelled; one that completed is undone, which the
    /// control plane asks only while the guest has not run at the destination.
    pub async fn cancel_migration(
        &self,
        id: &str,
        request: &CancelMigration,
    ) -> Result<VmStatus, VmError> {
        if let Some(sending) = self.outgoing.get(id)
            && sending.status().generation == request.generation
        {
            sending.cancel.send_replace(true);
            let mut ended = sending.ended.subscribe();
            // The task ends whatever happens; it holds the lock until then.
            let _ = ended.wait_for(|ended| *ended).await;
        }
        let _guard = self.lock(id).await;
        let (paths, mut record) = self.existing(id)?;
        if record.generation != request.generation || record.operation != Operation::MigrateOut {
            // Another operation came after it: there is nothing of it left to undo.
            return self.status_of(&paths, &record).await;
        }
        if let Some(mut status) = read_status(&paths).await?
            && status.generation == request.generation
            && status.state == MigrationState::Completed
        {
            status.state = MigrationState::Cancelled;
            status.error = Some("cancelled after it completed".to_owned());
            write_status(&paths, &status).await?;
            if let Some(sending) = self.outgoing.get(id) {
                sending.update(|s| *s = status.clone());
            }
        }
        if qemu::running_pid(&paths).is_some() {
            let qmp = Qmp::connect(&paths.qmp(), QMP_TIMEOUT)
                .await
                .map_err(VmError::Qmp)?;
            clean_up(&qmp).await?;
            give_back(&qmp, record.power).await?;
        }
        record.unfinished = false;
        save(&paths, &record).await?;
        tracing::info!(
            vm = id,
            generation = request.generation,
            "migration cancelled"
        );
        self.status_of(&paths, &record).await
    }

    /// Takes a VM whose migration an agent restart cut short back to running here,
    /// unless it completed (then the control plane decides). For `resume_interrupted`.
    pub(super) async fn recover_outgoing(
        &self,
        paths: &VmPaths,
        record: &mut VmRecord,
    ) -> Result<(), VmError> {
        let completed = read_status(paths).await?.is_some_and(|status| {
            status.generation == record.generation && status.state == MigrationState::Completed
        });
        if !completed {
            if qemu::running_pid(paths).is_some() {
                let qmp = Qmp::connect(&paths.qmp(), QMP_TIMEOUT)
                    .await
                    .map_err(VmError::Qmp)?;
                clean_up(&qmp).await?;
                give_back(&qmp, record.power).await?;
            }
            let status = MigrationStatus {
                generation: record.generation,
                state: MigrationState::Failed,
                memory: TransferProgress::default(),
                disk: TransferProgress::default(),
                downtime_ms: None,
                total_ms: None,
                error: Some("the node agent restarted during the migration".to_owned()),
            };
            write_status(paths, &status).await?;
        }
        for channel in MigrationChannel::ALL {
            remove_socket(&outgoing_socket(paths, channel)).await?;
        }
        record.unfinished = false;
        save(paths, record).await
    }
}

/// A migration under way: what its task holds.
struct Task {
    /// Held until the migration has ended.
    guard: VmGuard,
    paths: VmPaths,
    record: VmRecord,
    pid: u32,
    request: MigrateVm,
    sending: Arc<Sending>,
}

impl Task {
    async fn run(mut self) {
        let started = Instant::now();
        let relays = Relays::start(&self.paths, &self.record.id, &self.request).await;
        let outcome = match relays {
            Ok(relays) => {
                let outcome = self.send(started).await;
                drop(relays);
                outcome
            }
            Err(error) => Err(error),
        };
        let status = match outcome {
            Ok(status) => status,
            Err(error) => {
                let cancelled = *self.sending.cancel.borrow();
                let reason = crate::rpc::chain(&error);
                if cancelled {
                    tracing::info!(vm = %self.record.id, "migration cancelled");
                } else {
                    tracing::warn!(vm = %self.record.id, error = %reason, "migration failed");
                }
                if let Err(error) = self.recover().await {
                    tracing::error!(vm = %self.record.id, error = %crate::rpc::chain(&error), "cannot give the guest back after a failed migration");
                }
                let mut status = self.sending.status();
                status.state = if cancelled {
                    MigrationState::Cancelled
                } else {
                    MigrationState::Failed
                };
                status.error = Some(if cancelled {
                    "cancelled".to_owned()
                } else {
                    reason
                });
                status.total_ms = Some(millis(started.elapsed()));
                if let Err(error) = write_status(&self.paths, &status).await {
                    tracing::warn!(vm = %self.record.id, %error, "cannot record how the migration ended");
                }
                status
            }
        };
        for channel in MigrationChannel::ALL {
            if let Err(error) = remove_socket(&outgoing_socket(&self.paths, channel)).await {
                tracing::warn!(%error, "cannot remove a migration socket");
            }
        }
        self.record.unfinished = false;
        if let Err(error) = save(&self.paths, &self.record).await {
            tracing::error!(vm = %self.record.id, %error, "cannot record the end of a migration");
        }
        self.sending.update(|s| *s = status);
        // The map keeps the last status for `GET`; the file keeps it across restarts.
        drop(self.guard);
        self.sending.ended.send_replace(true);
    }

    /// Mirrors the disk, migrates memory, ends the mirror at the switch-over.
    async fn send(&mut self, started: Instant) -> Result<MigrationStatus, VmError> {
        let qmp = Qmp::connect(&self.paths.qmp(), QMP_TIMEOUT)
            .await
            .map_err(VmError::Qmp)?;
        clean_up(&qmp).await?;
        let disk_socket = outgoing_socket(&self.paths, MigrationChannel::Disk);
        qmp.execute(&BlockdevAdd(json!({
            "driver": "nbd",
            "node-name": MIRROR_TARGET,
            "server": {"type": "unix", "path": disk_socket.display().to_string()},
            "export": "root",
        })))
        .await
        .map_err(VmError::Qmp)?;
        qmp.execute(&BlockdevMirror {
            job_id: MIRROR_JOB.to_owned(),
            device: "root".to_owned(),
            target: MIRROR_TARGET.to_owned(),
            sync: "top",
            copy_mode: "write-blocking",
        })
        .await
        .map_err(VmError::Qmp)?;
        self.wait_disk_in_step(&qmp).await?;

        let limits = self.request.limits;
        qmp.execute(&MigrateSetCapabilities {
            capabilities: vec![
                MigrationCapability {
                    capability: "pause-before-switchover",
                    state: true,
                },
                // MIGRATION events: the switch-over is seen at once, not at the next poll,
                // since the guest stays paused until the mirror is ended.
                MigrationCapability {
                    capability: "events",
                    state: true,
                },
                MigrationCapability {
                    capability: "auto-converge",
                    state: limits.convergence == Convergence::AutoConverge,
                },
            ],
        })
        .await
        .map_err(VmError::Qmp)?;
        qmp.execute(&MigrateSetParameters {
            max_bandwidth: Some(match limits.max_bandwidth {
                0 => UNLIMITED_BANDWIDTH,
                limit => limit,
            }),
            downtime_limit: Some(limits.downtime_ms),
        })
        .await
        .map_err(VmError::Qmp)?;
        let memory_socket = outgoing_socket(&self.paths, MigrationChannel::Memory);
        self.sending.update(|s| s.state = MigrationState::Memory);
        let mut events = qmp.events();
        qmp.execute(&Migrate {
            uri: format!("unix:{}", memory_socket.display()),
        })
        .await
        .map_err(VmError::Qmp)?;
        let info = self.wait_memory_sent(&qmp, &mut events).await?;

        qmp.execute(&BlockdevDel {
            node_name: MIRROR_TARGET.to_owned(),
        })
        .await
        .map_err(VmError::Qmp)?;
        let mut status = self.sending.status();
        status.state = MigrationState::Completed;
        status.downtime_ms = info.downtime;
        status.total_ms = Some(millis(started.elapsed()));
        if let Some(ram) = info.ram {
            status.memory = TransferProgress {
                total_bytes: ram.total,
                processed_bytes: ram.transferred,
                remaining_bytes: 0,
            };
        }
        status.disk.remaining_bytes = 0;
        status.disk.processed_bytes = status.disk.total_bytes;
        // On disk before anyone is told: see the module.
        write_status(&self.paths, &status).await?;
        tracing::info!(vm = %self.record.id, pid = self.pid, downtime_ms = ?status.downtime_ms, total_ms = ?status.total_ms, "migration completed; the guest waits at the destination");
        Ok(status)
    }

    fn cancelled(&self) -> Result<(), VmError> {
        if *self.sending.cancel.borrow() {
            return Err(VmError::StateTransfer {
                what: "send the VM",
                reason: "cancelled".to_owned(),
            });
        }
        Ok(())
    }

    async fn wait_disk_in_step(&self, qmp: &Qmp) -> Result<(), VmError> {
        let started = Instant::now();
        loop {
            self.cancelled()?;
            let job = mirror_job(qmp)
                .await?
                .ok_or_else(|| VmError::StateTransfer {
                    what: "copy the disk",
                    reason: "the mirror job ended before it was in step (see QEMU's log)"
                        .to_owned(),
                })?;
            self.sending
                .update(|s| s.disk = progress_of(job.len, job.offset));
            if job.ready {
                return Ok(());
            }
            if started.elapsed() > TRANSFER_TIMEOUT {
                return Err(VmError::StateTransfer {
                    what: "copy the disk",
                    reason: format!("not in step after {} s", TRANSFER_TIMEOUT.as_secs()),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn wait_memory_sent(
        &self,
        qmp: &Qmp,
        events: &mut tokio::sync::broadcast::Receiver<nefos_qmp::Event>,
    ) -> Result<nefos_qmp::commands::MigrationInfo, VmError> {
        let started = Instant::now();
        // The switch-over is let go once; its event may wake the loop again after.
        let mut continued = false;
        loop {
            self.cancelled()?;
            let info = qmp.execute(&QueryMigrate {}).await.map_err(VmError::Qmp)?;
            if let Some(ram) = info.ram {
                self.sending.update(|s| {
                    s.memory = TransferProgress {
                        total_bytes: ram.total,
                        processed_bytes: ram.transferred,
                        remaining_bytes: ram.remaining,
                    }
                });
            }
            if let Some(job) = mirror_job(qmp).await? {
                self.sending
                    .update(|s| s.disk = progress_of(job.len, job.offset));
            }
            match info.status.as_deref() {
                Some("completed") => return Ok(info),
                Some("failed" | "cancelled") => {
                    return Err(VmError::StateTransfer {
                        what: "send the guest's memory",
                        reason: info
                            .error_desc
                            .unwrap_or_else(|| "QEMU gave no reason".to_owned()),
                    });
                }
                Some("pre-switchover") if !continued => {
                    continued = true;
                    end_mirror(qmp).await?;
                    qmp.execute(&MigrateContinue {
                        state: "pre-switchover",
                    })
                    .await
                    .map_err(VmError::Qmp)?;
                }
                _ if started.elapsed() > TRANSFER_TIMEOUT => {
                    return Err(VmError::StateTransfer {
                        what: "send the guest's memory",
                        reason: format!("not done after {} s", TRANSFER_TIMEOUT.as_secs()),
                    });
                }
                _ => {}
            }
            // The next poll, or sooner a change of the migration's status.
            let _ = tokio::time::timeout(POLL_INTERVAL, async {
                loop {
                    match events.recv().await {
                        Ok(event) if event.name == "MIGRATION" => return,
                        Ok(_) => {}
                        // Lagged: something happened; closed: the next query says why.
                        Err(_) => return,
                    }
                }
            })
            .await;
        }
    }

    /// After a failure: nothing of the migration left in QEMU, the guest running as it
    /// was.
    async fn recover(&self) -> Result<(), VmError> {
        if qemu::running_pid(&self.paths) != Some(self.pid) {
            return Ok(());
        }
        let qmp = Qmp::connect(&self.paths.qmp(), QMP_TIMEOUT)
            .await
            .map_err(VmError::Qmp)?;
        clean_up(&qmp).await?;
        give_back(&qmp, self.record.power).await
    }
}

/// Ends the ready mirror while the guest is paused: the target is then a copy of the
/// disk, and nothing more is written to it.
async fn end_mirror(qmp: &Qmp) -> Result<(), VmError> {
    let mut events = qmp.events();
    qmp.execute(&BlockJobCancel {
        device: MIRROR_JOB.to_owned(),
        force: false,
    })
    .await
    .map_err(VmError::Qmp)?;
    let failed = |reason: String| VmError::StateTransfer {
        what: "end the disk's mirror",
        reason,
    };
    let deadline = tokio::time::Instant::now() + MIRROR_END_TIMEOUT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| failed("no end within the time allowed".to_owned()))?
            .map_err(|error| failed(format!("QEMU's events were lost: {error}")))?;
        if event.data.get("device").and_then(|d| d.as_str()) != Some(MIRROR_JOB) {
            continue;
        }
        match event.name.as_str() {
            "BLOCK_JOB_COMPLETED" => {
                return match event.data.get("error").and_then(|e| e.as_str()) {
                    None => Ok(()),
                    Some(error) => Err(failed(error.to_owned())),
                };
            }
            "BLOCK_JOB_CANCELLED" => {
                return Err(failed("the mirror was not in step".to_owned()));
            }
            _ => {}
        }
    }
}

async fn mirror_job(qmp: &Qmp) -> Result<Option<nefos_qmp::commands::BlockJobInfo>, VmError> {
    let jobs = qmp
        .execute(&QueryBlockJobs {})
        .await
        .map_err(VmError::Qmp)?;
    Ok(jobs.into_iter().find(|job| job.device == MIRROR_JOB))
}

fn progress_of(len: u64, offset: u64) -> TransferProgress {
    TransferProgress {
        total_bytes: len,
        processed_bytes: offset,
        remaining_bytes: len.saturating_sub(offset),
    }
}

/// Removes what an earlier migration left in QEMU: a migration under way is cancelled,
/// the mirror job and its target removed. Each may be absent.
async fn clean_up(qmp: &Qmp) -> Result<(), VmError> {
    let started = Instant::now();
    loop {
        let info = qmp.execute(&QueryMigrate {}).await.map_err(VmError::Qmp)?;
        let under_way = matches!(
            info.status.as_deref(),
            Some("setup" | "active" | "pre-switchover" | "device" | "cancelling")
        );
        if !under_way {
            break;
        }
        if info.status.as_deref() != Some("cancelling") {
            qmp.execute(&MigrateCancel {}).await.map_err(VmError::Qmp)?;
        }
        if started.elapsed() > MIRROR_END_TIMEOUT {
            return Err(VmError::StateTransfer {
                what: "cancel the migration",
                reason: "it did not stop".to_owned(),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    while mirror_job(qmp).await?.is_some() {
        if let Err(error) = qmp
            .execute(&BlockJobCancel {
                device: MIRROR_JOB.to_owned(),
                force: true,
            })
            .await
        {
            tracing::debug!(%error, "block-job-cancel");
        }
        if started.elapsed() > MIRROR_END_TIMEOUT {
            return Err(VmError::StateTransfer {
                what: "cancel the disk's mirror",
                reason: "it did not stop".to_owned(),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    if let Err(error) = qmp
        .execute(&BlockdevDel {
            node_name: MIRROR_TARGET.to_owned(),
        })
        .await
    {
        tracing::debug!(%error, "no mirror target to remove");
    }
    // A later save to a file (a suspend) must not stop before its switch-over.
    qmp.execute(&MigrateSetCapabilities {
        capabilities: vec![
            MigrationCapability {
                capability: "pause-before-switchover",
                state: false,
            },
            MigrationCapability {
                capability: "auto-converge",
                state: false,
            },
        ],
    })
    .await
    .map_err(VmError::Qmp)?;
    Ok(())
}

/// Lets the guest run here again if it is to run and QEMU holds it paused (a failed
/// migration's pause, or a completed one being undone).
async fn give_back(qmp: &Qmp, power: PowerState) -> Result<(), VmError> {
    let status = qmp.execute(&QueryStatus {}).await.map_err(VmError::Qmp)?;
    match power {
        PowerState::Running if !status.running => {
            qmp.execute(&Cont {}).await.map_err(VmError::Qmp)?;
        }
        // A paused guest whose migration completed has its disks handed over (inactive):
        // `cont` takes them back, and `stop` pauses it again, as it was.
        PowerState::Paused if status.status == "postmigrate" => {
            qmp.execute(&Cont {}).await.map_err(VmError::Qmp)?;
            qmp.execute(&Stop {}).await.map_err(VmError::Qmp)?;
        }
        _ => {}
    }
    Ok(())
}

async fn read_status(paths: &VmPaths) -> Result<Option<MigrationStatus>, VmError> {
    let path = status_file(paths);
    match tokio::fs::read(&path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| VmError::Io {
                path,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, error),
            }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(VmError::Io { path, source }),
    }
}

async fn write_status(paths: &VmPaths, status: &MigrationStatus) -> Result<(), VmError> {
    let path = status_file(paths);
    let bytes = serde_json::to_vec(status).map_err(|error| VmError::Io {
        path: path.clone(),
        source: std::io::Error::other(error),
    })?;
    super::blocking(&path.clone(), move || {
        durable::write(&path, &bytes).map_err(|source| VmError::Io { path, source })
    })
    .await
}

async fn remove_file(path: &Path) -> Result<(), VmError> {
    remove_socket(path).await
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A destination that stops answering (its host lost power, its network went) ends the
/// channel within about 20 s, rather than when TCP gives up after many minutes: the
/// mirror then fails and the guest's writes, which wait for the destination once the
/// mirror is in step, go on.
fn watch_peer(stream: &tokio::net::TcpStream) -> std::io::Result<()> {
    use rustix::net::sockopt;
    sockopt::set_socket_keepalive(stream, true)?;
    sockopt::set_tcp_keepidle(stream, Duration::from_secs(5))?;
    sockopt::set_tcp_keepintvl(stream, Duration::from_secs(2))?;
    sockopt::set_tcp_keepcnt(stream, 3)?;
    // Data sent and not acknowledged for this long ends the connection too.
    sockopt::set_tcp_user_timeout(stream, 20_000)?;
    Ok(())
}

/// The agent's side of QEMU's outgoing channels: a unix socket per channel, each
/// connection to it carried to the destination's agent. Dropped, they stop.
struct Relays {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Relays {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Relays {
    async fn start(paths: &VmPaths, id: &str, request: &MigrateVm) -> Result<Relays, VmError> {
        let secret = Secret::new(request.secret.clone());
        let mut tasks = Vec::new();
        for channel in MigrationChannel::ALL {
            let path = outgoing_socket(paths, channel);
            remove_socket(&path).await?;
            let listener = tokio::net::UnixListener::bind(&path)
                .map_err(|source| VmError::Io { path, source })?;
            let (destination, id, secret) =
                (request.destination.clone(), id.to_owned(), secret.clone());
            tasks.push(tokio::spawn(async move {
                // Owned by the accepting task, so that stopping it stops its connections.
                let mut connections = tokio::task::JoinSet::new();
                loop {
                    let Ok((mut local, _)) = listener.accept().await else {
                        return;
                    };
                    let (destination, id, secret) =
                        (destination.clone(), id.clone(), secret.clone());
                    connections.spawn(async move {
                        match open_migration_channel(&destination, &id, channel, &secret).await {
                            Ok(mut remote) => {
                                if let Err(error) = watch_peer(&remote) {
                                    tracing::warn!(%error, "cannot set a migration channel's timeouts");
                                }
                                if let Err(error) =
                                    tokio::io::copy_bidirectional(&mut local, &mut remote).await
                                {
                                    tracing::debug!(vm = %id, channel = channel.as_str(), %error, "migration channel ended");
                                }
                            }
                            Err(error) => {
                                tracing::warn!(vm = %id, channel = channel.as_str(), error = %crate::rpc::chain(&error), "cannot reach the destination");
                            }
                        }
                    });
                }
            }));
        }
        Ok(Relays { tasks })
    }
}
