//! The saga of a live migration (see `servers/migrate.rs` and `nefos_node_api`'s
//! migration module).
//!
//! 1. `ports`: the server's ports are marked as moving to the destination, which gets
//!    their taps, rules and tunnels (and the other nodes of their networks a tunnel to
//!    it). Undone: the mark goes and the destination loses them.
//! 2. `prepare`: the destination defines the VM as the source runs it and waits for it.
//!    Undone: the destination's copy is destroyed.
//! 3. `send`: the source mirrors the disk and migrates memory; the step follows it,
//!    recording progress, and cancels it when an administrator aborts. Undone: the
//!    source cancels, or undoes a completed migration, and its guest runs on.
//! 4. `switch`: the destination lets the guest run and checks it; then the server's node
//!    and its ports' binding become the destination's, in one transaction. Undone (only
//!    when the switch itself failed): the destination's copy is destroyed first, so that
//!    the source's undo never resumes a guest that runs elsewhere.
//! 5. `release`: the source's copy is destroyed, the source loses the ports' taps, the
//!    task ends.
//!
//! Once the switch is recorded the move cannot be undone: every undo first checks that it
//! was not ([`switched`]) and then does nothing, so a later failure only ends the task.

use std::time::Duration;

use nefos_db::compute::{self as q, MigrationProgress, StateChange};
use nefos_db::time::now_micros;
use nefos_node_api::{
    AbortIncoming, CancelMigration, FinishIncoming, IncomingVm, MigrateVm, MigrationLimits,
    MigrationState, MigrationStatus, VmStatus,
};
use nefos_saga::{BoxFuture, Saga, Step, StepError, StepInput, output};
use serde::{Deserialize, Serialize};

use super::{chain, db_error, finish_action, step_error};
use crate::servers::state::{self, task};
use crate::{ComputeError, Services};

/// How many generations a live migration takes of its server: see [`generation`].
pub(crate) const LIVE_MIGRATION_GENERATIONS: i64 = 5;

/// How often the `send` step reads the source's progress.
const POLL_INTERVAL: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveMigrateParams {
    pub server_id: String,
    pub migration_id: i64,
    /// The move's uuid, from which its secret is derived.
    pub migration_uuid: String,
    pub source: String,
    pub destination: String,
    /// The first of [`LIVE_MIGRATION_GENERATIONS`].
    pub generation: u64,
    pub limits: MigrationLimits,
    pub request_id: String,
}

/// The generation of each call: the destination's definition (0), the source's sending
/// (1), the destination's finish (2), the source's destroy (3), the destination's
/// destroy when undone (4).
fn generation(params: &LiveMigrateParams, offset: u64) -> u64 {
    params.generation + offset
}

#[derive(Debug)]
pub struct LiveMigrateSaga;

type Input<'a> = StepInput<'a, LiveMigrateParams>;

impl Saga for LiveMigrateSaga {
    const KIND: &'static str = "server_live_migrate";
    /// A move may take an hour: a node or the database that fails for a while during it
    /// is waited for, not taken for a failed move.
    const RETRY_FOR: Duration = Duration::from_secs(3600);
    type Params = LiveMigrateParams;
    type Context = Services;

    fn steps() -> Vec<Step<Self>> {
        vec![
            Step {
                name: "ports",
                action: move_ports,
                undo: keep_ports,
            },
            Step {
                name: "prepare",
                action: prepare,
                undo: discard_destination,
            },
            Step {
                name: "send",
                action: send,
                undo: cancel_send,
            },
            Step {
                name: "switch",
                action: switch,
                undo: discard_destination,
            },
            Step {
                name: "release",
                action: release,
                undo: nefos_saga::nothing_to_undo,
            },
        ]
    }

