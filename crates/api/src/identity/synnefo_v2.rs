//! Synnefo's `POST /identity/v2.0/tokens`, the form kamaki authenticates with.

use axum::Json;
use axum::extract::State;
use nefos_identity::{AuthContext, IssuedToken, PasswordCredentials, Scope, UserRef};
use serde::Deserialize;
use serde_json::{Value, json};

use super::tokens::TokenMethod;
use super::views::timestamp;
use crate::extract;
use crate::{ApiError, ApiState};

#[derive(Debug, Deserialize)]
pub(super) struct TokensRequest {
    auth: V2Auth,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2Auth {
    password_credentials: Option<V2Password>,
    token: Option<TokenMethod>,
    tenant_id: Option<String>,
    tenant_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V2Password {
    username: String,
    password: String,
}

/// `POST /identity/v2.0/tokens` with password or token credentials. A password without a
/// tenant gets a token scoped to the user's personal project, as Synnefo's tokens are; a
/// token without a tenant is answered with itself, as Astakos does.
pub(super) async fn tokens(
    State(state): State<ApiState>,
    client: Option<axum::Extension<crate::ClientAddress>>,
    extract::Json(request): extract::Json<TokensRequest>,
) -> Result<Json<Value>, ApiError> {
    let auth = request.auth;
    let scope = match (auth.tenant_id, auth.tenant_name) {
        (Some(id), _) => Some(Scope::ProjectId(id)),
        (None, Some(name)) => Some(Scope::ProjectName(name)),
        (None, None) => None,
    };
    let issued = match (auth.password_credentials, auth.token) {
        (Some(password), _) => {
            let credentials = PasswordCredentials {
                user: UserRef::Name(password.username),
                password: password.password,
            };
            let scope = scope.unwrap_or(Scope::Unscoped);
            let issued = state
                .identity
                .authenticate_password_from(client.map(|c| c.0.0), credentials, scope)
                .await?;
            rescope_to_base(&state, issued).await?
        }
        (None, Some(token)) => match scope {
            Some(scope) => state.identity.authenticate_token(&token.id, scope).await?,
            // Astakos answers a token with itself, and kamaki logs in again whenever the
            // token it gets back differs from the one it holds: validate, issue nothing.
            None => {
                let context = state.identity.validate(&token.id).await?;
                IssuedToken {
                    token: token.id,
                    context,
                }
            }
        },
        (None, None) => {
            return Err(ApiError::bad_request("give passwordCredentials or a token"));
        }
    };
    Ok(Json(access(&state, &issued)))
}

/// An unscoped token becomes one scoped to the user's personal project.
async fn rescope_to_base(state: &ApiState, issued: IssuedToken) -> Result<IssuedToken, ApiError> {
    if issued.context.project.is_some() {
        return Ok(issued);
    }
    let user = state
        .identity
        .user(
            nefos_identity::Caller::Token(&issued.context),
            &issued.context.user_id,
        )
        .await?;
    let scoped = state
        .identity
        .authenticate_token(&issued.token, Scope::ProjectId(user.base_project_id))
        .await?;
    // The unscoped token was only a step: it should not stay valid.
    state
        .identity
        .revoke_token(
            nefos_identity::Caller::Token(&scoped.context),
            &issued.token,
        )
        .await?;
    Ok(scoped)
}

fn access(state: &ApiState, issued: &IssuedToken) -> Value {
    let ctx: &AuthContext = &issued.context;
    let tenant = ctx
        .project
        .as_ref()
        .map(|p| json!({ "id": p.id, "name": p.name }));
    json!({
        "access": {
            "token": {
                "id": issued.token,
                "expires": timestamp(ctx.expires_at),
                "tenant": tenant,
            },
            "user": {
                "id": ctx.user_id,
                "name": ctx.user_name,
                "roles": ctx.roles.iter().map(|r| json!({ "id": r.as_str(), "name": r.as_str() })).collect::<Vec<_>>(),
                "roles_links": [],
            },
            "serviceCatalog": state.catalog.to_synnefo_v2(ctx.project_id()),
        }
    })
}
