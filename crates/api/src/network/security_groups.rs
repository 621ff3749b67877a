//! `/v2.0/security-groups` and `/v2.0/security-group-rules`. A change that alters what a
//! node enforces is sent to the nodes concerned at once.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use bytes::Bytes;
use http::StatusCode;
use nefos_network::{Direction, IpVersion, NewSecurityGroup, NewSecurityGroupRule};
use serde_json::{Value, json};

use super::NeutronError;
use super::listing::{collection_url, list_query, render, select_fields};
use super::request::{Neutron, resource_body};
use super::views::{self, SECURITY_GROUP_ATTRIBUTES, SECURITY_GROUP_RULE_ATTRIBUTES, object};
use crate::ApiState;
use nefos_network_api::paths;

pub(crate) async fn create(
    State(state): State<ApiState>,
    neutron: Neutron,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), NeutronError> {
    let mut attributes = resource_body(&body, "security_group")?;
    let project = attributes.project()?;
    let new = NewSecurityGroup {
        name: attributes.string("name")?.unwrap_or_default(),
        description: attributes.string("description")?.unwrap_or_default(),
        project_id: project,
    };
    attributes.only_default("stateful", &[json!(true)])?;
    attributes.finish()?;
    let group = state
        .networks
        .create_security_group(&neutron.caller, new)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"security_group": views::security_group(&group)})),
    ))
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    neutron: Neutron,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NeutronError> {
    let query = list_query(raw.as_deref(), SECURITY_GROUP_ATTRIBUTES)?;
    let groups = state.networks.security_groups(&neutron.caller).await?;
    let items = groups
        .iter()
        .map(|g| object(&views::security_group(g)))
        .collect();
    let url = collection_url(&state, paths::SECURITY_GROUPS);
    Ok(Json(render(&query, items, "security_groups", &url)?))
}

pub(crate) async fn show(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NeutronError> {
    let group = state.networks.security_group(&neutron.caller, &id).await?;
    let view = object(&views::security_group(&group));
    Ok(Json(
        json!({"security_group": select_fields(raw.as_deref(), view)}),
    ))
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, NeutronError> {
    let mut attributes = resource_body(&body, "security_group")?;
    let name = attributes.string("name")?;
    let description = attributes.string("description")?;
    attributes.only_default("stateful", &[json!(true)])?;
    attributes.finish()?;
    let group = state
        .networks
        .update_security_group(&neutron.caller, &id, name, description)
        .await?;
    Ok(Json(
        json!({"security_group": views::security_group(&group)}),
    ))
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
) -> Result<StatusCode, NeutronError> {
    // Rules of other groups that name it go with it: their nodes hear of it.
    let nodes = state.networks.hosts_of_group(&id).await?;
    state
        .networks
        .delete_security_group(&neutron.caller, &id)
        .await?;
    if let Some(compute) = &state.compute {
        compute.sync_networks(nodes).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

fn port_value(value: Option<i64>, name: &str) -> Result<Option<u16>, NeutronError> {
    value
        .map(|v| {
            u16::try_from(v).map_err(|_| {
                NeutronError::bad_request(format!(
                    "Invalid input for {name}. Reason: '{v}' is not a valid port number."
                ))
            })
        })
        .transpose()
}

pub(crate) async fn create_rule(
    State(state): State<ApiState>,
    neutron: Neutron,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), NeutronError> {
    let mut attributes = resource_body(&body, "security_group_rule")?;
    attributes.take("project_id");
    attributes.take("tenant_id");
    let Some(security_group_id) = attributes.string("security_group_id")? else {
        return Err(NeutronError::bad_request(
            "Failed to parse request. Required attribute 'security_group_id' not specified",
        ));
    };
    let direction = match attributes.string("direction")?.as_deref() {
        Some("ingress") => Direction::Ingress,
        Some("egress") => Direction::Egress,
        Some(other) => {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for direction. Reason: {other} is not in valid_values."
            )));
        }
        None => {
            return Err(NeutronError::bad_request(
                "Failed to parse request. Required attribute 'direction' not specified",
            ));
        }
    };
    let ethertype = match attributes.string("ethertype")?.as_deref() {
        None | Some("IPv4") => IpVersion::V4,
        Some("IPv6") => IpVersion::V6,
        Some(other) => {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for ethertype. Reason: {other} is not in valid_values."
            )));
        }
    };
    let protocol = match attributes.take("protocol") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for protocol. Reason: {other} is not a protocol."
            )));
        }
    };
    let new = NewSecurityGroupRule {
        security_group_id,
        direction,
        ethertype,
        protocol,
        port_range_min: port_value(attributes.integer("port_range_min")?, "port_range_min")?,
        port_range_max: port_value(attributes.integer("port_range_max")?, "port_range_max")?,
        remote_ip_prefix: attributes.nullable_string("remote_ip_prefix")?.flatten(),
        remote_group_id: attributes.nullable_string("remote_group_id")?.flatten(),
        description: attributes.string("description")?.unwrap_or_default(),
    };
    attributes.only_default("remote_address_group_id", &[Value::Null])?;
    attributes.finish()?;
    let rule = state
        .networks
        .create_security_group_rule(&neutron.caller, new)
        .await?;
    if let Some(compute) = &state.compute {
        compute.sync_security_group(&rule.security_group_id).await;
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({"security_group_rule": views::security_group_rule(&rule)})),
    ))
}

pub(crate) async fn list_rules(
    State(state): State<ApiState>,
    neutron: Neutron,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NeutronError> {
    let query = list_query(raw.as_deref(), SECURITY_GROUP_RULE_ATTRIBUTES)?;
    let rules = state.networks.security_group_rules(&neutron.caller).await?;
    let items = rules
        .iter()
        .map(|r| object(&views::security_group_rule(r)))
        .collect();
    let url = collection_url(&state, paths::SECURITY_GROUP_RULES);
    Ok(Json(render(&query, items, "security_group_rules", &url)?))
}

pub(crate) async fn show_rule(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NeutronError> {
    let rule = state
        .networks
        .security_group_rule(&neutron.caller, &id)
        .await?;
    let view = object(&views::security_group_rule(&rule));
    Ok(Json(
        json!({"security_group_rule": select_fields(raw.as_deref(), view)}),
    ))
}

pub(crate) async fn delete_rule(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
) -> Result<StatusCode, NeutronError> {
    let group = state
        .networks
        .delete_security_group_rule(&neutron.caller, &id)
        .await?;
    if let Some(compute) = &state.compute {
        compute.sync_security_group(&group).await;
    }
    Ok(StatusCode::NO_CONTENT)
}
