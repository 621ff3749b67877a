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
    /// `setup`, `active`, `pre-switchover`, `device`, `completed`, `failed`,
    /// `cancelled`, …; absent before the first migration.
    pub status: Option<String>,
    #[serde(rename = "error-desc")]
    pub error_desc: Option<String>,
    /// The guest's memory: sent and left.
    pub ram: Option<RamStats>,
    /// Milliseconds since the migration began (its whole length once completed).
    #[serde(rename = "total-time")]
    pub total_time: Option<u64>,
    /// Milliseconds the guest was paused, once completed.
    pub downtime: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct RamStats {
    pub transferred: u64,
    pub remaining: u64,
    pub total: u64,
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

/// Sets migration parameters; those left `None` stay as they are.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MigrateSetParameters {
    /// Bytes per second; QEMU's default (128 MiB/s) suits a network, not a local file.
    #[serde(rename = "max-bandwidth", skip_serializing_if = "Option::is_none")]
    pub max_bandwidth: Option<u64>,
    /// The longest the guest may be paused at the switch, in milliseconds.
    #[serde(rename = "downtime-limit", skip_serializing_if = "Option::is_none")]
    pub downtime_limit: Option<u64>,
}

impl QmpCommand for MigrateSetParameters {
    const NAME: &'static str = "migrate-set-parameters";
    type Reply = Empty;
}

/// Turns migration capabilities on or off.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateSetCapabilities {
    pub capabilities: Vec<MigrationCapability>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrationCapability {
    pub capability: &'static str,
    pub state: bool,
}

impl QmpCommand for MigrateSetCapabilities {
    const NAME: &'static str = "migrate-set-capabilities";
    type Reply = Empty;
}

/// Lets a migration paused in `state` (with `pause-before-switchover`, `pre-switchover`)
/// go on.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateContinue {
    pub state: &'static str,
}

impl QmpCommand for MigrateContinue {
    const NAME: &'static str = "migrate-continue";
    type Reply = Empty;
}

/// Starts QEMU's NBD server; exports are added with [`BlockExportAdd`].
#[derive(Debug, Clone, Serialize)]
pub struct NbdServerStart {
    pub addr: SocketAddressLegacy,
}

/// A socket address in the older, wrapped form some commands take.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum SocketAddressLegacy {
    Unix { path: String },
}

impl QmpCommand for NbdServerStart {
    const NAME: &'static str = "nbd-server-start";
    type Reply = Empty;
}

no_argument_command!(
    /// Stops the NBD server and ends its exports.
    NbdServerStop,
    "nbd-server-stop",
    Empty
);

/// Exports a block node over the NBD server.
#[derive(Debug, Clone, Serialize)]
pub struct BlockExportAdd {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    #[serde(rename = "node-name")]
    pub node_name: String,
    /// The export's name, which NBD clients ask for.
    pub name: String,
    pub writable: bool,
}

impl QmpCommand for BlockExportAdd {
    const NAME: &'static str = "block-export-add";
    type Reply = Empty;
}

/// Removes an export; `hard` drops its clients rather than waiting for them.
#[derive(Debug, Clone, Serialize)]
pub struct BlockExportDel {
    pub id: String,
    pub mode: &'static str,
}

impl QmpCommand for BlockExportDel {
    const NAME: &'static str = "block-export-del";
    type Reply = Empty;
}

/// Removes a block node nothing uses any more.
#[derive(Debug, Clone, Serialize)]
pub struct BlockdevDel {
    #[serde(rename = "node-name")]
    pub node_name: String,
}

impl QmpCommand for BlockdevDel {
    const NAME: &'static str = "blockdev-del";
    type Reply = Empty;
}

/// Copies block node `device` to `target` and keeps them in step, as a job.
#[derive(Debug, Clone, Serialize)]
pub struct BlockdevMirror {
    #[serde(rename = "job-id")]
    pub job_id: String,
    pub device: String,
    pub target: String,
    /// `top`: only the node's own data, not what its backing holds.
    pub sync: &'static str,
    /// `write-blocking`: once in step, each guest write reaches the target before it
    /// completes, so the target never falls behind.
    #[serde(rename = "copy-mode")]
    pub copy_mode: &'static str,
}

impl QmpCommand for BlockdevMirror {
    const NAME: &'static str = "blockdev-mirror";
    type Reply = Empty;
}

no_argument_command!(
    /// The block jobs under way.
    QueryBlockJobs,
    "query-block-jobs",
    Vec<BlockJobInfo>
);

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BlockJobInfo {
    /// The job's id.
    pub device: String,
    /// Bytes to copy (an estimate that may grow) and copied so far.
    pub len: u64,
    pub offset: u64,
    /// A mirror's source and target are in step.
    pub ready: bool,
    pub status: String,
}

/// Cancels a block job; a mirror that is ready ends with its target a copy of the source
/// at that moment (and `BLOCK_JOB_COMPLETED`), without switching to it.
#[derive(Debug, Clone, Serialize)]
pub struct BlockJobCancel {
    pub device: String,
    pub force: bool,
}

impl QmpCommand for BlockJobCancel {
    const NAME: &'static str = "block-job-cancel";
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
