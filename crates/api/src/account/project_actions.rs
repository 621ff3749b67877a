//! `POST /projects/{id}/action`: the life cycle of a project (administrators) and the
//! decisions on its pending application.
//!
//! An application is named by its nefos id (`app_id`, a UUID without hyphens, as the
//! project's `last_application.id` shows it); it must be an application of the project
//! in the path.

use axum::extract::State;
use http::StatusCode;
use nefos_account_api::{ActionArgs, ProjectAction};
use nefos_quota::projects::LifecycleAction;

use super::error::AccountError;
use super::extract::{Body, Id, User};
use crate::ApiState;

/// One action; 200 without a body.
pub(super) async fn act(
    State(state): State<ApiState>,
    user: User,
    Id(project_id): Id,
    Body(action): Body<ProjectAction>,
) -> Result<StatusCode, AccountError> {
    let caller = user.caller();
    // A project the caller cannot see is missing, whatever the action.
    state.quotas.project(caller, &project_id).await?;
    let quotas = &state.quotas;
    match action {
        ProjectAction::Suspend(_) => {
            quotas
                .change_project_state(caller, &project_id, LifecycleAction::Suspend)
                .await?;
        }
        ProjectAction::Unsuspend(_) => {
            quotas
                .change_project_state(caller, &project_id, LifecycleAction::Resume)
                .await?;
        }
        ProjectAction::Terminate(_) => {
            quotas
                .change_project_state(caller, &project_id, LifecycleAction::Terminate)
                .await?;
        }
        ProjectAction::Approve(args) => {
            let app_id = application_of(&state, &user, &project_id, &args).await?;
            quotas.approve(caller, &app_id, args.reason_text()).await?;
        }
        ProjectAction::Deny(args) => {
            let app_id = application_of(&state, &user, &project_id, &args).await?;
            quotas.deny(caller, &app_id, args.reason_text()).await?;
        }
        ProjectAction::Dismiss(args) => {
            let app_id = application_of(&state, &user, &project_id, &args).await?;
            quotas.dismiss_application(caller, &app_id).await?;
        }
        ProjectAction::Cancel(args) => {
            let app_id = application_of(&state, &user, &project_id, &args).await?;
            quotas.cancel_application(caller, &app_id).await?;
        }
    }
    Ok(StatusCode::OK)
}

/// The id of the application an action names, checked to be one of the project's.
async fn application_of(
    state: &ApiState,
    user: &User,
    project_id: &str,
    args: &ActionArgs,
) -> Result<String, AccountError> {
    let app_id = args
        .app_id
        .as_ref()
        .ok_or_else(|| AccountError::bad_request("the action needs the application's app_id"))?
        .to_text();
    let application = state.quotas.application(user.caller(), &app_id).await?;
    if application.project_id != project_id {
        return Err(AccountError::new(
            StatusCode::CONFLICT,
            format!("{app_id} is not an application of project {project_id}"),
        ));
    }
    Ok(app_id)
}
