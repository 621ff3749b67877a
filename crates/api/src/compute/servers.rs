//! `/servers`: list (brief and detail, with Nova's filters, sorting and paging), show,
//! create, rename, delete.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use nefos_compute::{
    CreateServer, ListFilter, NetworkRequest, Server, ServerAddress, ServerNetworks, SortColumn,
};
use nefos_compute_api::types::{
    self, ServerBody, ServerCreate, ServerCreated, ServerCreatedBody, ServerList,
};
use serde_json::Value;

use super::request::{Nova, body, document, next_links, parse_time, query_pairs};
use super::{NovaError, views};
use crate::ApiState;

/// The most servers one page holds (Nova's `max_limit`).
const MAX_LIMIT: usize = 1000;

/// The listing a query asks for.
fn filter(nova: &Nova, raw: Option<&str>) -> Result<ListFilter, NovaError> {
    let mut filter = ListFilter::default();
    let mut limit = MAX_LIMIT;
    let mut marker = None;
    let mut sort: Vec<(String, bool)> = Vec::new();
    let mut sort_dirs: Vec<bool> = Vec::new();
    for (key, value) in query_pairs(raw) {
        match key.as_str() {
            "all_tenants" => {
                filter.all_projects =
                    !matches!(value.to_ascii_lowercase().as_str(), "false" | "0" | "no")
            }
            "changes-since" | "changes_since" => {
                filter.changes_since = Some(parse_time(&value).ok_or_else(|| {
                    NovaError::bad_request(format!(
                        "Invalid input for query parameters changes-since. Value: {value}. \
                         '{value}' is not a 'date-time'"
                    ))
                })?);
            }
            "name" => filter.name = Some(value),
            "status" => {
                if nefos_compute::servers::state::states_of_status(&value).is_none() {
                    return Err(NovaError::bad_request("Invalid status value"));
                }
                filter.status.push(value);
            }
            "image" => filter.image = Some(value),
            "flavor" => filter.flavor = Some(value),
            "tags" => filter.tags = value.split(',').map(str::to_owned).collect(),
            "host" | "node" if nova.is_admin() => filter.node = Some(value),
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .map_err(|_| {
                        NovaError::bad_request(format!(
                            "Invalid input for query parameters limit. Value: {value}. '{value}' \
                             is not a valid limit"
                        ))
                    })?
                    .min(MAX_LIMIT);
            }
            "marker" => marker = Some(value),
            "sort_key" => sort.push((value, true)),
            "sort_dir" => sort_dirs.push(value != "asc"),
            // Accepted and ignored, as Nova ignores them for members (`deleted=False` is
            // what the openstack CLI sends).
            _ => {}
        }
    }
    for (index, (_, descending)) in sort.iter_mut().enumerate() {
        *descending = sort_dirs.get(index).copied().unwrap_or(true);
    }
    filter.sort = sort
        .iter()
        .map(|(key, descending)| {
            let column = match key.as_str() {
                "display_name" | "name" => SortColumn::Name,
                "updated_at" => SortColumn::UpdatedAt,
                "vm_state" => SortColumn::VmState,
                "uuid" | "id" => SortColumn::Id,
                _ => SortColumn::CreatedAt,
            };
            (column, *descending)
        })
        .collect();
    filter.marker = marker;
    filter.limit = Some(limit);
    Ok(filter)
}

/// The marker of the next page: the last id, when more follow or when a page asked to be
/// short came out full.
fn next_marker(
    filter: &ListFilter,
    more: bool,
    count: usize,
    last: Option<&str>,
) -> Option<String> {
    let limit = filter.limit.unwrap_or(MAX_LIMIT);
    let full = more || (limit < MAX_LIMIT && count == limit);
    full.then(|| last.map(str::to_owned)).flatten()
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    nova: Nova,
    RawQuery(raw): RawQuery,
) -> Result<Json<ServerList<types::ServerBrief>>, NovaError> {
    let filter = filter(&nova, raw.as_deref())?;
    let (names, more) = state
        .compute()?
        .list_server_names(&nova.caller, &filter)
        .await?;
    let last = names.last().map(|(id, _)| id.as_str());
    let marker = next_marker(&filter, more, names.len(), last);
    Ok(Json(ServerList {
        servers: names
            .iter()
            .map(|(id, name)| views::brief(&nova, id, name))
            .collect(),
        servers_links: next_links(&nova, "/servers", raw.as_deref(), marker),
    }))
}

