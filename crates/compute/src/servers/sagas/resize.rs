//! The sagas of a resize (see `servers/resize.rs`).
//!
//! The server's row holds the resize from its request on: the new flavor, and the old in
//! `resized_from`, with quota for the larger of each resource charged. Whatever ends the
//! resize clears `resized_from` by a conditional update and gives back, in the same
//! transaction, what the flavor it keeps does not need; so it happens once, whether a
//! step runs again after a crash or a delete (which gives back both) came first.
//!
//! `ResizeSaga`: stop the VM if it runs, resize it on its node, start it again if it ran,
//! then record VERIFY_RESIZE. Undone: the node reverts (old disk and sizes) and the VM is
//! started again if it ran; unwound, the server gets its old flavor back, takes the
//! state its node reports, and what grew is given back.
//!
//! `ResizeEndSaga`: a confirm (the node drops the kept disk; what shrank is given back)
//! or a revert (the node restores the old disk and sizes, the VM starts again if it ran;
//! the old flavor comes back and what grew is given back). Once the node has ended the
//! resize, the end is recorded even if the VM then fails to start.

use nefos_db::compute::{self as q, StateChange};
use nefos_db::time::now_micros;
use nefos_node_api::{ResizeEnd, ResizeVm, StartVm, StopVm, VmState, VmStatus};
use nefos_saga::{BoxFuture, Saga, Step, StepError, StepInput, nothing_to_undo, output};
use serde::{Deserialize, Serialize};

use super::{chain, db_error, finish_action, step_error};
use crate::servers::charges;
use crate::servers::model::ServerFlavor;
use crate::servers::state::{self, task};
use crate::{ComputeError, Services};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResizeParams {
    pub server_id: String,
    pub node_id: String,
    /// The first of `RESIZE_GENERATIONS`: stop, resize, start, then the undos' (revert,
    /// start again), which come after every action's.
    pub generation: u64,
    /// The VM ran when the resize was asked for: it is stopped for it and started after.
    pub was_running: bool,
    /// The server's active resources were charged, so their growth was too.
    pub active_charged: bool,
    pub from: ServerFlavor,
    pub to: ServerFlavor,
    pub request_id: String,
}

#[derive(Debug)]
pub struct ResizeSaga;

type Input<'a> = StepInput<'a, ResizeParams>;

impl Saga for ResizeSaga {
    const KIND: &'static str = "server_resize";
    type Params = ResizeParams;
    type Context = Services;

    fn steps() -> Vec<Step<Self>> {
        vec![
            Step {
                name: "stop",
                action: stop,
                undo: start_again,
            },
            Step {
                name: "resize",
                action: resize,
                undo: revert,
            },
            Step {
                name: "start",
                action: start,
                undo: nothing_to_undo,
            },
            Step {
                name: "record",
                action: record,
                undo: nothing_to_undo,
            },
        ]
    }

    fn unwound<'a>(
        services: &'a Services,
        params: &'a ResizeParams,
        error: &'a str,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let growth = owned_growth(services, params).await?;
            settle(
                services,
                &params.server_id,
                &params.node_id,
                task::RESIZE_PREP,
                Ending {
                    restore: Some(&params.from),
                    released: &charges::released(growth),
                },
                None,
            )
            .await?;
            tracing::warn!(server = %params.server_id, %error, "resize failed");
            finish_action(services, &params.server_id, &params.request_id, Some(error)).await;
            Ok(())
        })
    }
}

/// What the resize charged: the growth from its old flavor to its new, for the server's
/// project and user.
async fn owned_growth(
    services: &Services,
    params: &ResizeParams,
) -> Result<Vec<nefos_quota::Provision>, StepError> {
    let (project, user) = owner(services, &params.server_id).await?;
    Ok(charges::growth(
        &project,
        &user,
        params.from.size(),
        params.to.size(),
        params.active_charged,
    ))
}

async fn owner(services: &Services, id: &str) -> Result<(String, String), StepError> {
    let row = q::get_server(services.db.pool(), id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| StepError::Permanent(format!("server {id} is gone")))?;
    Ok((row.project_id, row.user_id))
}

fn generation(params: &ResizeParams, offset: u64) -> u64 {
    params.generation + offset
}

fn stop<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        if !params.was_running {
            return output(());
        }
        let request = StopVm {
            generation: generation(params, 0),
            timeout_seconds: nefos_node_api::default_stop_timeout(),
        };
        call(services, &params.node_id, |client| async move {
            client.stop_vm(&params.server_id, &request).await
        })
        .await?;
        output(())
    })
}

fn start_again<'a>(
    services: &'a Services,
    input: Input<'a>,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        let params = input.params;
        if !params.was_running {
            return Ok(());
        }
        let request = StartVm {
            generation: generation(params, 4),
        };
        let started = call(services, &params.node_id, |client| async move {
            client.start_vm(&params.server_id, &request).await
        })
        .await;
        moved_on(started)
    })
}

fn resize<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        let request = ResizeVm {
            generation: generation(params, 1),
            size: params.to.vm_size(),
        };
        let status = call(services, &params.node_id, |client| async move {
            client.resize_vm(&params.server_id, &request).await
        })
        .await?;
        output(status)
    })
}

