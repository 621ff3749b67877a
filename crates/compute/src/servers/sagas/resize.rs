//! The sagas of a resize (see `servers/resize.rs`).
//!
//! `ResizeSaga`: stop the VM if it runs, resize it on its node, start it again if it ran,
//! then record the new flavor and VERIFY_RESIZE. Undone: the node reverts (old disk and
//! sizes) and the VM is started again if it ran; unwound, the server keeps its flavor,
//! takes the state its node reports, and what the resize charged is given back.
//!
//! `ResizeEndSaga`: a confirm (the node drops the kept disk; what shrank is given back)
//! or a revert (the node restores the old disk and sizes, the VM starts again if it ran;
//! the old flavor comes back and what grew is given back).

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
            // Given back even if a delete took the server over: the delete gives back only
            // the flavor the server had, the old one, since the resize was not recorded.
            settle(
                services,
                &params.server_id,
                &params.node_id,
                task::RESIZE_PREP,
                Release::Always(&charges::released(growth)),
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
        call(services, &params.node_id, |client| async move {
            client.start_vm(&params.server_id, &request).await
        })
        .await
        .map(drop)
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
        match reverted {
            Ok(_) => Ok(()),
            // The resize never happened on the node: nothing to revert.
            Err(StepError::Permanent(message)) if message.contains("no resize") => Ok(()),
            Err(error) => Err(error),
        }
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
        let growth = owned_growth(services, params).await?;
        let mut tx = services.db.begin().await.map_err(db_error)?;
        let from = serde_json::to_string(&params.from).unwrap_or_default();
        // Only from the resize's own task: a delete that began meanwhile keeps its own,
        // and gives back the flavor the server has, the old one, so the growth is given
        // back here.
        if q::change_state(&mut *tx, id, Some(Some(task::RESIZE_PREP)), &change, now)
            .await
            .map_err(db_error)?
        {
            q::set_flavor(&mut *tx, id, &params.to.columns(), Some(&from), now)
                .await
                .map_err(db_error)?;
        } else {
            services
                .quotas
                .charge_in(&mut tx, &charges::released(growth))
                .await
                .map_err(|error| StepError::Transient(chain(&error)))?;
        }
        tx.commit()
            .await
            .map_err(|error| db_error(nefos_db::DbError::query("commit a resize")(error)))?;
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
        let status = call(services, &params.node_id, |client| async move {
            if params.revert {
                client.revert_resize(&params.server_id, &request).await
            } else {
                client.confirm_resize(&params.server_id, &request).await
            }
        })
        .await?;
        output(status)
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
        let status = call(services, &params.node_id, |client| async move {
            client.start_vm(&params.server_id, &request).await
        })
        .await?;
        output(status)
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
        let flavor = if params.revert {
            &params.from
        } else {
            &params.to
        };
        settle(
            services,
            &params.server_id,
            &params.node_id,
            params.task(),
            Release::IfStillOurs(&charges::released(given_back)),
            Some((flavor, &status)),
        )
        .await?;
        finish_action(services, &params.server_id, &params.request_id, None).await;
        tracing::info!(server = %params.server_id, revert = params.revert, flavor = %flavor.id, "resize ended");
        output(())
    })
}

/// When quota is given back.
enum Release<'a> {
    /// Whoever has the server's task now.
    Always(&'a [nefos_quota::Provision]),
    /// Only while the task is still the saga's (a delete gives back all there is).
    IfStillOurs(&'a [nefos_quota::Provision]),
}

/// Ends the task `task` with the state the node reports (`known`, or asked now), gives
/// back what `release` says, and with `known` sets the server's flavor and clears the one
/// a resize kept, all in one transaction; the state changes only if the task is still
/// `task`.
async fn settle(
    services: &Services,
    id: &str,
    node: &str,
    task: &str,
    release: Release<'_>,
    known: Option<(&ServerFlavor, &VmStatus)>,
) -> Result<(), StepError> {
    let asked;
    let reported = match known {
        Some((_, status)) => Some(status),
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
    let ours = q::change_state(&mut *tx, id, Some(Some(task)), &change, now)
        .await
        .map_err(db_error)?;
    let released = match release {
        Release::Always(provisions) => provisions,
        Release::IfStillOurs(provisions) if ours => provisions,
        Release::IfStillOurs(_) => &[],
    };
    services
        .quotas
        .charge_in(&mut tx, released)
        .await
        .map_err(|error| StepError::Transient(chain(&error)))?;
    if ours {
        if let Some((flavor, _)) = known {
            q::set_flavor(&mut *tx, id, &flavor.columns(), None, now)
                .await
                .map_err(db_error)?;
        }
        if reported.is_some_and(|s| s.state == VmState::Stopped) {
            super::create::release_activity(services, &mut tx, id).await?;
        }
    }
    tx.commit()
        .await
        .map_err(|error| db_error(nefos_db::DbError::query("commit a resize's end")(error)))?;
    Ok(())
}

/// Calls the server's node; its failures as step errors.
async fn call<F, Fut>(services: &Services, node: &str, call: F) -> Result<VmStatus, StepError>
where
    F: FnOnce(nefos_node_api::NodeClient) -> Fut,
    Fut: Future<Output = Result<VmStatus, nefos_node_api::NodeClientError>>,
{
    let client = services.nodes.client(node).await.map_err(step_error)?;
    call(client).await.map_err(|source| {
        step_error(ComputeError::Rpc {
            node: node.to_owned(),
            source,
        })
    })
}
