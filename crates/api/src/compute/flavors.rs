//! `/flavors`: lists, show, and the administrators' management (create, description,
//! delete, extra specs, access lists).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use nefos_compute::{Flavor, NewFlavor};
use nefos_compute_api::types::{
    self, ExtraSpecs, FlavorAccess, FlavorAccessList, FlavorBody, FlavorBrief, FlavorCreate,
};
use serde_json::Value;

use super::NovaError;
use super::request::{Nova, body, document, next_links, query_pairs};
use crate::ApiState;

fn view(nova: &Nova, flavor: &Flavor) -> types::Flavor {
    let swap = if nova.version.at_least(75) || flavor.swap_mib > 0 {
        Value::from(flavor.swap_mib)
    } else {
        Value::from("")
    };
    types::Flavor {
        id: flavor.id.clone(),
        name: flavor.name.clone(),
        ram: flavor.ram_mib,
        disk: flavor.disk_gib,
        vcpus: flavor.vcpus,
        swap,
        ephemeral: flavor.ephemeral_gib,
        disabled: flavor.disabled,
        is_public: flavor.is_public,
        rxtx_factor: flavor.rxtx_factor,
        links: nova.links(&format!("/flavors/{}", flavor.id)),
        description: nova
            .version
            .at_least(55)
            .then(|| flavor.description.clone()),
        extra_specs: nova
            .version
            .at_least(61)
            .then(|| flavor.extra_specs.clone()),
    }
}

fn brief(nova: &Nova, flavor: &Flavor) -> FlavorBrief {
    FlavorBrief {
        id: flavor.id.clone(),
        name: flavor.name.clone(),
        links: nova.links(&format!("/flavors/{}", flavor.id)),
        description: nova
            .version
            .at_least(55)
            .then(|| flavor.description.clone()),
    }
}

