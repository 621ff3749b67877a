//! `/v2.0/quotas`: the quota engine's limits and usage in Neutron's names. Networks are
//! `cyclades.network.private`, ports `cyclades.port`, floating IPs
//! `cyclades.floating_ip`, security groups `cyclades.security_group`; subnets, routers and
//! rules are not counted (-1). An administrator's `PUT` sets a project's limits, as
//! `nefos admin quota set` does.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use bytes::Bytes;
use http::StatusCode;
use nefos_identity::Caller;
use nefos_network_api::QuotaDetail;
use nefos_quota::{HoldingView, QuotaError};
use serde_json::{Map, Value, json};

use super::NeutronError;
use super::request::{Neutron, resource_body};
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
    for uncounted in UNCOUNTED {
        quota.insert((*uncounted).to_owned(), json!(-1));
    }
    Ok(Json(json!({ "quota": quota })))
}

/// Neutron's names that nefos does not count, always -1.
const UNCOUNTED: &[&str] = &["subnet", "security_group_rule", "router"];

/// `PUT /v2.0/quotas/{project}`: an administrator sets the project's limits, each the
/// total its members may use; every value is checked before any is written.
pub(crate) async fn update(
    State(state): State<ApiState>,
    neutron: Neutron,
    Path(project): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, NeutronError> {
    if !neutron.caller.is_cloud_admin() {
        return Err(NeutronError::new(
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            "rule:update_quota is disallowed by policy",
        ));
    }
    let mut attributes = resource_body(&body, "quota")?;
    let mut limits = Vec::new();
    for (name, resource) in RESOURCES {
        let Some(limit) = attributes.integer(name)? else {
            continue;
        };
        if limit < 0 {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for {name}. Reason: nefos limits every resource it counts; \
                 '{limit}' is not a limit (-1, unlimited, is not served)."
            )));
        }
        limits.push((*resource, limit));
    }
    for uncounted in UNCOUNTED {
        if attributes
            .integer(uncounted)?
            .is_some_and(|limit| limit != -1)
        {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for {uncounted}. Reason: nefos does not count them; its quota \
                 is -1."
            )));
        }
    }
    // Neutron's quota-check-limit: with it, no limit goes below what is in use.
    let check_limit = attributes.boolean("check_limit")?.unwrap_or(false);
    attributes.finish()?;
    // The project must exist (and the caller see it) before anything is written.
    let held = holdings(&state, &neutron, &project).await?;
    if check_limit {
        for (resource, limit) in &limits {
            let in_use = held.get(*resource).map_or(0, |h| h.usage);
            if *limit < in_use {
                let name = RESOURCES
                    .iter()
                    .find(|(_, r)| r == resource)
                    .map_or(*resource, |(name, _)| name);
                return Err(NeutronError::bad_request(format!(
                    "Quota limit {limit} for {name} must be greater than or equal to already \
                     used and reserved {in_use}."
                )));
            }
        }
    }
    for (resource, limit) in limits {
        state
            .quotas
            .set_project_limit(Caller::Token(&neutron.caller), &project, resource, limit)
            .await
            .map_err(|error| match error {
                QuotaError::NotFound { .. } => NeutronError::new(
                    StatusCode::NOT_FOUND,
                    "HTTPNotFound",
                    format!("Project {project} could not be found."),
                ),
                error => crate::ApiError::internal(&error).into(),
            })?;
    }
    tracing::info!(%project, "project's network quotas set");
    show(State(state), neutron, Path(project)).await
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
    for uncounted in UNCOUNTED {
        quota.insert(
            (*uncounted).to_owned(),
            json!(QuotaDetail {
                limit: -1,
                used: 0,
                reserved: 0
            }),
        );
    }
    Ok(Json(json!({ "quota": quota })))
}