    fn unwound<'a>(
        services: &'a Services,
        params: &'a LiveMigrateParams,
        error: &'a str,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let pool = services.db.pool();
            if switched(services, params).await? {
                // Only what came after the switch failed: the server is where it moved.
                end_task(services, params, StateChange::default()).await?;
                finish_action(services, &params.server_id, &params.request_id, None).await;
                return Ok(());
            }
            if let_go(services, params).await? {
                // The switch failed after the guest was let run at the destination: it may
                // have run there, so the source keeps its copy paused, and an operator
                // decides (the move's error says what happened).
                let message = format!(
                    "the move's switch to {} failed after the guest was let run there; {} \
                     keeps its copy paused: {error}",
                    params.destination, params.source
                );
                q::end_migration(
                    pool,
                    params.migration_id,
                    "error",
                    None,
                    None,
                    Some(&message),
                    now_micros(),
                )
                .await
                .map_err(db_error)?;
                let fault = crate::servers::Fault {
                    code: 500,
                    message: message.clone(),
                    created: now_micros(),
                };
                let fault = serde_json::to_string(&fault).unwrap_or_default();
                let change = StateChange {
                    vm_state: Some(state::vm::ERROR),
                    fault: Some(Some(&fault)),
                    ..StateChange::default()
                };
                end_task(services, params, change).await?;
                tracing::error!(server = %params.server_id, %message, "live migration left the server in ERROR");
                finish_action(
                    services,
                    &params.server_id,
                    &params.request_id,
                    Some(&message),
                )
                .await;
                return Ok(());
            }
            let row = q::get_migration(pool, params.migration_id)
                .await
                .map_err(db_error)?;
            let aborted = row.is_some_and(|row| row.status == "cancelling");
            let status = if aborted { "cancelled" } else { "error" };
            q::end_migration(
                pool,
                params.migration_id,
                status,
                None,
                None,
                Some(error),
                now_micros(),
            )
            .await
            .map_err(db_error)?;
            // The server stays where it was, as its node now reports it.
            let reported = match services.nodes.client(&params.source).await {
                Ok(client) => client.vm_status(&params.server_id).await.ok(),
                Err(_) => None,
            };
            let states = reported.as_ref().map(|s| state::reported(s.state));
            let change = StateChange {
                vm_state: states.map(|(vm, _)| vm),
                power_state: states.map(|(_, power)| power),
                ..StateChange::default()
            };
            end_task(services, params, change).await?;
            tracing::warn!(server = %params.server_id, migration = params.migration_id, %error, "live migration did not happen");
            finish_action(services, &params.server_id, &params.request_id, Some(error)).await;
            Ok(())
        })
    }
}

/// Ends the move's task on the server with `change` (only if the move is still its task:
/// a delete that began meanwhile keeps its own).
async fn end_task(
    services: &Services,
    params: &LiveMigrateParams,
    change: StateChange<'_>,
) -> Result<(), StepError> {
    let change = StateChange {
        task_state: Some(None),
        ..change
    };
    q::change_state(
        services.db.pool(),
        &params.server_id,
        Some(Some(task::MIGRATING)),
        &change,
        now_micros(),
    )
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Whether the move's switch was recorded: the server runs at the destination, and
/// nothing may be undone.
async fn switched(services: &Services, params: &LiveMigrateParams) -> Result<bool, StepError> {
    Ok(status_of(services, params).await?.as_deref() == Some("completed"))
}

/// Whether the guest may have been let run at the destination: the switch began (its
/// status is set before the destination is asked) and was not undone, or was recorded.
/// The source must then never resume its copy.
async fn let_go(services: &Services, params: &LiveMigrateParams) -> Result<bool, StepError> {
    Ok(matches!(
        status_of(services, params).await?.as_deref(),
        Some("switching" | "completed")
    ))
}

async fn status_of(
    services: &Services,
    params: &LiveMigrateParams,
) -> Result<Option<String>, StepError> {
    let row = q::get_migration(services.db.pool(), params.migration_id)
        .await
        .map_err(db_error)?;
    Ok(row.map(|row| row.status))
}

async fn connection(
    services: &Services,
) -> Result<impl std::ops::DerefMut<Target = nefos_db::Connection>, StepError> {
    services
        .db
        .pool()
        .acquire()
        .await
        .map_err(|error| db_error(nefos_db::DbError::query("connect")(error)))
}

/// The server's ports move with it: the destination gets them too.
fn move_ports<'a>(
    services: &'a Services,
    input: Input<'a>,
) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        q::set_migration_status(
            services.db.pool(),
            params.migration_id,
            &["queued"],
            "preparing",
            now_micros(),
        )
        .await
        .map_err(db_error)?;
        mark_ports(services, params, Some(&params.destination)).await?;
        output(())
    })
}

