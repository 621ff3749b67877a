//! `/v2.0/ports`: create, list, show, update, delete.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use bytes::Bytes;
use http::StatusCode;
use nefos_network::{AddressPairRequest, FixedIpRequest, NewPort, PortUpdate};
use serde_json::{Value, json};

use super::NeutronError;
use super::listing::{collection_url, list_query, render, select_fields};
use super::request::{Attributes, Neutron, address, objects, resource_body};
use super::views::{self, PORT_ATTRIBUTES, object};
use crate::ApiState;
use nefos_network_api::paths;

fn fixed_ips(attributes: &mut Attributes) -> Result<Option<Vec<FixedIpRequest>>, NeutronError> {
    let Some(items) = attributes.list("fixed_ips")? else {
        return Ok(None);
    };
    let mut requests = Vec::new();
    for mut item in objects("fixed_ips", items)? {
        let subnet_id = item.string("subnet_id")?;
        let ip_address = match item.string("ip_address")? {
            Some(text) => Some(address("fixed_ips", &text)?),
            None => None,
        };
        item.finish()?;
        requests.push(FixedIpRequest {
            subnet_id,
            ip_address,
        });
    }
    Ok(Some(requests))
}

fn address_pairs(
    attributes: &mut Attributes,
) -> Result<Option<Vec<AddressPairRequest>>, NeutronError> {
    let Some(items) = attributes.list("allowed_address_pairs")? else {
        return Ok(None);
    };
    let mut pairs = Vec::new();
    for mut item in objects("allowed_address_pairs", items)? {
        let pair = AddressPairRequest {
            ip_address: item.string("ip_address")?,
            mac_address: item.string("mac_address")?,
        };
        item.finish()?;
        pairs.push(pair);
    }
    Ok(Some(pairs))
}

fn unserved(attributes: &mut Attributes) -> Result<(), NeutronError> {
    attributes.only_default("binding:vnic_type", &[json!("normal")])?;
    attributes.only_default("binding:profile", &[json!({}), Value::Null])?;
    attributes.only_default("extra_dhcp_opts", &[json!([])])?;
    attributes.only_default("qos_policy_id", &[Value::Null])?;
    attributes.only_default("dns_name", &[json!(""), Value::Null])?;
    Ok(())
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    neutron: Neutron,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), NeutronError> {
    let mut attributes = resource_body(&body, "port")?;
    let project = attributes.project()?;
    let Some(network_id) = attributes.string("network_id")? else {
        return Err(NeutronError::bad_request(
            "Failed to parse request. Required attribute 'network_id' not specified",
        ));
    };
    let new = NewPort {
        network_id,
        project_id: project,
        name: attributes.string("name")?.unwrap_or_default(),
        description: attributes.string("description")?.unwrap_or_default(),
        mac_address: attributes.string("mac_address")?,
        admin_state_up: attributes.boolean("admin_state_up")?,
        device_id: attributes.string("device_id")?.unwrap_or_default(),
        device_owner: attributes.string("device_owner")?.unwrap_or_default(),
        port_security_enabled: attributes.boolean("port_security_enabled")?,
        fixed_ips: fixed_ips(&mut attributes)?,
        binding_host: attributes
            .nullable_string("binding:host_id")?
            .flatten()
            .filter(|h| !h.is_empty()),
        security_groups: attributes.string_list("security_groups")?,
        allowed_address_pairs: address_pairs(&mut attributes)?,
    };
    unserved(&mut attributes)?;
    attributes.finish()?;
    let port = state.networks.create_port(&neutron.caller, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"port": views::port(&port)})),
    ))
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    neutron: Neutron,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NeutronError> {
    let query = list_query(raw.as_deref(), PORT_ATTRIBUTES)?;
    // One network's or one device's ports are read by index; other filters apply after.
    let single = |name| match query.filter(name) {
        Some([one]) => Some(one.as_str()),
        _ => None,
    };
    let ports = state
        .networks
        .ports(&neutron.caller, single("network_id"), single("device_id"))
        .await?;
    let items = ports.iter().map(|p| object(&views::port(p))).collect();
    let url = collection_url(&state, paths::PORTS);
    Ok(Json(render(&query, items, "ports", &url)?))
}

pub(crate) async fn show(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NeutronError> {
    let port = state.networks.port(&neutron.caller, &id).await?;
    let view = object(&views::port(&port));
    Ok(Json(json!({"port": select_fields(raw.as_deref(), view)})))
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, NeutronError> {
    let mut attributes = resource_body(&body, "port")?;
    let update = PortUpdate {
        name: attributes.string("name")?,
        description: attributes.string("description")?,
        mac_address: attributes.string("mac_address")?,
        admin_state_up: attributes.boolean("admin_state_up")?,
        device_id: attributes.string("device_id")?,
        device_owner: attributes.string("device_owner")?,
        port_security_enabled: attributes.boolean("port_security_enabled")?,
        fixed_ips: fixed_ips(&mut attributes)?,
        binding_host: attributes
            .nullable_string("binding:host_id")?
            .map(|h| h.filter(|h| !h.is_empty())),
        security_groups: attributes.string_list("security_groups")?,
        allowed_address_pairs: address_pairs(&mut attributes)?,
    };
    unserved(&mut attributes)?;
    attributes.finish()?;
    let before = state.networks.port(&neutron.caller, &id).await?;
    let port = state
        .networks
        .update_port(&neutron.caller, &id, update)
        .await?;
    // Its node enforces its addresses and groups: it hears of the change at once.
    if let Some(compute) = &state.compute {
        let nodes = [before.binding_host, port.binding_host.clone()]
            .into_iter()
            .flatten()
            .collect();
        compute.sync_networks(nodes).await;
        // Its addresses and pairs make it a member of its groups: the rules naming the
        // groups it was in, and those it is in now, change with them.
        if before.allowed_address_pairs != port.allowed_address_pairs
            || before.fixed_ips != port.fixed_ips
            || before.security_groups != port.security_groups
        {
            let groups: std::collections::BTreeSet<&String> = before
                .security_groups
                .iter()
                .chain(&port.security_groups)
                .collect();
            for group in groups {
                compute.sync_security_group(group).await;
            }
        }
    }
    Ok(Json(json!({"port": views::port(&port)})))
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
) -> Result<StatusCode, NeutronError> {
    state.networks.delete_port(&neutron.caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
