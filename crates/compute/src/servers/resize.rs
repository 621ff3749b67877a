//! Resizing a server to another flavor, on the node it is on (Nova's resize to the same
//! host): the server shows RESIZE while its node stops the VM, gives it the new sizes
//! and a grown disk and starts it again if it ran; then VERIFY_RESIZE until the user
//! confirms (the old disk goes) or reverts (the old disk and flavor come back).
//!
//! Quota: what grows is charged when the resize is asked for; what shrinks is given back
//! when it is confirmed; a revert gives back what grew. Until then the server holds the
//! larger of its two flavors, which is what its node holds too.

use nefos_db::compute::{self as q, StateChange};
use nefos_db::time::now_micros;
use nefos_identity::AuthContext;

use super::Asked;
use super::charges;
use super::sagas::resize::{ResizeEndParams, ResizeEndSaga, ResizeParams, ResizeSaga};
use super::state::{self, Allowed, power, task};
use super::{Server, ServerFlavor};
use crate::scheduler::Demand;
use crate::{Compute, ComputeError};

/// Generations a resize saga takes: stop, resize, start, and its undos' (revert, start
/// again).
pub(crate) const RESIZE_GENERATIONS: i64 = 5;
/// A confirm's call, or a revert's and the start after it.
pub(crate) const RESIZE_END_GENERATIONS: i64 = 2;

impl Compute {
    /// Resizes a server to the flavor `flavor_ref`.
    pub async fn resize_server(
        &self,
        caller: &AuthContext,
        request_id: &str,
        id: &str,
        flavor_ref: &str,
    ) -> Result<(), ComputeError> {
        let server = self.server(caller, id).await?;
        super::actions::check_lock(caller, &server)?;
        let node = self.check_allowed(&server, state::RESIZE)?;
        let flavor = match self.flavor(caller, flavor_ref).await {
            Ok(flavor) if !flavor.disabled => flavor,
            Ok(_) | Err(ComputeError::NotFound { .. }) => {
                return Err(ComputeError::invalid("Unable to locate requested flavor."));
            }
            Err(other) => return Err(other),
        };
        if flavor.id == server.flavor.id {
            return Err(ComputeError::invalid(
                "When resizing, instances must change flavor!",
            ));
        }
        let new = ServerFlavor {
            id: flavor.id.clone(),
            name: flavor.name.clone(),
            vcpus: flavor.vcpus,
            ram_mib: flavor.ram_mib,
            // A flavor with no disk keeps the disk the server has (it came from the
            // image), as at creation.
            disk_gib: if flavor.disk_gib == 0 {
                server.flavor.disk_gib
            } else {
                flavor.disk_gib
            },
            ephemeral_gib: flavor.ephemeral_gib,
            swap_mib: flavor.swap_mib,
            extra_specs: flavor.extra_specs.clone(),
        };
        if new.disk_gib < server.flavor.disk_gib {
            return Err(ComputeError::invalid(
                "Server disk was unable to be resized because: Unable to resize disk down.",
            ));
        }
        let (old_size, new_size) = (server.flavor.size(), new.size());
        let grows = |from: i64, to: i64| u64::try_from(to - from).unwrap_or(0);
        let demand = Demand {
            vcpus: grows(old_size.vcpus, new_size.vcpus),
            ram_mib: grows(old_size.ram_mib, new_size.ram_mib),
            disk_gib: grows(old_size.disk_gib, new_size.disk_gib),
            cpu_model: None,
        };
        if !self.inner.fits_on(&node, demand).await? {
            return Err(ComputeError::conflict(crate::scheduler::NO_VALID_HOST));
        }

        let mut tx = self.db().begin().await?;
        let active = q::get_server(&mut *tx, id)
            .await?
            .is_some_and(|row| row.active_charged);
        let growth = charges::growth(
            &server.project_id,
            &server.user_id,
            old_size,
            new_size,
            active,
        );
        self.inner
            .quotas
            .charge_in(&mut tx, &growth)
            .await
            .map_err(charges::refusal)?;
        self.begin_task(&mut tx, &server, task::RESIZE_PREP, state::RESIZE)
            .await?;
        // The row holds the resize from now on, and with it the charge for the larger
        // of the two flavors (see `sagas/resize.rs`).
        let from = serde_json::to_string(&server.flavor).unwrap_or_default();
        if !q::begin_resize(&mut *tx, id, &new.columns(), &from, now_micros()).await? {
            return Err(ComputeError::conflict(format!(
                "Cannot 'resize' instance {id} while it is in vm_state resized"
            )));
        }
        let generation = first_generation(&mut tx, id, RESIZE_GENERATIONS).await?;
        let params = ResizeParams {
            server_id: id.to_owned(),
            node_id: node,
            generation,
            was_running: server.power_state == power::RUNNING,
            active_charged: active,
            from: server.flavor.clone(),
            to: new,
            request_id: request_id.to_owned(),
        };
        let asked = Asked {
            server: &server,
            user_id: &caller.user_id,
            request_id,
            action: "resize",
        };
        self.record_and_run::<ResizeSaga>(tx, asked, &params)
            .await?;
        Ok(())
    }

