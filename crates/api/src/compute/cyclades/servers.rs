//! Cyclades' `/servers`: integer ids, deleted servers still shown, and its actions
//! (`start`, `shutdown`, `reboot`, `resize`, `console`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use nefos_compute::{
    ComputeError, CreateServer, ListFilter, NetworkRequest, PowerAction, Server, ServerNetworks,
};
use nefos_compute_api::cyclades as c;
use serde_json::Value;

use super::{Cyclades, console, views};
use crate::ApiState;
use crate::compute::NovaError;
use crate::compute::request::{body, document, parse_time, query_pairs};

/// The server with Cyclades id `id`, deleted or not.
async fn lookup(state: &ApiState, cyclades: &Cyclades, id: &str) -> Result<Server, NovaError> {
    let serial: i64 = id
        .parse()
        .map_err(|_| NovaError::bad_request("Invalid server ID."))?;
    match state
        .compute()?
        .server_by_serial(&cyclades.caller, serial)
        .await
    {
        Ok(server) => Ok(server),
        Err(ComputeError::NotFound { .. }) => {
            Err(NovaError::new(StatusCode::NOT_FOUND, "Server not found."))
        }
        Err(other) => Err(other.into()),
    }
}

/// The server with Cyclades id `id`, which must not be deleted.
async fn live(state: &ApiState, cyclades: &Cyclades, id: &str) -> Result<Server, NovaError> {
    let server = lookup(state, cyclades, id).await?;
    if server.deleted_at.is_some() {
        return Err(NovaError::bad_request("Server has been deleted."));
    }
    Ok(server)
}

/// The caller's servers by id, those changed since `changes-since` (deleted ones too) when
/// it is given; `None` when that is nothing (Cyclades answers 304).
async fn select(
    state: &ApiState,
    cyclades: &Cyclades,
    raw: Option<&str>,
) -> Result<Option<Vec<Server>>, NovaError> {
    let mut filter = ListFilter::default();
    for (key, value) in query_pairs(raw) {
        if key == "changes-since" {
            filter.changes_since = Some(
                parse_time(&value)
                    .ok_or_else(|| NovaError::bad_request("Invalid changes-since parameter."))?,
            );
        }
    }
    let mut servers = state
        .compute()?
        .list_servers(&cyclades.caller, &filter)
        .await?
        .servers;
    servers.sort_by_key(|s| s.serial);
    if filter.changes_since.is_some() && servers.is_empty() {
        return Ok(None);
    }
    Ok(Some(servers))
}

pub(super) async fn list(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    RawQuery(raw): RawQuery,
) -> Result<Response, NovaError> {
    let Some(servers) = select(&state, &cyclades, raw.as_deref()).await? else {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    };
    let servers = servers.iter().map(|s| views::brief(&cyclades, s)).collect();
    Ok(Json(c::ServerList { servers }).into_response())
}

pub(super) async fn detail(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    RawQuery(raw): RawQuery,
) -> Result<Response, NovaError> {
    let Some(servers) = select(&state, &cyclades, raw.as_deref()).await? else {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    };
    let addresses = state
        .compute()?
        .server_addresses(&cyclades.caller, &servers)
        .await?;
    let servers = servers
        .iter()
        .map(|s| {
            let of = crate::compute::servers::addresses_of(&addresses, s);
            views::server(&cyclades, s, of, Vec::new())
        })
        .collect();
    Ok(Json(c::ServerList { servers }).into_response())
}

pub(super) async fn show(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    Path(id): Path<String>,
) -> Result<Json<c::ServerBody<c::Server>>, NovaError> {
    let server = lookup(&state, &cyclades, &id).await?;
    let actions = state
        .compute()?
        .instance_actions(&cyclades.caller, &server.id)
        .await?;
    // The detail view carries the latest diagnostic; `/diagnostics` has them all.
    let latest = views::diagnostics(&actions).into_iter().take(1).collect();
    let addresses = state
        .compute()?
        .server_addresses(&cyclades.caller, std::slice::from_ref(&server))
        .await?;
    let of = crate::compute::servers::addresses_of(&addresses, &server);
    Ok(Json(c::ServerBody {
        server: views::server(&cyclades, &server, of, latest),
    }))
}

