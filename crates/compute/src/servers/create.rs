//! Creating servers: everything is checked before anything is written; then, in one
//! transaction per request, the quota is charged, the server rows are written in BUILD
//! and a create saga is recorded for each. The sagas place, spawn and activate them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use base64::Engine;
use nefos_db::compute::{self as q, ServerRow};
use nefos_db::time::now_micros;
use nefos_db::{DbError, Transaction};
use nefos_identity::AuthContext;
use nefos_image::{BootSource, Caller, ImageError};
use nefos_network::{FixedIpRequest, NetworkError, NewPort};
use nefos_node_api::{ConfigDriveLayout, GuestConfig, ImageContent, NicSpec, VmSpec};
use nefos_quota::QuotaError;
use rand::Rng;

use super::charges::{self, Size};
use super::sagas::create::{CreateParams, CreateSaga};
use super::state::{power, task, vm};
use super::{Server, project_of};
use crate::{Compute, ComputeError, Flavor};

/// Which networks a new server gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerNetworks {
    /// The cloud's default: a port on the operator's network
    /// ([`crate::ComputeSettings::auto_network`]), or, with none, user-mode networking with
    /// the configured ports forwarded from the node's loopback.
    Auto,
    /// No network interface at all.
    None,
    /// A NIC for each, in this order.
    List(Vec<NetworkRequest>),
}

/// One NIC of a new server (an entry of Nova's `networks`): a new port on a network
/// (with the given address, or any), or a port the project made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkRequest {
    pub network: Option<String>,
    pub port: Option<String>,
    pub fixed_ip: Option<IpAddr>,
}

/// A NIC request checked against the networks service.
#[derive(Debug, Clone)]
pub(crate) enum Nic {
    NewPort {
        network: String,
        mtu: u32,
        fixed_ip: Option<IpAddr>,
    },
    Port {
        port: String,
        mtu: u32,
    },
}

/// The `device_owner` of servers' ports, as Nova sets it.
pub const PORT_OWNER: &str = "compute:nova";

/// A request to create servers (Nova's `POST /servers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateServer {
    pub name: String,
    pub image_ref: String,
    pub flavor_ref: String,
    pub networks: ServerNetworks,
    pub key_name: Option<String>,
    pub admin_pass: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Base64, as Nova takes it.
    pub user_data: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub min_count: u32,
    pub max_count: u32,
    pub access_ipv4: Option<String>,
    pub access_ipv6: Option<String>,
}

/// The servers a request created, and their administrator password (chosen by the
/// caller or generated), shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedServers {
    pub servers: Vec<Server>,
    pub admin_pass: String,
}

/// What Nova allows of user data: 65535 bytes of base64.
pub const MAX_USER_DATA: usize = 65535;
/// At most this many servers per request.
pub const MAX_COUNT: u32 = 100;

pub(crate) fn check_name(name: &str) -> Result<(), ComputeError> {
    if name.trim().is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(ComputeError::invalid(format!(
            "Invalid input for field/attribute name. Value: {name}. The name must be 1 to 255 \
             characters, not only spaces, without control characters"
        )));
    }
    Ok(())
}

pub(crate) fn check_metadata(metadata: &BTreeMap<String, String>) -> Result<(), ComputeError> {
    if metadata.len() > 128 {
        return Err(ComputeError::forbidden(
            "Quota exceeded, too many metadata items.",
        ));
    }
    for (key, value) in metadata {
        if key.is_empty() || key.chars().count() > 255 || value.chars().count() > 255 {
            return Err(ComputeError::invalid(format!(
                "Invalid input for field/attribute metadata. Value: {key}. Metadata keys are \
                 1 to 255 characters and values at most 255"
            )));
        }
    }
    Ok(())
}

pub(crate) fn check_tags(tags: &[String]) -> Result<(), ComputeError> {
    if tags.len() > 50 {
        return Err(ComputeError::invalid(
            "The number of tags exceeded the per-server limit 50",
        ));
    }
    for tag in tags {
        if tag.is_empty() || tag.chars().count() > 60 || tag.contains(['/', ',']) {
            return Err(ComputeError::invalid(format!(
                "Invalid input for field/attribute tags. Value: {tag}. Tags are 1 to 60 \
                 characters without '/' or ','"
            )));
        }
    }
    Ok(())
}

/// A hostname from a server's name, as Nova sanitises it: lower-case letters, digits and
/// hyphens, at most 63, no hyphen at either end.
pub fn hostname(name: &str, id: &str) -> String {
    let mut host: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    host.truncate(63);
    let host = host.trim_matches('-').to_owned();
    if host.is_empty() {
        format!("server-{}", &id[..id.len().min(8)])
    } else {
        host
    }
}

