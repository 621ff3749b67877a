//! `/v2.0/routers` and their interface actions. A change that alters what a router does
//! is sent at once to its node and the nodes of its networks.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use bytes::Bytes;
use http::StatusCode;
use nefos_network::{GatewayRequest, NewRouter, RouterUpdate};
use serde_json::{Value, json};

use super::NeutronError;
use super::listing::{collection_url, list_query, render, select_fields};
use super::request::{Neutron, bare_body, objects, resource_body};
use super::views::{self, ROUTER_ATTRIBUTES, object};
use crate::ApiState;
use nefos_network_api::paths;

/// `external_gateway_info`: `Some(None)` clears the gateway (`null` or `{}`), otherwise
/// the external network and `enable_snat`.
fn gateway_info(value: Option<Value>) -> Result<Option<Option<GatewayRequest>>, NeutronError> {
    let value = match value {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(None)),
        Some(value) => value,
    };
    let Some(mut info) = objects("external_gateway_info", vec![value])?.pop() else {
        return Ok(Some(None));
    };
    let network = info.string("network_id")?;
    let snat = info.boolean("enable_snat")?;
    if let Some(Value::Array(ips)) = info.take("external_fixed_ips")
        && !ips.is_empty()
    {
        return Err(NeutronError::bad_request(
            "Invalid input for external_gateway_info. Reason: external_fixed_ips cannot be \
             chosen; the router's gateway takes the next free address.",
        ));
    }
    info.finish()?;
    match network {
        Some(network_id) => Ok(Some(Some(GatewayRequest {
            network_id,
            enable_snat: snat,
        }))),
        None if snat.is_none() => Ok(Some(None)),
        None => Err(NeutronError::bad_request(
            "Invalid input for external_gateway_info. Reason: network_id is required.",
        )),
    }
}

async fn sync(state: &ApiState, nodes: Vec<String>) {
    if let Some(compute) = &state.compute {
        compute.sync_networks(nodes).await;
    }
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    neutron: Neutron,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), NeutronError> {
    let mut attributes = resource_body(&body, "router")?;
    let project = attributes.project()?;
    let new = NewRouter {
        name: attributes.string("name")?.unwrap_or_default(),
        description: attributes.string("description")?.unwrap_or_default(),
        admin_state_up: attributes.boolean("admin_state_up")?,
        project_id: project,
        external_gateway: gateway_info(attributes.take("external_gateway_info"))?.flatten(),
    };
    attributes.only_default("distributed", &[json!(false)])?;
    attributes.only_default("ha", &[json!(false)])?;
    attributes.finish()?;
    let router = state.networks.create_router(&neutron.caller, new).await?;
    sync(&state, state.networks.hosts_of_router(&router.id).await?).await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"router": views::router(&router)})),
    ))
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    neutron: Neutron,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NeutronError> {
    let query = list_query(raw.as_deref(), ROUTER_ATTRIBUTES)?;
    let routers = state.networks.routers(&neutron.caller).await?;
    let items = routers.iter().map(|r| object(&views::router(r))).collect();
    let url = collection_url(&state, paths::ROUTERS);
    Ok(Json(render(&query, items, "routers", &url)?))
}

pub(crate) async fn show(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NeutronError> {
    let router = state.networks.router(&neutron.caller, &id).await?;
    let view = object(&views::router(&router));
    Ok(Json(json!({"router": select_fields(raw.as_deref(), view)})))
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, NeutronError> {
    let mut attributes = resource_body(&body, "router")?;
    let update = RouterUpdate {
        name: attributes.string("name")?,
        description: attributes.string("description")?,
        admin_state_up: attributes.boolean("admin_state_up")?,
        external_gateway: gateway_info(attributes.take("external_gateway_info"))?,
    };
    if let Some(Value::Array(routes)) = attributes.take("routes")
        && !routes.is_empty()
    {
        return Err(NeutronError::bad_request(
            "Unrecognized attribute(s) 'routes': nefos routers have no extra routes",
        ));
    }
    attributes.finish()?;
    let router = state
        .networks
        .update_router(&neutron.caller, &id, update)
        .await?;
    sync(&state, state.networks.hosts_of_router(&id).await?).await;
    Ok(Json(json!({"router": views::router(&router)})))
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
) -> Result<StatusCode, NeutronError> {
    state.networks.router(&neutron.caller, &id).await?;
    // Read before: a deleted router no longer names its node.
    let nodes = state.networks.hosts_of_router(&id).await?;
    state.networks.delete_router(&neutron.caller, &id).await?;
    sync(&state, nodes).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The `subnet_id` or `port_id` of an interface action's body.
fn interface_body(body: &[u8]) -> Result<(Option<String>, Option<String>), NeutronError> {
    let mut attributes = bare_body(body)?;
    let subnet = attributes.string("subnet_id")?;
    let port = attributes.string("port_id")?;
    attributes.finish()?;
    if subnet.is_some() && port.is_some() {
        return Err(NeutronError::bad_request(
            "Invalid input for operation: Cannot specify both subnet-id and port-id.",
        ));
    }
    Ok((subnet, port))
}

pub(crate) async fn add_interface(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, NeutronError> {
    let (subnet, port) = interface_body(&body)?;
    let interface = state
        .networks
        .add_router_interface(&neutron.caller, &id, subnet.as_deref(), port.as_deref())
        .await?;
    sync(&state, state.networks.hosts_of_router(&id).await?).await;
    Ok(Json(
        serde_json::to_value(views::router_interface(&interface)).unwrap_or_default(),
    ))
}

pub(crate) async fn remove_interface(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, NeutronError> {
    let (subnet, port) = interface_body(&body)?;
    state.networks.router(&neutron.caller, &id).await?;
    let nodes = state.networks.hosts_of_router(&id).await?;
    let interface = state
        .networks
        .remove_router_interface(&neutron.caller, &id, subnet.as_deref(), port.as_deref())
        .await?;
    sync(&state, nodes).await;
    Ok(Json(
        serde_json::to_value(views::router_interface(&interface)).unwrap_or_default(),
    ))
}
