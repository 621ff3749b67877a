//! Rebuilding a server: the node is granted the image's blocks and rebuilds the VM, then
//! the server takes the state the node reports and the image it was rebuilt from. There is
//! nothing to undo: a failed rebuild leaves the server in ERROR with the reason (its old
//! disk may be gone), as Nova does, and a rebuild or delete can follow.

use nefos_db::compute::{self as q, StateChange};
use nefos_db::time::now_micros;
use nefos_node_api::{GuestConfig, ImageContent, PowerState, RebuildVm, VmState, VmStatus};
use nefos_saga::{BoxFuture, Saga, Step, StepError, StepInput, nothing_to_undo, output};
use serde::{Deserialize, Serialize};

use super::{db_error, finish_action, step_error};
use crate::servers::model::Fault;
use crate::servers::state::{self, task, vm};
use crate::{ComputeError, Services};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RebuildParams {
    pub server_id: String,
    pub node_id: String,
    pub generation: u64,
    pub image_id: String,
    /// The server's name after the rebuild.
    pub name: String,
    pub image: ImageContent,
    /// With the new administrator password: the saga is deleted once it ends.
    pub guest: GuestConfig,
    pub power: PowerState,
    pub request_id: String,
}

#[derive(Debug)]
pub struct RebuildSaga;

type Input<'a> = StepInput<'a, RebuildParams>;

impl Saga for RebuildSaga {
    const KIND: &'static str = "server_rebuild";
    type Params = RebuildParams;
    type Context = Services;

    fn steps() -> Vec<Step<Self>> {
        vec![
            Step {
                name: "rebuild",
                action: rebuild,
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
        params: &'a RebuildParams,
        error: &'a str,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let fault = Fault {
                code: 500,
                message: error.to_owned(),
                created: now_micros(),
            };
            let fault = serde_json::to_string(&fault).unwrap_or_default();
            let change = StateChange {
                vm_state: Some(vm::ERROR),
                task_state: Some(None),
                fault: Some(Some(&fault)),
                ..StateChange::default()
            };
            let rebuilding = Some(Some(task::REBUILDING));
            q::change_state(
                services.db.pool(),
                &params.server_id,
                rebuilding,
                &change,
                now_micros(),
            )
            .await
            .map_err(db_error)?;
            tracing::warn!(server = %params.server_id, %error, "rebuild failed");
            finish_action(services, &params.server_id, &params.request_id, Some(error)).await;
            Ok(())
        })
    }
}

fn rebuild<'a>(
    services: &'a Services,
    input: Input<'a>,
) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        let node = params.node_id.clone();
        services
            .nodes
            .registry()
            .grant_image(&node, &params.image.hashes)
            .await
            .map_err(step_error)?;
        let client = services.nodes.client(&node).await.map_err(step_error)?;
        let request = RebuildVm {
            generation: params.generation,
            name: Some(params.name.clone()),
            image: params.image.clone(),
            guest: params.guest.clone(),
            power: params.power,
        };
        let status = client
            .rebuild_vm(&params.server_id, &request)
            .await
            .map_err(|source| step_error(ComputeError::Rpc { node, source }))?;
        output(status)
    })
}

fn record<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        let status: VmStatus = input.required("rebuild")?;
        let (vm_state, power_state) = state::reported(status.state);
        let forwards = serde_json::to_string(&status.forwards).unwrap_or_default();
        let change = StateChange {
            vm_state: Some(vm_state),
            task_state: Some(None),
            power_state: Some(power_state),
            forwards: Some(&forwards),
            fault: Some(None),
            ..StateChange::default()
        };
        let id = &params.server_id;
        let now = now_micros();
        let mut tx = services.db.begin().await.map_err(db_error)?;
        if q::change_state(&mut *tx, id, Some(Some(task::REBUILDING)), &change, now)
            .await
            .map_err(db_error)?
        {
            q::set_image(&mut *tx, id, &params.image_id, now)
                .await
                .map_err(db_error)?;
            // A VM the node left stopped runs nothing.
            if status.state == VmState::Stopped {
                super::create::release_activity(services, &mut tx, id).await?;
            }
        }
        tx.commit()
            .await
            .map_err(|error| db_error(nefos_db::DbError::query("commit a rebuild")(error)))?;
        finish_action(services, id, &params.request_id, None).await;
        tracing::info!(server = %id, image = %params.image_id, "rebuilt");
        output(())
    })
}
