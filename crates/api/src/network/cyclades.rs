//! Synnefo's network API for kamaki ([`nefos_network_api::cyclades`]): the networks,
//! ports and floating IPs of Neutron's `/v2.0` in Cyclades' shapes, with servers named by
//! their serials. Two Synnefo habits become nefos operations: a port posted with a
//! server's serial as `device_id` is plugged into that server (Nova's `os-interface`), and
//! one naming a floating IP's address on its network attaches the floating IP to the
//! server (associated with the server's port behind a router, nefos's way; the port
//! kamaki sees is the floating IP's own on the public network, and deleting it detaches
//! the floating IP). Errors are Cyclades' faults (`{"itemNotFound": {"code", "message"}}`).

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use bytes::Bytes;
use http::StatusCode;
use nefos_compute::NetworkRequest;
use nefos_identity::AuthContext;
use nefos_network::{
    FLOATING_IP_OWNER, FixedIpRequest, FloatingIp, FloatingIpUpdate, Network, NetworkError,
    NetworkUpdate, NewFloatingIp, NewNetwork, NewPort, Port,
};
use nefos_network_api::cyclades::{self as c, paths};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::NeutronError;
use super::floating_ips::sync_routers;
use crate::ApiState;
use crate::compute::{Nova, NovaError, cyclades_time};

type Reply<T> = Result<T, NovaError>;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route(paths::NETWORKS, get(networks).post(create_network))
        .route(paths::NETWORKS_DETAIL, get(networks))
        .route(
            paths::NETWORK,
            get(network).put(rename_network).delete(delete_network),
        )
        .route(paths::PORTS, get(ports).post(create_port))
        .route(paths::PORTS_DETAIL, get(ports))
        .route(paths::PORT, get(port).delete(delete_port))
        .route(
            paths::FLOATING_IPS,
            get(floating_ips).post(create_floating_ip),
        )
        .route(paths::FLOATING_IPS_DETAIL, get(floating_ips))
        .route(
            paths::FLOATING_IP,
            get(floating_ip).delete(delete_floating_ip),
        )
}

/// A network error as Cyclades' fault, with the status Neutron's API gives it.
fn fault(error: NetworkError) -> NovaError {
    let neutron = NeutronError::from(error);
    NovaError::new(neutron.status, neutron.message)
}

/// The one `resource` object of a body.
fn body<T: DeserializeOwned>(bytes: &[u8], resource: &str) -> Reply<T> {
    let mut document: Value = serde_json::from_slice(bytes)
        .map_err(|_| NovaError::bad_request("Invalid JSON in the request body"))?;
    let inner = document
        .get_mut(resource)
        .map(Value::take)
        .ok_or_else(|| NovaError::bad_request(format!("Missing '{resource}' in the body")))?;
    serde_json::from_value(inner)
        .map_err(|error| NovaError::bad_request(format!("Invalid {resource}: {error}")))
}

fn links(state: &ApiState, path: &str) -> Vec<c::Link> {
    let href = format!("{}{}{path}", state.public_url(), c::PREFIX);
    vec![
        c::Link {
            rel: "self".to_owned(),
            href: href.clone(),
        },
        c::Link {
            rel: "bookmark".to_owned(),
            href,
        },
    ]
}

fn network_view(state: &ApiState, network: &Network) -> c::Network {
    c::Network {
        id: network.id.clone(),
        name: network.name.clone(),
        links: links(state, &format!("/networks/{}", network.id)),
        user_id: network.charged_to.clone().unwrap_or_default(),
        tenant_id: network.project_id.clone(),
        kind: if network.external {
            c::PUBLIC_TYPE
        } else {
            c::PRIVATE_TYPE
        }
        .to_owned(),
        status: "ACTIVE".to_owned(),
        public: network.external,
        shared: network.shared || network.external,
        external: network.external,
        admin_state_up: network.admin_state_up,
        subnets: network.subnets.clone(),
        floating_ip_pool: network.external,
        created: cyclades_time(network.created_at),
        updated: cyclades_time(network.updated_at),
        deleted: false,
    }
}

