//! `/v3/users`.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use nefos_identity::{NewUser, UserFilter, UserPatch};
use serde::Deserialize;
use serde_json::{Value, json};

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

/// Keystone's boolean query values.
pub(super) fn query_bool(field: &str, value: Option<&str>) -> Result<Option<bool>, ApiError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("true" | "1" | "yes" | "") => Ok(Some(true)),
        Some("false" | "0" | "no") => Ok(Some(false)),
        Some(other) => Err(ApiError::bad_request(format!(
            "{field}={other:?} is not a boolean"
        ))),
    }
}

pub(super) fn check_domain_id(domain_id: Option<&str>) -> Result<(), ApiError> {
    match domain_id {
        None | Some(DOMAIN_ID) => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown domain {other:?}: nefos has only the domain {DOMAIN_ID:?}"
        ))),
    }
}

/// `GET /v3/users`.
pub(super) async fn list(
    State(state): State<ApiState>,
    auth: Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    if query.domain_id.as_deref().is_some_and(|d| d != DOMAIN_ID) {
        return Ok(Json(views::list(&state, "users", Vec::new())));
    }
    let filter = UserFilter {
        name: query.name,
        enabled: query_bool("enabled", query.enabled.as_deref())?,
    };
    let users = state.identity.users(auth.caller(), &filter).await?;
    let items = users.iter().map(|u| views::user(&state, u)).collect();
    Ok(Json(views::list(&state, "users", items)))
}

#[derive(Debug, Deserialize)]
pub(super) struct CreateRequest {
    user: CreateUser,
}

#[derive(Debug, Deserialize)]
struct CreateUser {
    name: String,
    password: Option<String>,
    email: Option<String>,
    enabled: Option<bool>,
    domain_id: Option<String>,
}

/// `POST /v3/users` (administrators).
pub(super) async fn create(
    State(state): State<ApiState>,
    auth: Authenticated,
    extract::Json(request): extract::Json<CreateRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = request.user;
    check_domain_id(body.domain_id.as_deref())?;
    let new = NewUser {
        name: body.name,
        email: body.email,
        password: body.password,
        enabled: body.enabled.unwrap_or(true),
    };
    let user = state.identity.create_user(auth.caller(), new).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "user": views::user(&state, &user) })),
    ))
}

/// `GET /v3/users/{id}`.
pub(super) async fn show(
    State(state): State<ApiState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = state.identity.user(auth.caller(), &id).await?;
    Ok(Json(json!({ "user": views::user(&state, &user) })))
}

#[derive(Debug, Deserialize)]
pub(super) struct UpdateRequest {
    user: UpdateUser,
}

#[derive(Debug, Deserialize)]
struct UpdateUser {
    name: Option<String>,
    password: Option<String>,
    /// Absent leaves the address; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
    enabled: Option<bool>,
    domain_id: Option<String>,
}

/// Distinguishes a field set to `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `PATCH /v3/users/{id}` (administrators).
pub(super) async fn update(
    State(state): State<ApiState>,
    auth: Authenticated,
    Path(id): Path<String>,
    extract::Json(request): extract::Json<UpdateRequest>,
) -> Result<Json<Value>, ApiError> {
    let body = request.user;
    check_domain_id(body.domain_id.as_deref())?;
    let patch = UserPatch {
        name: body.name,
        email: body.email,
        password: body.password,
        enabled: body.enabled,
    };
    let user = state
        .identity
        .update_user(auth.caller(), &id, patch)
        .await?;
    Ok(Json(json!({ "user": views::user(&state, &user) })))
}

/// `DELETE /v3/users/{id}` (administrators).
pub(super) async fn delete(
    State(state): State<ApiState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.identity.delete_user(auth.caller(), &id).await?;
    // The user's sharing grants and group memberships go too. Ids are never reused, so a
    // failure here leaves only grants that grant nothing: logged, not an error.
    if let Err(error) = state.storage.forget_user(&id).await {
        tracing::warn!(user = %id, error = %crate::error_chain(&error), "could not remove a deleted user's grants");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v3/users/{id}/projects`.
pub(super) async fn projects(
    State(state): State<ApiState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let projects = state.identity.user_projects(auth.caller(), &id).await?;
    let items = projects.iter().map(|p| views::project(&state, p)).collect();
    Ok(Json(views::list(&state, "projects", items)))
}

#[derive(Debug, Deserialize)]
pub(super) struct PasswordRequest {
    user: PasswordChange,
}

#[derive(Debug, Deserialize)]
struct PasswordChange {
    password: String,
    original_password: String,
}

/// `POST /v3/users/{id}/password`: a user changes its own password.
pub(super) async fn change_password(
    State(state): State<ApiState>,
    auth: Authenticated,
    Path(id): Path<String>,
    extract::Json(request): extract::Json<PasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let PasswordChange {
        password,
        original_password,
    } = request.user;
    state
        .identity
        .change_own_password(auth.caller(), &id, original_password, password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
