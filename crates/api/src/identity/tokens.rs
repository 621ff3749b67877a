//! `/v3/auth/*`: issuing, validating and revoking tokens.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use nefos_identity::{PasswordCredentials, ProjectFilter, Scope, UserRef};
use serde::Deserialize;
use serde_json::{Value, json};

use super::views::{self, DOMAIN_ID, DOMAIN_NAME};
use crate::auth::Authenticated;
use crate::extract::{self, Query};
use crate::{ApiError, ApiState};

const SUBJECT_TOKEN: &str = "x-subject-token";

#[derive(Debug, Deserialize)]
pub(super) struct AuthRequest {
    auth: AuthBody,
}

#[derive(Debug, Deserialize)]
struct AuthBody {
    identity: IdentityBody,
    scope: Option<ScopeBody>,
}

#[derive(Debug, Deserialize)]
struct IdentityBody {
    methods: Vec<String>,
    password: Option<PasswordMethod>,
    token: Option<TokenMethod>,
}

#[derive(Debug, Deserialize)]
struct PasswordMethod {
    user: PasswordUser,
}

#[derive(Debug, Deserialize)]
struct PasswordUser {
    id: Option<String>,
    name: Option<String>,
    domain: Option<DomainRef>,
    password: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct TokenMethod {
    pub(super) id: String,
}

#[derive(Debug, Deserialize)]
struct DomainRef {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ScopeBody {
    /// `"scope": "unscoped"`.
    Named(String),
    Object(ScopeObject),
}

#[derive(Debug, Deserialize)]
struct ScopeObject {
    project: Option<ProjectScope>,
    domain: Option<DomainRef>,
    system: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ProjectScope {
    id: Option<String>,
    name: Option<String>,
    domain: Option<DomainRef>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct CatalogQuery {
    nocatalog: Option<String>,
}

impl CatalogQuery {
    /// Keystone treats the bare parameter, or any value but `false`/`0`, as set.
    fn wants_catalog(&self) -> bool {
        match self.nocatalog.as_deref() {
            None => true,
            Some(v) => matches!(v.to_ascii_lowercase().as_str(), "false" | "0"),
        }
    }
}

/// Only the `Default` domain exists; naming another is an authentication failure.
fn check_domain(domain: Option<&DomainRef>) -> Result<(), ApiError> {
    let Some(domain) = domain else { return Ok(()) };
    let id_ok = domain.id.as_deref().is_none_or(|id| id == DOMAIN_ID);
    let name_ok = domain.name.as_deref().is_none_or(|n| n == DOMAIN_NAME);
    if id_ok && name_ok {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "unknown domain: nefos has only the Default domain",
        ))
    }
}

fn scope(body: Option<ScopeBody>) -> Result<Scope, ApiError> {
    match body {
        None => Ok(Scope::Unscoped),
        Some(ScopeBody::Named(name)) if name == "unscoped" => Ok(Scope::Unscoped),
        Some(ScopeBody::Named(name)) => {
            Err(ApiError::bad_request(format!("unknown scope {name:?}")))
        }
        Some(ScopeBody::Object(ScopeObject {
            project: Some(project),
            ..
        })) => {
            check_domain(project.domain.as_ref())?;
            match (project.id, project.name) {
                (Some(id), _) => Ok(Scope::ProjectId(id)),
                (None, Some(name)) => Ok(Scope::ProjectName(name)),
                (None, None) => Err(ApiError::bad_request(
                    "a project scope needs an id or a name",
                )),
            }
        }
        Some(ScopeBody::Object(ScopeObject {
            domain: Some(_), ..
        }))
        | Some(ScopeBody::Object(ScopeObject {
            system: Some(_), ..
        })) => Err(ApiError::unauthorized(
            "domain and system scopes are not supported: scope the token to a project",
        )),
        Some(ScopeBody::Object(_)) => Ok(Scope::Unscoped),
    }
}

/// `POST /v3/auth/tokens`.
pub(super) async fn issue(
    State(state): State<ApiState>,
    client: Option<axum::Extension<crate::ClientAddress>>,
    Query(query): Query<CatalogQuery>,
    extract::Json(request): extract::Json<AuthRequest>,
) -> Result<Response, ApiError> {
    let AuthBody {
        identity,
        scope: scope_body,
    } = request.auth;
    let scope = scope(scope_body)?;
    let issued = match identity.methods.as_slice() {
        [method] if method == "password" => {
            let user = identity
                .password
                .ok_or_else(|| ApiError::bad_request("method password needs identity.password"))?
                .user;
            check_domain(user.domain.as_ref())?;
            let user_ref = match (user.id, user.name) {
                (Some(id), _) => UserRef::Id(id),
                (None, Some(name)) => UserRef::Name(name),
                (None, None) => {
                    return Err(ApiError::bad_request("the user needs an id or a name"));
                }
            };
            let credentials = PasswordCredentials {
                user: user_ref,
                password: user.password,
            };
            state
                .identity
                .authenticate_password_from(client.map(|c| c.0.0), credentials, scope)
                .await?
        }
        [method] if method == "token" => {
            let token = identity
                .token
                .ok_or_else(|| ApiError::bad_request("method token needs identity.token"))?;
            state.identity.authenticate_token(&token.id, scope).await?
        }
        [method] => {
            return Err(ApiError::unauthorized(format!(
                "unsupported authentication method {method:?}: use password or token"
            )));
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one authentication method",
            ));
        }
    };
    let body = views::token(&state, &issued.context, query.wants_catalog());
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    let header = HeaderValue::from_str(&issued.token).map_err(|e| ApiError::internal(&e))?;
    response.headers_mut().insert(SUBJECT_TOKEN, header);
    Ok(response)
}

