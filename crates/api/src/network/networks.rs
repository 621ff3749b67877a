//! `/v2.0/networks`: create, list, show, update, delete.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use bytes::Bytes;
use http::StatusCode;
use nefos_network::{NetworkUpdate, NewNetwork};
use serde_json::{Value, json};

use super::NeutronError;
use super::listing::{collection_url, list_query, render, select_fields};
use super::request::{Attributes, Neutron, resource_body};
use super::views::{self, NETWORK_ATTRIBUTES, object};
use crate::ApiState;
use nefos_network_api::paths;

/// Attributes Neutron has that nefos does not serve, with the values that ask nothing.
fn unserved(attributes: &mut Attributes) -> Result<(), NeutronError> {
    attributes.only_default("availability_zone_hints", &[json!([])])?;
    attributes.only_default("is_default", &[json!(false)])?;
    attributes.only_default("qos_policy_id", &[Value::Null])?;
    attributes.only_default("dns_domain", &[Value::Null, json!("")])?;
    for provider in [
        "provider:network_type",
        "provider:physical_network",
        "provider:segmentation_id",
        "segments",
    ] {
        if attributes.has(provider) {
            return Err(NeutronError::bad_request(format!(
                "{provider} cannot be set: every network is a VXLAN segment with a VNI nefos chooses"
            )));
        }
    }
    Ok(())
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    neutron: Neutron,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), NeutronError> {
    let mut attributes = resource_body(&body, "network")?;
    let project = attributes.project()?;
    let new = NewNetwork {
        project_id: project,
        name: attributes.string("name")?.unwrap_or_default(),
        description: attributes.string("description")?.unwrap_or_default(),
        admin_state_up: attributes.boolean("admin_state_up")?,
        shared: attributes.boolean("shared")?,
        external: attributes.boolean("router:external")?,
        mtu: attributes.integer("mtu")?,
        port_security_enabled: attributes.boolean("port_security_enabled")?,
    };
    unserved(&mut attributes)?;
    attributes.finish()?;
    let network = state.networks.create_network(&neutron.caller, new).await?;
    let view = views::network(&network, neutron.caller.is_cloud_admin());
    Ok((StatusCode::CREATED, Json(json!({"network": view}))))
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    neutron: Neutron,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NeutronError> {
    let query = list_query(raw.as_deref(), NETWORK_ATTRIBUTES)?;
    let admin = neutron.caller.is_cloud_admin();
    let networks = state.networks.networks(&neutron.caller).await?;
    let items = networks
        .iter()
        .map(|n| object(&views::network(n, admin)))
        .collect();
    let url = collection_url(&state, paths::NETWORKS);
    Ok(Json(render(&query, items, "networks", &url)?))
}

pub(crate) async fn show(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NeutronError> {
    let network = state.networks.network(&neutron.caller, &id).await?;
    let view = object(&views::network(&network, neutron.caller.is_cloud_admin()));
    Ok(Json(
        json!({"network": select_fields(raw.as_deref(), view)}),
    ))
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, NeutronError> {
    let mut attributes = resource_body(&body, "network")?;
    let update = NetworkUpdate {
        name: attributes.string("name")?,
        description: attributes.string("description")?,
        admin_state_up: attributes.boolean("admin_state_up")?,
        shared: attributes.boolean("shared")?,
        external: attributes.boolean("router:external")?,
        mtu: attributes.integer("mtu")?,
        port_security_enabled: attributes.boolean("port_security_enabled")?,
    };
    unserved(&mut attributes)?;
    attributes.finish()?;
    let network = state
        .networks
        .update_network(&neutron.caller, &id, update)
        .await?;
    let view = views::network(&network, neutron.caller.is_cloud_admin());
    Ok(Json(json!({"network": view})))
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
) -> Result<StatusCode, NeutronError> {
    state.networks.delete_network(&neutron.caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
