//! A server's state as Nova defines it: `vm_state` (what the server is), `task_state` (what
//! is being done to it, if anything) and `power_state` (what its node last reported),
//! and the `status` users see, derived from them (Nova's `nova/api/openstack/common.py`
//! table). States change only when a node has reported; a task marks the wait.

use nefos_node_api::VmState as NodeVmState;

/// Nova's vm_state values nefos uses.
pub mod vm {
    pub const BUILDING: &str = "building";
    pub const ACTIVE: &str = "active";
    pub const STOPPED: &str = "stopped";
    pub const PAUSED: &str = "paused";
    pub const SUSPENDED: &str = "suspended";
    pub const RESIZED: &str = "resized";
    pub const ERROR: &str = "error";
    pub const DELETED: &str = "deleted";
}

/// Nova's task_state values nefos uses.
pub mod task {
    pub const SCHEDULING: &str = "scheduling";
    pub const SPAWNING: &str = "spawning";
    pub const POWERING_OFF: &str = "powering-off";
    pub const POWERING_ON: &str = "powering-on";
    pub const REBOOTING: &str = "rebooting";
    pub const REBOOTING_HARD: &str = "rebooting_hard";
    pub const PAUSING: &str = "pausing";
    pub const UNPAUSING: &str = "unpausing";
    pub const SUSPENDING: &str = "suspending";
    pub const RESUMING: &str = "resuming";
    pub const DELETING: &str = "deleting";
    pub const RESIZE_PREP: &str = "resize_prep";
    pub const IMAGE_SNAPSHOT: &str = "image_snapshot";
    pub const REBUILDING: &str = "rebuilding";
    /// Not Nova's (it marks a confirm on the migration record): keeps a revert from
    /// racing a confirm. Shows as VERIFY_RESIZE.
    pub const RESIZE_CONFIRMING: &str = "resize_confirming";
    pub const RESIZE_REVERTING: &str = "resize_reverting";
    /// A live migration: shows as MIGRATING.
    pub const MIGRATING: &str = "migrating";
}

/// Nova's power_state integers.
pub mod power {
    pub const NOSTATE: i64 = 0;
    pub const RUNNING: i64 = 1;
    pub const PAUSED: i64 = 3;
    pub const SHUTDOWN: i64 = 4;
    pub const SUSPENDED: i64 = 7;

    /// Nova's name of a power state, as its messages give it.
    pub fn name(state: i64) -> &'static str {
        match state {
            RUNNING => "running",
            PAUSED => "paused",
            SHUTDOWN => "shutdown",
            6 => "crashed",
            SUSPENDED => "suspended",
            _ => "pending",
        }
    }
}

/// The vm_state and power_state a node's report means.
pub fn reported(state: NodeVmState) -> (&'static str, i64) {
    match state {
        NodeVmState::Running => (vm::ACTIVE, power::RUNNING),
        NodeVmState::Paused => (vm::PAUSED, power::PAUSED),
        NodeVmState::Stopped => (vm::STOPPED, power::SHUTDOWN),
        NodeVmState::Suspended => (vm::SUSPENDED, power::SUSPENDED),
    }
}