/// Server ids as Cyclades' serials, looked up once per request.
struct Serials<'a> {
    state: &'a ApiState,
    caller: &'a AuthContext,
    known: HashMap<String, Option<String>>,
}

impl<'a> Serials<'a> {
    fn new(state: &'a ApiState, caller: &'a AuthContext) -> Self {
        Serials {
            state,
            caller,
            known: HashMap::new(),
        }
    }

    /// The serial of server `id`, if the caller sees it.
    async fn of(&mut self, id: &str) -> Option<String> {
        if let Some(known) = self.known.get(id) {
            return known.clone();
        }
        let compute = self.state.compute().ok()?;
        let serial = compute
            .server(self.caller, id)
            .await
            .ok()
            .map(|server| server.serial.to_string());
        self.known.insert(id.to_owned(), serial.clone());
        serial
    }

    /// The serial a port's `device_id` shows: its server's, or, for a floating IP's
    /// own port, that of the server the floating IP serves.
    async fn device_of(&mut self, port: &Port) -> Option<String> {
        if port.device_owner.starts_with("compute:") {
            return self.of(&port.device_id).await;
        }
        if port.device_owner == FLOATING_IP_OWNER {
            let networks = &self.state.networks;
            let floating = networks.floating_ip(self.caller, &port.device_id).await;
            let served = floating.ok()?.port_id?;
            let served = networks.port(self.caller, &served).await.ok()?;
            return self.of(&served.device_id).await;
        }
        None
    }
}

async fn port_view(state: &ApiState, serials: &mut Serials<'_>, port: &Port) -> c::Port {
    let device_id = serials.device_of(port).await;
    c::Port {
        id: port.id.clone(),
        name: port.name.clone(),
        links: links(state, &format!("/ports/{}", port.id)),
        user_id: port.charged_to.clone().unwrap_or_default(),
        tenant_id: port.project_id.clone(),
        device_owner: if port.device_owner.starts_with("compute:") {
            "vm".to_owned()
        } else {
            port.device_owner.clone()
        },
        device_id,
        admin_state_up: port.admin_state_up,
        mac_address: port.mac_address.clone(),
        status: port.status.clone(),
        network_id: port.network_id.clone(),
        fixed_ips: port
            .fixed_ips
            .iter()
            .map(|ip| c::FixedIp {
                ip_address: ip.ip_address.to_string(),
                subnet: ip.subnet_id.clone(),
            })
            .collect(),
        security_groups: port.security_groups.clone(),
        created: cyclades_time(port.created_at),
        updated: cyclades_time(port.updated_at),
    }
}

async fn floating_ip_view(
    state: &ApiState,
    serials: &mut Serials<'_>,
    floating: &FloatingIp,
) -> c::FloatingIp {
    let instance_id = match &floating.port_id {
        Some(port) => match state.networks.port(serials.caller, port).await {
            Ok(port) => serials.of(&port.device_id).await,
            Err(_) => None,
        },
        None => None,
    };
    c::FloatingIp {
        id: floating.id.clone(),
        floating_ip_address: floating.floating_ip_address.clone(),
        floating_network_id: floating.floating_network_id.clone(),
        fixed_ip_address: None,
        instance_id,
        port_id: floating
            .port_id
            .as_ref()
            .map(|_| floating.floating_port_id.clone()),
        user_id: floating.charged_to.clone().unwrap_or_default(),
        tenant_id: floating.project_id.clone(),
        deleted: false,
    }
}

async fn networks(State(state): State<ApiState>, nova: Nova) -> Reply<Json<Value>> {
    let networks = state.networks.networks(&nova.caller).await.map_err(fault)?;
    let views: Vec<c::Network> = networks.iter().map(|n| network_view(&state, n)).collect();
    Ok(Json(json!({ "networks": views })))
}

