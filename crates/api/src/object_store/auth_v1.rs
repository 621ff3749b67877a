//! `GET /auth/v1.0`: Swift's v1 authentication, for clients that speak only that
//! (`swift -A URL/auth/v1.0 -U project:user -K password`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use nefos_identity::{PasswordCredentials, Scope, UserRef};

use super::error::SwiftError;
use super::headers::{self, insert};
use crate::ApiState;

/// `X-Auth-User` is `user` (scoped to the user's personal project) or `project:user`;
/// `X-Auth-Key` is the password. The storage URL is Swift's `/v1/AUTH_<project>` at the
/// root, where v1 clients and Swift's test suites expect it (the catalog names the same
/// service under `/object`).
pub(super) async fn handle(
    State(state): State<ApiState>,
    client: Option<axum::Extension<crate::ClientAddress>>,
    request: HeaderMap,
) -> Result<Response, SwiftError> {
    let user = headers::text(&request, "x-auth-user")?
        .or(headers::text(&request, "x-storage-user")?)
        .ok_or_else(|| SwiftError::bad_request("X-Auth-User is missing"))?;
    let key = headers::text(&request, "x-auth-key")?
        .or(headers::text(&request, "x-storage-pass")?)
        .ok_or_else(|| SwiftError::bad_request("X-Auth-Key is missing"))?;
    let (project, user) = match user.split_once(':') {
        Some((project, user)) => (project, user),
        None => (user, user),
    };
    let credentials = PasswordCredentials {
        user: UserRef::Name(user.to_owned()),
        password: key.to_owned(),
    };
    let issued = state
        .identity
        .authenticate_password_from(
            client.map(|c| c.0.0),
            credentials,
            Scope::ProjectName(project.to_owned()),
        )
        .await
        .map_err(|e| match e {
            nefos_identity::IdentityError::Unauthorized { .. } => SwiftError::unauthorized(),
            other => crate::ApiError::from(other).into(),
        })?;
    let project_id = issued.context.project_id().unwrap_or_default().to_owned();
    let mut answer = HeaderMap::new();
    insert(&mut answer, "x-auth-token", &issued.token);
    insert(&mut answer, "x-storage-token", &issued.token);
    insert(
        &mut answer,
        "x-storage-url",
        &format!("{}/v1/AUTH_{project_id}", state.public_url()),
    );
    let expires_in = (issued.context.expires_at - nefos_db::time::now_micros()) / 1_000_000;
    insert(
        &mut answer,
        "x-auth-token-expires",
        &expires_in.max(0).to_string(),
    );
    Ok((StatusCode::OK, answer).into_response())
}