pub(crate) async fn detail(
    State(state): State<ApiState>,
    nova: Nova,
    RawQuery(raw): RawQuery,
) -> Result<Json<ServerList<types::Server>>, NovaError> {
    let filter = filter(&nova, raw.as_deref())?;
    let compute = state.compute()?;
    let page = compute.list_servers(&nova.caller, &filter).await?;
    let addresses = compute
        .server_addresses(&nova.caller, &page.servers)
        .await?;
    let last = page.servers.last().map(|s| s.id.as_str());
    let marker = next_marker(&filter, page.more, page.servers.len(), last);
    Ok(Json(ServerList {
        servers: page
            .servers
            .iter()
            .map(|s| views::server(&nova, s, addresses_of(&addresses, s), false))
            .collect(),
        servers_links: next_links(&nova, "/servers/detail", raw.as_deref(), marker),
    }))
}

/// The addresses of `server` among those read for a page.
pub(crate) fn addresses_of<'a>(
    addresses: &'a HashMap<String, Vec<ServerAddress>>,
    server: &Server,
) -> &'a [ServerAddress] {
    addresses.get(&server.id).map_or(&[], Vec::as_slice)
}

pub(crate) async fn show(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Result<Json<ServerBody>, NovaError> {
    let compute = state.compute()?;
    let server = compute.server(&nova.caller, &id).await?;
    let addresses = compute
        .server_addresses(&nova.caller, std::slice::from_ref(&server))
        .await?;
    Ok(Json(ServerBody {
        server: views::server(&nova, &server, addresses_of(&addresses, &server), true),
    }))
}

/// A count: an integer, or a string of one.
fn count(value: Option<&Value>, field: &str) -> Result<Option<u32>, NovaError> {
    let invalid = || {
        NovaError::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: {}. It must be an integer of \
             at least 1",
            value.map(ToString::to_string).unwrap_or_default()
        ))
    };
    match value {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(invalid),
        Some(Value::String(s)) => s
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(invalid),
        Some(_) => Err(invalid()),
    }
}

/// Nova's fields `POST /servers` takes; anything else is refused as Nova refuses it.
const CREATE_FIELDS: &[&str] = &[
    "name",
    "imageRef",
    "flavorRef",
    "networks",
    "key_name",
    "adminPass",
    "metadata",
    "user_data",
    "description",
    "tags",
    "min_count",
    "max_count",
    "accessIPv4",
    "accessIPv6",
    "block_device_mapping_v2",
    "return_reservation_id",
    "security_groups",
    "availability_zone",
    "config_drive",
    "OS-DCF:diskConfig",
    "hostname",
];