async fn network(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Reply<Json<Value>> {
    let network = state
        .networks
        .network(&nova.caller, &id)
        .await
        .map_err(fault)?;
    Ok(Json(json!({ "network": network_view(&state, &network) })))
}

async fn create_network(
    State(state): State<ApiState>,
    nova: Nova,
    bytes: Bytes,
) -> Reply<(StatusCode, Json<Value>)> {
    let create: c::NetworkCreate = body(&bytes, "network")?;
    let kind = create.kind.to_ascii_uppercase();
    if !c::NETWORK_TYPES.contains(&kind.as_str()) {
        return Err(NovaError::bad_request(format!(
            "Invalid network type '{}'",
            create.kind
        )));
    }
    // Only the flavor nefos's networks are: a segment of its own with anti-spoofing.
    if kind != c::PRIVATE_TYPE {
        return Err(NovaError::new(
            StatusCode::FORBIDDEN,
            format!("Can not create network of type {kind}"),
        ));
    }
    let new = NewNetwork {
        project_id: create.project,
        name: create.name.unwrap_or_default(),
        admin_state_up: create.admin_state_up,
        ..NewNetwork::default()
    };
    let network = state
        .networks
        .create_network(&nova.caller, new)
        .await
        .map_err(fault)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "network": network_view(&state, &network) })),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

