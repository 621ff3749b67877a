//! `/v3/roles`, role assignments on projects, and `/v3/role_assignments`.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use nefos_identity::{Caller, Role, RoleAssignmentFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use super::users::query_bool;
use super::views;
use crate::auth::Authenticated;
use crate::extract::{Path, Query};
use crate::{ApiError, ApiState};

fn parse_role(id: &str) -> Result<Role, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("could not find role {id}")))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    name: Option<String>,
}

/// `GET /v3/roles`: the fixed set of roles.
pub(super) async fn list(
    State(state): State<ApiState>,
    _auth: Authenticated,
    Query(query): Query<ListQuery>,
) -> Json<Value> {
    let items = Role::ALL
        .into_iter()
        .filter(|r| query.name.as_deref().is_none_or(|n| n == r.as_str()))
        .map(|r| views::role(&state, r))
        .collect();
    Json(views::list(&state, "roles", items))
}

/// `GET /v3/roles/{id}`; a role's id is its name.
pub(super) async fn show(
    State(state): State<ApiState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "role": views::role(&state, parse_role(&id)?) }),
    ))
}

/// `GET /v3/projects/{p}/users/{u}/roles`.
pub(super) async fn list_on_project(
    State(state): State<ApiState>,
    auth: Authenticated,
    Path((project_id, user_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let roles = state
        .identity
        .roles_on_project(auth.caller(), &project_id, &user_id)
        .await?;
    let items = roles.into_iter().map(|r| views::role(&state, r)).collect();
    Ok(Json(views::list(&state, "roles", items)))
}

/// `PUT /v3/projects/{p}/users/{u}/roles/{r}` (administrators).
pub(super) async fn grant(
    State(state): State<ApiState>,
    auth: Authenticated,
    Path((project_id, user_id, role_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let role = parse_role(&role_id)?;
    state
        .identity
        .grant_role(auth.caller(), &project_id, &user_id, role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `HEAD`/`GET /v3/projects/{p}/users/{u}/roles/{r}`: 204 if held, else 404.
pub(super) async fn check(
    State(state): State<ApiState>,
    auth: Authenticated,
    Path((project_id, user_id, role_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let role = parse_role(&role_id)?;
    let roles = state
        .identity
        .roles_on_project(auth.caller(), &project_id, &user_id)
        .await?;
    if roles.contains(&role) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "user {user_id} has no role {role} on project {project_id}"
        )))
    }
}

/// `DELETE /v3/projects/{p}/users/{u}/roles/{r}` (administrators).
pub(super) async fn revoke(
    State(state): State<ApiState>,
    auth: Authenticated,
    Path((project_id, user_id, role_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let role = parse_role(&role_id)?;
    state
        .identity
        .revoke_role(auth.caller(), &project_id, &user_id, Some(role))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct AssignmentQuery {
    #[serde(rename = "user.id")]
    user_id: Option<String>,
    #[serde(rename = "scope.project.id")]
    project_id: Option<String>,
    #[serde(rename = "role.id")]
    role_id: Option<String>,
    include_names: Option<String>,
    /// Accepted for compatibility: nefos has no groups or inheritance, so every
    /// assignment is already effective.
    #[allow(dead_code)]
    effective: Option<String>,
}

/// `GET /v3/role_assignments`: all for an administrator, the caller's own otherwise.
pub(super) async fn assignments(
    State(state): State<ApiState>,
    auth: Authenticated,
    Query(query): Query<AssignmentQuery>,
) -> Result<Json<Value>, ApiError> {
    let role = match query.role_id.as_deref() {
        Some(id) => Some(parse_role(id)?),
        None => None,
    };
    let filter = RoleAssignmentFilter {
        user_id: query.user_id,
        project_id: query.project_id,
        role,
    };
    let with_names = query_bool("include_names", query.include_names.as_deref())?.unwrap_or(false);
    let found = state
        .identity
        .role_assignments(auth.caller(), &filter)
        .await?;
    let base = format!("{}/identity/v3", state.public_url());
    let mut items = Vec::with_capacity(found.len());
    for a in found {
        let mut item = json!({
            "role": { "id": a.role.as_str() },
            "user": { "id": a.user_id },
            "scope": { "project": { "id": a.project_id } },
            "links": {
                "assignment": format!("{base}/projects/{}/users/{}/roles/{}", a.project_id, a.user_id, a.role),
            },
        });
        if with_names {
            // The caller may already see this assignment, so naming its parts reveals
            // nothing more.
            let user = state.identity.user(Caller::Operator, &a.user_id).await?;
            let project = state
                .identity
                .project(Caller::Operator, &a.project_id)
                .await?;
            item["role"]["name"] = json!(a.role.as_str());
            item["user"]["name"] = json!(user.name);
            item["user"]["domain"] = json!({ "id": views::DOMAIN_ID, "name": views::DOMAIN_NAME });
            item["scope"]["project"]["name"] = json!(project.name);
            item["scope"]["project"]["domain"] =
                json!({ "id": views::DOMAIN_ID, "name": views::DOMAIN_NAME });
        }
        items.push(item);
    }
    Ok(Json(views::list(&state, "role_assignments", items)))
}
