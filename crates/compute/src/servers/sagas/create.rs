//! Building a server: place it on a node, have the node define and start its VM, then
//! record it ACTIVE with what the node reported. Undone, the VM is destroyed; unwound,
//! the server is left in ERROR with the reason, still charged (as in Nova) until deleted.

use nefos_db::compute::{self as q, StateChange};
use nefos_db::time::now_micros;
use nefos_node_api::{EnsureVm, PowerState, VmSpec, VmStatus};
use nefos_saga::{BoxFuture, Saga, Step, StepError, StepInput, nothing_to_undo, output};
use serde::{Deserialize, Serialize};

use super::{db_error, finish_action, step_error};
use crate::Services;
use crate::scheduler::{Demand, PLACEMENT_LOCK};
use crate::servers::model::Fault;
use crate::servers::state::{self, task, vm};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateParams {
    pub server_id: String,
    pub request_id: String,
    /// The ensure's generation; its undo uses the next.
    pub generation: u64,
    /// The whole VM, admin password included: the saga is deleted once it ends.
    pub spec: VmSpec,
}

#[derive(Debug)]
pub struct CreateSaga;

type Input<'a> = StepInput<'a, CreateParams>;

impl Saga for CreateSaga {
    const KIND: &'static str = "server_create";
    type Params = CreateParams;
    type Context = Services;

    fn steps() -> Vec<Step<Self>> {
        vec![
            Step {
                name: "place",
                action: place,
                undo: nothing_to_undo,
            },
            Step {
                name: "plumb",
                action: plumb,
                undo: unplumb,
            },
            Step {
                name: "spawn",
                action: spawn,
                undo: destroy,
            },
            Step {
                name: "activate",
                action: activate,
                undo: nothing_to_undo,
            },
        ]
    }

    fn unwound<'a>(
        services: &'a Services,
        params: &'a CreateParams,
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
                power_state: Some(state::power::NOSTATE),
                fault: Some(Some(&fault)),
                ..StateChange::default()
            };
            // Only the build's own task gives way to ERROR: a server being deleted is left
            // to its delete.
            for build_task in [task::SCHEDULING, task::SPAWNING] {
                let pool = services.db.pool();
                let expect = Some(Some(build_task));
                if q::change_state(pool, &params.server_id, expect, &change, now_micros())
                    .await
                    .map_err(db_error)?
                {
                    break;
                }
            }
            tracing::warn!(server = %params.server_id, %error, "server build failed");
            finish_action(services, &params.server_id, &params.request_id, Some(error)).await;
            Ok(())
        })
    }
}

/// Chooses the node, or keeps the one chosen before a crash.
fn place<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let id = &input.params.server_id;
        let server = q::get_server(services.db.pool(), id)
            .await
            .map_err(db_error)?
            .ok_or_else(|| StepError::Permanent(format!("server {id} is gone")))?;
        if server.deleted_at.is_some() {
            return Err(StepError::Permanent("the server was deleted".to_owned()));
        }
        if let Some(node) = server.node_id {
            return output(node);
        }
        let spec = &input.params.spec;
        let demand = Demand {
            vcpus: u64::from(spec.vcpus),
            ram_mib: spec.ram_mib,
            disk_gib: spec.disk_bytes >> 30,
            cpu_model: Some(
                spec.cpu_model
                    .as_deref()
                    .and_then(nefos_node_api::cpu_model)
                    .or_else(|| nefos_node_api::cpu_model(nefos_node_api::DEFAULT_CPU_MODEL))
                    .ok_or_else(|| StepError::Permanent("no CPU model".to_owned()))?,
            ),
        };
        // Chosen and recorded in one transaction under the placement lock, so the next
        // placement counts this server.
        let mut tx = services.db.begin().await.map_err(db_error)?;
        services
            .db
            .lock_key(&mut tx, PLACEMENT_LOCK)
            .await
            .map_err(db_error)?;
        let node = services
            .place(&mut tx, demand)
            .await
            .map_err(|error| match error {
                crate::ComputeError::Db(error) => db_error(error),
                other => StepError::Permanent(other.to_string()),
            })?;
        let change = StateChange {
            node_id: Some(&node),
            task_state: Some(Some(task::SPAWNING)),
            ..StateChange::default()
        };
        // Only while still scheduling: a delete that began meanwhile (it may have seen no
        // node to destroy the VM on) wins, and the build goes no further.
        let scheduling = Some(Some(task::SCHEDULING));
        if !q::change_state(&mut *tx, id, scheduling, &change, now_micros())
            .await
            .map_err(db_error)?
        {
            return Err(StepError::Permanent(
                "the server is being deleted".to_owned(),
            ));
        }
        tx.commit()
            .await
            .map_err(|error| db_error(nefos_db::DbError::query("commit a placement")(error)))?;
        tracing::info!(server = %id, node = %node, "server placed");
        output(node)
    })
}