fn create_request(nova: &Nova, bytes: &[u8]) -> Result<(CreateServer, bool), NovaError> {
    let mut document = document(bytes)?;
    document.remove("os:scheduler_hints");
    document.remove("OS-SCH-HNT:scheduler_hints");
    let Some(Value::Object(fields)) = document.get("server") else {
        return Err(NovaError::bad_request("'server' is a required property"));
    };
    if let Some(extra) = fields.keys().find(|k| !CREATE_FIELDS.contains(&k.as_str())) {
        return Err(NovaError::bad_request(format!(
            "Invalid input for field/attribute server. Additional properties are not allowed \
             ('{extra}' was unexpected)"
        )));
    }
    if nova.version.at_least(37) && !fields.contains_key("networks") {
        return Err(NovaError::bad_request(
            "Invalid input for field/attribute server. 'networks' is a required property",
        ));
    }
    let request: ServerCreate =
        serde_json::from_value(Value::Object(fields.clone())).map_err(|error| {
            NovaError::bad_request(format!("Invalid input for field/attribute server. {error}"))
        })?;
    let flavor_ref = match &request.flavor_ref {
        Value::String(s) => s.rsplit('/').next().unwrap_or(s).to_owned(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute flavorRef. Value: {other}."
            )));
        }
    };
    // The image: imageRef, or the image of a boot_index 0 mapping (the openstack CLI sends
    // both). Volumes are not served yet.
    let mapped_image = request
        .block_device_mapping_v2
        .as_ref()
        .and_then(|mappings| {
            mappings
                .iter()
                .find(|m| {
                    m.boot_index
                        .as_ref()
                        .is_some_and(|i| i.as_i64() == Some(0) || i.as_str() == Some("0"))
                })
                .cloned()
        });
    if let Some(mapping) = &mapped_image
        && (mapping.source_type.as_deref() != Some("image")
            || mapping.destination_type.as_deref().unwrap_or("local") != "local")
    {
        return Err(NovaError::bad_request(
            "Booting from a volume is not available: use source_type image and \
             destination_type local",
        ));
    }
    let image_ref = request
        .image_ref
        .clone()
        .filter(|i| !i.is_empty())
        .or_else(|| mapped_image.and_then(|m| m.uuid))
        .ok_or_else(|| NovaError::bad_request("Missing imageRef attribute"))?;
    let image_ref = image_ref
        .rsplit('/')
        .next()
        .unwrap_or(&image_ref)
        .to_owned();
    let networks = match &request.networks {
        None => ServerNetworks::Auto,
        Some(Value::String(s)) if s == "auto" => ServerNetworks::Auto,
        Some(Value::String(s)) if s == "none" => ServerNetworks::None,
        Some(Value::Array(list)) => {
            ServerNetworks::List(list.iter().map(network_request).collect::<Result<_, _>>()?)
        }
        Some(other) => {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute networks. Value: {other}. It must be \
                 'auto', 'none' or a list"
            )));
        }
    };
    let min_count = count(request.min_count.as_ref(), "min_count")?.unwrap_or(1);
    let max_count = count(request.max_count.as_ref(), "max_count")?.unwrap_or(min_count);
    Ok((
        CreateServer {
            name: request.name,
            image_ref,
            flavor_ref,
            networks,
            key_name: request.key_name,
            admin_pass: request.admin_pass,
            metadata: request.metadata.unwrap_or_default(),
            user_data: request.user_data,
            description: request.description,
            tags: request.tags.unwrap_or_default(),
            min_count,
            max_count,
            access_ipv4: request.access_ipv4,
            access_ipv6: request.access_ipv6,
        },
        request.return_reservation_id.unwrap_or(false),
    ))
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    nova: Nova,
    bytes: Bytes,
) -> Result<Response, NovaError> {
    let (request, return_reservation) = create_request(&nova, &bytes)?;
    let created = state
        .compute()?
        .create_servers(&nova.caller, &nova.request_id, request)
        .await?;
    let Some(first) = created.servers.first() else {
        return Err(NovaError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no server was created",
        ));
    };
    if return_reservation {
        let body = serde_json::json!({"reservation_id": first.reservation_id});
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let links = nova.links(&format!("/servers/{}", first.id));
    let location = links.first().map(|l| l.href.clone());
    let body = ServerCreatedBody {
        server: ServerCreated {
            id: first.id.clone(),
            links,
            disk_config: "MANUAL".to_owned(),
            security_groups: Vec::new(),
            admin_pass: Some(created.admin_pass.clone()),
        },
    };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<ServerBody>, NovaError> {
    let fields: serde_json::Map<String, Value> = body(&bytes, "server")?;
    let name = match fields.get("name") {
        None => None,
        Some(Value::String(name)) => Some(name.as_str()),
        Some(_) => {
            return Err(NovaError::bad_request(
                "Invalid input for field/attribute name.",
            ));
        }
    };
    let description = match fields.get("description") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(text)) if nova.version.at_least(19) => Some(Some(text.as_str())),
        Some(_) => {
            return Err(NovaError::bad_request(
                "Invalid input for field/attribute description.",
            ));
        }
    };
    let compute = state.compute()?;
    let server = compute
        .update_server(&nova.caller, &id, name, description)
        .await?;
    let addresses = compute
        .server_addresses(&nova.caller, std::slice::from_ref(&server))
        .await?;
    Ok(Json(ServerBody {
        server: views::server(&nova, &server, addresses_of(&addresses, &server), true),
    }))
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Result<StatusCode, NovaError> {
    state
        .compute()?
        .delete_server(&nova.caller, &nova.request_id, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One entry of `networks`: `{"uuid": …, "fixed_ip": …}` or `{"port": …}`.
fn network_request(entry: &Value) -> Result<NetworkRequest, NovaError> {
    let text = |field: &str| -> Result<Option<String>, NovaError> {
        match entry.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute {field}. Value: {other}. It must be a string"
            ))),
        }
    };
    if !entry.is_object() {
        return Err(NovaError::bad_request(format!(
            "Invalid input for field/attribute networks. Value: {entry}. Each network is an \
             object"
        )));
    }
    let fixed_ip = match text("fixed_ip")? {
        Some(address) => Some(address.parse().map_err(|_| {
            NovaError::bad_request(format!("Invalid fixed IP address ({address})"))
        })?),
        None => None,
    };
    let request = NetworkRequest {
        network: text("uuid")?,
        port: text("port")?,
        fixed_ip,
    };
    if request.network.is_none() && request.port.is_none() {
        return Err(NovaError::bad_request(
            "Bad networks format: network uuid is not in proper format",
        ));
    }
    Ok(request)
}
