//! Deleting a server: its node destroys the VM (its disk and run directory with it), then
//! the server is marked deleted and its quota released, in one transaction. A node that
//! does not answer is retried for a while; then the delete fails and the server keeps its
//! state, to be deleted again (nothing is forgotten that a node may still run).

use std::collections::BTreeSet;

use nefos_db::compute::{self as q, StateChange};
use nefos_db::time::now_micros;
use nefos_saga::{BoxFuture, Saga, Step, StepError, StepInput, nothing_to_undo, output};
use serde::{Deserialize, Serialize};

use super::{db_error, finish_action, step_error};
use crate::servers::charges::{self, Size};
use crate::servers::model::ServerFlavor;
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
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let change = StateChange {
                task_state: Some(None),
                ..StateChange::default()
            };
            let deleting = Some(Some(crate::servers::state::task::DELETING));
            q::change_state(
                services.db.pool(),
                &params.server_id,
                deleting,
                &change,
                now_micros(),
            )
            .await
            .map_err(db_error)?;
            tracing::warn!(server = %params.server_id, %error, "server delete failed");
            finish_action(services, &params.server_id, &params.request_id, Some(error)).await;
            Ok(())
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
        let now = now_micros();
        // The nodes of the server's networks, read before its ports go: their tunnels
        // change with it.
        let mut conn = services
            .db
            .pool()
            .acquire()
            .await
            .map_err(|error| db_error(nefos_db::DbError::query("connect")(error)))?;
        let ports = services
            .networks
            .device_ports(&mut conn, id)
            .await
            .map_err(|error| step_error(ComputeError::Network(error)))?;
        drop(conn);
        let hosts = services.hosts_of(&ports).await.map_err(step_error)?;
        let mut tx = services.db.begin().await.map_err(db_error)?;
        // The conditional update comes first: its row lock orders concurrent deletes, and
        // only the one that marks the server deleted releases its quota.
        if q::mark_deleted(&mut *tx, id, now).await.map_err(db_error)? {
            let server = q::get_server(&mut *tx, id)
                .await
                .map_err(db_error)?
                .ok_or_else(|| StepError::Permanent(format!("server {id} is gone")))?;
            // The ports its creation made go with it; those the project gave it are
            // freed for another server.
            let made: BTreeSet<String> = q::server_ports(&mut *tx, id)
                .await
                .map_err(db_error)?
                .into_iter()
                .filter(|row| row.made_with_server == 1)
                .map(|row| row.port_id)
                .collect();
            services
                .networks
                .release_device_ports(&mut tx, id, &made)
                .await
                .map_err(|error| step_error(ComputeError::Network(error)))?;
            q::delete_server_ports(&mut tx, id)
                .await
                .map_err(db_error)?;
            let size = Size {
                vcpus: server.vcpus,
                ram_mib: server.ram_mib,
                disk_gib: server.disk_gib,
            };
            let mut provisions =
                charges::existence(&server.project_id, &server.user_id, size, 1, -1);
            // A resize not yet confirmed holds the larger of its two flavors: what the old
            // one had more of is charged too.
            if let Some(before) = server
                .resized_from
                .as_deref()
                .and_then(|f| serde_json::from_str::<ServerFlavor>(f).ok())
            {
                provisions.extend(charges::released(charges::growth(
                    &server.project_id,
                    &server.user_id,
                    size,
                    before.size(),
                    server.active_charged,
                )));
            }
            // A deleted row keeps its flag; it is never charged again.
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
        }
        tx.commit()
            .await
            .map_err(|error| db_error(nefos_db::DbError::query("commit a deletion")(error)))?;
        services.push_networks_to(hosts).await;
        finish_action(services, id, &input.params.request_id, None).await;
        tracing::info!(server = %id, "server deleted");
        output(())
    })
}