async fn rename_network(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Reply<Json<Value>> {
    let rename: Rename = body(&bytes, "network")?;
    let update = NetworkUpdate {
        name: Some(rename.name),
        ..NetworkUpdate::default()
    };
    let network = state
        .networks
        .update_network(&nova.caller, &id, update)
        .await
        .map_err(fault)?;
    Ok(Json(json!({ "network": network_view(&state, &network) })))
}

async fn delete_network(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Reply<StatusCode> {
    state
        .networks
        .delete_network(&nova.caller, &id)
        .await
        .map_err(fault)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn ports(State(state): State<ApiState>, nova: Nova) -> Reply<Json<Value>> {
    let ports = state
        .networks
        .ports(&nova.caller, None, None)
        .await
        .map_err(fault)?;
    let mut serials = Serials::new(&state, &nova.caller);
    let mut views = Vec::new();
    for port in &ports {
        views.push(port_view(&state, &mut serials, port).await);
    }
    Ok(Json(json!({ "ports": views })))
}

async fn port(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Reply<Json<Value>> {
    let port = state
        .networks
        .port(&nova.caller, &id)
        .await
        .map_err(fault)?;
    let mut serials = Serials::new(&state, &nova.caller);
    Ok(Json(
        json!({ "port": port_view(&state, &mut serials, &port).await }),
    ))
}

/// The live server whose Cyclades serial is `serial`.
async fn server_of_serial(
    state: &ApiState,
    caller: &AuthContext,
    serial: &str,
) -> Reply<nefos_compute::Server> {
    let number: i64 = serial
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| NovaError::bad_request(format!("Invalid device_id '{serial}'")))?;
    let server = state.compute()?.server_by_serial(caller, number).await?;
    if server.deleted_at.is_some() {
        return Err(NovaError::new(
            StatusCode::NOT_FOUND,
            format!("Server {serial} not found"),
        ));
    }
    Ok(server)
}

async fn create_port(
    State(state): State<ApiState>,
    nova: Nova,
    bytes: Bytes,
) -> Reply<(StatusCode, Json<Value>)> {
    let create: c::PortCreate = body(&bytes, "port")?;
    let caller = &nova.caller;
    let mut fixed_ips = Vec::new();
    for requested in create.fixed_ips.iter().flatten() {
        let address = requested.ip_address.parse().map_err(|_| {
            NovaError::bad_request(format!(
                "'{}' is not a valid IP address",
                requested.ip_address
            ))
        })?;
        fixed_ips.push(FixedIpRequest {
            subnet_id: requested.subnet_id.clone(),
            ip_address: Some(address),
        });
    }
    let mut serials = Serials::new(&state, caller);
    let Some(serial) = &create.device_id else {
        let new = NewPort {
            network_id: create.network_id.clone(),
            name: create.name.clone().unwrap_or_default(),
            fixed_ips: (!fixed_ips.is_empty()).then_some(fixed_ips),
            security_groups: create.security_groups.clone(),
            ..NewPort::default()
        };
        let port = state
            .networks
            .create_port(caller, new)
            .await
            .map_err(fault)?;
        let view = port_view(&state, &mut serials, &port).await;
        return Ok((StatusCode::CREATED, Json(json!({ "port": view }))));
    };
    let server = server_of_serial(&state, caller, serial).await?;
    // Synnefo's `ip attach`: a port on a floating IP's network with its address.
    let floating = match fixed_ips.as_slice() {
        [only] => {
            let wanted = only.ip_address.map(|a| a.to_string());
            let all = state.networks.floating_ips(caller).await.map_err(fault)?;
            all.into_iter().find(|f| {
                f.floating_network_id == create.network_id
                    && Some(&f.floating_ip_address) == wanted.as_ref()
            })
        }
        _ => None,
    };
    let port = match floating {
        Some(floating) => attach_floating_ip(&state, caller, &server, &floating).await?,
        None => plug_new_port(&state, &nova, &server, &create, &fixed_ips).await?,
    };
    let view = port_view(&state, &mut serials, &port).await;
    Ok((StatusCode::CREATED, Json(json!({ "port": view }))))
}

/// Synnefo's `network connect`: a new port on the network plugged into `server`, made by
/// the plug as Nova's `os-interface` makes one (so it goes with the server, as Synnefo's
/// NICs do), then named and grouped as asked. The groups are checked before anything is
/// made, and a port that cannot take its name or groups is unplugged again.
async fn plug_new_port(
    state: &ApiState,
    nova: &Nova,
    server: &nefos_compute::Server,
    create: &c::PortCreate,
    fixed_ips: &[FixedIpRequest],
) -> Reply<Port> {
    let caller = &nova.caller;
    let compute = state.compute()?;
    if fixed_ips.len() > 1 {
        return Err(NovaError::bad_request(
            "A port plugged into a server takes one address here",
        ));
    }
    for group in create.security_groups.iter().flatten() {
        state
            .networks
            .security_group(caller, group)
            .await
            .map_err(fault)?;
    }
    let wanted = NetworkRequest {
        network: Some(create.network_id.clone()),
        port: None,
        fixed_ip: fixed_ips.first().and_then(|ip| ip.ip_address),
    };
    let port = compute
        .attach_interface(caller, &nova.request_id, &server.id, &wanted)
        .await?;
    if create.name.is_none() && create.security_groups.is_none() {
        return Ok(port);
    }
    let update = nefos_network::PortUpdate {
        name: create.name.clone(),
        security_groups: create.security_groups.clone(),
        ..nefos_network::PortUpdate::default()
    };
    match state.networks.update_port(caller, &port.id, update).await {
        Ok(port) => {
            compute
                .sync_networks(port.binding_host.iter().cloned().collect())
                .await;
            Ok(port)
        }
        Err(error) => {
            let unplugged = compute
                .detach_interface(caller, &nova.request_id, &server.id, &port.id)
                .await;
            if let Err(cleanup) = unplugged {
                tracing::warn!(port = %port.id, error = %cleanup, "cannot unplug a port that could not be named");
            }
            Err(fault(error))
        }
    }
}

/// Associates `floating` with the first of the server's ports a router joins to the
/// floating IP's network; the floating IP's own port, which holds its address.
async fn attach_floating_ip(
    state: &ApiState,
    caller: &AuthContext,
    server: &nefos_compute::Server,
    floating: &FloatingIp,
) -> Reply<Port> {
    if floating.port_id.is_some() {
        return Err(NovaError::new(
            StatusCode::CONFLICT,
            format!(
                "Floating IP {} is in use: detach it first",
                floating.floating_ip_address
            ),
        ));
    }
    let interfaces = state.compute()?.interfaces(caller, &server.id).await?;
    let mut refusal = None;
    for interface in &interfaces {
        let update = FloatingIpUpdate {
            port_id: Some(Some(interface.id.clone())),
            ..FloatingIpUpdate::default()
        };
        match state
            .networks
            .update_floating_ip(caller, &floating.id, update)
            .await
        {
            Ok((_, routers)) => {
                sync_routers(state, routers).await;
                return state
                    .networks
                    .port(caller, &floating.floating_port_id)
                    .await
                    .map_err(fault);
            }
            Err(error) => refusal = Some(error),
        }
    }
    Err(match refusal {
        Some(error) => fault(error),
        None => NovaError::bad_request(format!("Server {} has no ports", server.serial)),
    })
}

async fn delete_port(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Reply<StatusCode> {
    let caller = &nova.caller;
    let port = state.networks.port(caller, &id).await.map_err(fault)?;
    if port.device_owner == FLOATING_IP_OWNER {
        // Synnefo's `ip detach`: the floating IP stays the project's, serving no server.
        let update = FloatingIpUpdate {
            port_id: Some(None),
            ..FloatingIpUpdate::default()
        };
        let (_, routers) = state
            .networks
            .update_floating_ip(caller, &port.device_id, update)
            .await
            .map_err(fault)?;
        sync_routers(&state, routers).await;
        return Ok(StatusCode::NO_CONTENT);
    }
    if port.device_owner.starts_with("compute:") && !port.device_id.is_empty() {
        // Synnefo's `network disconnect`: the NIC comes out, and the port goes.
        state
            .compute()?
            .detach_interface(caller, &nova.request_id, &port.device_id, &id)
            .await?;
        match state.networks.delete_port(caller, &id).await {
            Ok(()) | Err(NetworkError::NotFound { .. }) => {}
            Err(error) => return Err(fault(error)),
        }
        return Ok(StatusCode::NO_CONTENT);
    }
    state
        .networks
        .delete_port(caller, &id)
        .await
        .map_err(fault)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn floating_ips(State(state): State<ApiState>, nova: Nova) -> Reply<Json<Value>> {
    let all = state
        .networks
        .floating_ips(&nova.caller)
        .await
        .map_err(fault)?;
    let mut serials = Serials::new(&state, &nova.caller);
    let mut views = Vec::new();
    for floating in &all {
        views.push(floating_ip_view(&state, &mut serials, floating).await);
    }
    Ok(Json(json!({ "floatingips": views })))
}

async fn floating_ip(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Reply<Json<Value>> {
    let floating = state
        .networks
        .floating_ip(&nova.caller, &id)
        .await
        .map_err(fault)?;
    let mut serials = Serials::new(&state, &nova.caller);
    let view = floating_ip_view(&state, &mut serials, &floating).await;
    Ok(Json(json!({ "floatingip": view })))
}

/// `POST /floatingips`: from the network named, or, as Synnefo does, from the first
/// public network with an address to give. Answered with 200, as Synnefo answers.
async fn create_floating_ip(
    State(state): State<ApiState>,
    nova: Nova,
    bytes: Bytes,
) -> Reply<Json<Value>> {
    let create: c::FloatingIpCreate = body(&bytes, "floatingip")?;
    let caller = &nova.caller;
    let address = match &create.floating_ip_address {
        Some(text) => Some(
            text.parse()
                .map_err(|_| NovaError::bad_request(format!("'{text}' is not an IP address")))?,
        ),
        None => None,
    };
    let candidates = match &create.floating_network_id {
        Some(network) => vec![network.clone()],
        None => state
            .networks
            .networks(caller)
            .await
            .map_err(fault)?
            .into_iter()
            .filter(|n| n.external)
            .map(|n| n.id)
            .collect(),
    };
    let mut refusal = None;
    for network in candidates {
        let new = NewFloatingIp {
            floating_network_id: network,
            floating_ip_address: address,
            project_id: create.project.clone(),
            ..NewFloatingIp::default()
        };
        match state.networks.create_floating_ip(caller, new).await {
            Ok(floating) => {
                let mut serials = Serials::new(&state, caller);
                let view = floating_ip_view(&state, &mut serials, &floating).await;
                return Ok(Json(json!({ "floatingip": view })));
            }
            // A full pool: the next public network may have room.
            Err(error) if error.kind() == "IpAddressGenerationFailure" => refusal = Some(error),
            Err(error) => return Err(fault(error)),
        }
    }
    Err(match refusal {
        Some(error) => fault(error),
        None => NovaError::new(
            StatusCode::CONFLICT,
            "No public network to allocate a floating IP from",
        ),
    })
}

async fn delete_floating_ip(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Reply<StatusCode> {
    let router = state
        .networks
        .delete_floating_ip(&nova.caller, &id)
        .await
        .map_err(fault)?;
    sync_routers(&state, router).await;
    Ok(StatusCode::NO_CONTENT)
}
