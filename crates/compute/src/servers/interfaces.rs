//! A server's interfaces (Nova's `os-interface`): its ports, in NIC order; a port or a
//! network's new port plugged into it while it runs or is stopped, and a port unplugged.
//! Each change is a saga (`sagas/interface.rs`) the call waits for, as Nova's does.

use nefos_db::compute as q;
use nefos_db::time::now_micros;
use nefos_identity::AuthContext;
use nefos_network::Port;
use nefos_saga::Outcome;

use super::actions::check_lock;
use super::create::NetworkRequest;
use super::sagas::interface::{InterfaceParams, InterfaceSaga};
use super::state;
use crate::{Compute, ComputeError};

impl Compute {
    /// The server's ports, in NIC order.
    pub async fn interfaces(
        &self,
        caller: &AuthContext,
        server_id: &str,
    ) -> Result<Vec<Port>, ComputeError> {
        self.server(caller, server_id).await?;
        let mut ports = Vec::new();
        for row in q::server_ports(self.db().pool(), server_id).await? {
            match self.inner.networks.port(caller, &row.port_id).await {
                Ok(port) => ports.push(port),
                Err(nefos_network::NetworkError::NotFound { .. }) => {}
                Err(error) => return Err(ComputeError::Network(error)),
            }
        }
        Ok(ports)
    }

    /// Plugs the port `wanted` names, or a new port on the network it names, into the
    /// server; returns the port once the node has plugged it in.
    pub async fn attach_interface(
        &self,
        caller: &AuthContext,
        request_id: &str,
        server_id: &str,
        wanted: &NetworkRequest,
    ) -> Result<Port, ComputeError> {
        let server = self.server(caller, server_id).await?;
        let node = self.changeable(caller, &server, "attach_interface")?;
        let nic = self.resolve_nic(caller, wanted, false).await?;
        let mut tx = self.db().begin().await?;
        let position = q::server_ports(&mut *tx, server_id)
            .await?
            .iter()
            .map(|row| row.position + 1)
            .max()
            .unwrap_or(0);
        let (_, port) = self
            .take_port(
                &mut tx,
                caller,
                server_id,
                &nic,
                usize::try_from(position).unwrap_or(0),
            )
            .await?;
        self.inner
            .networks
            .bind_device_ports(&mut tx, server_id, Some(&node))
            .await
            .map_err(ComputeError::Network)?;
        let generation = self.generations(&mut tx, server_id).await?;
        let made = matches!(nic, super::create::Nic::NewPort { .. });
        let params = InterfaceParams {
            server_id: server_id.to_owned(),
            node_id: node,
            generation,
            port_id: port.id.clone(),
            attach: true,
            made,
            request_id: request_id.to_owned(),
        };
        self.run_interface_saga(tx, caller, &server, &params, "attach_interface")
            .await?;
        self.inner
            .networks
            .port(caller, &port.id)
            .await
            .map_err(ComputeError::Network)
    }

    /// Unplugs port `port_id` from the server, then lets go of it (deleting it if an
    /// attach made it from a network).
    pub async fn detach_interface(
        &self,
        caller: &AuthContext,
        request_id: &str,
        server_id: &str,
        port_id: &str,
    ) -> Result<(), ComputeError> {
        let server = self.server(caller, server_id).await?;
        let node = self.changeable(caller, &server, "detach_interface")?;
        let mut tx = self.db().begin().await?;
        let Some(row) = q::server_ports(&mut *tx, server_id)
            .await?
            .into_iter()
            .find(|row| row.port_id == port_id)
        else {
            return Err(ComputeError::NotFound {
                message: format!("Port {port_id} is not attached"),
            });
        };
        let generation = self.generations(&mut tx, server_id).await?;
        let params = InterfaceParams {
            server_id: server_id.to_owned(),
            node_id: node,
            generation,
            port_id: port_id.to_owned(),
            attach: false,
            made: row.made_with_server == 1,
            request_id: request_id.to_owned(),
        };
        self.run_interface_saga(tx, caller, &server, &params, "detach_interface")
            .await
    }

    /// The node of a server whose NICs may change now: one placed, in no task, active,
    /// paused or stopped.
    fn changeable(
        &self,
        caller: &AuthContext,
        server: &super::Server,
        action: &str,
    ) -> Result<String, ComputeError> {
        check_lock(caller, server)?;
        let settled = [state::vm::ACTIVE, state::vm::PAUSED, state::vm::STOPPED]
            .contains(&server.vm_state.as_str());
        match (&server.node_id, server.task_state.as_deref(), settled) {
            (Some(node), None, true) => Ok(node.clone()),
            _ => Err(ComputeError::conflict(format!(
                "Cannot '{action}' instance {} while it is in vm_state {} and task_state {}",
                server.id,
                server.vm_state,
                server.task_state.as_deref().unwrap_or("None")
            ))),
        }
    }

    /// Two generations of the server's node calls: the change's, and its undo's.
    async fn generations(
        &self,
        tx: &mut nefos_db::Transaction,
        server_id: &str,
    ) -> Result<u64, ComputeError> {
        let last = q::take_generations(tx, server_id, 2).await?;
        Ok(u64::try_from(last - 1).unwrap_or(0))
    }

    /// Records the instance action and the saga, commits, and runs the saga here to its
    /// end: the call answers with how it went.
    async fn run_interface_saga(
        &self,
        mut tx: nefos_db::Transaction,
        caller: &AuthContext,
        server: &super::Server,
        params: &InterfaceParams,
        action: &str,
    ) -> Result<(), ComputeError> {
        q::start_action(
            &mut *tx,
            &server.id,
            &params.request_id,
            action,
            &server.project_id,
            &caller.user_id,
            now_micros(),
        )
        .await?;
        let saga = self
            .sagas()
            .create::<InterfaceSaga>(&mut tx, &server.id, params)
            .await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit an interface change"))?;
        match self.sagas().run(&saga).await? {
            Outcome::Done | Outcome::NotOurs => Ok(()),
            Outcome::Unwound { error } | Outcome::Stuck { error } => {
                Err(ComputeError::conflict(format!(
                    "Failed to {} interface: {error}",
                    action.trim_end_matches("_interface")
                )))
            }
        }
    }
}