fn keep_ports<'a>(
    services: &'a Services,
    input: Input<'a>,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        // Where the guest may be running, its ports stay.
        if let_go(services, input.params).await? {
            return Ok(());
        }
        mark_ports(services, input.params, None).await
    })
}

/// Marks the ports as moving to `to` (or not moving), and sends the nodes concerned
/// their networks: the destination, and every node on the ports' networks (their
/// tunnels reach the destination, or no longer).
async fn mark_ports(
    services: &Services,
    params: &LiveMigrateParams,
    to: Option<&str>,
) -> Result<(), StepError> {
    let mut conn = connection(services).await?;
    let ports = services
        .networks
        .device_ports(&mut conn, &params.server_id)
        .await
        .map_err(|error| step_error(ComputeError::Network(error)))?;
    if ports.is_empty() {
        return Ok(());
    }
    services
        .networks
        .set_device_ports_moving(&mut conn, &params.server_id, to)
        .await
        .map_err(|error| step_error(ComputeError::Network(error)))?;
    drop(conn);
    if to.is_some() {
        // Its taps must be there before QEMU opens them.
        services
            .push_networks(&params.destination)
            .await
            .map_err(step_error)?;
    }
    let hosts = services.hosts_of(&ports).await.map_err(step_error)?;
    let others = hosts
        .into_iter()
        .chain([params.destination.clone()])
        .filter(|host| to != Some(host.as_str()));
    services.push_networks_to(others).await;
    Ok(())
}

/// The destination defines the VM as the source runs it, and waits for it.
fn prepare<'a>(
    services: &'a Services,
    input: Input<'a>,
) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        let source = services
            .nodes
            .client(&params.source)
            .await
            .map_err(step_error)?;
        let definition = source
            .vm_definition(&params.server_id)
            .await
            .map_err(|source| rpc_error(&params.source, source))?;
        let request = IncomingVm {
            generation: generation(params, 0),
            spec: definition.spec,
            launch: definition.launch,
            power: definition.power,
            secret: services
                .nodes
                .migration_secret(&params.migration_uuid)
                .expose()
                .to_owned(),
        };
        let status = services
            .nodes
            .prepare_incoming(&params.destination, &params.server_id, &request)
            .await
            .map_err(step_error)?;
        output(status)
    })
}

fn discard_destination<'a>(
    services: &'a Services,
    input: Input<'a>,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        let params = input.params;
        if switched(services, params).await? {
            return Ok(());
        }
        let client = match services.nodes.client(&params.destination).await {
            Ok(client) => client,
            // Removed from the cloud: nothing of it to clean.
            Err(ComputeError::UnknownNode { .. } | ComputeError::NotEnrolled { .. }) => {
                return Ok(());
            }
            Err(error) => return Err(step_error(error)),
        };
        let switching = let_go(services, params).await?;
        let abort = AbortIncoming {
            generation: generation(params, 4),
        };
        match client.abort_incoming(&params.server_id, &abort).await {
            Ok(()) if switching => {
                // Undone for sure: the guest never ran there, so the source may resume.
                q::set_migration_status(
                    services.db.pool(),
                    params.migration_id,
                    &["switching"],
                    "running",
                    now_micros(),
                )
                .await
                .map_err(db_error)?;
                Ok(())
            }
            Ok(()) => Ok(()),
            // The guest may have run there: nothing is undone, and the source keeps its
            // copy paused (see `unwound`).
            Err(error) if error.status().is_some_and(|s| s.as_u16() == 409) => {
                tracing::error!(server = %params.server_id, node = %params.destination, error = %chain(&error), "the guest may have run at the destination; its move is not undone");
                Ok(())
            }
            // Before the switch a destination that cannot be reached (it may be gone for
            // good) does not hold the server up: its copy never ran, and the reconciler
            // removes it when the node is back. Once the switch began, only the node can
            // say whether the guest ran there: asked until it answers.
            Err(error @ nefos_node_api::NodeClientError::Transport { .. }) if !switching => {
                tracing::warn!(server = %params.server_id, node = %params.destination, error = %chain(&error), "the destination's copy is left to the reconciler");
                Ok(())
            }
            Err(error) => nothing_left(error, params, &params.destination),
        }
    })
}