/// The flavors a listing selects, sorted and paged as Nova does.
async fn select(
    state: &ApiState,
    nova: &Nova,
    raw: Option<&str>,
) -> Result<(Vec<Flavor>, Option<String>), NovaError> {
    let mut flavors = state.compute()?.list_flavors(&nova.caller).await?;
    let pairs = query_pairs(raw);
    let mut limit = None;
    let mut marker = None;
    let mut sort_key = "flavorid".to_owned();
    let mut descending = false;
    for (key, value) in &pairs {
        match key.as_str() {
            "minRam" => {
                let min: u64 = value.parse().map_err(|_| {
                    NovaError::bad_request(format!("Invalid minRam filter [{value}]"))
                })?;
                flavors.retain(|f| f.ram_mib >= min);
            }
            "minDisk" => {
                let min: u64 = value.parse().map_err(|_| {
                    NovaError::bad_request(format!("Invalid minDisk filter [{value}]"))
                })?;
                flavors.retain(|f| f.disk_gib >= min);
            }
            "is_public" if nova.is_admin() => match value.to_ascii_lowercase().as_str() {
                "none" => {}
                "true" | "t" | "1" | "yes" | "y" => flavors.retain(|f| f.is_public),
                "false" | "f" | "0" | "no" | "n" => flavors.retain(|f| !f.is_public),
                _ => {
                    return Err(NovaError::bad_request(format!(
                        "Invalid is_public filter [{value}]"
                    )));
                }
            },
            "limit" => {
                limit = Some(value.parse::<usize>().map_err(|_| {
                    NovaError::bad_request(format!(
                        "Invalid input for query parameters limit. Value: {value}."
                    ))
                })?);
            }
            "marker" => marker = Some(value.clone()),
            "sort_key" => sort_key = value.clone(),
            "sort_dir" => descending = value == "desc",
            _ => {}
        }
    }
    match sort_key.as_str() {
        "name" => flavors.sort_by(|a, b| a.name.cmp(&b.name)),
        "memory_mb" => flavors.sort_by_key(|f| f.ram_mib),
        "vcpus" => flavors.sort_by_key(|f| f.vcpus),
        "root_gb" => flavors.sort_by_key(|f| f.disk_gib),
        _ => flavors.sort_by(|a, b| a.id.cmp(&b.id)),
    }
    if descending {
        flavors.reverse();
    }
    if let Some(marker) = marker {
        let position = flavors
            .iter()
            .position(|f| f.id == marker)
            .ok_or_else(|| NovaError::bad_request(format!("marker [{marker}] not found")))?;
        flavors.drain(..=position);
    }
    let mut next = None;
    if let Some(limit) = limit
        && flavors.len() > limit
    {
        flavors.truncate(limit);
        next = flavors.last().map(|f| f.id.clone());
    }
    Ok((flavors, next))
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    nova: Nova,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NovaError> {
    let (flavors, next) = select(&state, &nova, raw.as_deref()).await?;
    let briefs: Vec<FlavorBrief> = flavors.iter().map(|f| brief(&nova, f)).collect();
    let mut body = serde_json::json!({ "flavors": briefs });
    let links = next_links(&nova, "/flavors", raw.as_deref(), next);
    if !links.is_empty() {
        body["flavors_links"] = serde_json::to_value(links).unwrap_or_default();
    }
    Ok(Json(body))
}

pub(crate) async fn detail(
    State(state): State<ApiState>,
    nova: Nova,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, NovaError> {
    let (flavors, next) = select(&state, &nova, raw.as_deref()).await?;
    let views: Vec<types::Flavor> = flavors.iter().map(|f| view(&nova, f)).collect();
    let mut body = serde_json::json!({ "flavors": views });
    let links = next_links(&nova, "/flavors/detail", raw.as_deref(), next);
    if !links.is_empty() {
        body["flavors_links"] = serde_json::to_value(links).unwrap_or_default();
    }
    Ok(Json(body))
}

pub(crate) async fn show(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Result<Json<FlavorBody>, NovaError> {
    let flavor = state.compute()?.flavor(&nova.caller, &id).await?;
    Ok(Json(FlavorBody {
        flavor: view(&nova, &flavor),
    }))
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    nova: Nova,
    bytes: Bytes,
) -> Result<Json<FlavorBody>, NovaError> {
    let request: FlavorCreate = body(&bytes, "flavor")?;
    let id = match request.id {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(Value::Number(number)) => Some(number.to_string()),
        Some(other) => {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute id. Value: {other}. It is not a string or \
                 a number"
            )));
        }
    };
    let new = NewFlavor {
        id,
        name: request.name,
        vcpus: request.vcpus,
        ram_mib: request.ram,
        disk_gib: request.disk,
        ephemeral_gib: request.ephemeral,
        swap_mib: request.swap,
        rxtx_factor: request.rxtx_factor.unwrap_or(1.0),
        is_public: request.is_public.unwrap_or(true),
        description: request.description,
    };
    let flavor = state
        .compute()?
        .create_flavor(Some(&nova.caller), new)
        .await?;
    Ok(Json(FlavorBody {
        flavor: view(&nova, &flavor),
    }))
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<FlavorBody>, NovaError> {
    let request: BTreeMap<String, Value> = body(&bytes, "flavor")?;
    let description = match request.get("description") {
        Some(Value::String(text)) => Some(text.as_str()),
        Some(Value::Null) => None,
        _ => {
            return Err(NovaError::bad_request(
                "'description' is a required property",
            ));
        }
    };
    let flavor = state
        .compute()?
        .set_flavor_description(&nova.caller, &id, description)
        .await?;
    Ok(Json(FlavorBody {
        flavor: view(&nova, &flavor),
    }))
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Result<StatusCode, NovaError> {
    state.compute()?.delete_flavor(&nova.caller, &id).await?;
    Ok(StatusCode::ACCEPTED)
}

fn access_list(id: &str, projects: Vec<String>) -> FlavorAccessList {
    FlavorAccessList {
        flavor_access: projects
            .into_iter()
            .map(|tenant_id| FlavorAccess {
                flavor_id: id.to_owned(),
                tenant_id,
            })
            .collect(),
    }
}

pub(crate) async fn access(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Result<Json<FlavorAccessList>, NovaError> {
    let projects = state.compute()?.flavor_access(&nova.caller, &id).await?;
    Ok(Json(access_list(&id, projects)))
}

/// `addTenantAccess` and `removeTenantAccess`.
pub(crate) async fn action(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<FlavorAccessList>, NovaError> {
    let document = document(&bytes)?;
    let (open, argument) = match (
        document.get("addTenantAccess"),
        document.get("removeTenantAccess"),
    ) {
        (Some(argument), None) => (true, argument),
        (None, Some(argument)) => (false, argument),
        _ => return Err(NovaError::malformed()),
    };
    let tenant = argument
        .get("tenant")
        .and_then(Value::as_str)
        .ok_or_else(|| NovaError::bad_request("'tenant' is a required property"))?;
    let projects = state
        .compute()?
        .set_flavor_access(&nova.caller, &id, tenant, open)
        .await?;
    Ok(Json(access_list(&id, projects)))
}

pub(crate) async fn extra_specs(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Result<Json<ExtraSpecs>, NovaError> {
    let flavor = state.compute()?.flavor(&nova.caller, &id).await?;
    Ok(Json(ExtraSpecs {
        extra_specs: flavor.extra_specs,
    }))
}

pub(crate) async fn set_extra_specs(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<ExtraSpecs>, NovaError> {
    let specs: BTreeMap<String, String> = body(&bytes, "extra_specs")?;
    state
        .compute()?
        .set_extra_specs(&nova.caller, &id, &specs)
        .await?;
    Ok(Json(ExtraSpecs { extra_specs: specs }))
}

pub(crate) async fn extra_spec(
    State(state): State<ApiState>,
    nova: Nova,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<BTreeMap<String, String>>, NovaError> {
    let flavor = state.compute()?.flavor(&nova.caller, &id).await?;
    let value = flavor.extra_specs.get(&key).ok_or_else(|| {
        NovaError::not_found(format!("Flavor {id} has no extra specs with key {key}."))
    })?;
    Ok(Json(BTreeMap::from([(key, value.clone())])))
}

pub(crate) async fn put_extra_spec(
    State(state): State<ApiState>,
    nova: Nova,
    Path((id, key)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<BTreeMap<String, String>>, NovaError> {
    let document = document(&bytes)?;
    let (Some(value), 1) = (document.get(&key).and_then(Value::as_str), document.len()) else {
        return Err(NovaError::bad_request("Request body and URI mismatch"));
    };
    let specs = BTreeMap::from([(key, value.to_owned())]);
    state
        .compute()?
        .set_extra_specs(&nova.caller, &id, &specs)
        .await?;
    Ok(Json(specs))
}

pub(crate) async fn delete_extra_spec(
    State(state): State<ApiState>,
    nova: Nova,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, NovaError> {
    state
        .compute()?
        .delete_extra_spec(&nova.caller, &id, &key)
        .await?;
    Ok(StatusCode::OK.into_response())
}
