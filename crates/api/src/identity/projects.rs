//! `/v3/projects`.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use nefos_identity::{NewProject, ProjectFilter, ProjectPatch};
use serde::Deserialize;
use serde_json::{Value, json};

use super::users::{check_domain_id, query_bool};
use super::views::{self, DOMAIN_ID};
use crate::auth::Authenticated;
use crate::extract::{self, Path, Query};
use crate::{ApiError, ApiState};

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    name: Option<String>,
    enabled: Option<String>,
    domain_id: Option<String>,
}

/// `GET /v3/projects`: every project for an administrator, the caller's own otherwise. A
/// non-administrator's search by a name none of its projects has is Keystone's 403 (its
/// answer to any non-administrator's listing), which the `openstack` CLI reads as "use the
/// name as an id" (see [`show`]).
pub(super) async fn list(
    State(state): State<ApiState>,
    auth: Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    if query.domain_id.as_deref().is_some_and(|d| d != DOMAIN_ID) {
        return Ok(Json(views::list(&state, "projects", Vec::new())));
    }
    let filter = ProjectFilter {
        name: query.name,
        enabled: query_bool("enabled", query.enabled.as_deref())?,
        member: None,
    };
    let searched = filter.name.is_some();
    let projects = state.identity.projects(auth.caller(), &filter).await?;
    if searched && projects.is_empty() && !auth.0.is_cloud_admin() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "You are not authorized to perform the requested action: identity:list_projects.",
        ));
    }
    let items = projects.iter().map(|p| views::project(&state, p)).collect();
    Ok(Json(views::list(&state, "projects", items)))
}

#[derive(Debug, Deserialize)]
pub(super) struct CreateRequest {
    project: CreateProject,
}

#[derive(Debug, Deserialize)]
struct CreateProject {
    name: String,
    #[serde(default)]
    description: String,
    enabled: Option<bool>,
    domain_id: Option<String>,
    parent_id: Option<String>,
    #[serde(default)]
    is_domain: bool,
}

/// `POST /v3/projects` (administrators).
pub(super) async fn create(
    State(state): State<ApiState>,
    auth: Authenticated,
    extract::Json(request): extract::Json<CreateRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = request.project;
    check_domain_id(body.domain_id.as_deref())?;
    if body.is_domain {
        return Err(ApiError::bad_request(
            "nefos has one domain; projects cannot be domains",
        ));
    }
    if body.parent_id.as_deref().is_some_and(|p| p != DOMAIN_ID) {
        return Err(ApiError::bad_request(
            "nefos projects are not nested: parent_id must be the domain",
        ));
    }
    let new = NewProject {
        name: body.name,
        description: body.description,
        enabled: body.enabled.unwrap_or(true),
    };
    let project = state.identity.create_project(auth.caller(), new).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "project": views::project(&state, &project) })),
    ))
}

/// `GET /v3/projects/{id}`. A project the caller may not see is Keystone's 403 (its
/// `identity:get_project` rule), whether or not it exists, so nothing leaks: the
/// `openstack` CLI takes a 403 to mean "use the id as given", which is how a user names
/// another project to share an image with (`openstack image add project`).
pub(super) async fn show(
    State(state): State<ApiState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.identity.project(auth.caller(), &id).await {
        Ok(project) => Ok(Json(json!({ "project": views::project(&state, &project) }))),
        Err(nefos_identity::IdentityError::NotFound { .. }) if !auth.0.is_cloud_admin() => {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "You are not authorized to perform the requested action: identity:get_project.",
            ))
        }
        Err(error) => Err(error.into()),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct UpdateRequest {
    project: UpdateProject,
}

#[derive(Debug, Deserialize)]
struct UpdateProject {
    name: Option<String>,
    description: Option<String>,
    enabled: Option<bool>,
}

/// `PATCH /v3/projects/{id}` (administrators).
pub(super) async fn update(
    State(state): State<ApiState>,
    auth: Authenticated,
    Path(id): Path<String>,
    extract::Json(request): extract::Json<UpdateRequest>,
) -> Result<Json<Value>, ApiError> {
    let body = request.project;
    let patch = ProjectPatch {
        name: body.name,
        description: body.description,
        enabled: body.enabled,
    };
    let project = state
        .identity
        .update_project(auth.caller(), &id, patch)
        .await?;
    Ok(Json(json!({ "project": views::project(&state, &project) })))
}

/// `DELETE /v3/projects/{id}` (administrators).
pub(super) async fn delete(
    State(state): State<ApiState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.identity.delete_project(auth.caller(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