/// An undo's node call that failed: refused (4xx: the VM moved on since, with a newer
/// generation, or is gone) leaves nothing to undo; anything else is tried again.
fn nothing_left(
    error: nefos_node_api::NodeClientError,
    params: &LiveMigrateParams,
    node: &str,
) -> Result<(), StepError> {
    if error.status().is_some_and(|s| s.is_client_error()) {
        tracing::info!(server = %params.server_id, node, error = %chain(&error), "nothing left to undo");
        return Ok(());
    }
    Err(rpc_error(node, error))
}

/// The source sends the VM; the step follows it to its end, recording its progress, and
/// cancels it when an administrator aborts the move.
fn send<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        let pool = services.db.pool();
        let started = q::set_migration_status(
            pool,
            params.migration_id,
            &["preparing"],
            "running",
            now_micros(),
        )
        .await
        .map_err(db_error)?;
        if !started && aborted(services, params).await? {
            return Err(StepError::Permanent("aborted".to_owned()));
        }
        let destination = services
            .nodes
            .registry()
            .get(&params.destination)
            .await
            .map_err(step_error)?;
        let source = services
            .nodes
            .client(&params.source)
            .await
            .map_err(step_error)?;
        let request = MigrateVm {
            generation: generation(params, 1),
            destination: destination.info.rpc_url.clone(),
            secret: services
                .nodes
                .migration_secret(&params.migration_uuid)
                .expose()
                .to_owned(),
            limits: params.limits,
        };
        let mut status = source
            .migrate_vm(&params.server_id, &request)
            .await
            .map_err(|error| rpc_error(&params.source, error))?;
        let mut cancelling = false;
        while !status.state.is_over() {
            tokio::time::sleep(POLL_INTERVAL).await;
            status = source
                .migration_status(&params.server_id)
                .await
                .map_err(|error| rpc_error(&params.source, error))?;
            record_progress(services, params.migration_id, &status).await;
            if !cancelling && aborted(services, params).await? {
                cancelling = true;
                let cancel = CancelMigration {
                    generation: generation(params, 1),
                };
                source
                    .cancel_migration(&params.server_id, &cancel)
                    .await
                    .map_err(|error| rpc_error(&params.source, error))?;
            }
        }
        if status.generation != generation(params, 1) {
            return Err(StepError::Permanent(
                "the source reports another migration".to_owned(),
            ));
        }
        match status.state {
            MigrationState::Completed => output(status),
            _ if cancelling => Err(StepError::Permanent("aborted".to_owned())),
            _ => Err(StepError::Permanent(format!(
                "the migration failed: {}",
                status
                    .error
                    .as_deref()
                    .unwrap_or("the source gave no reason")
            ))),
        }
    })
}

async fn aborted(services: &Services, params: &LiveMigrateParams) -> Result<bool, StepError> {
    let row = q::get_migration(services.db.pool(), params.migration_id)
        .await
        .map_err(db_error)?;
    Ok(row.is_some_and(|row| row.status == "cancelling"))
}

async fn record_progress(services: &Services, migration: i64, status: &MigrationStatus) {
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let of = |t: &nefos_node_api::TransferProgress| {
        [
            int(t.total_bytes),
            int(t.processed_bytes),
            int(t.remaining_bytes),
        ]
    };
    let progress = MigrationProgress {
        memory: of(&status.memory),
        disk: of(&status.disk),
    };
    if let Err(error) =
        q::set_migration_progress(services.db.pool(), migration, &progress, now_micros()).await
    {
        tracing::debug!(migration, %error, "cannot record a migration's progress");
    }
}

fn cancel_send<'a>(
    services: &'a Services,
    input: Input<'a>,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        let params = input.params;
        // Never once the guest may have run at the destination.
        if let_go(services, params).await? {
            return Ok(());
        }
        let client = services
            .nodes
            .client(&params.source)
            .await
            .map_err(step_error)?;
        let cancel = CancelMigration {
            generation: generation(params, 1),
        };
        match client.cancel_migration(&params.server_id, &cancel).await {
            Ok(_) => Ok(()),
            Err(error) => nothing_left(error, params, &params.source),
        }
    })
}