pub(crate) fn random_password() -> String {
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..12)
        .map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())]))
        .collect()
}

fn reservation_id() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..8)
        .map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())]))
        .collect();
    format!("r-{tail}")
}

/// A MAC in QEMU's locally administered range, from the server id.
fn mac_of(id: &str) -> String {
    let bytes: Vec<u8> = id
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .collect::<Vec<_>>()
        .chunks(2)
        .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect();
    let tail: Vec<String> = bytes
        .iter()
        .rev()
        .take(3)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("52:54:00:{}", tail.join(":"))
}

/// The root disk: the flavor's, or (a flavor with no disk, as Nova allows) the image's
/// disk rounded up to whole GiB.
fn root_disk_gib(flavor: &Flavor, image: &BootSource) -> u64 {
    if flavor.disk_gib > 0 {
        flavor.disk_gib
    } else {
        image.virtual_size.div_ceil(1 << 30).max(1)
    }
}

impl Compute {
    /// Creates `max_count` servers, or as many as the quota allows down to `min_count`,
    /// and returns them (in BUILD); each is then built by its own saga.
    pub async fn create_servers(
        &self,
        caller: &AuthContext,
        request_id: &str,
        mut request: CreateServer,
    ) -> Result<CreatedServers, ComputeError> {
        let project = project_of(caller)?.to_owned();
        // `auto`: the operator's network for servers that name none, if there is one.
        if let (ServerNetworks::Auto, Some(network)) =
            (&request.networks, &self.inner.settings.auto_network)
        {
            request.networks = ServerNetworks::List(vec![NetworkRequest {
                network: Some(network.clone()),
                ..NetworkRequest::default()
            }]);
        }
        check_name(&request.name)?;
        check_metadata(&request.metadata)?;
        check_tags(&request.tags)?;
        if request.min_count == 0 || request.max_count == 0 {
            return Err(ComputeError::invalid(
                "min_count and max_count must be at least 1",
            ));
        }
        if request.min_count > request.max_count {
            return Err(ComputeError::invalid("min_count must be <= max_count"));
        }
        if request.max_count > MAX_COUNT {
            return Err(ComputeError::invalid(format!(
                "max_count may be at most {MAX_COUNT}"
            )));
        }
        if let Some(user_data) = &request.user_data {
            if user_data.len() > MAX_USER_DATA {
                return Err(ComputeError::invalid(format!(
                    "Invalid input for field/attribute user_data. The user data is longer \
                     than {MAX_USER_DATA} characters"
                )));
            }
            base64::engine::general_purpose::STANDARD
                .decode(user_data.trim())
                .map_err(|_| ComputeError::invalid("User data needs to be valid base 64."))?;
        }
        let nics = self.resolve_nics(caller, &request).await?;
        let flavor = match self.flavor(caller, &request.flavor_ref).await {
            Ok(flavor) if !flavor.disabled => flavor,
            Ok(_) | Err(ComputeError::NotFound { .. }) => {
                return Err(ComputeError::invalid(format!(
                    "Flavor {} could not be found.",
                    request.flavor_ref
                )));
            }
            Err(error) => return Err(error),
        };
        let image = match self
            .inner
            .images
            .boot_source(Caller::new(caller), &request.image_ref)
            .await
        {
            Ok(image) => image,
            Err(ImageError::NotFound { .. }) => {
                return Err(ComputeError::invalid("Can not find requested image"));
            }
            Err(ImageError::Invalid { reason, .. } | ImageError::Conflict { reason }) => {
                return Err(ComputeError::invalid(reason));
            }
            Err(error) => return Err(ComputeError::Image(error)),
        };
        let disk_gib = root_disk_gib(&flavor, &image);
        image
            .check_flavor(disk_gib << 30, flavor.ram_mib)
            .map_err(|error| ComputeError::invalid(error.to_string()))?;
        let key = match &request.key_name {
            Some(name) => match self.keypair(caller, None, name).await {
                Ok(key) => Some(key),
                Err(ComputeError::NotFound { .. }) => {
                    return Err(ComputeError::invalid("Invalid key_name provided."));
                }
                Err(error) => return Err(error),
            },
            None => None,
        };
        let admin_pass = request.admin_pass.clone().unwrap_or_else(random_password);
        let size = Size {
            vcpus: i64::from(flavor.vcpus),
            ram_mib: i64::try_from(flavor.ram_mib).unwrap_or(i64::MAX),
            disk_gib: i64::try_from(disk_gib).unwrap_or(i64::MAX),
        };
        let reservation = reservation_id();
        let template = Template {
            caller,
            nics: &nics,
            request: &request,
            project: &project,
            user: &caller.user_id,
            flavor: &flavor,
            image: &image,
            disk_gib,
            key_name: key.as_ref().map(|k| k.name.as_str()),
            public_key: key.as_ref().map(|k| k.public_key.as_str()),
            admin_pass: &admin_pass,
            reservation: &reservation,
            cpu_model: self.cpu_model_of(&flavor)?,
        };
        // As many as fit, from max_count down to min_count, all in one transaction.
        let mut count = request.max_count;
        let (tx, created) = loop {
            let mut tx = self.db().begin().await?;
            let mut provisions =
                charges::existence(&project, &caller.user_id, size, i64::from(count), 1);
            provisions.extend(charges::activity(
                &project,
                &caller.user_id,
                size,
                i64::from(count),
                1,
            ));
            match self.inner.quotas.charge_in(&mut tx, &provisions).await {
                Ok(()) => {
                    let mut created = Vec::new();
                    for index in 1..=count {
                        created.push(
                            self.write_server(&mut tx, &template, index, count, request_id)
                                .await?,
                        );
                    }
                    break (tx, created);
                }
                Err(QuotaError::Exceeded(shortfall)) if count > request.min_count => {
                    drop(shortfall);
                    tx.rollback()
                        .await
                        .map_err(DbError::query("roll back a quota check"))?;
                    count -= 1;
                }
                Err(error) => return Err(charges::refusal(error)),
            }
        };
        tx.commit()
            .await
            .map_err(DbError::query("commit new servers"))?;
        let mut servers = Vec::new();
        for (id, saga) in created {
            self.sagas().spawn(&saga);
            servers.push(self.server(caller, &id).await?);
        }
        tracing::info!(count = servers.len(), project = %project, flavor = %flavor.id, image = %image.image_id, "servers created");
        Ok(CreatedServers {
            servers,
            admin_pass,
        })
    }

