//! The QMP commands nodes use, typed: each is a struct of its arguments that names its
//! command and the shape of its reply.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A QMP command: its arguments serialize to the `arguments` object.
pub trait QmpCommand: Serialize {
    const NAME: &'static str;
    type Reply: DeserializeOwned;
}

/// Commands whose reply is an empty object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Empty {}

macro_rules! no_argument_command {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $reply:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, Serialize)]
        pub struct $ty {}

        impl QmpCommand for $ty {
            const NAME: &'static str = $name;
            type Reply = $reply;
        }
    };
}

no_argument_command!(
    /// The run state of the guest.
    QueryStatus,
    "query-status",
    StatusInfo
);
no_argument_command!(
    /// Resumes a paused guest.
    Cont,
    "cont",
    Empty
);
no_argument_command!(
    /// Pauses the guest's vCPUs.
    Stop,
    "stop",
    Empty
);
no_argument_command!(
    /// Presses the ACPI power button: the guest OS decides whether and how to shut down.
    SystemPowerdown,
    "system_powerdown",
    Empty
);
no_argument_command!(
    /// Resets the machine at once, as the reset button does.
    SystemReset,
    "system_reset",
    Empty
);
no_argument_command!(
    /// Ends QEMU at once. The reply may be lost as the process exits.
    Quit,
    "quit",
    Empty
);
no_argument_command!(
    /// The block devices and their backing chains.
    QueryBlock,
    "query-block",
    Vec<Value>
);
no_argument_command!(
    /// The version of the QEMU on the other end.
    QueryVersion,
    "query-version",
    VersionInfo
);

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StatusInfo {
    pub running: bool,
    /// QEMU's `RunState`: `running`, `paused`, `shutdown`, `inmigrate`, `postmigrate`, …
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VersionInfo {
    pub qemu: VersionTriple,
    pub package: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct VersionTriple {
    pub major: u32,
    pub minor: u32,
    pub micro: u32,
}

/// Adds a block node; the arguments are QEMU's `BlockdevOptions`, passed through.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct BlockdevAdd(pub Value);

impl QmpCommand for BlockdevAdd {
    const NAME: &'static str = "blockdev-add";
    type Reply = Empty;
}

/// Plugs a device; the arguments are the device's properties, `driver` and `id` among them.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct DeviceAdd(pub Value);

impl QmpCommand for DeviceAdd {
    const NAME: &'static str = "device_add";
    type Reply = Empty;
}

/// Asks the guest to release a device; completion is the `DEVICE_DELETED` event.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceDel {
    pub id: String,
}

impl QmpCommand for DeviceDel {
    const NAME: &'static str = "device_del";
    type Reply = Empty;
}

/// Adds a network backend; the arguments are QEMU's `Netdev` options, passed through.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct NetdevAdd(pub Value);

impl QmpCommand for NetdevAdd {
    const NAME: &'static str = "netdev_add";
    type Reply = Empty;
}

/// Removes a network backend no device uses any more.
#[derive(Debug, Clone, Serialize)]
pub struct NetdevDel {
    pub id: String,
}

impl QmpCommand for NetdevDel {
    const NAME: &'static str = "netdev_del";
    type Reply = Empty;
}

/// The children and properties of a QOM object (`/machine/peripheral`: the devices with
/// an id).
#[derive(Debug, Clone, Serialize)]
pub struct QomList {
    pub path: String,
}

impl QmpCommand for QomList {
    const NAME: &'static str = "qom-list";
    type Reply = Vec<ObjectProperty>;
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ObjectProperty {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// Runs a human monitor (HMP) command and returns its text. Only for what QMP does not
/// tell, such as the host ports of user-mode forwards (`info usernet`).
#[derive(Debug, Clone, Serialize)]
pub struct HumanMonitorCommand {
    #[serde(rename = "command-line")]
    pub command_line: String,
}

impl QmpCommand for HumanMonitorCommand {
    const NAME: &'static str = "human-monitor-command";
    type Reply = String;
}

/// Starts an outgoing migration of the machine's state to `uri` (here `file:PATH`: the
/// state saved to a file). Progress and the outcome are read with [`QueryMigrate`].
#[derive(Debug, Clone, Serialize)]
pub struct Migrate {
    pub uri: String,
}

impl QmpCommand for Migrate {
    const NAME: &'static str = "migrate";
    type Reply = Empty;
}

/// Loads an incoming migration from `uri` into a QEMU started with `-incoming defer`.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateIncoming {
    pub uri: String,
}

impl QmpCommand for MigrateIncoming {
    const NAME: &'static str = "migrate-incoming";
    type Reply = Empty;
}

no_argument_command!(
    /// The state of the current or last migration, in either direction.
    QueryMigrate,
    "query-migrate",
    MigrationInfo
);

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MigrationInfo {
    /// `setup`, `active`, `completed`, `failed`, `cancelled`, …; absent before the first
    /// migration.
    pub status: Option<String>,
    #[serde(rename = "error-desc")]
    pub error_desc: Option<String>,
}

no_argument_command!(
    /// Each vCPU and the host thread that runs it.
    QueryCpusFast,
    "query-cpus-fast",
    Vec<CpuInfoFast>
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct CpuInfoFast {
    #[serde(rename = "cpu-index")]
    pub cpu_index: u32,
    #[serde(rename = "thread-id")]
    pub thread_id: u32,
}

no_argument_command!(
    /// I/O counters of each block device.
    QueryBlockstats,
    "query-blockstats",
    Vec<BlockStats>
);

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BlockStats {
    /// The top block node (set for devices attached to `-blockdev` nodes).
    #[serde(rename = "node-name")]
    pub node_name: Option<String>,
    pub stats: BlockDeviceStats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct BlockDeviceStats {
    pub rd_bytes: u64,
    pub wr_bytes: u64,
    pub rd_operations: u64,
    pub wr_operations: u64,
    pub failed_rd_operations: u64,
    pub failed_wr_operations: u64,
}

no_argument_command!(
    /// Cancels the current outgoing migration; the guest stays where it was.
    MigrateCancel,
    "migrate_cancel",
    Empty
);

/// Sets migration parameters; only the one nodes change is declared.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MigrateSetParameters {
    /// Bytes per second; QEMU's default (128 MiB/s) suits a network, not a local file.
    #[serde(rename = "max-bandwidth")]
    pub max_bandwidth: u64,
}

impl QmpCommand for MigrateSetParameters {
    const NAME: &'static str = "migrate-set-parameters";
    type Reply = Empty;
}

/// What a CPU model amounts to under the running accelerator: with `type` `full` and
/// the model `max`, every feature the accelerator can give a guest.
#[derive(Debug, Clone, Serialize)]
pub struct QueryCpuModelExpansion {
    #[serde(rename = "type")]
    pub expansion: &'static str,
    pub model: CpuModelName,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CpuModelName {
    pub name: String,
}

impl QmpCommand for QueryCpuModelExpansion {
    const NAME: &'static str = "query-cpu-model-expansion";
    type Reply = CpuModelExpansion;
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CpuModelExpansion {
    pub model: ExpandedCpuModel,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExpandedCpuModel {
    pub name: String,
    /// Feature and property names to their values (booleans for features).
    #[serde(default)]
    pub props: serde_json::Map<String, Value>,
}
