//! Power actions: the node starts, stops, reboots, pauses, unpauses, suspends or resumes
//! the VM, and the server takes the state the node reports. Stopping releases the
//! server's active resources (Synnefo's cyclades.cpu and cyclades.ram); starting charged
//! them already, and a start that fails gives them back. A suspended server keeps them.

use nefos_db::compute::{self as q, StateChange};
use nefos_db::time::now_micros;
use nefos_node_api::{PauseVm, RebootVm, StartVm, StopVm, SuspendVm, VmState, VmStatus};
use nefos_saga::{BoxFuture, Saga, Step, StepError, StepInput, nothing_to_undo, output};
use serde::{Deserialize, Serialize};

use super::{finish_action, step_error};
use crate::servers::state;
use crate::{ComputeError, PowerAction, Services};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PowerParams {
    pub server_id: String,
    pub node_id: String,
    pub generation: u64,
    pub action: PowerAction,
    pub request_id: String,
}

#[derive(Debug)]
pub struct PowerSaga;

type Input<'a> = StepInput<'a, PowerParams>;

impl Saga for PowerSaga {
    const KIND: &'static str = "server_power";
    type Params = PowerParams;
    type Context = Services;

    fn steps() -> Vec<Step<Self>> {
        vec![
            Step {
                name: "call",
                action: call,
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
        params: &'a PowerParams,
        error: &'a str,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            // What the VM does now is what its node says; if the node cannot say, the
            // server keeps its last reported state and the reconciler catches up.
            let reported = match services.nodes.client(&params.node_id).await {
                Ok(client) => client.vm_status(&params.server_id).await.ok(),
                Err(_) => None,
            };
            let task = params.action.task();
            settle(services, &params.server_id, reported.as_ref(), task)
                .await
                .map_err(|failure| StepError::Transient(super::chain(&failure)))?;
            tracing::warn!(server = %params.server_id, action = params.action.name(), %error, "server action failed");
            finish_action(services, &params.server_id, &params.request_id, Some(error)).await;
            Ok(())
        })
    }
}

fn call<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        let node = params.node_id.clone();
        let client = services.nodes.client(&node).await.map_err(step_error)?;
        let id = params.server_id.as_str();
        let generation = params.generation;
        let status = match params.action {
            PowerAction::Start => client.start_vm(id, &StartVm { generation }).await,
            PowerAction::Stop => {
                let stop = StopVm {
                    generation,
                    timeout_seconds: nefos_node_api::default_stop_timeout(),
                };
                client.stop_vm(id, &stop).await
            }
            PowerAction::Reboot { hard } => {
                let reboot = RebootVm {
                    generation,
                    hard,
                    timeout_seconds: nefos_node_api::default_stop_timeout(),
                };
                client.reboot_vm(id, &reboot).await
            }
            PowerAction::Pause => client.pause_vm(id, &PauseVm { generation }).await,
            PowerAction::Unpause => client.unpause_vm(id, &PauseVm { generation }).await,
            PowerAction::Suspend => client.suspend_vm(id, &SuspendVm { generation }).await,
            PowerAction::Resume => client.resume_vm(id, &SuspendVm { generation }).await,
        }
        .map_err(|source| step_error(ComputeError::Rpc { node, source }))?;
        output(status)
    })
}

fn record<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let status: VmStatus = input.required("call")?;
        let task = input.params.action.task();
        settle(services, &input.params.server_id, Some(&status), task)
            .await
            .map_err(|error| StepError::Transient(super::chain(&error)))?;
        finish_action(
            services,
            &input.params.server_id,
            &input.params.request_id,
            None,
        )
        .await;
        output(())
    })
}

/// Ends the action's task `task`, taking the state `reported` by the node if there is one,
/// and releasing the server's active resources if the VM is stopped. If the server's task
/// is no longer `task` (a delete began, or this step runs again after it was recorded),
/// its task is left alone: a delete keeps it, and the state is still the node's.
async fn settle(
    services: &Services,
    id: &str,
    reported: Option<&VmStatus>,
    task: &str,
) -> Result<(), ComputeError> {
    let mut tx = services.db.begin().await?;
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
    let ours = q::change_state(&mut *tx, id, Some(Some(task)), &change, now).await?;
    if !ours {
        let keep_task = StateChange {
            task_state: None,
            ..change
        };
        let deleting = Some(Some(state::task::DELETING));
        q::change_state(&mut *tx, id, deleting, &keep_task, now).await?;
    }
    if reported.is_some_and(|s| s.state == VmState::Stopped) {
        super::create::release_activity(services, &mut tx, id)
            .await
            .map_err(|error| ComputeError::conflict(error.message().to_owned()))?;
    }
    tx.commit()
        .await
        .map_err(nefos_db::DbError::query("commit a server's reported state"))?;
    Ok(())
}