/// The guest runs at the destination; the server and its ports are the destination's.
fn switch<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        let sent: MigrationStatus = input.required("send")?;
        // Recorded before the destination is asked to let the guest run: from here on the
        // source never resumes its copy unless the destination confirms the guest did not
        // run there. An abort that came meanwhile wins.
        let switching = q::set_migration_status(
            services.db.pool(),
            params.migration_id,
            &["running"],
            "switching",
            now_micros(),
        )
        .await
        .map_err(db_error)?;
        if !switching && status_of(services, params).await?.as_deref() != Some("switching") {
            return Err(StepError::Permanent("aborted".to_owned()));
        }
        let destination = services
            .nodes
            .client(&params.destination)
            .await
            .map_err(step_error)?;
        let finish = FinishIncoming {
            generation: generation(params, 2),
        };
        let arrived: VmStatus = destination
            .finish_incoming(&params.server_id, &finish)
            .await
            .map_err(|error| rpc_error(&params.destination, error))?;
        let forwards = serde_json::to_string(&arrived.forwards).unwrap_or_default();
        let (vm_state, power_state) = state::reported(arrived.state);
        let change = StateChange {
            node_id: Some(&params.destination),
            forwards: Some(&forwards),
            vm_state: Some(vm_state),
            power_state: Some(power_state),
            ..StateChange::default()
        };
        let now = now_micros();
        let mut tx = services.db.begin().await.map_err(db_error)?;
        // Only while the move is the server's task: a delete that began meanwhile wins,
        // and the guest that arrived is undone.
        if !q::change_state(
            &mut *tx,
            &params.server_id,
            Some(Some(task::MIGRATING)),
            &change,
            now,
        )
        .await
        .map_err(db_error)?
        {
            return Err(StepError::Permanent(
                "the server is being deleted".to_owned(),
            ));
        }
        services
            .networks
            .move_device_ports(&mut tx, &params.server_id, &params.destination)
            .await
            .map_err(|error| step_error(ComputeError::Network(error)))?;
        let int = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        q::end_migration(
            &mut *tx,
            params.migration_id,
            "completed",
            int(sent.downtime_ms),
            int(sent.total_ms),
            None,
            now,
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(|error| {
            db_error(nefos_db::DbError::query("commit a migration's switch")(
                error,
            ))
        })?;
        tracing::info!(server = %params.server_id, node = %params.destination, downtime_ms = ?sent.downtime_ms, "the server runs on its new node");
        output(arrived)
    })
}

/// The source's copy goes; the nodes get their networks as the ports now are. Nothing
/// here may unwind the move: failures are recorded on it and left to the reconciler.
fn release<'a>(
    services: &'a Services,
    input: Input<'a>,
) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        let destroyed = match services.nodes.client(&params.source).await {
            Ok(client) => client
                .destroy_vm(&params.server_id, generation(params, 3))
                .await
                .map_err(|error| chain(&error)),
            Err(error) => Err(chain(&error)),
        };
        if let Err(error) = destroyed {
            let note = format!("the source's copy could not be removed: {error}");
            tracing::warn!(server = %params.server_id, node = %params.source, %note);
            if let Err(error) = q::end_migration(
                services.db.pool(),
                params.migration_id,
                "completed",
                None,
                None,
                Some(&note),
                now_micros(),
            )
            .await
            {
                tracing::warn!(%error, "cannot record a migration's note");
            }
        }
        let ports = match connection(services).await {
            Ok(mut conn) => services
                .networks
                .device_ports(&mut conn, &params.server_id)
                .await
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        if !ports.is_empty() {
            let hosts = services.hosts_of(&ports).await.unwrap_or_default();
            services
                .push_networks_to(hosts.into_iter().chain([params.source.clone()]))
                .await;
        }
        end_task(services, params, StateChange::default()).await?;
        finish_action(services, &params.server_id, &params.request_id, None).await;
        output(())
    })
}

fn rpc_error(node: &str, source: nefos_node_api::NodeClientError) -> StepError {
    step_error(ComputeError::Rpc {
        node: node.to_owned(),
        source,
    })
}
