//! Deleting a server: its node destroys the VM (its disk and run directory with it), then
//! the server is marked deleted and its quota released, in one transaction. A server on
//! a node that is down is deleted from the database at once (Nova's local delete); the
//! reconciler destroys its VM when the node is back.

use nefos_db::compute::{self as q, StateChange};
use nefos_db::time::now_micros;
use nefos_saga::{BoxFuture, Saga, Step, StepError, StepInput, nothing_to_undo, output};
use serde::{Deserialize, Serialize};

use super::{db_error, finish_action, step_error};
use crate::servers::charges::{self, Size};
use crate::servers::state::{power, vm};
use crate::{ComputeError, Services};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteParams {
    pub server_id: String,
    pub generation: u64,
    pub request_id: String,
}

#[derive(Debug)]
pub struct DeleteSaga;

type Input<'a> = StepInput<'a, DeleteParams>;

impl Saga for DeleteSaga {
    const KIND: &'static str = "server_delete";
    /// A node that does not answer for this long is treated as down.
    const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(120);
    type Params = DeleteParams;
    type Context = Services;

    fn steps() -> Vec<Step<Self>> {
        vec![
            Step {
                name: "destroy",
                action: destroy,
                undo: nothing_to_undo,
            },
            Step {
                name: "forget",
                action: forget,
                undo: nothing_to_undo,
            },
        ]
    }

    fn unwound<'a>(
        services: &'a Services,
        params: &'a DeleteParams,
        error: &'a str,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let change = StateChange {
                task_state: Some(None),
                ..StateChange::default()
            };
            if let Err(failure) = q::change_state(
                services.db.pool(),
                &params.server_id,
                None,
                &change,
                now_micros(),
            )
            .await
            {
                tracing::error!(server = %params.server_id, error = %failure, "cannot record a failed delete");
            }
            tracing::warn!(server = %params.server_id, %error, "server delete failed");
            finish_action(services, &params.server_id, &params.request_id, Some(error)).await;
        })
    }
}

fn destroy<'a>(
    services: &'a Services,
    input: Input<'a>,
) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let id = &input.params.server_id;
        let server = q::get_server(services.db.pool(), id)
            .await
            .map_err(db_error)?
            .ok_or_else(|| StepError::Permanent(format!("server {id} is gone")))?;
        let Some(node) = server.node_id else {
            return output("unplaced");
        };
        let registered = services.nodes.registry().get(&node).await;
        if registered.is_ok_and(|n| !n.is_up(now_micros())) {
            tracing::warn!(server = %id, node = %node, "node down: deleting locally; the reconciler destroys the VM later");
            return output("node down");
        }
        let client = services.nodes.client(&node).await.map_err(step_error)?;
        client
            .destroy_vm(id, input.params.generation)
            .await
            .map_err(|source| step_error(ComputeError::Rpc { node, source }))?;
        output("destroyed")
    })
}

fn forget<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let id = &input.params.server_id;
        let mut tx = services.db.begin().await.map_err(db_error)?;
        let Some(server) = q::get_server(&mut *tx, id).await.map_err(db_error)? else {
            return output(());
        };
        if server.deleted_at.is_some() {
            return output(());
        }
        let size = Size {
            vcpus: server.vcpus,
            ram_mib: server.ram_mib,
            disk_gib: server.disk_gib,
        };
        let mut provisions = charges::existence(&server.project_id, &server.user_id, size, 1, -1);
        if server.active_charged {
            provisions.extend(charges::activity(
                &server.project_id,
                &server.user_id,
                size,
                1,
                -1,
            ));
        }
        services
            .quotas
            .charge_in(&mut tx, &provisions)
            .await
            .map_err(|error| StepError::Transient(super::chain(&error)))?;
        let now = now_micros();
        let change = StateChange {
            vm_state: Some(vm::DELETED),
            task_state: Some(None),
            power_state: Some(power::NOSTATE),
            active_charged: Some(false),
            terminated_at: Some(now),
            deleted_at: Some(now),
            ..StateChange::default()
        };
        q::change_state(&mut *tx, id, None, &change, now)
            .await
            .map_err(db_error)?;
        tx.commit()
            .await
            .map_err(|error| db_error(nefos_db::DbError::query("commit a deletion")(error)))?;
        finish_action(services, id, &input.params.request_id, None).await;
        tracing::info!(server = %id, "server deleted");
        output(())
    })
}
