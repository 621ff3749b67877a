//! What users do to servers: power actions, delete, lock, and reading the console. An
//! action checks the server's state as Nova does, records its task, the quota it charges
//! and its saga in one transaction, and returns; the saga does the rest.

use nefos_db::compute::{self as q, StateChange};
use nefos_db::time::now_micros;
use nefos_identity::AuthContext;
use serde::{Deserialize, Serialize};

use super::Asked;
use super::Server;
use super::charges::{self, Size};
use super::sagas::delete::{DeleteParams, DeleteSaga};
use super::sagas::power::{PowerParams, PowerSaga};
use super::state::{self, Allowed, task};
use crate::{Compute, ComputeError};

/// A power action on a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerAction {
    Start,
    Stop,
    Reboot {
        hard: bool,
    },
    Pause,
    Unpause,
    /// The guest's state is saved on its node's disk and its QEMU ends; the server keeps
    /// its place on the node and its active charge, so a resume needs no new quota.
    Suspend,
    Resume,
}

impl PowerAction {
    fn allowed(self) -> Allowed {
        match self {
            PowerAction::Start => state::START,
            PowerAction::Stop => state::STOP,
            PowerAction::Reboot { hard: false } => state::REBOOT_SOFT,
            PowerAction::Reboot { hard: true } => state::REBOOT_HARD,
            PowerAction::Pause => state::PAUSE,
            PowerAction::Unpause => state::UNPAUSE,
            PowerAction::Suspend => state::SUSPEND,
            PowerAction::Resume => state::RESUME,
        }
    }

    pub(crate) fn task(self) -> &'static str {
        match self {
            PowerAction::Start => task::POWERING_ON,
            PowerAction::Stop => task::POWERING_OFF,
            PowerAction::Reboot { hard: false } => task::REBOOTING,
            PowerAction::Reboot { hard: true } => task::REBOOTING_HARD,
            PowerAction::Pause => task::PAUSING,
            PowerAction::Unpause => task::UNPAUSING,
            PowerAction::Suspend => task::SUSPENDING,
            PowerAction::Resume => task::RESUMING,
        }
    }

    /// Nova's instance-action name.
    pub fn name(self) -> &'static str {
        match self {
            PowerAction::Start => "start",
            PowerAction::Stop => "stop",
            PowerAction::Reboot { .. } => "reboot",
            PowerAction::Pause => "pause",
            PowerAction::Unpause => "unpause",
            PowerAction::Suspend => "suspend",
            PowerAction::Resume => "resume",
        }
    }
}

fn size_of(server: &Server) -> Size {
    Size {
        vcpus: i64::from(server.flavor.vcpus),
        ram_mib: i64::try_from(server.flavor.ram_mib).unwrap_or(i64::MAX),
        disk_gib: i64::try_from(server.flavor.disk_gib).unwrap_or(i64::MAX),
    }
}

/// A locked server refuses changes from all but administrators.
pub(crate) fn check_lock(caller: &AuthContext, server: &Server) -> Result<(), ComputeError> {
    if server.locked() && !caller.is_cloud_admin() {
        return Err(ComputeError::conflict(format!(
            "Instance {} is locked",
            server.id
        )));
    }
    Ok(())
}

impl Compute {
    /// Starts, stops, reboots, pauses, unpauses, suspends or resumes a server.
    pub async fn power(
        &self,
        caller: &AuthContext,
        request_id: &str,
        id: &str,
        action: PowerAction,
    ) -> Result<(), ComputeError> {
        let server = self.server(caller, id).await?;
        check_lock(caller, &server)?;
        if let Some(refusal) = action.allowed().refusal(
            id,
            &server.vm_state,
            server.task_state.as_deref(),
            server.launched_at.is_some(),
        ) {
            return Err(ComputeError::conflict(refusal));
        }
        let Some(node) = server.node_id.clone() else {
            return Err(ComputeError::conflict(format!(
                "Instance {id} is not ready"
            )));
        };
        let mut tx = self.db().begin().await?;
        // A start (or the hard reboot of a stopped server, which starts it) charges the
        // active resources unless they are charged already (a start
        // whose outcome was never learnt leaves them charged).
        let starts = action == PowerAction::Start
            || (action == PowerAction::Reboot { hard: true }
                && server.vm_state == state::vm::STOPPED);
        if starts && q::set_active_charged(&mut *tx, id, true, now_micros()).await? {
            let provisions =
                charges::activity(&server.project_id, &server.user_id, size_of(&server), 1, 1);
            self.inner
                .quotas
                .charge_in(&mut tx, &provisions)
                .await
                .map_err(charges::refusal)?;
        }
        let change = StateChange {
            task_state: Some(Some(action.task())),
            ..StateChange::default()
        };
        // Only from the task state the check saw: a concurrent action loses here.
        if !q::change_state(
            &mut *tx,
            id,
            Some(server.task_state.as_deref()),
            &change,
            now_micros(),
        )
        .await?
        {
            return Err(ComputeError::conflict(format!(
                "Cannot '{}' instance {id} while it is in task_state {}",
                action.allowed().action,
                server.task_state.as_deref().unwrap_or("changing")
            )));
        }
        let generation = u64::try_from(q::take_generations(&mut tx, id, 1).await?).unwrap_or(0);
        let params = PowerParams {
            server_id: id.to_owned(),
            node_id: node,
            generation,
            action,
            request_id: request_id.to_owned(),
        };
        let asked = Asked {
            server: &server,
            user_id: &caller.user_id,
            request_id,
            action: action.name(),
        };
        self.record_and_run::<PowerSaga>(tx, asked, &params).await?;
        Ok(())
    }

