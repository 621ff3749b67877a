//! `/v2/images/{id}/members`: offering a shared image to projects, and their answers.

use axum::Json;
use axum::extract::{Path, State};
use bytes::Bytes;
use http::StatusCode;
use nefos_image::MemberStatus;
use nefos_image_api::glance::{self, AddMember, MemberAnswer, MemberList, MemberView};

use super::error::GlanceError;
use super::request::{GlanceUser, json_document};
use super::views::member_view;
use crate::ApiState;

pub(crate) async fn list(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
) -> Result<Json<MemberList>, GlanceError> {
    let members = state.images.members(user.caller(), &id).await?;
    Ok(Json(MemberList {
        members: members.iter().map(member_view).collect(),
        schema: glance::SCHEMA_MEMBERS.to_owned(),
    }))
}

pub(crate) async fn show(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path((id, member)): Path<(String, String)>,
) -> Result<Json<MemberView>, GlanceError> {
    let member = state.images.member(user.caller(), &id, &member).await?;
    Ok(Json(member_view(&member)))
}

pub(crate) async fn add(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<MemberView>, GlanceError> {
    let request: AddMember = serde_json::from_value(json_document(&body)?).map_err(|_| {
        GlanceError::bad_request("Member to be added not specified: send {\"member\": PROJECT_ID}")
    })?;
    let member = state
        .images
        .add_member(user.caller(), &id, &request.member)
        .await?;
    Ok(Json(member_view(&member)))
}

pub(crate) async fn answer(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path((id, member)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<MemberView>, GlanceError> {
    let request: MemberAnswer = serde_json::from_value(json_document(&body)?).map_err(|_| {
        GlanceError::bad_request("Status not specified: send {\"status\": \"accepted\"}")
    })?;
    let status = MemberStatus::parse(&request.status).map_err(|_| {
        GlanceError::bad_request(format!(
            "Provided object does not match schema 'member': '{}' is not one of ['pending', 'accepted', 'rejected']",
            request.status
        ))
    })?;
    let member = state
        .images
        .set_member_status(user.caller(), &id, &member, status)
        .await?;
    Ok(Json(member_view(&member)))
}

pub(crate) async fn remove(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path((id, member)): Path<(String, String)>,
) -> Result<StatusCode, GlanceError> {
    state
        .images
        .remove_member(user.caller(), &id, &member)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
