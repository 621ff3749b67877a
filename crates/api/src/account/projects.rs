//! `GET /projects`, `POST /projects` (apply), `GET /projects/{id}` and `PUT` or `POST
//! /projects/{id}` (apply for a change).

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use nefos_account_api::{Applied, ProjectSpec, ProjectView, ProjectsQuery};
use nefos_identity::ProjectFilter;
use nefos_quota::projects::{ApplicationSpec, Grant, Policy, ProjectQuery};

use super::error::AccountError;
use super::extract::{Body, Id, Query, User};
use super::{dates, views};
use crate::ApiState;

const STATES: &[&str] = &[
    "uninitialized",
    "active",
    "suspended",
    "terminated",
    "deleted",
];

/// `GET /projects[?state=&owner=&name=&mode=]`.
pub(super) async fn list(
    State(state): State<ApiState>,
    user: User,
    Query(query): Query<ProjectsQuery>,
) -> Result<Json<Vec<ProjectView>>, AccountError> {
    if let Some(wanted) = &query.state
        && !STATES.contains(&wanted.as_str())
    {
        return Err(AccountError::bad_request(format!(
            "unknown project state {wanted:?}: one of {}",
            STATES.join(", ")
        )));
    }
    let mut filter = ProjectQuery {
        state: query.state,
        owner_id: query.owner,
        name: query.name,
        all: false,
    };
    let mut members_of: Option<BTreeSet<String>> = None;
    match query.mode.as_deref().unwrap_or("default") {
        "default" | "related" => filter.all = user.0.is_cloud_admin(),
        "owner" => {
            if filter.owner_id.as_deref().is_some_and(|o| o != user.id()) {
                return Ok(Json(Vec::new()));
            }
            filter.owner_id = Some(user.id().to_owned());
        }
        "member" => {
            // An accepted member holds a role on the project (its personal project too).
            let mine = ProjectFilter {
                member: Some(user.id().to_owned()),
                ..ProjectFilter::default()
            };
            let ids = state
                .identity
                .projects(user.caller(), &mine)
                .await?
                .into_iter()
                .map(|p| p.id)
                .collect();
            members_of = Some(ids);
        }
        other => {
            return Err(AccountError::bad_request(format!(
                "unknown mode {other:?}: default, related, member or owner"
            )));
        }
    }
    let projects = state.quotas.projects(user.caller(), &filter).await?;
    let views = projects
        .into_iter()
        .filter(|p| {
            members_of
                .as_ref()
                .is_none_or(|ids| ids.contains(&p.id) && p.state == "active")
        })
        .map(views::project)
        .collect();
    Ok(Json(views))
}

/// `GET /projects/{id}`.
pub(super) async fn show(
    State(state): State<ApiState>,
    user: User,
    Id(id): Id,
) -> Result<Json<ProjectView>, AccountError> {
    let project = state.quotas.project(user.caller(), &id).await?;
    Ok(Json(views::project(project)))
}

/// `POST /projects`: applies for a new project, which exists (uninitialized) until an
/// administrator approves or denies the application. 201 `{"id", "application"}`.
pub(super) async fn apply(
    State(state): State<ApiState>,
    user: User,
    Body(request): Body<ProjectSpec>,
) -> Result<(StatusCode, Json<Applied>), AccountError> {
    check_applicant(&user, &request)?;
    let name = request
        .name
        .ok_or_else(|| AccountError::bad_request("the project needs a name"))?;
    let end_date = request
        .end_date
        .ok_or_else(|| AccountError::bad_request("the project needs an end_date"))?;
    let spec = ApplicationSpec {
        project_id: None,
        name,
        description: request.description.unwrap_or_default(),
        homepage: request.homepage.unwrap_or_default(),
        start_at: optional_date("start_date", request.start_date.as_deref())?,
        end_at: dates::parse("end_date", &end_date)?,
        join_policy: policy(request.join_policy.as_deref(), Policy::Moderated)?,
        leave_policy: policy(request.leave_policy.as_deref(), Policy::Auto)?,
        max_members: request.max_members,
        resources: request
            .resources
            .unwrap_or_default()
            .into_iter()
            .map(|(resource, g)| (resource, grant(g)))
            .collect(),
        comments: request.comments.unwrap_or_default(),
    };
    let application = state.quotas.apply(user.caller(), spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(Applied {
            id: application.project_id,
            application: application.id,
        }),
    ))
}

/// `PUT /projects/{id}` (Astakos) or `POST`: the project's owner applies for a change;
/// what the request leaves out stays as the project has it, and the grants it names are
/// changed, the others kept. 201 `{"id", "application"}`.
pub(super) async fn modify(
    State(state): State<ApiState>,
    user: User,
    Id(id): Id,
    Body(request): Body<ProjectSpec>,
) -> Result<(StatusCode, Json<Applied>), AccountError> {
    check_applicant(&user, &request)?;
    let current = state.quotas.project(user.caller(), &id).await?;
    let end_at = match request.end_date.as_deref() {
        Some(text) => dates::parse("end_date", text)?,
        None => current
            .end_at
            .ok_or_else(|| AccountError::bad_request("the project needs an end_date"))?,
    };
    let start_at = match request.start_date.as_deref() {
        Some(text) => Some(dates::parse("start_date", text)?),
        None => current.start_at,
    };
    let join_default = Policy::parse(&current.join_policy)?;
    let leave_default = Policy::parse(&current.leave_policy)?;
    let mut resources = current.resources;
    for (resource, g) in request.resources.unwrap_or_default() {
        resources.insert(resource, grant(g));
    }
    let spec = ApplicationSpec {
        project_id: Some(id),
        name: request.name.unwrap_or(current.name),
        description: request.description.unwrap_or(current.description),
        homepage: request.homepage.unwrap_or(current.homepage),
        start_at,
        end_at,
        join_policy: policy(request.join_policy.as_deref(), join_default)?,
        leave_policy: policy(request.leave_policy.as_deref(), leave_default)?,
        max_members: request.max_members.or(current.max_members),
        resources,
        comments: request.comments.unwrap_or_default(),
    };
    let application = state.quotas.apply(user.caller(), spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(Applied {
            id: application.project_id,
            application: application.id,
        }),
    ))
}

/// What nefos does not take: applications for another owner, private projects.
fn check_applicant(user: &User, request: &ProjectSpec) -> Result<(), AccountError> {
    if request.owner.as_deref().is_some_and(|o| o != user.id()) {
        return Err(AccountError::bad_request(
            "nefos takes applications from the project's owner only: leave out owner",
        ));
    }
    if request.private == Some(true) {
        return Err(AccountError::bad_request(
            "nefos has no private projects: every active project is visible to its users",
        ));
    }
    Ok(())
}

fn optional_date(field: &str, text: Option<&str>) -> Result<Option<i64>, AccountError> {
    text.map(|t| dates::parse(field, t)).transpose()
}

fn policy(text: Option<&str>, default: Policy) -> Result<Policy, AccountError> {
    match text {
        Some(text) => Ok(Policy::parse(text)?),
        None => Ok(default),
    }
}

fn grant(view: nefos_account_api::GrantView) -> Grant {
    Grant {
        member_capacity: view.member_capacity,
        project_capacity: view.project_capacity,
    }
}