fn subject(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(SUBJECT_TOKEN)
        .ok_or_else(|| ApiError::bad_request("the X-Subject-Token header is missing"))?
        .to_str()
        .map_err(|_| ApiError::bad_request("the X-Subject-Token header is not valid text"))
}

/// `GET /v3/auth/tokens`: what the subject token grants.
pub(super) async fn validate(
    State(state): State<ApiState>,
    auth: Authenticated,
    Query(query): Query<CatalogQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let subject = subject(&headers)?;
    let context = state.identity.inspect_token(auth.caller(), subject).await?;
    let body = views::token(&state, &context, query.wants_catalog());
    let mut response = Json(body).into_response();
    if let Some(value) = headers.get(SUBJECT_TOKEN) {
        response.headers_mut().insert(SUBJECT_TOKEN, value.clone());
    }
    Ok(response)
}

/// `HEAD /v3/auth/tokens`: 200 when the subject token is valid.
pub(super) async fn check(
    State(state): State<ApiState>,
    auth: Authenticated,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state
        .identity
        .inspect_token(auth.caller(), subject(&headers)?)
        .await?;
    Ok(StatusCode::OK)
}

/// `DELETE /v3/auth/tokens`: revokes the subject token.
pub(super) async fn revoke(
    State(state): State<ApiState>,
    auth: Authenticated,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state
        .identity
        .revoke_token(auth.caller(), subject(&headers)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v3/auth/catalog`.
pub(super) async fn catalog(State(state): State<ApiState>, auth: Authenticated) -> Json<Value> {
    Json(json!({
        "catalog": state.catalog.to_v3(auth.0.project_id()),
        "links": { "self": format!("{}/identity/v3/auth/catalog", state.public_url()), "next": null, "previous": null },
    }))
}

/// `GET /v3/auth/projects`: the projects the caller may scope to.
pub(super) async fn projects(
    State(state): State<ApiState>,
    auth: Authenticated,
) -> Result<Json<Value>, ApiError> {
    let filter = ProjectFilter {
        member: Some(auth.0.user_id.clone()),
        ..Default::default()
    };
    let projects = state.identity.projects(auth.caller(), &filter).await?;
    let items = projects.iter().map(|p| views::project(&state, p)).collect();
    Ok(Json(views::list(&state, "projects", items)))
}
