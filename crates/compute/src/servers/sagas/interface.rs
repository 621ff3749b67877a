//! A port plugged into a server, or unplugged from it, while it may run (Nova's
//! `os-interface`). Attaching: the port is the server's from the request's transaction;
//! the saga sends the nodes their networks (the port's tap appears on the server's node)
//! and has the node plug the NIC in. Detaching: the node unplugs the NIC first, then the
//! port is let go of (deleted if the attach made it) and the nodes hear of it. Either way a
//! failure leaves the server with the ports it had.

use nefos_db::compute as q;
use nefos_db::network as nq;
use nefos_node_api::{NicSpec, SetNics};
use nefos_saga::{BoxFuture, Saga, Step, StepError, StepInput, nothing_to_undo, output};
use serde::{Deserialize, Serialize};

use super::{db_error, finish_action, step_error};
use crate::{ComputeError, Services};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InterfaceParams {
    pub server_id: String,
    pub node_id: String,
    /// The node call's generation; the next one is for giving the VM its NICs back.
    pub generation: u64,
    pub port_id: String,
    pub attach: bool,
    /// The attach made the port (from a network): a detach deletes it.
    pub made: bool,
    pub request_id: String,
}

#[derive(Debug)]
pub struct InterfaceSaga;

type Input<'a> = StepInput<'a, InterfaceParams>;

impl Saga for InterfaceSaga {
    const KIND: &'static str = "server_interface";
    type Params = InterfaceParams;
    type Context = Services;

    fn steps() -> Vec<Step<Self>> {
        vec![
            Step {
                name: "plumb",
                action: plumb,
                undo: nothing_to_undo,
            },
            Step {
                name: "nics",
                action: set_nics,
                undo: nothing_to_undo,
            },
            Step {
                name: "release",
                action: release,
                undo: nothing_to_undo,
            },
        ]
    }

    fn unwound<'a>(
        services: &'a Services,
        params: &'a InterfaceParams,
        error: &'a str,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            if params.attach {
                // The port goes back to what it was, then the VM gets its NICs back.
                let mut tx = services.db.begin().await.map_err(db_error)?;
                services
                    .networks
                    .release_port_in(&mut tx, &params.port_id, params.made)
                    .await
                    .map_err(|e| step_error(ComputeError::Network(e)))?;
                q::delete_server_port(&mut tx, &params.server_id, &params.port_id)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(|e| {
                    db_error(nefos_db::DbError::query("commit an attach's undo")(e))
                })?;
            }
            if let Err(failure) = give_nics(services, params, params.generation + 1).await {
                tracing::warn!(server = %params.server_id, error = %super::chain(&failure), "cannot give a VM its NICs back");
            }
            push(services, params).await;
            tracing::warn!(server = %params.server_id, port = %params.port_id, attach = params.attach, %error, "interface change failed");
            finish_action(services, &params.server_id, &params.request_id, Some(error)).await;
            Ok(())
        })
    }
}

/// Attaching: the nodes get their networks, the server's node the port's tap.
fn plumb<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        if input.params.attach {
            services
                .push_networks(&input.params.node_id)
                .await
                .map_err(step_error)?;
            push(services, input.params).await;
        }
        output(())
    })
}

/// The node plugs the NICs of the server's ports in, and the others out.
fn set_nics<'a>(
    services: &'a Services,
    input: Input<'a>,
) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        give_nics(services, input.params, input.params.generation)
            .await
            .map_err(step_error)?;
        output(())
    })
}

/// Detaching, once the NIC is out: the port is let go of and the nodes hear of it.
fn release<'a>(
    services: &'a Services,
    input: Input<'a>,
) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        if !params.attach {
            let hosts = hosts(services, params).await?;
            let mut tx = services.db.begin().await.map_err(db_error)?;
            services
                .networks
                .release_port_in(&mut tx, &params.port_id, params.made)
                .await
                .map_err(|e| step_error(ComputeError::Network(e)))?;
            q::delete_server_port(&mut tx, &params.server_id, &params.port_id)
                .await
                .map_err(db_error)?;
            tx.commit()
                .await
                .map_err(|e| db_error(nefos_db::DbError::query("commit a detach")(e)))?;
            services.push_networks_to(hosts).await;
        }
        finish_action(services, &params.server_id, &params.request_id, None).await;
        output(())
    })
}

/// Sends the node the server's NICs as the database has them now, less the port being
/// detached (until it is released).
async fn give_nics(
    services: &Services,
    params: &InterfaceParams,
    generation: u64,
) -> Result<(), ComputeError> {
    let mut nics = Vec::new();
    for row in q::server_ports(services.db.pool(), &params.server_id).await? {
        if !params.attach && row.port_id == params.port_id {
            continue;
        }
        let Some(port) = nq::get_port(services.db.pool(), &row.port_id).await? else {
            continue;
        };
        let mtu = nq::get_network(services.db.pool(), &port.network_id)
            .await?
            .map_or(1450, |n| u32::try_from(n.mtu).unwrap_or(1450));
        nics.push(NicSpec::Port {
            port_id: port.id,
            mac: port.mac_address,
            mtu,
        });
    }
    let client = services.nodes.client(&params.node_id).await?;
    client
        .set_nics(&params.server_id, &SetNics { generation, nics })
        .await
        .map_err(|source| ComputeError::Rpc {
            node: params.node_id.clone(),
            source,
        })?;
    Ok(())
}

/// The nodes on the networks of the server's ports.
async fn hosts(services: &Services, params: &InterfaceParams) -> Result<Vec<String>, StepError> {
    let mut conn = services
        .db
        .pool()
        .acquire()
        .await
        .map_err(|e| db_error(nefos_db::DbError::query("connect")(e)))?;
    let ports = services
        .networks
        .device_ports(&mut conn, &params.server_id)
        .await
        .map_err(|e| step_error(ComputeError::Network(e)))?;
    drop(conn);
    services.hosts_of(&ports).await.map_err(step_error)
}

/// Sends every node of the server's networks its networks (a failure is the
/// reconciler's to mend).
async fn push(services: &Services, params: &InterfaceParams) {
    match hosts(services, params).await {
        Ok(hosts) => services.push_networks_to(hosts).await,
        Err(error) => {
            tracing::warn!(server = %params.server_id, error = error.message(), "cannot find the nodes of a server's networks");
        }
    }
}
