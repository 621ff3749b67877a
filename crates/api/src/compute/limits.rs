//! `GET /limits` and `os-quota-sets`: the quota engine's limits and usage of the caller's
//! project, in Nova's names and units (instances, cores, RAM in MiB). nefos has no
//! keypair or server-group quota: those show as unlimited (-1).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use nefos_compute_api::types::{Limits, LimitsBody};
use nefos_identity::Caller;
use nefos_quota::HoldingView;
use serde_json::Value;

use super::NovaError;
use super::request::Nova;
use crate::ApiState;

const MIB: i64 = 1 << 20;

/// Nova's quota names and the Cyclades resources and units behind them.
const RESOURCES: &[(&str, &str, i64)] = &[
    ("instances", "cyclades.vm", 1),
    ("cores", "cyclades.total_cpu", 1),
    ("ram", "cyclades.total_ram", MIB),
];

/// The caller's holdings in `project`, by resource.
async fn holdings(
    state: &ApiState,
    nova: &Nova,
    project: &str,
) -> Result<BTreeMap<String, HoldingView>, NovaError> {
    if !nova.is_admin() && nova.caller.project_id() != Some(project) {
        return Err(NovaError::forbidden(
            "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.",
        ));
    }
    let quotas = state
        .quotas
        .user_quotas(Caller::Token(&nova.caller), &nova.caller.user_id)
        .await
        .map_err(|error| NovaError::from(crate::ApiError::internal(&error)))?;
    Ok(quotas
        .into_iter()
        .find(|q| q.project_id == project)
        .map(|q| q.member)
        .unwrap_or_default())
}

fn project_of(nova: &Nova) -> Result<String, NovaError> {
    nova.caller
        .project_id()
        .map(str::to_owned)
        .ok_or_else(|| NovaError::forbidden("Compute needs a token scoped to a project."))
}

pub(crate) async fn limits(
    State(state): State<ApiState>,
    nova: Nova,
) -> Result<Json<Limits>, NovaError> {
    let project = project_of(&nova)?;
    let holdings = holdings(&state, &nova, &project).await?;
    let mut absolute = BTreeMap::new();
    let mut put = |nova_name: &str, resource: &str, unit: i64, used_name: &str| {
        let holding = holdings.get(resource).copied().unwrap_or_default();
        absolute.insert(nova_name.to_owned(), holding.limit / unit);
        absolute.insert(used_name.to_owned(), holding.usage / unit);
    };
    put("maxTotalInstances", "cyclades.vm", 1, "totalInstancesUsed");
    put("maxTotalCores", "cyclades.total_cpu", 1, "totalCoresUsed");
    put("maxTotalRAMSize", "cyclades.total_ram", MIB, "totalRAMUsed");
    absolute.insert("maxTotalKeypairs".to_owned(), -1);
    absolute.insert("maxServerMeta".to_owned(), 128);
    absolute.insert("maxServerGroups".to_owned(), -1);
    absolute.insert("maxServerGroupMembers".to_owned(), -1);
    absolute.insert("totalServerGroupsUsed".to_owned(), 0);
    if !nova.version.at_least(57) {
        absolute.insert("maxPersonality".to_owned(), 0);
        absolute.insert("maxPersonalitySize".to_owned(), 0);
    }
    if !nova.version.at_least(39) {
        absolute.insert("maxImageMeta".to_owned(), 128);
    }
    Ok(Json(Limits {
        limits: LimitsBody {
            rate: Vec::new(),
            absolute,
        },
    }))
}

fn quota_fields(
    nova: &Nova,
    holdings: &BTreeMap<String, HoldingView>,
    value: impl Fn(HoldingView, i64) -> Value,
) -> serde_json::Map<String, Value> {
    let mut set = serde_json::Map::new();
    for (name, resource, unit) in RESOURCES {
        let holding = holdings.get(*resource).copied().unwrap_or_default();
        set.insert((*name).to_owned(), value(holding, *unit));
    }
    let unlimited = HoldingView {
        limit: -1,
        usage: 0,
        pending: 0,
    };
    for name in ["key_pairs", "server_groups", "server_group_members"] {
        set.insert(name.to_owned(), value(unlimited, 1));
    }
    set.insert(
        "metadata_items".to_owned(),
        value(
            HoldingView {
                limit: 128,
                ..unlimited
            },
            1,
        ),
    );
    if !nova.version.at_least(57) {
        for name in [
            "injected_files",
            "injected_file_content_bytes",
            "injected_file_path_bytes",
        ] {
            set.insert(
                name.to_owned(),
                value(
                    HoldingView {
                        limit: 0,
                        ..unlimited
                    },
                    1,
                ),
            );
        }
    }
    set
}

pub(crate) async fn quota_set(
    State(state): State<ApiState>,
    nova: Nova,
    Path(project): Path<String>,
) -> Result<Json<Value>, NovaError> {
    let holdings = holdings(&state, &nova, &project).await?;
    let mut set = quota_fields(&nova, &holdings, |h, unit| Value::from(h.limit / unit));
    set.insert("id".to_owned(), Value::from(project));
    Ok(Json(serde_json::json!({ "quota_set": set })))
}

pub(crate) async fn quota_set_detail(
    State(state): State<ApiState>,
    nova: Nova,
    Path(project): Path<String>,
) -> Result<Json<Value>, NovaError> {
    let holdings = holdings(&state, &nova, &project).await?;
    let mut set = quota_fields(&nova, &holdings, |h, unit| {
        serde_json::json!({
            "limit": h.limit / unit,
            "in_use": (h.usage - h.pending) / unit,
            "reserved": h.pending / unit,
        })
    });
    set.insert("id".to_owned(), Value::from(project));
    Ok(Json(serde_json::json!({ "quota_set": set })))
}

pub(crate) async fn quota_set_defaults(
    State(state): State<ApiState>,
    nova: Nova,
    Path(project): Path<String>,
) -> Result<Json<Value>, NovaError> {
    quota_set(State(state), nova, Path(project)).await
}
