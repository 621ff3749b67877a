//! Plankton's members: the projects (or, as kamaki names them, users, meaning their
//! personal projects) an image is shared with. Sharing a private image makes it `shared`
//! in Glance's terms; the member still answers in Glance, and Plankton lists the image to
//! it unless it rejected it.

use axum::Json;
use axum::extract::{Path, State};
use bytes::Bytes;
use http::StatusCode;
use nefos_image::{
    FieldValue, ImageError, ImageField, ListQuery, MemberStatusFilter, PatchOp, PatchOperation,
    Visibility, VisibilityFilter,
};
use nefos_image_api::plankton::{MemberEntry, MemberList, SetMembers, SharedImage, SharedImages};

use super::error::PlanktonError;
use super::headers::is_public;
use crate::ApiState;
use crate::image::request::{GlanceUser, json_document};

/// The project a Plankton member name stands for.
async fn member_project(state: &ApiState, member: &str) -> Result<String, PlanktonError> {
    if nefos_db::identity::get_project(state.identity.database().pool(), member)
        .await
        .map_err(ImageError::from)?
        .is_some()
    {
        return Ok(member.to_owned());
    }
    state
        .storage
        .resolve_account(member)
        .await?
        .ok_or_else(|| PlanktonError::not_found(format!("No user or project {member}")))
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
) -> Result<Json<MemberList>, PlanktonError> {
    let image = state.images.get(user.caller(), &id).await?;
    let members = if image.visibility == Visibility::Shared {
        state.images.members(user.caller(), &id).await?
    } else {
        Vec::new()
    };
    Ok(Json(MemberList {
        members: members
            .into_iter()
            .map(|m| MemberEntry {
                member_id: m.member_id,
                can_share: false,
            })
            .collect(),
    }))
}

/// Makes a private image `shared`, so that it can have members.
async fn ensure_shared(state: &ApiState, user: &GlanceUser, id: &str) -> Result<(), PlanktonError> {
    let image = state.images.get(user.caller(), id).await?;
    match image.visibility {
        Visibility::Shared => Ok(()),
        Visibility::Private => {
            let change = PatchOp {
                operation: PatchOperation::Add,
                field: ImageField::Visibility,
                value: Some(FieldValue::Visibility(Visibility::Shared)),
            };
            state.images.update(user.caller(), id, vec![change]).await?;
            Ok(())
        }
        Visibility::Public | Visibility::Community => Err(PlanktonError {
            status: StatusCode::FORBIDDEN,
            message: format!("Image {id} is public: everyone may use it already"),
        }),
    }
}

pub(crate) async fn add(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path((id, member)): Path<(String, String)>,
) -> Result<StatusCode, PlanktonError> {
    // The image first: who may not see it learns nothing about the member; and nothing
    // changes before the member is known.
    state.images.get(user.caller(), &id).await?;
    let project = member_project(&state, &member).await?;
    ensure_shared(&state, &user, &id).await?;
    match state.images.add_member(user.caller(), &id, &project).await {
        Ok(_) | Err(ImageError::Conflict { .. }) => Ok(StatusCode::NO_CONTENT),
        Err(error) => Err(error.into()),
    }
}

pub(crate) async fn remove(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path((id, member)): Path<(String, String)>,
) -> Result<StatusCode, PlanktonError> {
    state.images.get(user.caller(), &id).await?;
    let project = member_project(&state, &member).await?;
    state
        .images
        .remove_member(user.caller(), &id, &project)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn replace(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, PlanktonError> {
    let request: SetMembers = serde_json::from_value(json_document(&body)?)
        .map_err(|_| PlanktonError::bad_request("Malformed request."))?;
    state.images.get(user.caller(), &id).await?;
    let mut wanted = Vec::new();
    for entry in &request.memberships {
        wanted.push(member_project(&state, &entry.member_id).await?);
    }
    ensure_shared(&state, &user, &id).await?;
    let present = state.images.members(user.caller(), &id).await?;
    for member in present.iter().filter(|m| !wanted.contains(&m.member_id)) {
        state
            .images
            .remove_member(user.caller(), &id, &member.member_id)
            .await?;
    }
    for project in wanted
        .iter()
        .filter(|p| !present.iter().any(|m| &m.member_id == *p))
    {
        state.images.add_member(user.caller(), &id, project).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The images `member`'s project shares with the caller (not public ones).
pub(crate) async fn shared_images(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(member): Path<String>,
) -> Result<Json<SharedImages>, PlanktonError> {
    let owner = member_project(&state, &member).await?;
    let mut query = ListQuery {
        visibility: VisibilityFilter::All,
        member_status: MemberStatusFilter::All,
        owner: Some(owner),
        limit: Some(nefos_image::MAX_LIMIT),
        ..ListQuery::default()
    };
    let mut shared = Vec::new();
    loop {
        let page = state.images.list(user.caller(), &query).await?;
        shared.extend(
            page.images
                .iter()
                .filter(|image| !is_public(image))
                .map(|image| SharedImage {
                    image_id: image.id.clone(),
                    can_share: false,
                }),
        );
        match page.next_marker {
            Some(marker) => query.marker = Some(marker),
            None => break,
        }
    }
    Ok(Json(SharedImages {
        shared_images: shared,
    }))
}