fn revert<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        let params = input.params;
        let request = ResizeEnd {
            generation: generation(params, 3),
        };
        let reverted = call(services, &params.node_id, |client| async move {
            client.revert_resize(&params.server_id, &request).await
        })
        .await;
        moved_on(reverted)
    })
}

fn start<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        if !params.was_running {
            let resized: VmStatus = input.required("resize")?;
            return output(resized);
        }
        let request = StartVm {
            generation: generation(params, 2),
        };
        let status = call(services, &params.node_id, |client| async move {
            client.start_vm(&params.server_id, &request).await
        })
        .await?;
        output(status)
    })
}

fn record<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        let status: VmStatus = input.required("start")?;
        let (_, power_state) = state::reported(status.state);
        let forwards = serde_json::to_string(&status.forwards).unwrap_or_default();
        let change = StateChange {
            vm_state: Some(state::vm::RESIZED),
            task_state: Some(None),
            power_state: Some(power_state),
            forwards: Some(&forwards),
            ..StateChange::default()
        };
        let id = &params.server_id;
        let now = now_micros();
        // Only from the resize's own task: a delete that began meanwhile keeps its own.
        q::change_state(
            services.db.pool(),
            id,
            Some(Some(task::RESIZE_PREP)),
            &change,
            now,
        )
        .await
        .map_err(db_error)?;
        finish_action(services, id, &params.request_id, None).await;
        tracing::info!(server = %id, flavor = %params.to.id, "resized; waiting for confirm or revert");
        output(())
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResizeEndParams {
    pub server_id: String,
    pub node_id: String,
    /// The end's call; a revert's start takes the next.
    pub generation: u64,
    pub revert: bool,
    /// The VM runs in VERIFY_RESIZE: after a revert it runs again.
    pub was_running: bool,
    pub active_charged: bool,
    /// The flavor before the resize, and the one it gave.
    pub from: ServerFlavor,
    pub to: ServerFlavor,
    pub request_id: String,
}

#[derive(Debug)]
pub struct ResizeEndSaga;

type EndInput<'a> = StepInput<'a, ResizeEndParams>;

impl ResizeEndParams {
    fn task(&self) -> &'static str {
        if self.revert {
            task::RESIZE_REVERTING
        } else {
            task::RESIZE_CONFIRMING
        }
    }
}

impl Saga for ResizeEndSaga {
    const KIND: &'static str = "server_resize_end";
    type Params = ResizeEndParams;
    type Context = Services;

    fn steps() -> Vec<Step<Self>> {
        vec![
            Step {
                name: "end",
                action: end,
                undo: nothing_to_undo,
            },
            Step {
                name: "start",
                action: start_after_revert,
                undo: nothing_to_undo,
            },
            Step {
                name: "record",
                action: record_end,
                undo: nothing_to_undo,
            },
        ]
    }

    fn unwound<'a>(
        services: &'a Services,
        params: &'a ResizeEndParams,
        error: &'a str,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            // The server stays in VERIFY_RESIZE (or takes what its node reports), and the
            // user may try again.
            let change = StateChange {
                task_state: Some(None),
                ..StateChange::default()
            };
            q::change_state(
                services.db.pool(),
                &params.server_id,
                Some(Some(params.task())),
                &change,
                now_micros(),
            )
            .await
            .map_err(db_error)?;
            tracing::warn!(server = %params.server_id, revert = params.revert, %error, "ending a resize failed");
            finish_action(services, &params.server_id, &params.request_id, Some(error)).await;
            Ok(())
        })
    }
}

fn end<'a>(services: &'a Services, input: EndInput<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        let request = ResizeEnd {
            generation: params.generation,
        };
        let ended = call(services, &params.node_id, |client| async move {
            if params.revert {
                client.revert_resize(&params.server_id, &request).await
            } else {
                client.confirm_resize(&params.server_id, &request).await
            }
        })
        .await;
        match ended {
            Ok(status) => output(status),
            // An earlier attempt ended it (its answer was lost): the node has no resize
            // left, which is what this asked for.
            Err(CallError::Refused { .. }) => {
                let status = call(services, &params.node_id, |client| async move {
                    client.vm_status(&params.server_id).await
                })
                .await
                .map_err(StepError::from)?;
                if status.resized_from.is_some() {
                    return Err(StepError::Permanent(
                        "the node refused to end the resize".to_owned(),
                    ));
                }
                output(status)
            }
            Err(other) => Err(other.into()),
        }
    })
}

fn start_after_revert<'a>(
    services: &'a Services,
    input: EndInput<'a>,
) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        let ended: VmStatus = input.required("end")?;
        if !params.revert || !params.was_running {
            return output(ended);
        }
        let request = StartVm {
            generation: params.generation + 1,
        };
        let started = call(services, &params.node_id, |client| async move {
            client.start_vm(&params.server_id, &request).await
        })
        .await;
        match started {
            Ok(status) => output(status),
            // The revert is done on the node and must be recorded: the server shows the
            // VM stopped, and can be started.
            Err(CallError::Refused { message }) => {
                tracing::warn!(server = %params.server_id, %message, "the VM did not start after a revert");
                output(ended)
            }
            Err(other) => Err(other.into()),
        }
    })
}

