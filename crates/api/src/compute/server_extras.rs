//! A server's metadata, tags and instance actions.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use bytes::Bytes;
use http::StatusCode;
use nefos_compute_api::types::{
    InstanceAction, InstanceActionBody, InstanceActions, Metadata, MetadataItem, Tags,
};
use nefos_db::compute::ActionRow;

use super::NovaError;
use super::request::{Nova, body, iso_micros};
use crate::ApiState;

pub(crate) async fn metadata(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Result<Json<Metadata>, NovaError> {
    let server = state.compute()?.server(&nova.caller, &id).await?;
    Ok(Json(Metadata {
        metadata: server.metadata,
    }))
}

async fn set(
    state: &ApiState,
    nova: &Nova,
    id: &str,
    bytes: &[u8],
    replace: bool,
) -> Result<Json<Metadata>, NovaError> {
    let metadata: BTreeMap<String, String> = body(bytes, "metadata")?;
    let metadata = state
        .compute()?
        .set_server_metadata(&nova.caller, id, &metadata, replace)
        .await?;
    Ok(Json(Metadata { metadata }))
}

pub(crate) async fn replace_metadata(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Metadata>, NovaError> {
    set(&state, &nova, &id, &bytes, true).await
}

pub(crate) async fn merge_metadata(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Metadata>, NovaError> {
    set(&state, &nova, &id, &bytes, false).await
}

pub(crate) async fn metadata_item(
    State(state): State<ApiState>,
    nova: Nova,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<MetadataItem>, NovaError> {
    let server = state.compute()?.server(&nova.caller, &id).await?;
    let value = server
        .metadata
        .get(&key)
        .ok_or_else(|| NovaError::not_found("Metadata item was not found"))?;
    Ok(Json(MetadataItem {
        meta: BTreeMap::from([(key, value.clone())]),
    }))
}

pub(crate) async fn put_metadata_item(
    State(state): State<ApiState>,
    nova: Nova,
    Path((id, key)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<MetadataItem>, NovaError> {
    let meta: BTreeMap<String, String> = body(&bytes, "meta")?;
    if meta.len() != 1 || !meta.contains_key(&key) {
        return Err(NovaError::bad_request("Request body and URI mismatch"));
    }
    state
        .compute()?
        .set_server_metadata(&nova.caller, &id, &meta, false)
        .await?;
    Ok(Json(MetadataItem { meta }))
}

pub(crate) async fn delete_metadata_item(
    State(state): State<ApiState>,
    nova: Nova,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, NovaError> {
    state
        .compute()?
        .delete_server_metadata(&nova.caller, &id, &key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn tags(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Result<Json<Tags>, NovaError> {
    let server = state.compute()?.server(&nova.caller, &id).await?;
    Ok(Json(Tags { tags: server.tags }))
}

pub(crate) async fn replace_tags(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Tags>, NovaError> {
    let tags: Vec<String> = body(&bytes, "tags")?;
    let tags = state
        .compute()?
        .set_server_tags(&nova.caller, &id, &tags)
        .await?;
    Ok(Json(Tags { tags }))
}

pub(crate) async fn delete_tags(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Result<StatusCode, NovaError> {
    state
        .compute()?
        .set_server_tags(&nova.caller, &id, &[])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn check_tag(
    State(state): State<ApiState>,
    nova: Nova,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, NovaError> {
    let server = state.compute()?.server(&nova.caller, &id).await?;
    if server.tags.contains(&tag) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(NovaError::not_found(format!(
            "Tag '{tag}' could not be found for instance {id}"
        )))
    }
}

pub(crate) async fn add_tag(
    State(state): State<ApiState>,
    nova: Nova,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, NovaError> {
    let compute = state.compute()?;
    let had = compute.server(&nova.caller, &id).await?.tags.contains(&tag);
    compute.add_server_tag(&nova.caller, &id, &tag).await?;
    Ok(if had {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    })
}

pub(crate) async fn delete_tag(
    State(state): State<ApiState>,
    nova: Nova,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, NovaError> {
    state
        .compute()?
        .delete_server_tag(&nova.caller, &id, &tag)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn action_view(nova: &Nova, row: &ActionRow) -> InstanceAction {
    InstanceAction {
        action: row.action.clone(),
        instance_uuid: row.server_id.clone(),
        message: row.message.clone(),
        project_id: row.project_id.clone(),
        request_id: row.request_id.clone(),
        start_time: iso_micros(row.start_time),
        user_id: row.user_id.clone(),
        updated_at: nova
            .version
            .at_least(58)
            .then(|| Some(iso_micros(row.finish_time.unwrap_or(row.start_time)))),
    }
}

pub(crate) async fn actions(
    State(state): State<ApiState>,
    nova: Nova,
    Path(id): Path<String>,
) -> Result<Json<InstanceActions>, NovaError> {
    let rows = state.compute()?.instance_actions(&nova.caller, &id).await?;
    Ok(Json(InstanceActions {
        instance_actions: rows.iter().map(|r| action_view(&nova, r)).collect(),
    }))
}

pub(crate) async fn action(
    State(state): State<ApiState>,
    nova: Nova,
    Path((id, request_id)): Path<(String, String)>,
) -> Result<Json<InstanceActionBody>, NovaError> {
    let rows = state.compute()?.instance_actions(&nova.caller, &id).await?;
    let row = rows
        .iter()
        .find(|r| r.request_id == request_id)
        .ok_or_else(|| {
            NovaError::not_found(format!(
                "Action {request_id} for instance {id} could not be found."
            ))
        })?;
    Ok(Json(InstanceActionBody {
        instance_action: action_view(&nova, row),
    }))
}
