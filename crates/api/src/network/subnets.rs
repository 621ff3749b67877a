//! `/v2.0/subnets`: create, list, show, update, delete.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use bytes::Bytes;
use http::StatusCode;
use nefos_network::{HostRoute, NewSubnet, SubnetUpdate};
use serde_json::{Value, json};

use super::NeutronError;
use super::listing::{collection_url, list_query, render, select_fields};
use super::request::{Attributes, Neutron, address, objects, resource_body};
use super::views::{self, SUBNET_ATTRIBUTES, object};
use crate::ApiState;
use nefos_network_api::paths;

fn pools(attributes: &mut Attributes) -> Result<Option<Vec<(IpAddr, IpAddr)>>, NeutronError> {
    let Some(items) = attributes.list("allocation_pools")? else {
        return Ok(None);
    };
    let mut pools = Vec::new();
    for mut pool in objects("allocation_pools", items)? {
        let (Some(start), Some(end)) = (pool.string("start")?, pool.string("end")?) else {
            return Err(NeutronError::bad_request(
                "Invalid input for allocation_pools. Reason: each pool needs a start and an end.",
            ));
        };
        pool.finish()?;
        pools.push((
            address("allocation_pools", &start)?,
            address("allocation_pools", &end)?,
        ));
    }
    Ok(Some(pools))
}

fn routes(attributes: &mut Attributes) -> Result<Option<Vec<HostRoute>>, NeutronError> {
    let Some(items) = attributes.list("host_routes")? else {
        return Ok(None);
    };
    let mut routes = Vec::new();
    for mut route in objects("host_routes", items)? {
        let (Some(destination), Some(nexthop)) =
            (route.string("destination")?, route.string("nexthop")?)
        else {
            return Err(NeutronError::bad_request(
                "Invalid input for host_routes. Reason: each route needs a destination and a \
                 nexthop.",
            ));
        };
        route.finish()?;
        routes.push(HostRoute {
            destination,
            nexthop,
        });
    }
    Ok(Some(routes))
}

fn unserved(attributes: &mut Attributes) -> Result<(), NeutronError> {
    attributes.only_default("subnetpool_id", &[Value::Null])?;
    attributes.only_default("use_default_subnet_pool", &[json!(false)])?;
    attributes.only_default("prefixlen", &[Value::Null])?;
    attributes.only_default("segment_id", &[Value::Null])?;
    attributes.only_default("service_types", &[json!([])])?;
    Ok(())
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    neutron: Neutron,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), NeutronError> {
    let mut attributes = resource_body(&body, "subnet")?;
    attributes.take("tenant_id");
    attributes.take("project_id");
    let Some(network_id) = attributes.string("network_id")? else {
        return Err(NeutronError::bad_request(
            "Failed to parse request. Required attribute 'network_id' not specified",
        ));
    };
    let Some(ip_version) = attributes.integer("ip_version")? else {
        return Err(NeutronError::bad_request(
            "Failed to parse request. Required attribute 'ip_version' not specified",
        ));
    };
    let Some(cidr) = attributes.string("cidr")? else {
        return Err(NeutronError::bad_request(
            "Failed to parse request. Required attribute 'cidr' not specified: nefos has no subnet pools",
        ));
    };
    let gateway_ip = attributes.nullable_address("gateway_ip")?;
    let new = NewSubnet {
        network_id,
        name: attributes.string("name")?.unwrap_or_default(),
        description: attributes.string("description")?.unwrap_or_default(),
        ip_version,
        cidr,
        gateway_ip,
        allocation_pools: pools(&mut attributes)?,
        enable_dhcp: attributes.boolean("enable_dhcp")?,
        dns_nameservers: attributes
            .string_list("dns_nameservers")?
            .unwrap_or_default(),
        host_routes: routes(&mut attributes)?.unwrap_or_default(),
        ipv6_address_mode: attributes.nullable_string("ipv6_address_mode")?.flatten(),
        ipv6_ra_mode: attributes.nullable_string("ipv6_ra_mode")?.flatten(),
    };
    unserved(&mut attributes)?;
    attributes.finish()?;
    let subnet = state.networks.create_subnet(&neutron.caller, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"subnet": views::subnet(&subnet)})),
    ))
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    neutron: Neutron,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NeutronError> {
    let query = list_query(raw.as_deref(), SUBNET_ATTRIBUTES)?;
    let subnets = state.networks.subnets(&neutron.caller).await?;
    let items = subnets.iter().map(|s| object(&views::subnet(s))).collect();
    let url = collection_url(&state, paths::SUBNETS);
    Ok(Json(render(&query, items, "subnets", &url)?))
}

pub(crate) async fn show(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NeutronError> {
    let subnet = state.networks.subnet(&neutron.caller, &id).await?;
    let view = object(&views::subnet(&subnet));
    Ok(Json(json!({"subnet": select_fields(raw.as_deref(), view)})))
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, NeutronError> {
    let mut attributes = resource_body(&body, "subnet")?;
    let update = SubnetUpdate {
        name: attributes.string("name")?,
        description: attributes.string("description")?,
        gateway_ip: attributes.nullable_address("gateway_ip")?,
        allocation_pools: pools(&mut attributes)?,
        enable_dhcp: attributes.boolean("enable_dhcp")?,
        dns_nameservers: attributes.string_list("dns_nameservers")?,
        host_routes: routes(&mut attributes)?,
    };
    unserved(&mut attributes)?;
    attributes.finish()?;
    let subnet = state
        .networks
        .update_subnet(&neutron.caller, &id, update)
        .await?;
    Ok(Json(json!({"subnet": views::subnet(&subnet)})))
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(id): Path<String>,
) -> Result<StatusCode, NeutronError> {
    state.networks.delete_subnet(&neutron.caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
