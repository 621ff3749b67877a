//! Nova's JSON bodies. Fields that exist only from some microversion are `Option`s the
//! server fills for the microversion asked; `Option<Option<T>>` is a field present as
//! `null` (outer `Some`) or absent (outer `None`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub rel: String,
    pub href: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

impl Link {
    pub fn new(rel: &str, href: String) -> Link {
        Link {
            rel: rel.to_owned(),
            href,
            media_type: None,
        }
    }
}

/// One version of the compute API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub id: String,
    pub status: String,
    /// The newest microversion.
    pub version: String,
    pub min_version: String,
    pub updated: String,
    pub links: Vec<Link>,
    #[serde(rename = "media-types", default, skip_serializing_if = "Vec::is_empty")]
    pub media_types: Vec<MediaType>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaType {
    pub base: String,
    #[serde(rename = "type")]
    pub media_type: String,
}

/// `GET /`: every version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    pub versions: Vec<Version>,
}

/// `GET /v2.1/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionDocument {
    pub version: Version,
}

/// A flavor in a brief list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlavorBrief {
    pub id: String,
    pub name: String,
    pub links: Vec<Link>,
    /// From 2.55.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Option<String>>,
}

/// A flavor in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub ram: u64,
    pub disk: u64,
    pub vcpus: u32,
    /// `""` for none before 2.75, an integer after.
    pub swap: Value,
    #[serde(rename = "OS-FLV-EXT-DATA:ephemeral")]
    pub ephemeral: u64,
    #[serde(rename = "OS-FLV-DISABLED:disabled")]
    pub disabled: bool,
    #[serde(rename = "os-flavor-access:is_public")]
    pub is_public: bool,
    pub rxtx_factor: f64,
    pub links: Vec<Link>,
    /// From 2.55.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Option<String>>,
    /// From 2.61.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_specs: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlavorList {
    pub flavors: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlavorBody {
    pub flavor: Flavor,
}