pub(super) async fn create(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    bytes: Bytes,
) -> Result<Response, NovaError> {
    let request: c::ServerCreate = body(&bytes, "server")?;
    let flavor_ref = match &request.flavor_ref {
        Value::Number(n) => n.to_string(),
        Value::String(s) if !s.is_empty() => s.clone(),
        _ => return Err(NovaError::bad_request("Invalid flavorRef.")),
    };
    if request.personality.as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(NovaError::bad_request(
            "Personality files are not supported here; pass files through user_data \
             (cloud-init) instead.",
        ));
    }
    if let Some(project) = &request.project
        && Some(project.as_str()) != cyclades.caller.project_id()
    {
        return Err(NovaError::bad_request(
            "A server is created in the project the token is scoped to; scope a token to \
             the project you name.",
        ));
    }
    let key_name = match (request.key_name, request.key_names) {
        (Some(_), Some(names)) if !names.is_empty() => {
            return Err(NovaError::bad_request(
                "Only one of the SNF:key_names and key_name can be set",
            ));
        }
        (Some(name), _) => Some(name),
        (None, Some(names)) if names.len() > 1 => {
            return Err(NovaError::bad_request(
                "A server takes one key here: name one in SNF:key_names",
            ));
        }
        (None, Some(names)) => names.into_iter().next(),
        (None, None) => None,
    };
    let networks = match request.networks {
        None => ServerNetworks::Auto,
        Some(list) if list.is_empty() => ServerNetworks::None,
        Some(list) => ServerNetworks::List(
            list.iter()
                .map(|n| {
                    let field = |name: &str| n.get(name).and_then(Value::as_str).map(str::to_owned);
                    NetworkRequest {
                        network: field("uuid"),
                        port: field("port"),
                        fixed_ip: field("fixed_ip").and_then(|a| a.parse().ok()),
                    }
                })
                .collect(),
        ),
    };
    let create = CreateServer {
        name: request.name,
        image_ref: request.image_ref,
        flavor_ref,
        networks,
        key_name,
        admin_pass: request.admin_pass,
        metadata: request.metadata.unwrap_or_default(),
        user_data: request.user_data,
        description: None,
        tags: request.tags.unwrap_or_default(),
        min_count: 1,
        max_count: 1,
        access_ipv4: None,
        access_ipv6: None,
    };
    let created = state
        .compute()?
        .create_servers(&cyclades.caller, &cyclades.request_id, create)
        .await?;
    let Some(server) = created.servers.first() else {
        return Err(NovaError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no server was created",
        ));
    };
    let mut view = views::server(&cyclades, server, &[], Vec::new());
    view.admin_pass = Some(created.admin_pass.clone());
    Ok((StatusCode::ACCEPTED, Json(c::ServerBody { server: view })).into_response())
}

