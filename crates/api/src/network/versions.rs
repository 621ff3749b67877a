//! The versions document, the v2.0 resource list and the extensions.

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use serde_json::{Value, json};

use super::NeutronError;
use super::request::Neutron;
use crate::ApiState;
use nefos_network_api::paths;

fn base(state: &ApiState) -> String {
    format!("{}{}", state.public_url(), nefos_network_api::PREFIX)
}

/// `GET /`: unauthenticated, as Neutron's.
pub(crate) async fn versions(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({"versions": [{
        "id": "v2.0",
        "status": "CURRENT",
        "links": [{"href": format!("{}{}", base(&state), paths::V20_SLASH), "rel": "self"}]
    }]}))
}

/// `GET /v2.0`: the collections served.
pub(crate) async fn resources(State(state): State<ApiState>, _neutron: Neutron) -> Json<Value> {
    let resources: Vec<Value> = [
        ("network", "networks"),
        ("subnet", "subnets"),
        ("port", "ports"),
        ("router", "routers"),
        ("floatingip", "floatingips"),
        ("security_group", "security-groups"),
        ("security_group_rule", "security-group-rules"),
    ]
    .iter()
    .map(|(name, collection)| {
        json!({"name": name, "collection": collection, "links": [{
            "href": format!("{}/v2.0/{collection}", base(&state)), "rel": "self"
        }]})
    })
    .collect();
    Json(json!({ "resources": resources }))
}

fn extension(alias: &str, name: &str, description: &str) -> Value {
    json!({
        "alias": alias, "name": name, "description": description,
        "updated": "2026-12-07T00:00:00-00:00", "links": []
    })
}

pub(crate) async fn extensions(_neutron: Neutron) -> Json<Value> {
    let extensions: Vec<Value> = nefos_network_api::EXTENSIONS
        .iter()
        .map(|(alias, name, description)| extension(alias, name, description))
        .collect();
    Json(json!({ "extensions": extensions }))
}

pub(crate) async fn show_extension(
    _neutron: Neutron,
    Path(alias): Path<String>,
) -> Result<Json<Value>, NeutronError> {
    nefos_network_api::EXTENSIONS
        .iter()
        .find(|(a, _, _)| *a == alias)
        .map(|(alias, name, description)| {
            Json(json!({ "extension": extension(alias, name, description) }))
        })
        .ok_or_else(|| {
            NeutronError::new(
                StatusCode::NOT_FOUND,
                "HTTPNotFound",
                format!("Extension with alias {alias} does not exist"),
            )
        })
}