/// The status users see. `node_down`: the server's node missed its heartbeats, so what it
/// last reported may no longer hold.
pub fn status(
    vm_state: &str,
    task_state: Option<&str>,
    deleted: bool,
    node_down: bool,
) -> &'static str {
    if deleted {
        return "DELETED";
    }
    if node_down && vm_state != vm::ERROR && vm_state != vm::BUILDING {
        return "UNKNOWN";
    }
    let task = task_state.unwrap_or("");
    match vm_state {
        vm::ACTIVE => match task {
            "rebooting" | "reboot_pending" | "reboot_started" => "REBOOT",
            "rebooting_hard" | "reboot_pending_hard" | "reboot_started_hard" => "HARD_REBOOT",
            "updating_password" => "PASSWORD",
            "rebuilding" | "rebuild_block_device_mapping" | "rebuild_spawning" => "REBUILD",
            "migrating" => "MIGRATING",
            "resize_prep" | "resize_migrating" | "resize_migrated" | "resize_finish" => "RESIZE",
            _ => "ACTIVE",
        },
        vm::BUILDING => "BUILD",
        vm::STOPPED => match task {
            "resize_prep" | "resize_migrating" | "resize_migrated" | "resize_finish" => "RESIZE",
            "rebuilding" | "rebuild_block_device_mapping" | "rebuild_spawning" => "REBUILD",
            _ => "SHUTOFF",
        },
        vm::RESIZED => match task {
            "resize_reverting" => "REVERT_RESIZE",
            _ => "VERIFY_RESIZE",
        },
        vm::PAUSED => match task {
            "migrating" => "MIGRATING",
            _ => "PAUSED",
        },
        vm::SUSPENDED => "SUSPENDED",
        vm::ERROR => match task {
            "rebuilding" | "rebuild_block_device_mapping" | "rebuild_spawning" => "REBUILD",
            _ => "ERROR",
        },
        vm::DELETED => "DELETED",
        _ => "UNKNOWN",
    }
}

/// The vm_states (and task_states) a status filter means, Nova's table read backwards.
pub fn states_of_status(
    status: &str,
) -> Option<(&'static [&'static str], Option<&'static [&'static str]>)> {
    Some(match status.to_ascii_uppercase().as_str() {
        "ACTIVE" => (&[vm::ACTIVE], None),
        "BUILD" => (&[vm::BUILDING], None),
        "SHUTOFF" => (&[vm::STOPPED], None),
        "PAUSED" => (&[vm::PAUSED], None),
        "SUSPENDED" => (&[vm::SUSPENDED], None),
        "VERIFY_RESIZE" => (&[vm::RESIZED], None),
        "RESIZE" => (
            &[vm::ACTIVE, vm::STOPPED],
            Some(&[
                "resize_prep",
                "resize_migrating",
                "resize_migrated",
                "resize_finish",
            ]),
        ),
        "ERROR" => (&[vm::ERROR], None),
        "DELETED" => (&[vm::DELETED], None),
        "REBOOT" => (
            &[vm::ACTIVE],
            Some(&["rebooting", "reboot_pending", "reboot_started"]),
        ),
        "HARD_REBOOT" => (
            &[vm::ACTIVE],
            Some(&[
                "rebooting_hard",
                "reboot_pending_hard",
                "reboot_started_hard",
            ]),
        ),
        _ => return None,
    })
}

/// What an action needs of a server's state, as Nova checks it.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    /// The name Nova's 409 uses (`Cannot 'stop' instance …`).
    pub action: &'static str,
    pub vm_states: &'static [&'static str],
    /// Task states allowed besides none.
    pub task_states: &'static [&'static str],
}

pub const START: Allowed = Allowed {
    action: "start",
    vm_states: &[vm::STOPPED],
    task_states: &[],
};
pub const STOP: Allowed = Allowed {
    action: "stop",
    vm_states: &[vm::ACTIVE, vm::ERROR],
    task_states: &[],
};
pub const REBOOT_SOFT: Allowed = Allowed {
    action: "reboot",
    vm_states: &[vm::ACTIVE],
    task_states: &[],
};
pub const REBOOT_HARD: Allowed = Allowed {
    action: "reboot",
    vm_states: &[
        vm::ACTIVE,
        vm::STOPPED,
        vm::PAUSED,
        vm::SUSPENDED,
        vm::ERROR,
    ],
    task_states: &[
        "rebooting",
        "reboot_pending",
        "reboot_started",
        "resuming",
        "rebooting_hard",
        "unpausing",
        "pausing",
        "suspending",
    ],
};
pub const PAUSE: Allowed = Allowed {
    action: "pause",
    vm_states: &[vm::ACTIVE],
    task_states: &[],
};
pub const UNPAUSE: Allowed = Allowed {
    action: "unpause",
    vm_states: &[vm::PAUSED],
    task_states: &[],
};
pub const SUSPEND: Allowed = Allowed {
    action: "suspend",
    vm_states: &[vm::ACTIVE],
    task_states: &[],
};
pub const RESUME: Allowed = Allowed {
    action: "resume",
    vm_states: &[vm::SUSPENDED],
    task_states: &[],
};