/// Binds the server's ports to its node and sends the node (and the other nodes of those
/// networks, whose tunnels now reach it) their networks, so that its taps are there
/// before QEMU opens them.
fn plumb<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        if !has_ports(&input.params.spec) {
            return output(());
        }
        let node: String = input.required("place")?;
        let id = &input.params.server_id;
        rebind(services, id, Some(&node)).await?;
        services.push_networks(&node).await.map_err(step_error)?;
        output(())
    })
}

fn unplumb<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        if !has_ports(&input.params.spec) {
            return Ok(());
        }
        let node: Option<String> = input.output("place")?;
        rebind(services, &input.params.server_id, None).await?;
        services.push_networks_to(node).await;
        Ok(())
    })
}

fn has_ports(spec: &VmSpec) -> bool {
    spec.nics
        .iter()
        .any(|nic| matches!(nic, nefos_node_api::NicSpec::Port { .. }))
}

/// Binds server `id`'s ports to `node` (or unbinds them), and sends the other nodes of
/// their networks their new peers.
async fn rebind(services: &Services, id: &str, node: Option<&str>) -> Result<(), StepError> {
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
        .map_err(|error| step_error(crate::ComputeError::Network(error)))?;
    let before = services.hosts_of(&ports).await.map_err(step_error)?;
    services
        .networks
        .bind_device_ports(&mut conn, id, node)
        .await
        .map_err(|error| step_error(crate::ComputeError::Network(error)))?;
    drop(conn);
    let after = services.hosts_of(&ports).await.map_err(step_error)?;
    let others = before
        .into_iter()
        .chain(after)
        .filter(|host| Some(host.as_str()) != node);
    services.push_networks_to(others).await;
    Ok(())
}

fn spawn<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let node: String = input.required("place")?;
        let request = EnsureVm {
            generation: input.params.generation,
            spec: input.params.spec.clone(),
            power: PowerState::Running,
        };
        let status = services
            .nodes
            .ensure_vm(&node, &input.params.server_id, &request)
            .await
            .map_err(step_error)?;
        output(status)
    })
}

/// Releases a server's active resources if they are charged, in `tx`.
pub(crate) async fn release_activity(
    services: &Services,
    tx: &mut nefos_db::Transaction,
    id: &str,
) -> Result<(), StepError> {
    if !q::set_active_charged(&mut **tx, id, false, now_micros())
        .await
        .map_err(db_error)?
    {
        return Ok(());
    }
    let Some(server) = q::get_server(&mut **tx, id).await.map_err(db_error)? else {
        return Ok(());
    };
    let size = crate::servers::charges::Size {
        vcpus: server.vcpus,
        ram_mib: server.ram_mib,
        disk_gib: server.disk_gib,
    };
    let provisions =
        crate::servers::charges::activity(&server.project_id, &server.user_id, size, 1, -1);
    services
        .quotas
        .charge_in(tx, &provisions)
        .await
        .map_err(|error| StepError::Transient(super::chain(&error)))
}

/// Destroys what the spawn may have made; a VM the node never had is destroyed already.
fn destroy<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        let Some(node) = input.output::<String>("place")? else {
            return Ok(());
        };
        let client = services.nodes.client(&node).await.map_err(step_error)?;
        client
            .destroy_vm(&input.params.server_id, input.params.generation + 1)
            .await
            .map_err(|source| step_error(crate::ComputeError::Rpc { node, source }))
    })
}

fn activate<'a>(
    services: &'a Services,
    input: Input<'a>,
) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let status: VmStatus = input.required("spawn")?;
        let (vm_state, power_state) = state::reported(status.state);
        let forwards = serde_json::to_string(&status.forwards).unwrap_or_default();
        let now = now_micros();
        let change = StateChange {
            vm_state: Some(vm_state),
            task_state: Some(None),
            power_state: Some(power_state),
            forwards: Some(&forwards),
            launched_at: Some(now),
            ..StateChange::default()
        };
        let id = &input.params.server_id;
        let mut tx = services.db.begin().await.map_err(db_error)?;
        // Only the build's own task is ended; a delete that began meanwhile keeps its
        // task (and destroys the VM), and a deleted server stays deleted.
        if !q::change_state(&mut *tx, id, Some(Some(task::SPAWNING)), &change, now)
            .await
            .map_err(db_error)?
        {
            let keep_task = StateChange {
                task_state: None,
                ..change
            };
            q::change_state(&mut *tx, id, Some(Some(task::DELETING)), &keep_task, now)
                .await
                .map_err(db_error)?;
        }
        // A VM the node reports stopped (a guest that powered off at once) runs nothing.
        if status.state == nefos_node_api::VmState::Stopped {
            release_activity(services, &mut tx, id).await?;
        }
        tx.commit()
            .await
            .map_err(|error| db_error(nefos_db::DbError::query("commit a build")(error)))?;
        if has_ports(&input.params.spec)
            && let Err(error) = services.networks.device_ports_active(id).await
        {
            tracing::warn!(server = %id, %error, "cannot mark the server's ports active");
        }
        finish_action(
            services,
            &input.params.server_id,
            &input.params.request_id,
            None,
        )
        .await;
        tracing::info!(server = %input.params.server_id, state = vm_state, "server built");
        output(())
    })
}
