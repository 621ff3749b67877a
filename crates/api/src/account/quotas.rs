//! `GET /quotas`, `/service_quotas`, `/service_project_quotas` and `/resources`.

use axum::Json;
use axum::extract::State;
use nefos_account_api::{
    ProjectQuotaView, ProjectQuotas, QuotaView, ResourceInfo, Resources, ServiceProjectQuotas,
    ServiceQuotas, ServiceQuotasQuery, UserQuotas,
};
use nefos_identity::{IdentityError, ProjectFilter, UserFilter};
use nefos_quota::{HoldingView, ProjectQuota, Unit};

use super::error::AccountError;
use super::extract::{Admin, Query, User};
use crate::ApiState;

/// `GET /quotas`: the caller's quotas in its personal project and every project it is an
/// accepted member of.
pub(super) async fn mine(
    State(state): State<ApiState>,
    user: User,
) -> Result<Json<UserQuotas>, AccountError> {
    let quotas = state.quotas.user_quotas(user.caller(), user.id()).await?;
    Ok(Json(user_quotas(quotas, None)))
}

/// `GET /service_quotas[?user=a,b][&project=p,q]`: every user's quotas (administrators).
pub(super) async fn of_users(
    State(state): State<ApiState>,
    Admin(admin): Admin,
    Query(query): Query<ServiceQuotasQuery>,
) -> Result<Json<ServiceQuotas>, AccountError> {
    let caller = admin.caller();
    let projects = ServiceQuotasQuery::ids(query.project.as_deref());
    let users = match ServiceQuotasQuery::ids(query.user.as_deref()) {
        Some(ids) => {
            let mut users = Vec::new();
            for id in ids {
                let user = match state.identity.user(caller, &id).await {
                    Ok(user) => user,
                    Err(IdentityError::NotFound { .. }) => {
                        return Err(AccountError::not_found(format!("no user with UUID {id}")));
                    }
                    Err(other) => return Err(other.into()),
                };
                users.push(user.id);
            }
            users
        }
        None => state
            .identity
            .users(caller, &UserFilter::default())
            .await?
            .into_iter()
            .map(|u| u.id)
            .collect(),
    };
    let mut all = ServiceQuotas::new();
    for user_id in users {
        let quotas = state.quotas.user_quotas(caller, &user_id).await?;
        all.insert(user_id, user_quotas(quotas, projects.as_deref()));
    }
    Ok(Json(all))
}

/// `GET /service_project_quotas[?project=p,q]`: every project's own quotas
/// (administrators).
pub(super) async fn of_projects(
    State(state): State<ApiState>,
    Admin(admin): Admin,
    Query(query): Query<ServiceQuotasQuery>,
) -> Result<Json<ServiceProjectQuotas>, AccountError> {
    let caller = admin.caller();
    if query.user.is_some() {
        return Err(AccountError::bad_request(
            "service_project_quotas takes no user filter",
        ));
    }
    let ids = match ServiceQuotasQuery::ids(query.project.as_deref()) {
        Some(ids) => {
            for id in &ids {
                state.quotas.project(caller, id).await?;
            }
            ids
        }
        None => state
            .identity
            .projects(caller, &ProjectFilter::default())
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect(),
    };
    let mut all = ServiceProjectQuotas::new();
    for id in ids {
        let quota = state.quotas.project_quota(caller, &id).await?;
        all.insert(id, project_quotas(&quota));
    }
    Ok(Json(all))
}

/// `GET /resources`.
pub(super) async fn resources(
    State(state): State<ApiState>,
    _user: User,
) -> Result<Json<Resources>, AccountError> {
    let resources = state
        .quotas
        .resources()
        .await?
        .into_iter()
        .map(|r| {
            let unit = (r.unit != Unit::Count.as_str()).then_some(r.unit);
            let info = ResourceInfo {
                service: r.service,
                description: r.description,
                unit,
                ui_visible: true,
                api_visible: true,
            };
            (r.name, info)
        })
        .collect();
    Ok(Json(resources))
}

/// A user's quotas by project, of the projects in `only` if given.
fn user_quotas(quotas: Vec<ProjectQuota>, only: Option<&[String]>) -> UserQuotas {
    quotas
        .into_iter()
        .filter(|q| only.is_none_or(|ids| ids.contains(&q.project_id)))
        .map(|quota| {
            let resources = quota
                .member
                .iter()
                .map(|(resource, member)| {
                    let project = quota.project.get(resource).copied().unwrap_or_default();
                    (resource.clone(), quota_view(member, &project))
                })
                .collect();
            (quota.project_id, resources)
        })
        .collect()
}

fn quota_view(member: &HoldingView, project: &HoldingView) -> QuotaView {
    QuotaView {
        limit: member.limit,
        usage: member.usage,
        pending: member.pending,
        project_limit: project.limit,
        project_usage: project.usage,
        project_pending: project.pending,
    }
}

fn project_quotas(quota: &ProjectQuota) -> ProjectQuotas {
    quota
        .project
        .iter()
        .map(|(resource, held)| {
            let view = ProjectQuotaView {
                project_limit: held.limit,
                project_usage: held.usage,
                project_pending: held.pending,
            };
            (resource.clone(), view)
        })
        .collect()
}