pub(super) async fn update(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<StatusCode, NovaError> {
    let fields: serde_json::Map<String, Value> = body(&bytes, "server")?;
    let Some(Value::String(name)) = fields.get("name") else {
        return Err(NovaError::bad_request("Malformed request"));
    };
    let server = live(&state, &cyclades, &id).await?;
    state
        .compute()?
        .update_server(&cyclades.caller, &server.id, Some(name), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn delete(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    Path(id): Path<String>,
) -> Result<StatusCode, NovaError> {
    let server = live(&state, &cyclades, &id).await?;
    state
        .compute()?
        .delete_server(&cyclades.caller, &cyclades.request_id, &server.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn action(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, NovaError> {
    let document = document(&bytes)?;
    let (name, argument) = match document.iter().next() {
        Some((name, argument)) if document.len() == 1 => (name.as_str(), argument),
        _ => return Err(NovaError::bad_request("Malformed request")),
    };
    let server = live(&state, &cyclades, &id).await?;
    let compute = state.compute()?;
    let (caller, request_id) = (&cyclades.caller, cyclades.request_id.as_str());
    let server_id = server.id.as_str();
    let power = |action| async move {
        compute
            .power(caller, request_id, server_id, action)
            .await
            .map(|()| StatusCode::ACCEPTED.into_response())
            .map_err(NovaError::from)
    };
    match name {
        // Cyclades shows a suspended server as STOPPED: starting it resumes it.
        "start" | "os-start" if server.vm_state == "suspended" => power(PowerAction::Resume).await,
        "start" | "os-start" => power(PowerAction::Start).await,
        "shutdown" | "os-stop" => power(PowerAction::Stop).await,
        "reboot" => {
            let hard = match argument.get("type").and_then(Value::as_str) {
                Some("SOFT") => false,
                Some("HARD") => true,
                _ => return Err(NovaError::bad_request("Invalid 'type' attribute.")),
            };
            power(PowerAction::Reboot { hard }).await
        }
        "resize" => {
            let flavor = match argument.get("flavorRef") {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                _ => return Err(NovaError::bad_request("Malformed request")),
            };
            compute
                .resize_server(caller, request_id, &server.id, &flavor)
                .await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "console" => {
            let kind = argument
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // Websocket consoles are Nova's remote-consoles (noVNC) here.
            if kind != "vnc" {
                return Err(NovaError::bad_request("Supported types: vnc"));
            }
            if server.status() != "ACTIVE" {
                return Err(NovaError::bad_request("Server not in ACTIVE state."));
            }
            let console = console::open(&state, &cyclades, &server.id, kind).await?;
            Ok(Json(c::ConsoleBody { console }).into_response())
        }
        other => Err(NovaError::bad_request(format!(
            "Action {other} not supported"
        ))),
    }
}

pub(super) async fn ips(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    Path(id): Path<String>,
) -> Result<Json<c::ServerIps>, NovaError> {
    let server = lookup(&state, &cyclades, &id).await?;
    let addresses = state
        .compute()?
        .server_addresses(&cyclades.caller, std::slice::from_ref(&server))
        .await?;
    let of = crate::compute::servers::addresses_of(&addresses, &server);
    let (attachments, addresses) = views::attachments(of);
    Ok(Json(c::ServerIps {
        addresses,
        attachments,
    }))
}

pub(super) async fn diagnostics(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    Path(id): Path<String>,
) -> Result<Json<Vec<c::Diagnostic>>, NovaError> {
    let server = lookup(&state, &cyclades, &id).await?;
    let actions = state
        .compute()?
        .instance_actions(&cyclades.caller, &server.id)
        .await?;
    Ok(Json(views::diagnostics(&actions)))
}

pub(super) async fn metadata(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    Path(id): Path<String>,
) -> Result<Json<c::Metadata>, NovaError> {
    let server = lookup(&state, &cyclades, &id).await?;
    Ok(Json(c::Metadata {
        metadata: server.metadata,
    }))
}

pub(super) async fn merge_metadata(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, NovaError> {
    let metadata: BTreeMap<String, String> = body(&bytes, "metadata")?;
    let server = live(&state, &cyclades, &id).await?;
    let metadata = state
        .compute()?
        .set_server_metadata(&cyclades.caller, &server.id, &metadata, false)
        .await?;
    Ok((StatusCode::CREATED, Json(c::Metadata { metadata })).into_response())
}

pub(super) async fn metadata_item(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<Value>, NovaError> {
    let server = lookup(&state, &cyclades, &id).await?;
    let value = server
        .metadata
        .get(&key)
        .ok_or_else(|| NovaError::new(StatusCode::NOT_FOUND, "Metadata key not found."))?;
    Ok(Json(serde_json::json!({ "meta": { key: value } })))
}

pub(super) async fn put_metadata_item(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    Path((id, key)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Response, NovaError> {
    let meta: BTreeMap<String, String> = body(&bytes, "meta")?;
    let value = match meta.get(&key) {
        Some(value) if meta.len() == 1 => value.clone(),
        _ => return Err(NovaError::bad_request("Malformed request")),
    };
    let server = live(&state, &cyclades, &id).await?;
    state
        .compute()?
        .set_server_metadata(&cyclades.caller, &server.id, &meta, false)
        .await?;
    let body = serde_json::json!({ "meta": { key: value } });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub(super) async fn delete_metadata_item(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, NovaError> {
    let server = live(&state, &cyclades, &id).await?;
    state
        .compute()?
        .delete_server_metadata(&cyclades.caller, &server.id, &key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
