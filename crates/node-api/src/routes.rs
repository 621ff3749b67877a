//! Every path of the two internal APIs, declared once: the servers route on these
//! templates and the clients fill them ([`nefos_route::fill`]).

/// The node's RPC API, under [`crate::RPC_PREFIX`]; the control plane calls it.
pub mod rpc {
    /// `GET`: the node's [`crate::NodeInfo`].
    pub const NODE: &str = "/node";
    /// `GET`: every VM's [`crate::VmStatus`].
    pub const VMS: &str = "/vms";
    /// `GET` status, `PUT` [`crate::EnsureVm`], `DELETE ?generation=N`.
    pub const VM: &str = "/vms/{id}";
    /// `POST` [`crate::StartVm`].
    pub const VM_START: &str = "/vms/{id}/start";
    /// `POST` [`crate::StopVm`].
    pub const VM_STOP: &str = "/vms/{id}/stop";
    /// `POST` [`crate::RebootVm`].
    pub const VM_REBOOT: &str = "/vms/{id}/reboot";
    /// `POST` [`crate::PauseVm`]: the vCPUs stop, the guest stays in memory.
    pub const VM_PAUSE: &str = "/vms/{id}/pause";
    /// `POST` [`crate::PauseVm`]: the vCPUs run again.
    pub const VM_UNPAUSE: &str = "/vms/{id}/unpause";
    /// `POST` [`crate::SuspendVm`]: the guest's state is saved to the node's disk and QEMU
    /// ends.
    pub const VM_SUSPEND: &str = "/vms/{id}/suspend";
    /// `POST` [`crate::SuspendVm`]: QEMU restores the saved state and the guest goes on.
    pub const VM_RESUME: &str = "/vms/{id}/resume";
    /// `POST` [`crate::ResizeVm`]: only a stopped VM.
    pub const VM_RESIZE: &str = "/vms/{id}/resize";
    /// `POST` [`crate::ResizeEnd`]: the resize stays, the disk kept for a revert goes.
    pub const VM_RESIZE_CONFIRM: &str = "/vms/{id}/resize/confirm";
    /// `POST` [`crate::ResizeEnd`]: the VM stops and gets its earlier sizes and disk back.
    pub const VM_RESIZE_REVERT: &str = "/vms/{id}/resize/revert";
    /// `PUT` [`crate::SetNics`]: the VM's NICs; a running VM's are plugged in and out of
    /// it as they differ.
    pub const VM_NICS: &str = "/vms/{id}/nics";
    /// `POST` [`crate::RebuildVm`].
    pub const VM_REBUILD: &str = "/vms/{id}/rebuild";
    /// `POST`, no body: the root disk as a self-contained qcow2 image (its base folded
    /// in), as the body. A running VM is paused while its disk is copied, so the copy is
    /// of one moment.
    pub const VM_EXPORT: &str = "/vms/{id}/export";
    /// `GET` with `Connection: Upgrade` and `Upgrade: vnc`: after `101 Switching
    /// Protocols`, the connection carries the VM's VNC (RFB) stream both ways.
    pub const VM_VNC: &str = "/vms/{id}/vnc";
    /// `GET` the [`crate::NetworksStatus`]; `PUT` [`crate::NodeNetworks`]: everything of
    /// the networks the node must have, which it converges on.
    pub const NETWORKS: &str = "/networks";
    /// `GET`: a running VM's [`crate::VmDiagnostics`].
    pub const VM_DIAGNOSTICS: &str = "/vms/{id}/diagnostics";
    /// `GET ?max_bytes=N`: the tail of the serial console.
    pub const VM_CONSOLE: &str = "/vms/{id}/console";
    /// `GET`: the [`crate::VmDefinition`] of a running VM, for a node to receive it.
    pub const VM_DEFINITION: &str = "/vms/{id}/definition";
    /// `PUT` [`crate::IncomingVm`]: make ready to receive the running VM.
    pub const VM_INCOMING: &str = "/vms/{id}/incoming";
    /// `GET` with `Connection: Upgrade` and `Upgrade: nefos-migration`, authorised by the
    /// migration's secret rather than the node's RPC key: after `101 Switching
    /// Protocols`, the connection carries one [`crate::MigrationChannel`] to the VM's
    /// waiting QEMU.
    pub const VM_INCOMING_CHANNEL: &str = "/vms/{id}/incoming/{channel}";
    /// `POST` [`crate::FinishIncoming`]: the received guest runs here.
    pub const VM_INCOMING_FINISH: &str = "/vms/{id}/incoming/finish";
    /// `POST` [`crate::AbortIncoming`]: the received copy goes, unless its guest may have
    /// run here (409).
    pub const VM_INCOMING_ABORT: &str = "/vms/{id}/incoming/abort";
    /// `POST` [`crate::MigrateVm`] starts sending the VM, `GET` follows it: both answer
    /// the [`crate::MigrationStatus`].
    pub const VM_MIGRATION: &str = "/vms/{id}/migration";
    /// `POST` [`crate::CancelMigration`]: the guest goes on here.
    pub const VM_MIGRATION_CANCEL: &str = "/vms/{id}/migration/cancel";
    /// `GET`, outside the prefix and unauthenticated: liveness for process supervisors.
    pub const HEALTH: &str = "/healthz";
}

/// The control plane's internal API, under [`crate::INTERNAL_PREFIX`]; nodes call it.
pub mod internal {
    /// `POST` [`crate::JoinRequest`] → [`crate::NodeCredential`]; the only call without a
    /// node token.
    pub const ENROLL: &str = "/enroll";
    /// `PUT` [`crate::NodeInfo`]: the node (re)registers as it starts.
    pub const NODE: &str = "/nodes/{id}";
    /// `POST` [`crate::Heartbeat`].
    pub const NODE_HEARTBEAT: &str = "/nodes/{id}/heartbeat";
    /// `GET`: the stored bytes of one block granted to the calling node.
    pub const BLOCK: &str = "/blocks/{hash}";
}