    /// The CPU model a server of `flavor` gets: the flavor's `nefos:cpu_model`, or the
    /// configured default.
    fn cpu_model_of(
        &self,
        flavor: &Flavor,
    ) -> Result<&'static nefos_node_api::CpuModel, ComputeError> {
        let name = flavor
            .extra_specs
            .get(CPU_MODEL_SPEC)
            .unwrap_or(&self.inner.settings.cpu_model);
        nefos_node_api::cpu_model(name).ok_or_else(|| {
            ComputeError::invalid(format!(
                "Flavor {} names CPU model {name:?} in {CPU_MODEL_SPEC}; the models are: {}",
                flavor.id,
                nefos_node_api::CpuModel::names()
            ))
        })
    }

    /// Writes one server of a request and its create saga; returns their ids.
    async fn write_server(
        &self,
        tx: &mut Transaction,
        template: &Template<'_>,
        index: u32,
        count: u32,
        request_id: &str,
    ) -> Result<(String, String), ComputeError> {
        let request = template.request;
        let id = uuid::Uuid::new_v4().to_string();
        let name = if count > 1 {
            format!("{}-{index}", request.name)
        } else {
            request.name.clone()
        };
        let now = now_micros();
        let flavor = template.flavor;
        let serial = q::take_serials(tx, 1).await?;
        let row = ServerRow {
            id: id.clone(),
            project_id: template.project.to_owned(),
            user_id: template.user.to_owned(),
            name: name.clone(),
            description: request.description.clone(),
            image_id: Some(template.image.image_id.clone()),
            flavor_id: flavor.id.clone(),
            flavor_name: flavor.name.clone(),
            vcpus: i64::from(flavor.vcpus),
            ram_mib: i64::try_from(flavor.ram_mib).unwrap_or(i64::MAX),
            disk_gib: i64::try_from(template.disk_gib).unwrap_or(i64::MAX),
            ephemeral_gib: i64::try_from(flavor.ephemeral_gib).unwrap_or(i64::MAX),
            swap_mib: i64::try_from(flavor.swap_mib).unwrap_or(i64::MAX),
            flavor_extra_specs: serde_json::to_string(&flavor.extra_specs)
                .unwrap_or_else(|_| "{}".to_owned()),
            vm_state: vm::BUILDING.to_owned(),
            task_state: Some(task::SCHEDULING.to_owned()),
            power_state: power::NOSTATE,
            node_id: None,
            forwards: None,
            reservation_id: template.reservation.to_owned(),
            // The create saga's ensure takes 1, its undo 2.
            generation: 2,
            key_name: template.key_name.map(str::to_owned),
            key_data: template.public_key.map(str::to_owned),
            user_data: request.user_data.clone(),
            locked_by: None,
            locked_reason: None,
            access_ipv4: request.access_ipv4.clone(),
            access_ipv6: request.access_ipv6.clone(),
            fault: None,
            active_charged: true,
            launched_at: None,
            terminated_at: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            resized_from: None,
            serial,
            cpu_model: Some(template.cpu_model.name.to_owned()),
        };
        q::insert_server(tx, &row).await?;
        q::put_metadata(tx, &id, &request.metadata, true).await?;
        q::set_tags(tx, &id, &request.tags).await?;
        q::start_action(
            &mut **tx,
            &id,
            request_id,
            "create",
            template.project,
            template.user,
            now,
        )
        .await?;
        let spec = VmSpec {
            name: name.clone(),
            vcpus: flavor.vcpus,
            ram_mib: flavor.ram_mib,
            disk_bytes: template.disk_gib << 30,
            image: ImageContent {
                size: template.image.size,
                block_size: nefos_blocks::BLOCK_SIZE as u64,
                hashes: template
                    .image
                    .hashes
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                format: template.image.format,
            },
            guest: GuestConfig {
                hostname: hostname(&name, &id),
                layout: ConfigDriveLayout::OpenStack,
                admin_pass: Some(template.admin_pass.to_owned()),
                public_keys: template
                    .key_name
                    .zip(template.public_key)
                    .map(|(name, key)| BTreeMap::from([(name.to_owned(), key.to_owned())]))
                    .unwrap_or_default(),
                user_data: request.user_data.clone(),
            },
            nics: match request.networks {
                ServerNetworks::None => Vec::new(),
                ServerNetworks::Auto => vec![NicSpec::UserForward {
                    mac: mac_of(&id),
                    forward_tcp: unique(&self.inner.settings.forward_tcp),
                }],
                ServerNetworks::List(_) => self.take_ports(tx, template, &id).await?,
            },
            cpu_model: Some(template.cpu_model.name.to_owned()),
        };
        let params = CreateParams {
            server_id: id.clone(),
            request_id: request_id.to_owned(),
            generation: 1,
            spec,
        };
        let saga = self.sagas().create::<CreateSaga>(tx, &id, &params).await?;
        Ok((id, saga))
    }
}