pub const RESIZE: Allowed = Allowed {
    action: "resize",
    vm_states: &[vm::ACTIVE, vm::STOPPED],
    task_states: &[],
};
pub const CONFIRM_RESIZE: Allowed = Allowed {
    action: "confirmResize",
    vm_states: &[vm::RESIZED],
    task_states: &[],
};
pub const REVERT_RESIZE: Allowed = Allowed {
    action: "revertResize",
    vm_states: &[vm::RESIZED],
    task_states: &[],
};

pub const LIVE_MIGRATE: Allowed = Allowed {
    action: "os-migrateLive",
    vm_states: &[vm::ACTIVE, vm::PAUSED],
    task_states: &[],
};

pub const REBUILD: Allowed = Allowed {
    action: "rebuild",
    vm_states: &[vm::ACTIVE, vm::STOPPED, vm::ERROR],
    task_states: &[],
};
pub const CREATE_IMAGE: Allowed = Allowed {
    action: "createImage",
    vm_states: &[vm::ACTIVE, vm::STOPPED, vm::PAUSED, vm::SUSPENDED],
    task_states: &[],
};

impl Allowed {
    /// Nova's 409 message when `vm_state`/`task_state` do not allow the action, or None.
    pub fn refusal(
        &self,
        id: &str,
        vm_state: &str,
        task_state: Option<&str>,
        launched: bool,
    ) -> Option<String> {
        let refuse = |attr: &str, state: &str| {
            Some(format!(
                "Cannot '{}' instance {id} while it is in {attr} {state}",
                self.action
            ))
        };
        if !self.vm_states.contains(&vm_state) {
            return refuse("vm_state", vm_state);
        }
        if let Some(task) = task_state
            && !self.task_states.contains(&task)
        {
            return refuse("task_state", task);
        }
        if !launched {
            return refuse("launched_at", "None");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_novas_table() {
        assert_eq!(
            status(vm::BUILDING, Some(task::SCHEDULING), false, false),
            "BUILD"
        );
        assert_eq!(status(vm::ACTIVE, None, false, false), "ACTIVE");
        assert_eq!(
            status(vm::ACTIVE, Some(task::REBOOTING_HARD), false, false),
            "HARD_REBOOT"
        );
        assert_eq!(
            status(vm::ACTIVE, Some(task::POWERING_OFF), false, false),
            "ACTIVE"
        );
        assert_eq!(status(vm::STOPPED, None, false, false), "SHUTOFF");
        assert_eq!(status(vm::ACTIVE, None, true, false), "DELETED");
        assert_eq!(status(vm::ACTIVE, None, false, true), "UNKNOWN");
        assert_eq!(status(vm::ERROR, None, false, true), "ERROR");
    }

    #[test]
    fn refusals_say_what_state_stood_in_the_way() {
        assert_eq!(
            STOP.refusal("s1", vm::STOPPED, None, true).unwrap(),
            "Cannot 'stop' instance s1 while it is in vm_state stopped"
        );
        assert_eq!(
            START
                .refusal("s1", vm::STOPPED, Some(task::POWERING_ON), true)
                .unwrap(),
            "Cannot 'start' instance s1 while it is in task_state powering-on"
        );
        assert!(
            REBOOT_HARD
                .refusal("s1", vm::ACTIVE, Some(task::REBOOTING), true)
                .is_none()
        );
        assert!(STOP.refusal("s1", vm::ACTIVE, None, false).is_some());
    }
}
