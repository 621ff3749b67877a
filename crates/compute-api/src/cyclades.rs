//! Synnefo's Cyclades compute API (v2.0), under [`PREFIX`]: the shapes kamaki 0.16 reads
//! where they differ from Nova's. Servers and flavors have integer ids; a deleted server
//! stays visible as `DELETED`; statuses are Cyclades' (`STOPPED`, not `SHUTOFF`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::{Link, PortForwarding};

/// Where Cyclades is served, beside Nova's `/v2.1`, under [`crate::PREFIX`].
pub const PREFIX: &str = "/v2.0";

pub mod paths {
    pub const SERVERS: &str = "/servers";
    pub const SERVERS_DETAIL: &str = "/servers/detail";
    pub const SERVER: &str = "/servers/{server_id}";
    pub const SERVER_ACTION: &str = "/servers/{server_id}/action";
    pub const SERVER_IPS: &str = "/servers/{server_id}/ips";
    pub const SERVER_DIAGNOSTICS: &str = "/servers/{server_id}/diagnostics";
    pub const SERVER_METADATA: &str = "/servers/{server_id}/metadata";
    pub const SERVER_METADATA_KEY: &str = "/servers/{server_id}/metadata/{key}";
    pub const FLAVORS: &str = "/flavors";
    pub const FLAVORS_DETAIL: &str = "/flavors/detail";
    pub const FLAVOR: &str = "/flavors/{flavor_id}";
    pub const IMAGES: &str = "/images";
    pub const IMAGES_DETAIL: &str = "/images/detail";
    pub const IMAGE: &str = "/images/{image_id}";
}

/// An id Cyclades shows as a number when it is one (flavors' ids are strings in Nova).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NumericId {
    Number(i64),
    Text(String),
}

impl NumericId {
    pub fn of(id: &str) -> NumericId {
        id.parse()
            .map_or_else(|_| NumericId::Text(id.to_owned()), NumericId::Number)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub id: NumericId,
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerBrief {
    pub id: i64,
    pub name: String,
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub name: String,
}

/// A server in full (`GET /servers/{id}`, `/servers/detail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    pub id: i64,
    pub name: String,
    pub links: Vec<Link>,
    pub user_id: String,
    pub tenant_id: String,
    pub shared_to_project: bool,
    /// `BUILD`, `ACTIVE`, `STOPPED`, `REBOOT`, `RESIZE`, `ERROR`, `DELETED`, `UNKNOWN`.
    pub status: String,
    /// `""` when idle, else `BUILDING`, `STARTING`, `STOPPING`, `REBOOTING`, `DESTROYING`,
    /// `RESIZING`, …
    #[serde(rename = "SNF:task_state")]
    pub task_state: String,
    /// 100 when built.
    pub progress: u8,
    #[serde(rename = "hostId")]
    pub host_id: String,
    pub created: String,
    pub updated: String,
    pub flavor: Reference,
    pub image: Reference,
    pub suspended: bool,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    /// The server's NICs; none until private networks exist.
    pub attachments: Vec<serde_json::Value>,
    pub addresses: BTreeMap<String, Vec<serde_json::Value>>,
    pub volumes: Vec<i64>,
    pub diagnostics: Vec<Diagnostic>,
    pub security_groups: Vec<SecurityGroup>,
    pub key_name: Option<String>,
    #[serde(rename = "SNF:key_names")]
    pub key_names: Vec<String>,
    pub config_drive: String,
    #[serde(rename = "accessIPv4")]
    pub access_ipv4: String,
    #[serde(rename = "accessIPv6")]
    pub access_ipv6: String,
    #[serde(rename = "SNF:fqdn")]
    pub fqdn: Option<String>,
    #[serde(rename = "SNF:port_forwarding")]
    pub port_forwarding: BTreeMap<String, PortForwarding>,
    pub deleted: bool,
    #[serde(rename = "SNF:rescue")]
    pub rescue: bool,
    /// Only in the answer to a create.
    #[serde(rename = "adminPass", default, skip_serializing_if = "Option::is_none")]
    pub admin_pass: Option<String>,
}

/// One thing that happened to a server, as Cyclades' diagnostics list them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub source: String,
    pub created: String,
    pub message: String,
    pub details: Option<String>,
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerBody<S> {
    pub server: S,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerList<S> {
    pub servers: Vec<S>,
}

/// A server's addresses and NICs (`GET /servers/{id}/ips`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerIps {
    pub addresses: BTreeMap<String, Vec<serde_json::Value>>,
    pub attachments: Vec<serde_json::Value>,
}

/// `POST /servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerCreate {
    pub name: String,
    #[serde(rename = "flavorRef")]
    pub flavor_ref: serde_json::Value,
    #[serde(rename = "imageRef")]
    pub image_ref: String,
    #[serde(default)]
    pub key_name: Option<String>,
    #[serde(rename = "SNF:key_names", default)]
    pub key_names: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub personality: Option<Vec<serde_json::Value>>,
    /// Absent: the cloud's default; `[]`: none.
    #[serde(default)]
    pub networks: Option<Vec<serde_json::Value>>,
    /// The project the server is for; the token's.
    #[serde(default)]
    pub project: Option<String>,
    #[serde(rename = "adminPass", default)]
    pub admin_pass: Option<String>,
    #[serde(default)]
    pub user_data: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// The answer to `{"console": {"type": …}}`: where a VNC client connects, and the one-time
/// password it authenticates with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Console {
    #[serde(rename = "type")]
    pub console_type: String,
    pub host: String,
    pub port: u16,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleBody {
    pub console: Console,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlavorBrief {
    pub id: NumericId,
    pub name: String,
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flavor {
    pub id: NumericId,
    pub name: String,
    pub links: Vec<Link>,
    /// MiB.
    pub ram: u64,
    /// GiB.
    pub disk: u64,
    pub vcpus: u32,
    #[serde(rename = "os-flavor-access:is_public")]
    pub is_public: bool,
    #[serde(rename = "SNF:disk_template")]
    pub disk_template: String,
    #[serde(rename = "SNF:allow_create")]
    pub allow_create: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlavorList<F> {
    pub flavors: Vec<F>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlavorBody {
    pub flavor: Flavor,
}

/// An image as the compute endpoint shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub links: Vec<Link>,
    pub created: String,
    pub updated: String,
    /// `ACTIVE`, `SAVING`, `ERROR`, `DELETED`, `UNKNOWN`.
    pub status: String,
    pub progress: u8,
    pub user_id: String,
    pub tenant_id: String,
    pub public: bool,
    pub is_snapshot: bool,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageBody {
    pub image: Image,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageList<I> {
    pub images: Vec<I>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageBrief {
    pub id: String,
    pub name: String,
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub metadata: BTreeMap<String, String>,
}
