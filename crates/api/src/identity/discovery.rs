//! Version discovery and the one domain.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::StatusCode;
use serde_json::{Value, json};

use super::views::{DOMAIN_ID, DOMAIN_NAME, domain as domain_view};
use crate::auth::Authenticated;
use crate::extract::Path;
use crate::{ApiError, ApiState};

const V3_UPDATED: &str = "2026-11-01T00:00:00Z";

fn v3_document(state: &ApiState) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": V3_UPDATED,
        "links": [{ "rel": "self", "href": format!("{}/identity/v3/", state.public_url()) }],
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.identity-v3+json",
        }],
    })
}

/// `GET /identity`: the versions this endpoint serves, as Keystone answers (300).
pub(super) async fn versions(State(state): State<ApiState>) -> impl IntoResponse {
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(json!({ "versions": { "values": [v3_document(&state)] } })),
    )
}

/// `GET /identity/v3`.
pub(super) async fn v3(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({ "version": v3_document(&state) }))
}

/// `GET /v3/domains`: nefos has the one domain, `Default`.
pub(super) async fn domains(State(state): State<ApiState>, _auth: Authenticated) -> Json<Value> {
    Json(json!({
        "domains": [domain_view(&state)],
        "links": { "self": format!("{}/identity/v3/domains", state.public_url()), "next": null, "previous": null },
    }))
}

/// `GET /v3/domains/{id}`, by id or name.
pub(super) async fn domain(
    State(state): State<ApiState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if id == DOMAIN_ID || id == DOMAIN_NAME {
        Ok(Json(json!({ "domain": domain_view(&state) })))
    } else {
        Err(ApiError::not_found(format!("could not find domain {id}")))
    }
}