    /// Deletes a server, in any state: its VM is destroyed, then its quota released.
    pub async fn delete_server(
        &self,
        caller: &AuthContext,
        request_id: &str,
        id: &str,
    ) -> Result<(), ComputeError> {
        let server = self.server(caller, id).await?;
        check_lock(caller, &server)?;
        if server.task_state.as_deref() == Some(task::DELETING) {
            // Deleting already: a repeated delete changes nothing.
            return Ok(());
        }
        let mut tx = self.db().begin().await?;
        let change = StateChange {
            task_state: Some(Some(task::DELETING)),
            ..StateChange::default()
        };
        q::change_state(&mut *tx, id, None, &change, now_micros()).await?;
        let generation = u64::try_from(q::take_generations(&mut tx, id, 1).await?).unwrap_or(0);
        let params = DeleteParams {
            server_id: id.to_owned(),
            generation,
            request_id: request_id.to_owned(),
        };
        let asked = Asked {
            server: &server,
            user_id: &caller.user_id,
            request_id,
            action: "delete",
        };
        self.record_and_run::<DeleteSaga>(tx, asked, &params)
            .await?;
        Ok(())
    }

    /// Locks a server against changes by non-administrators, or unlocks it.
    pub async fn lock_server(
        &self,
        caller: &AuthContext,
        id: &str,
        lock: bool,
        reason: Option<&str>,
    ) -> Result<(), ComputeError> {
        let server = self.server(caller, id).await?;
        if !lock && server.locked_by.as_deref() == Some("admin") && !caller.is_cloud_admin() {
            return Err(ComputeError::forbidden(
                "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to \
                 be performed.",
            ));
        }
        let by = lock.then(|| {
            if caller.is_cloud_admin() {
                "admin"
            } else {
                "owner"
            }
        });
        q::set_lock(
            self.db().pool(),
            id,
            by,
            reason.filter(|_| lock),
            now_micros(),
        )
        .await?;
        Ok(())
    }

    /// What a running server uses, as its node measures it (administrators only, as
    /// Nova's policy has it; an unknown server is a 404 first).
    pub async fn diagnostics(
        &self,
        caller: &AuthContext,
        id: &str,
    ) -> Result<nefos_node_api::VmDiagnostics, ComputeError> {
        let server = self.server(caller, id).await?;
        if !caller.is_cloud_admin() {
            return Err(ComputeError::forbidden(
                "Policy doesn't allow os_compute_api:os-server-diagnostics to be performed.",
            ));
        }
        let not_running = |power_state| {
            ComputeError::conflict(format!(
                "Cannot 'get_diagnostics' instance {id} while it is in power state {}",
                state::power::name(power_state)
            ))
        };
        let node = match server.node_id {
            Some(node) if server.power_state == state::power::RUNNING => node,
            _ => return Err(not_running(server.power_state)),
        };
        let client = self.nodes().client(&node).await?;
        match client.vm_diagnostics(id).await {
            Ok(used) => Ok(used),
            // Stopped since the state was last reported.
            Err(source) if source.status().is_some_and(|s| s.as_u16() == 409) => {
                Err(not_running(state::power::SHUTDOWN))
            }
            Err(source) => Err(ComputeError::Rpc { node, source }),
        }
    }

    /// The last `lines` lines of a server's serial console (all with `None`), with the
    /// control characters Nova strips removed.
    pub async fn console_output(
        &self,
        caller: &AuthContext,
        id: &str,
        lines: Option<usize>,
    ) -> Result<String, ComputeError> {
        let server = self.server(caller, id).await?;
        let Some(node) = server.node_id.filter(|_| server.launched_at.is_some()) else {
            return Err(ComputeError::conflict(format!(
                "Instance {id} is not ready"
            )));
        };
        let client = self.nodes().client(&node).await?;
        let output = client
            .console(id, 1 << 20)
            .await
            .map_err(|source| ComputeError::Rpc { node, source })?
            .output;
        // Nova strips 0x00–0x08 and 0x0B–0x1F: all C0 controls but tab and newline.
        let clean: String = output
            .chars()
            .filter(|&c| c == '\n' || c == '\t' || u32::from(c) >= 0x20)
            .collect();
        Ok(match lines {
            Some(lines) => {
                let all: Vec<&str> = clean.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
            None => clean,
        })
    }
}
