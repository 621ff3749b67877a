//! Live migration between nodes, without shared storage (docs/design.md §5).
//!
//! The control plane asks the destination to make ready ([`IncomingVm`]): it defines the
//! VM with an empty overlay on the same image, starts QEMU waiting for the guest's state,
//! and serves the new overlay (NBD) and the state's channel on unix sockets of the VM's
//! own. Then it asks the source to send the VM ([`MigrateVm`]): the source mirrors its
//! overlay to the destination, migrates the guest's memory and devices, and stops with
//! the guest paused on both sides. Only then does the control plane let the guest run at
//! the destination ([`FinishIncoming`]), check it, and destroy the source's copy; until
//! that switch, cancelling ([`CancelMigration`]) gives the source its running guest back.
//!
//! The two QEMUs talk only through their agents: the source agent serves QEMU's outgoing
//! channels on unix sockets and carries each connection, over an HTTP/1.1 upgrade of the
//! destination's RPC API, to the destination's agent, which joins it to its QEMU's
//! socket. That call is authenticated by the migration's own secret, which the control
//! plane gives both nodes, so one node's key never opens another's RPC API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{GuestConfig, NicSpec, PowerState, VmSpec};

/// The devices a running QEMU was started with, which the QEMU that receives its state
/// must have too (the same sizes, NICs in the same slots, the same CPU model).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmLaunch {
    pub vcpus: u32,
    pub ram_mib: u64,
    pub nics: Vec<NicSpec>,
    /// What the config drive was built from: its size is part of the machine.
    pub guest: GuestConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    /// The PCIe root-port slot of each port's NIC, by port id.
    #[serde(default)]
    pub nic_slots: BTreeMap<String, u8>,
}

/// What a node that receives a VM needs of its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmDefinition {
    /// The spec the source keeps for the VM's next fresh start.
    pub spec: VmSpec,
    /// The devices its QEMU runs with now.
    pub launch: VmLaunch,
    /// Running or paused.
    pub power: PowerState,
}

/// Make ready to receive a running VM. The node defines it (the image in its cache, an
/// empty overlay, the config drive), starts QEMU waiting for its state with the devices
/// of `launch`, and accepts the migration's channels from the source's agent when they
/// present `secret`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingVm {
    pub generation: u64,
    /// The VM's spec, which it gets at its next fresh start here.
    pub spec: VmSpec,
    /// How the source's QEMU runs now.
    pub launch: VmLaunch,
    /// What the VM is to be once it runs here: running or paused.
    pub power: PowerState,
    /// The migration's secret: the source's agent presents it on each channel.
    pub secret: String,
}

/// The two channels of a migration, each on a connection of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationChannel {
    /// The root disk's new overlay, written by the source's mirror job (NBD).
    Disk,
    /// The guest's memory and device state (QEMU's migration stream).
    Memory,
}

impl MigrationChannel {
    pub const ALL: [MigrationChannel; 2] = [MigrationChannel::Disk, MigrationChannel::Memory];

    pub fn as_str(self) -> &'static str {
        match self {
            MigrationChannel::Disk => "disk",
            MigrationChannel::Memory => "memory",
        }
    }

    pub fn parse(name: &str) -> Option<MigrationChannel> {
        MigrationChannel::ALL
            .into_iter()
            .find(|channel| channel.as_str() == name)
    }
}

/// The `Upgrade` protocol of a migration channel's connection.
pub const MIGRATION_UPGRADE: &str = "nefos-migration";

/// What the source does when the guest dirties memory faster than it can be sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Convergence {
    /// Nothing: the migration goes on until it converges, is cancelled or forced.
    None,
    /// QEMU throttles the guest's vCPUs more and more until it converges.
    #[default]
    AutoConverge,
}

/// The limits of a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationLimits {
    /// The longest the guest may be paused for the switch, in milliseconds.
    pub downtime_ms: u64,
    /// Bytes per second the memory stream may take; 0 for no limit.
    pub max_bandwidth: u64,
    #[serde(default)]
    pub convergence: Convergence,
}

impl Default for MigrationLimits {
    fn default() -> Self {
        MigrationLimits {
            downtime_ms: 300,
            max_bandwidth: 0,
            convergence: Convergence::AutoConverge,
        }
    }
}

/// Send a running (or paused) VM to the node at `destination`, which an [`IncomingVm`]
/// made ready. The call starts the migration and answers at once; its progress is read
/// with `GET` of the same path. The same generation again is the same migration.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateVm {
    pub generation: u64,
    /// The destination's RPC base URL.
    pub destination: String,
    /// The migration's secret, as the destination was given it.
    pub secret: String,
    #[serde(default)]
    pub limits: MigrationLimits,
}

/// Let the guest whose state arrived run here (or stay paused, as it was), once it is
/// checked. The same generation again is a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishIncoming {
    pub generation: u64,
}

/// Undo a reception: the copy is destroyed (at `generation`, a tombstone as for any
/// destroy) unless its guest may have run here: a finish was asked for, 409. The source
/// may resume its guest only once this has succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortIncoming {
    pub generation: u64,
}

/// Stop the outgoing migration of this generation, or, when it completed and the
/// destination's guest never ran, give the guest back its vCPUs here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelMigration {
    pub generation: u64,
}

/// Where an outgoing migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// The overlay is being copied to the destination.
    Disk,
    /// The disk is in step; memory is being copied.
    Memory,
    /// Everything is at the destination; the guest is paused here and waits there.
    Completed,
    /// It failed; the guest runs on here.
    Failed,
    /// It was cancelled; the guest runs on here.
    Cancelled,
}

impl MigrationState {
    pub fn is_over(self) -> bool {
        !matches!(self, MigrationState::Disk | MigrationState::Memory)
    }
}

/// Bytes of one kind sent so far and left to send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferProgress {
    pub total_bytes: u64,
    pub processed_bytes: u64,
    pub remaining_bytes: u64,
}

/// An outgoing migration as the source sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationStatus {
    pub generation: u64,
    pub state: MigrationState,
    pub memory: TransferProgress,
    pub disk: TransferProgress,
    /// How long the guest was paused for the switch, as QEMU measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
    /// From the start of the disk's copy to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<u64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

// The secrets stay out of logs.
impl std::fmt::Debug for IncomingVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingVm")
            .field("generation", &self.generation)
            .field("spec", &self.spec)
            .field("launch", &self.launch)
            .field("power", &self.power)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for MigrateVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrateVm")
            .field("generation", &self.generation)
            .field("destination", &self.destination)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