fn record_end<'a>(
    services: &'a Services,
    input: EndInput<'a>,
) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        let status: VmStatus = input.required("start")?;
        let (project, user) = owner(services, &params.server_id).await?;
        // A confirm gives back what shrank; a revert what grew.
        let given_back = if params.revert {
            charges::growth(
                &project,
                &user,
                params.from.size(),
                params.to.size(),
                params.active_charged,
            )
        } else {
            charges::growth(
                &project,
                &user,
                params.to.size(),
                params.from.size(),
                params.active_charged,
            )
        };
        settle(
            services,
            &params.server_id,
            &params.node_id,
            params.task(),
            Ending {
                restore: params.revert.then_some(&params.from),
                released: &charges::released(given_back),
            },
            Some(&status),
        )
        .await?;
        finish_action(services, &params.server_id, &params.request_id, None).await;
        tracing::info!(server = %params.server_id, revert = params.revert, "resize ended");
        output(())
    })
}

/// How a resize ends in the server's row.
struct Ending<'a> {
    /// The flavor it gets back (a revert, a failed resize), or none (it keeps its own).
    restore: Option<&'a ServerFlavor>,
    /// What is given back, once, as `resized_from` is cleared.
    released: &'a [nefos_quota::Provision],
}

/// Ends the resize in the server's row as `ending` says and, if its task is still `task`,
/// ends the task with the state the node reports (`reported`, or asked now): one
/// transaction.
async fn settle(
    services: &Services,
    id: &str,
    node: &str,
    task: &str,
    ending: Ending<'_>,
    reported: Option<&VmStatus>,
) -> Result<(), StepError> {
    let asked;
    let reported = match reported {
        Some(status) => Some(status),
        None => {
            asked = match services.nodes.client(node).await {
                Ok(client) => client.vm_status(id).await.ok(),
                Err(_) => None,
            };
            asked.as_ref()
        }
    };
    let states = reported.map(|s| state::reported(s.state));
    let forwards = reported.map(|s| serde_json::to_string(&s.forwards).unwrap_or_default());
    let change = StateChange {
        vm_state: states.map(|(vm, _)| vm),
        power_state: states.map(|(_, power)| power),
        task_state: Some(None),
        forwards: forwards.as_deref(),
        ..StateChange::default()
    };
    let now = now_micros();
    let mut tx = services.db.begin().await.map_err(db_error)?;
    let restore = ending.restore.map(ServerFlavor::columns);
    if q::end_resize(&mut *tx, id, restore.as_ref(), now)
        .await
        .map_err(db_error)?
    {
        services
            .quotas
            .charge_in(&mut tx, ending.released)
            .await
            .map_err(|error| StepError::Transient(chain(&error)))?;
    }
    let ours = q::change_state(&mut *tx, id, Some(Some(task)), &change, now)
        .await
        .map_err(db_error)?;
    // A VM left stopped runs nothing: its active resources (of the flavor it now has) go.
    if ours && reported.is_some_and(|s| s.state == VmState::Stopped) {
        super::create::release_activity(services, &mut tx, id).await?;
    }
    tx.commit()
        .await
        .map_err(|error| db_error(nefos_db::DbError::query("commit a resize's end")(error)))?;
    Ok(())
}

/// A failed node call: refused (the node answered 4xx: it will not change its mind) or
/// failed otherwise.
enum CallError {
    Refused { message: String },
    Failed(StepError),
}

impl From<CallError> for StepError {
    fn from(error: CallError) -> StepError {
        match error {
            CallError::Refused { message } => StepError::Permanent(message),
            CallError::Failed(error) => error,
        }
    }
}

/// An undo's call: a node that no longer has the VM (a delete came first) or refuses the
/// generation (the VM moved on) leaves nothing to undo.
fn moved_on(result: Result<VmStatus, CallError>) -> Result<(), StepError> {
    match result {
        Ok(_) => Ok(()),
        Err(CallError::Refused { message }) => {
            tracing::info!(%message, "nothing to undo on the node");
            Ok(())
        }
        Err(CallError::Failed(error)) => Err(error),
    }
}

/// Calls the server's node.
async fn call<F, Fut>(services: &Services, node: &str, call: F) -> Result<VmStatus, CallError>
where
    F: FnOnce(nefos_node_api::NodeClient) -> Fut,
    Fut: Future<Output = Result<VmStatus, nefos_node_api::NodeClientError>>,
{
    let client = services
        .nodes
        .client(node)
        .await
        .map_err(|error| CallError::Failed(step_error(error)))?;
    call(client).await.map_err(|source| {
        if source.status().is_some_and(|s| s.is_client_error()) {
            return CallError::Refused {
                message: chain(&source),
            };
        }
        CallError::Failed(step_error(ComputeError::Rpc {
            node: node.to_owned(),
            source,
        }))
    })
}