    /// Confirms a server's resize (`revert` false) or reverts it.
    pub async fn end_resize(
        &self,
        caller: &AuthContext,
        request_id: &str,
        id: &str,
        revert: bool,
    ) -> Result<(), ComputeError> {
        let server = self.server(caller, id).await?;
        super::actions::check_lock(caller, &server)?;
        let (allowed, marker, action) = if revert {
            (state::REVERT_RESIZE, task::RESIZE_REVERTING, "revertResize")
        } else {
            (
                state::CONFIRM_RESIZE,
                task::RESIZE_CONFIRMING,
                "confirmResize",
            )
        };
        let node = self.check_allowed(&server, allowed)?;
        let Some(from) = server.resized_from.clone() else {
            return Err(ComputeError::conflict(format!(
                "Instance {id} has no resize to {}",
                if revert { "revert" } else { "confirm" }
            )));
        };
        let mut tx = self.db().begin().await?;
        let active = q::get_server(&mut *tx, id)
            .await?
            .is_some_and(|row| row.active_charged);
        self.begin_task(&mut tx, &server, marker, allowed).await?;
        let generation = first_generation(&mut tx, id, RESIZE_END_GENERATIONS).await?;
        let params = ResizeEndParams {
            server_id: id.to_owned(),
            node_id: node,
            generation,
            revert,
            was_running: server.power_state == power::RUNNING,
            active_charged: active,
            from,
            to: server.flavor.clone(),
            request_id: request_id.to_owned(),
        };
        let asked = Asked {
            server: &server,
            user_id: &caller.user_id,
            request_id,
            action,
        };
        self.record_and_run::<ResizeEndSaga>(tx, asked, &params)
            .await?;
        Ok(())
    }

    /// Nova's 409 unless `allowed` allows the server's state; the server's node.
    pub(crate) fn check_allowed(
        &self,
        server: &Server,
        allowed: Allowed,
    ) -> Result<String, ComputeError> {
        if let Some(refusal) = allowed.refusal(
            &server.id,
            &server.vm_state,
            server.task_state.as_deref(),
            server.launched_at.is_some(),
        ) {
            return Err(ComputeError::conflict(refusal));
        }
        let Some(node) = server.node_id.clone() else {
            return Err(ComputeError::conflict(format!(
                "Instance {} is not ready",
                server.id
            )));
        };
        if server.node_down {
            return Err(ComputeError::conflict(
                "Service is unavailable at this time.",
            ));
        }
        Ok(node)
    }

    /// Sets the task `marker` if the server's task and state are still those it was read
    /// with: of two concurrent actions, one wins here. On a refusal the caller drops `tx`.
    pub(crate) async fn begin_task(
        &self,
        tx: &mut nefos_db::Transaction,
        server: &Server,
        marker: &str,
        allowed: Allowed,
    ) -> Result<(), ComputeError> {
        let change = StateChange {
            task_state: Some(Some(marker)),
            ..StateChange::default()
        };
        let expected = Some(server.task_state.as_deref());
        // The task changes only from the task the check saw, and the state must still be
        // the one it saw: an action that ended meanwhile may have changed it.
        let unchanged = q::change_state(&mut **tx, &server.id, expected, &change, now_micros())
            .await?
            && q::get_server(&mut **tx, &server.id)
                .await?
                .is_some_and(|row| row.vm_state == server.vm_state);
        if unchanged {
            Ok(())
        } else {
            Err(ComputeError::conflict(format!(
                "Cannot '{}' instance {} while it is in task_state changing",
                allowed.action, server.id
            )))
        }
    }
}

async fn first_generation(
    tx: &mut nefos_db::Transaction,
    id: &str,
    count: i64,
) -> Result<u64, ComputeError> {
    Ok(u64::try_from(q::take_generations(tx, id, count).await?).unwrap_or(0))
}
