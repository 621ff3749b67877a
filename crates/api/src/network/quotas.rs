//! `/v2.0/quotas`: the quota engine's limits and usage in Neutron's names. Networks are
//! `cyclades.network.private`, ports `cyclades.port`, floating IPs
//! `cyclades.floating_ip`; subnets are not counted (-1). Limits are set with
//! `nefos admin quota set` and through the account API, not here.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use nefos_identity::Caller;
use nefos_network_api::QuotaDetail;
use nefos_quota::{HoldingView, QuotaError};
use serde_json::{Map, Value, json};

use super::NeutronError;
use super::request::Neutron;
use crate::ApiState;

/// Neutron's quota names and the resources behind them.
const RESOURCES: &[(&str, &str)] = &[
    ("network", nefos_network::PRIVATE_NETWORK_RESOURCE),
    ("port", nefos_network::PORT_RESOURCE),
    ("floatingip", nefos_network::FLOATING_IP_RESOURCE),
    ("security_group", nefos_network::SECURITY_GROUP_RESOURCE),
];

async fn holdings(
    state: &ApiState,
    neutron: &Neutron,
    project: &str,
) -> Result<BTreeMap<String, HoldingView>, NeutronError> {
    let caller = &neutron.caller;
    if !caller.is_cloud_admin() && caller.project_id() != Some(project) {
        return Err(NeutronError::new(
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            "rule:get_quota is disallowed by policy",
        ));
    }
    // Neutron's quotas are a project's: its limits and usage as a whole.
    match state
        .quotas
        .project_quota(Caller::Token(caller), project)
        .await
    {
        Ok(quota) => Ok(quota.project),
        Err(QuotaError::NotFound { .. }) => Err(NeutronError::new(
            StatusCode::NOT_FOUND,
            "HTTPNotFound",
            format!("Project {project} could not be found."),
        )),
        Err(error) => Err(crate::ApiError::internal(&error).into()),
    }
}

pub(crate) async fn show(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(project): Path<String>,
) -> Result<Json<Value>, NeutronError> {
    let holdings = holdings(&state, &neutron, &project).await?;
    let mut quota = Map::new();
    for (name, resource) in RESOURCES {
        let limit = holdings.get(*resource).map_or(0, |h| h.limit);
        quota.insert((*name).to_owned(), json!(limit));
    }
    for unlimited in ["subnet", "security_group_rule", "router"] {
        quota.insert(unlimited.to_owned(), json!(-1));
    }
    Ok(Json(json!({ "quota": quota })))
}

pub(crate) async fn details(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(project): Path<String>,
) -> Result<Json<Value>, NeutronError> {
    let holdings = holdings(&state, &neutron, &project).await?;
    let mut quota = Map::new();
    for (name, resource) in RESOURCES {
        let holding = holdings.get(*resource).copied().unwrap_or_default();
        let detail = QuotaDetail {
            limit: holding.limit,
            used: holding.usage - holding.pending,
            reserved: holding.pending,
        };
        quota.insert((*name).to_owned(), json!(detail));
    }
    for unlimited in ["subnet", "security_group_rule", "router"] {
        quota.insert(
            unlimited.to_owned(),
            json!(QuotaDetail {
                limit: -1,
                used: 0,
                reserved: 0
            }),
        );
    }
    Ok(Json(json!({ "quota": quota })))
}
