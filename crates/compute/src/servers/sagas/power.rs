//! Power actions: the node starts, stops, reboots, pauses or unpauses the VM, and the
//! server takes the state the node reports. Stopping releases the server's active
//! resources (Synnefo's cyclades.cpu and cyclades.ram); starting charged them already,
//! and a start that fails gives them back.

use nefos_db::compute::{self as q, StateChange};
use nefos_db::time::now_micros;
use nefos_node_api::{PauseVm, RebootVm, StartVm, StopVm, VmState, VmStatus};
use nefos_saga::{BoxFuture, Saga, Step, StepError, StepInput, nothing_to_undo, output};
use serde::{Deserialize, Serialize};

use super::{finish_action, step_error};
use crate::servers::charges::{self, Size};
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
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // What the VM does now is what its node says; if the node cannot say, the
            // server keeps its last reported state and the reconciler catches up.
            let reported = match services.nodes.client(&params.node_id).await {
                Ok(client) => client.vm_status(&params.server_id).await.ok(),
                Err(_) => None,
            };
            if let Err(failure) = settle(services, &params.server_id, reported.as_ref()).await {
                tracing::error!(server = %params.server_id, error = %failure, "cannot record a failed action");
            }
            tracing::warn!(server = %params.server_id, action = params.action.name(), %error, "server action failed");
            finish_action(services, &params.server_id, &params.request_id, Some(error)).await;
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
        }
        .map_err(|source| step_error(ComputeError::Rpc { node, source }))?;
        output(status)
    })
}

fn record<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let status: VmStatus = input.required("call")?;
        settle(services, &input.params.server_id, Some(&status))
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

/// Ends the server's task, taking the state `reported` by its node if there is one, and
/// releasing its active resources if the VM is stopped.
async fn settle(
    services: &Services,
    id: &str,
    reported: Option<&VmStatus>,
) -> Result<(), ComputeError> {
    let mut tx = services.db.begin().await?;
    let Some(server) = q::get_server(&mut *tx, id).await? else {
        return Ok(());
    };
    let stopped = reported.is_some_and(|s| s.state == VmState::Stopped);
    let release = stopped && server.active_charged;
    if release {
        let size = Size {
            vcpus: server.vcpus,
            ram_mib: server.ram_mib,
            disk_gib: server.disk_gib,
        };
        let provisions = charges::activity(&server.project_id, &server.user_id, size, 1, -1);
        services
            .quotas
            .charge_in(&mut tx, &provisions)
            .await
            .map_err(ComputeError::Quota)?;
    }
    let states = reported.map(|s| state::reported(s.state));
    let forwards = reported.map(|s| serde_json::to_string(&s.forwards).unwrap_or_default());
    let change = StateChange {
        vm_state: states.map(|(vm, _)| vm),
        power_state: states.map(|(_, power)| power),
        task_state: Some(None),
        forwards: forwards.as_deref(),
        active_charged: release.then_some(false),
        ..StateChange::default()
    };
    // A delete that began meanwhile keeps its task.
    let deleting = server.task_state.as_deref() == Some(state::task::DELETING);
    let change = if deleting {
        StateChange {
            task_state: None,
            ..change
        }
    } else {
        change
    };
    q::change_state(&mut *tx, id, None, &change, now_micros()).await?;
    tx.commit()
        .await
        .map_err(nefos_db::DbError::query("commit a server's reported state"))?;
    Ok(())
}
