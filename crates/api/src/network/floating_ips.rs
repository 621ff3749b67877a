//! `/v2.0/floatingips`. Associating, moving or releasing one changes what its router
//! forwards: the router's node hears of it at once.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use bytes::Bytes;
use http::StatusCode;
use nefos_network::{FloatingIpUpdate, NewFloatingIp};
use serde_json::{Value, json};

use super::NeutronError;
use super::listing::{collection_url, list_query, render, select_fields};
use super::request::{Neutron, address, resource_body};
use super::views::{self, FLOATING_IP_ATTRIBUTES, object};
use crate::ApiState;
use nefos_network_api::paths;

/// Sends the nodes of `routers` their networks.
pub(super) async fn sync_routers(state: &ApiState, routers: impl IntoIterator<Item = String>) {
    let Some(compute) = &state.compute else {
        return;
    };
    for router in routers {
        compute.sync_router(&router).await;
    }
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    neutron: Neutron,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), NeutronError> {
    let mut attributes = resource_body(&body, "floatingip")?;
    let project = attributes.project()?;
    let Some(network) = attributes.string("floating_network_id")? else {
        return Err(NeutronError::bad_request(
            "Failed to parse request. Required attribute 'floating_network_id' not specified",
        ));
    };
    let new = NewFloatingIp {
        floating_network_id: network,
        project_id: project,
        floating_ip_address: attributes
            .string("floating_ip_address")?
            .map(|a| address("floating_ip_address", &a))
            .transpose()?,
        subnet_id: attributes.string("subnet_id")?,
        port_id: attributes.nullable_string("port_id")?.flatten(),
        fixed_ip_address: attributes
            .string("fixed_ip_address")?
            .map(|a| address("fixed_ip_address", &a))
            .transpose()?,
        description: attributes.string("description")?.unwrap_or_default(),
    };
    attributes.finish()?;
    let floating = state
        .networks
        .create_floating_ip(&neutron.caller, new)
        .await?;
    sync_routers(&state, floating.router_id.clone()).await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"floatingip": views::floating_ip(&floating)})),
    ))
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    neutron: Neutron,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NeutronError> {
    let query = list_query(raw.as_deref(), FLOATING_IP_ATTRIBUTES)?;
    let floating_ips = state.networks.floating_ips(&neutron.caller).await?;
    let items = floating_ips
        .iter()
        .map(|f| object(&views::floating_ip(f)))
        .collect();
    let url = collection_url(&state, paths::FLOATING_IPS);
    Ok(Json(render(&query, items, "floatingips", &url)?))
}

pub(crate) async fn show(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NeutronError> {
    let floating = state.networks.floating_ip(&neutron.caller, &id).await?;
    let view = object(&views::floating_ip(&floating));
    Ok(Json(
        json!({"floatingip": select_fields(raw.as_deref(), view)}),
    ))
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, NeutronError> {
    let mut attributes = resource_body(&body, "floatingip")?;
    let update = FloatingIpUpdate {
        port_id: attributes.nullable_string("port_id")?,
        fixed_ip_address: attributes
            .string("fixed_ip_address")?
            .map(|a| address("fixed_ip_address", &a))
            .transpose()?,
        description: attributes.string("description")?,
    };
    attributes.finish()?;
    let (floating, routers) = state
        .networks
        .update_floating_ip(&neutron.caller, &id, update)
        .await?;
    sync_routers(&state, routers).await;
    Ok(Json(json!({"floatingip": views::floating_ip(&floating)})))
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
) -> Result<StatusCode, NeutronError> {
    let router = state
        .networks
        .delete_floating_ip(&neutron.caller, &id)
        .await?;
    sync_routers(&state, router).await;
    Ok(StatusCode::NO_CONTENT)
}
