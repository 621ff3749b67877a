//! `GET /projects/apps[/{id}]`: project applications, as Astakos served them before 0.15
//! (decisions on them go through `POST /projects/{id}/action` with their `app_id`).

use axum::Json;
use axum::extract::State;
use nefos_account_api::{ApplicationView, ApplicationsQuery};
use nefos_quota::projects::Application;

use super::error::AccountError;
use super::extract::{Id, Query, User};
use super::views;
use crate::ApiState;

/// `GET /projects/apps[?project=]`: the caller's applications (every one for an
/// administrator), oldest first.
pub(super) async fn list(
    State(state): State<ApiState>,
    user: User,
    Query(query): Query<ApplicationsQuery>,
) -> Result<Json<Vec<ApplicationView>>, AccountError> {
    let applications = state
        .quotas
        .applications(user.caller(), query.project.as_deref(), None)
        .await?;
    let mut views = Vec::with_capacity(applications.len());
    for application in applications {
        views.push(view(&state, &user, application).await?);
    }
    Ok(Json(views))
}

/// `GET /projects/apps/{id}`.
pub(super) async fn show(
    State(state): State<ApiState>,
    user: User,
    Id(id): Id,
) -> Result<Json<ApplicationView>, AccountError> {
    let application = state.quotas.application(user.caller(), &id).await?;
    Ok(Json(view(&state, &user, application).await?))
}

/// An application with its project's owner.
async fn view(
    state: &ApiState,
    user: &User,
    application: Application,
) -> Result<ApplicationView, AccountError> {
    let project = state
        .quotas
        .project(user.caller(), &application.project_id)
        .await?;
    Ok(views::application(application, project.owner_id.as_deref()))
}