/// `POST /flavors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlavorCreate {
    pub name: String,
    pub ram: u64,
    pub vcpus: u32,
    #[serde(default)]
    pub disk: u64,
    /// A string or a number; absent or null for a new UUID.
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(rename = "OS-FLV-EXT-DATA:ephemeral", default)]
    pub ephemeral: u64,
    #[serde(default)]
    pub swap: u64,
    #[serde(default)]
    pub rxtx_factor: Option<f64>,
    #[serde(rename = "os-flavor-access:is_public", default)]
    pub is_public: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlavorCreateBody {
    pub flavor: FlavorCreate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlavorAccess {
    pub flavor_id: String,
    pub tenant_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlavorAccessList {
    pub flavor_access: Vec<FlavorAccess>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraSpecs {
    pub extra_specs: BTreeMap<String, String>,
}

/// A keypair as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keypair {
    pub name: String,
    pub public_key: String,
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// From 2.2.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// A generated key's private half, in the answer that made it only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeypairBody {
    pub keypair: Keypair,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeypairList {
    pub keypairs: Vec<KeypairBody>,
}

/// `POST /os-keypairs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeypairCreate {
    pub name: String,
    #[serde(default)]
    pub public_key: Option<String>,
    #[serde(rename = "type", default)]
    pub key_type: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeypairCreateBody {
    pub keypair: KeypairCreate,
}

/// A server in a brief list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerBrief {
    pub id: String,
    pub name: String,
    pub links: Vec<Link>,
}

/// A server's image: a reference, or `""` when it booted from a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerImage {
    Reference { id: String, links: Vec<Link> },
    None(String),
}

/// A server's flavor: a reference before 2.47, the flavor itself from 2.47.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerFlavor {
    Embedded {
        vcpus: u32,
        ram: u64,
        disk: u64,
        ephemeral: u64,
        swap: u64,
        original_name: String,
        extra_specs: BTreeMap<String, String>,
    },
    Reference {
        id: String,
        links: Vec<Link>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerFault {
    pub code: u16,
    pub created: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupName {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeAttachment {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_on_termination: Option<bool>,
}

/// A forwarded port, as Synnefo's Cyclades shows them (`SNF:port_forwarding`): the guest
/// port's host and port on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForwarding {
    pub host: String,
    pub port: String,
}

/// A server in full, as `GET /servers/{id}` and `/servers/detail` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub status: String,
    pub tenant_id: String,
    pub user_id: String,
    pub metadata: BTreeMap<String, String>,
    #[serde(rename = "hostId")]
    pub host_id: String,
    pub image: ServerImage,
    pub flavor: ServerFlavor,
    pub created: String,
    pub updated: String,
    pub addresses: BTreeMap<String, Vec<Value>>,
    #[serde(rename = "accessIPv4")]
    pub access_ipv4: String,
    #[serde(rename = "accessIPv6")]
    pub access_ipv6: String,
    pub links: Vec<Link>,
    #[serde(rename = "OS-DCF:diskConfig")]
    pub disk_config: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<ServerFault>,
    #[serde(rename = "OS-EXT-AZ:availability_zone")]
    pub availability_zone: String,
    pub config_drive: String,
    pub key_name: Option<String>,
    #[serde(rename = "OS-SRV-USG:launched_at")]
    pub launched_at: Option<String>,
    #[serde(rename = "OS-SRV-USG:terminated_at")]
    pub terminated_at: Option<String>,
    #[serde(rename = "OS-EXT-STS:task_state")]
    pub task_state: Option<String>,
    #[serde(rename = "OS-EXT-STS:vm_state")]
    pub vm_state: String,
    #[serde(rename = "OS-EXT-STS:power_state")]
    pub power_state: i64,
    #[serde(rename = "os-extended-volumes:volumes_attached")]
    pub volumes_attached: Vec<VolumeAttachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<SecurityGroupName>>,
    /// 2.9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    /// 2.16, administrators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_status: Option<String>,
    /// 2.19.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Option<String>>,
    /// 2.26.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// 2.63.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_image_certificates: Option<Option<Vec<String>>>,
    /// 2.71, show only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_groups: Option<Vec<String>>,
    /// 2.73.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_reason: Option<Option<String>>,
    /// 2.90 (and administrators from 2.3).
    #[serde(
        rename = "OS-EXT-SRV-ATTR:hostname",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub hostname: Option<String>,
    /// Administrators: the node.
    #[serde(
        rename = "OS-EXT-SRV-ATTR:host",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub host: Option<Option<String>>,
    #[serde(
        rename = "OS-EXT-SRV-ATTR:hypervisor_hostname",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub hypervisor_hostname: Option<Option<String>>,
    #[serde(
        rename = "OS-EXT-SRV-ATTR:instance_name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub instance_name: Option<String>,
    /// 2.96.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_availability_zone: Option<Option<String>>,
    /// Synnefo's: the guest ports the node forwards, by guest port.
    #[serde(rename = "SNF:port_forwarding", default)]
    pub port_forwarding: BTreeMap<String, PortForwarding>,
    /// Synnefo's task state (the same as Nova's here).
    #[serde(rename = "SNF:task_state", default)]
    pub snf_task_state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerBody {
    pub server: Server,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerList<T> {
    pub servers: Vec<T>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers_links: Vec<Link>,
}

/// The answer to `POST /servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCreated {
    pub id: String,
    pub links: Vec<Link>,
    #[serde(rename = "OS-DCF:diskConfig")]
    pub disk_config: String,
    pub security_groups: Vec<SecurityGroupName>,
    #[serde(rename = "adminPass", default, skip_serializing_if = "Option::is_none")]
    pub admin_pass: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCreatedBody {
    pub server: ServerCreated,
}

/// `POST /servers` (the fields nefos reads; the server checks the body for others).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServerCreate {
    pub name: String,
    #[serde(rename = "imageRef", default, skip_serializing_if = "Option::is_none")]
    pub image_ref: Option<String>,
    /// A string or a number.
    #[serde(rename = "flavorRef")]
    pub flavor_ref: Value,
    /// `"auto"`, `"none"` or a list of `{"uuid"|"port"|"fixed_ip"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(rename = "adminPass", default, skip_serializing_if = "Option::is_none")]
    pub admin_pass: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<Value>,
    #[serde(
        rename = "accessIPv4",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub access_ipv4: Option<String>,
    #[serde(
        rename = "accessIPv6",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub access_ipv6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_device_mapping_v2: Option<Vec<BlockDeviceMapping>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_reservation_id: Option<bool>,
}

/// One entry of `block_device_mapping_v2`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BlockDeviceMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_index: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_on_termination: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleOutput {
    pub output: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataItem {
    pub meta: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tags {
    pub tags: Vec<String>,
}

/// One record of `os-instance-actions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceAction {
    pub action: String,
    pub instance_uuid: String,
    pub message: Option<String>,
    pub project_id: String,
    pub request_id: String,
    pub start_time: String,
    pub user_id: String,
    /// 2.58.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceActions {
    #[serde(rename = "instanceActions")]
    pub instance_actions: Vec<InstanceAction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceActionBody {
    #[serde(rename = "instanceAction")]
    pub instance_action: InstanceAction,
}

/// A move of a server: one record of `os-migrations` (with `instance_uuid`) or of
/// `servers/{id}/migrations` (with `server_uuid` and the progress), as the microversion
/// has them; nefos adds what QEMU measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    pub id: i64,
    /// 2.59.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    pub status: String,
    pub source_compute: String,
    pub source_node: String,
    pub dest_compute: String,
    pub dest_node: String,
    pub dest_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_uuid: Option<String>,
    /// `os-migrations` only (null: a live migration keeps its flavor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_instance_type_id: Option<Option<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_instance_type_id: Option<Option<i64>>,
    /// 2.23.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_type: Option<String>,
    /// `servers/{id}/migrations` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_processed_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_remaining_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_total_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_processed_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_remaining_bytes: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    /// 2.80.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// How long the guest was paused at the switch, as QEMU measured it.
    #[serde(
        rename = "nefos:downtime_ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub downtime_ms: Option<i64>,
    /// The whole move, from the first byte of disk to the switch.
    #[serde(
        rename = "nefos:total_ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub total_ms: Option<i64>,
    /// Why a move failed, or what it left behind.
    #[serde(
        rename = "nefos:error",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migrations {
    pub migrations: Vec<Migration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationBody {
    pub migration: Migration,
}

/// `GET /limits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub limits: LimitsBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsBody {
    pub rate: Vec<Value>,
    pub absolute: BTreeMap<String, i64>,
}

/// A hypervisor's compute service, as a hypervisor shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HypervisorService {
    pub host: String,
    pub id: String,
    pub disabled_reason: Option<String>,
}

/// A hypervisor: a node. What only microversions before 2.88 show is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hypervisor {
    pub id: String,
    pub hypervisor_hostname: String,
    /// `up` or `down`.
    pub state: String,
    /// `enabled`, or `disabled` (drained).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypervisor_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypervisor_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<HypervisorService>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus_used: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb_used: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_ram_mb: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_gb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_gb_used: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_disk_gb: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_available_least: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_vms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_workload: Option<u64>,
    /// JSON text, as Nova gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_info: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hypervisors {
    pub hypervisors: Vec<Hypervisor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HypervisorBody {
    pub hypervisor: Hypervisor,
}

/// A compute service: each node runs one, `nova-compute`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    pub binary: String,
    pub host: String,
    pub zone: String,
    pub status: String,
    pub state: String,
    pub updated_at: Option<String>,
    pub disabled_reason: Option<String>,
    pub forced_down: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Services {
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceBody {
    pub service: Service,
}

/// `GET /servers/{id}/diagnostics` from 2.48: one shape whatever the hypervisor. Fields
/// nefos cannot measure are null, as Nova's schema allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerDiagnostics {
    pub state: String,
    pub driver: String,
    pub hypervisor: String,
    pub hypervisor_os: String,
    pub uptime: u64,
    pub config_drive: bool,
    pub num_cpus: usize,
    pub num_disks: usize,
    pub num_nics: usize,
    pub memory_details: MemoryDetails,
    pub cpu_details: Vec<CpuDetails>,
    pub disk_details: Vec<DiskDetails>,
    pub nic_details: Vec<NicDetails>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryDetails {
    /// MiB.
    pub maximum: u64,
    /// MiB.
    pub used: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuDetails {
    pub id: u32,
    /// Nanoseconds.
    pub time: u64,
    pub utilisation: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskDetails {
    pub read_bytes: u64,
    pub read_requests: u64,
    pub write_bytes: u64,
    pub write_requests: u64,
    pub errors_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicDetails {
    pub mac_address: String,
    pub rx_octets: Option<u64>,
    pub rx_errors: Option<u64>,
    pub rx_drop: Option<u64>,
    pub rx_packets: Option<u64>,
    pub rx_rate: Option<u64>,
    pub tx_octets: Option<u64>,
    pub tx_errors: Option<u64>,
    pub tx_drop: Option<u64>,
    pub tx_packets: Option<u64>,
    pub tx_rate: Option<u64>,
}

/// One of a server's interfaces (`os-interface`): a port plugged into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceAttachment {
    pub port_state: String,
    pub fixed_ips: Vec<InterfaceFixedIp>,
    pub port_id: String,
    pub net_id: String,
    pub mac_addr: String,
    pub tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceFixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceAttachmentBody {
    #[serde(rename = "interfaceAttachment")]
    pub interface_attachment: InterfaceAttachment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceAttachments {
    #[serde(rename = "interfaceAttachments")]
    pub interface_attachments: Vec<InterfaceAttachment>,
}

/// The body of `POST /servers/{id}/os-interface` (under `interfaceAttachment`): a port,
/// or a network to make one on (with a fixed address, if named).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachInterface {
    #[serde(default)]
    pub port_id: Option<String>,
    #[serde(default)]
    pub net_id: Option<String>,
    #[serde(default)]
    pub fixed_ips: Option<Vec<AttachFixedIp>>,
    #[serde(default)]
    pub tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachFixedIp {
    pub ip_address: String,
}