impl Compute {
    /// Checks each NIC a request asks for: its network or port exists and is the
    /// caller's to use. Nothing is taken yet.
    async fn resolve_nics(
        &self,
        caller: &AuthContext,
        request: &CreateServer,
    ) -> Result<Vec<Nic>, ComputeError> {
        let ServerNetworks::List(requests) = &request.networks else {
            return Ok(Vec::new());
        };
        let mut nics = Vec::new();
        for wanted in requests {
            nics.push(
                self.resolve_nic(caller, wanted, request.max_count > 1)
                    .await?,
            );
        }
        Ok(nics)
    }

    /// Checks one NIC request: its port or network exists and is the caller's to use
    /// (a port only for one server: `several` refuses it).
    pub(crate) async fn resolve_nic(
        &self,
        caller: &AuthContext,
        wanted: &NetworkRequest,
        several: bool,
    ) -> Result<Nic, ComputeError> {
        let networks = &self.inner.networks;
        Ok(match (&wanted.port, &wanted.network) {
            (Some(port_id), _) => {
                if several {
                    return Err(ComputeError::invalid(
                        "Unable to launch multiple instances with a single configured \
                     port ID. Please launch your instance one by one with different \
                     ports.",
                    ));
                }
                let port = match networks.port(caller, port_id).await {
                    Ok(port) if Some(port.project_id.as_str()) == caller.project_id() => port,
                    Ok(_) | Err(NetworkError::NotFound { .. }) => {
                        return Err(ComputeError::invalid(format!(
                            "Port id {port_id} could not be found."
                        )));
                    }
                    Err(error) => return Err(ComputeError::Network(error)),
                };
                if !port.device_id.is_empty() {
                    return Err(ComputeError::conflict(format!(
                        "Port {port_id} is still in use."
                    )));
                }
                let network = networks
                    .network(caller, &port.network_id)
                    .await
                    .map_err(refusal)?;
                Nic::Port {
                    port: port.id,
                    mtu: u32::try_from(network.mtu).unwrap_or(1450),
                }
            }
            (None, Some(network_id)) => {
                let network = match networks.network(caller, network_id).await {
                    Ok(network) => network,
                    Err(NetworkError::NotFound { .. }) => {
                        return Err(ComputeError::invalid(format!(
                            "Network {network_id} could not be found."
                        )));
                    }
                    Err(error) => return Err(ComputeError::Network(error)),
                };
                Nic::NewPort {
                    network: network.id,
                    mtu: u32::try_from(network.mtu).unwrap_or(1450),
                    fixed_ip: wanted.fixed_ip,
                }
            }
            (None, None) => {
                return Err(ComputeError::invalid(
                    "Bad networks format: network uuid is not in proper format",
                ));
            }
        })
    }

    /// Makes or takes server `id`'s ports, in its creation's transaction.
    async fn take_ports(
        &self,
        tx: &mut Transaction,
        template: &Template<'_>,
        id: &str,
    ) -> Result<Vec<NicSpec>, ComputeError> {
        let mut specs = Vec::new();
        for (position, nic) in template.nics.iter().enumerate() {
            let (spec, _) = self
                .take_port(tx, template.caller, id, nic, position)
                .await?;
            specs.push(spec);
        }
        Ok(specs)
    }

    /// Makes or takes the port of `nic` for server `id`, as its NIC at `position`, in
    /// the caller's transaction: the NIC and the port.
    pub(crate) async fn take_port(
        &self,
        tx: &mut Transaction,
        caller: &AuthContext,
        id: &str,
        nic: &Nic,
        position: usize,
    ) -> Result<(NicSpec, nefos_network::Port), ComputeError> {
        let networks = &self.inner.networks;
        let (port, mtu, made) = match nic {
            Nic::NewPort {
                network,
                mtu,
                fixed_ip,
            } => {
                let new = NewPort {
                    network_id: network.clone(),
                    device_id: id.to_owned(),
                    device_owner: PORT_OWNER.to_owned(),
                    fixed_ips: fixed_ip.map(|address| {
                        vec![FixedIpRequest {
                            subnet_id: None,
                            ip_address: Some(address),
                        }]
                    }),
                    ..NewPort::default()
                };
                let port = networks
                    .create_port_in(tx, caller, new)
                    .await
                    .map_err(refusal)?;
                (port, *mtu, true)
            }
            Nic::Port { port, mtu } => {
                let port = networks
                    .attach_port_in(tx, caller, port, id, PORT_OWNER)
                    .await
                    .map_err(refusal)?;
                (port, *mtu, false)
            }
        };
        q::insert_server_port(
            tx,
            &q::ServerPortRow {
                server_id: id.to_owned(),
                port_id: port.id.clone(),
                position: i64::try_from(position).unwrap_or(i64::MAX),
                made_with_server: i64::from(made),
            },
        )
        .await?;
        let spec = NicSpec::Port {
            port_id: port.id.clone(),
            mac: port.mac_address.clone(),
            mtu,
        };
        Ok((spec, port))
    }
}

/// A refusal of the networks service, as Nova words and codes it.
pub(crate) fn refusal(error: NetworkError) -> ComputeError {
    match error {
        NetworkError::NotFound { message, .. } | NetworkError::Invalid { message, .. } => {
            ComputeError::invalid(message)
        }
        NetworkError::Conflict { message, .. } => ComputeError::conflict(message),
        NetworkError::Forbidden { message } => ComputeError::Forbidden { message },
        NetworkError::OverQuota { .. } => ComputeError::OverQuota {
            message: "Maximum number of ports exceeded".to_owned(),
        },
        other => ComputeError::Network(other),
    }
}

fn unique(ports: &[u16]) -> Vec<u16> {
    ports
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// What every server of one request shares.
/// The flavor extra spec that names its servers' CPU model.
pub const CPU_MODEL_SPEC: &str = "nefos:cpu_model";

struct Template<'a> {
    caller: &'a AuthContext,
    nics: &'a [Nic],
    request: &'a CreateServer,
    project: &'a str,
    user: &'a str,
    flavor: &'a Flavor,
    image: &'a BootSource,
    disk_gib: u64,
    key_name: Option<&'a str>,
    public_key: Option<&'a str>,
    admin_pass: &'a str,
    reservation: &'a str,
    cpu_model: &'static nefos_node_api::CpuModel,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_sanitised_names() {
        assert_eq!(hostname("My Server_1", "abc"), "my-server-1");
        assert_eq!(hostname("--", "0123456789"), "server-01234567");
        assert_eq!(hostname(&"a".repeat(80), "x").len(), 63);
    }

    #[test]
    fn macs_are_locally_administered_and_from_the_id() {
        let mac = mac_of("6a1e0f2c-0000-4000-8000-0000000000ab");
        assert!(mac.starts_with("52:54:00:"), "{mac}");
        assert_eq!(mac.len(), 17);
        assert_ne!(mac, mac_of("6a1e0f2c-0000-4000-8000-0000000000ac"));
    }
}
