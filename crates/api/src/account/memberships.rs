//! `/projects/memberships`: joining, enrolling, and acting on memberships.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use nefos_account_api::{
    MembershipAction, MembershipCreated, MembershipRequest, MembershipView, MembershipsQuery,
};
use nefos_identity::{Caller, IdentityError, UserFilter};
use nefos_quota::projects::MembershipAction as Action;

use super::error::AccountError;
use super::extract::{Body, Id, Query, User};
use super::views;
use crate::ApiState;

/// `GET /projects/memberships[?project=]`: the caller's own memberships and those of the
/// projects it owns (every one for an administrator).
pub(super) async fn list(
    State(state): State<ApiState>,
    user: User,
    Query(query): Query<MembershipsQuery>,
) -> Result<Json<Vec<MembershipView>>, AccountError> {
    let memberships = state
        .quotas
        .memberships(user.caller(), query.project.as_deref())
        .await?;
    Ok(Json(
        memberships.into_iter().map(views::membership).collect(),
    ))
}

/// `GET /projects/memberships/{id}`.
pub(super) async fn show(
    State(state): State<ApiState>,
    user: User,
    id: Id,
) -> Result<Json<MembershipView>, AccountError> {
    let id = id.number("membership")?;
    let membership = state
        .quotas
        .memberships(user.caller(), None)
        .await?
        .into_iter()
        .find(|m| m.id == id)
        .ok_or_else(|| AccountError::not_found(format!("no membership {id}")))?;
    Ok(Json(views::membership(membership)))
}

/// `POST /projects/memberships`: `{"join": {"project"}}` asks to join (accepted at once
/// under an `auto` join policy); `{"enroll": {"project", "user"}}` adds a user to a
/// project the caller owns. 200 `{"id"}`.
pub(super) async fn create(
    State(state): State<ApiState>,
    user: User,
    Body(request): Body<MembershipRequest>,
) -> Result<Json<MembershipCreated>, AccountError> {
    let membership = match request {
        MembershipRequest::Join { project } => {
            let project_id = project.to_text();
            // A project the caller cannot see (not approved yet) is missing, not closed.
            state.quotas.project(user.caller(), &project_id).await?;
            state.quotas.join(user.caller(), &project_id).await?
        }
        MembershipRequest::Enroll {
            project,
            user: member,
        } => {
            let project_id = project.to_text();
            // Only the owner (or an administrator) learns whether the user exists.
            let info = state.quotas.project(user.caller(), &project_id).await?;
            if info.owner_id.as_deref() != Some(user.id()) && !user.0.is_cloud_admin() {
                return Err(AccountError::not_found(format!(
                    "project {project_id:?} not found"
                )));
            }
            let member_id = find_user(&state, &member).await?;
            state
                .quotas
                .enroll(user.caller(), &project_id, &member_id)
                .await?
        }
    };
    Ok(Json(MembershipCreated { id: membership.id }))
}

/// `POST /projects/memberships/{id}/action`: leave, cancel (the member); accept, reject,
/// remove (the project's owner). 200 without a body. A member who leaves or is removed
/// loses the tokens scoped to the project at once.
pub(super) async fn act(
    State(state): State<ApiState>,
    user: User,
    id: Id,
    Body(action): Body<MembershipAction>,
) -> Result<StatusCode, AccountError> {
    let id = id.number("membership")?;
    let action = match action {
        MembershipAction::Leave(_) => Action::Leave,
        MembershipAction::Cancel(_) => Action::Cancel,
        MembershipAction::Accept(_) => Action::Accept,
        MembershipAction::Reject(_) => Action::Reject,
        MembershipAction::Remove(_) => Action::Remove,
    };
    let updated = state
        .quotas
        .act_on_membership(user.caller(), id, action)
        .await?;
    if matches!(updated.state.as_str(), "left" | "removed") {
        // The quota engine revoked the member's tokens scoped to the project in the
        // database; this process must not keep trusting them from its cache.
        state.identity.forget_cached_tokens();
    }
    Ok(StatusCode::OK)
}

/// The user an enrolment names: by id, by name, or by email address. An unknown user is
/// a conflict, as in Astakos.
async fn find_user(state: &ApiState, who: &str) -> Result<String, AccountError> {
    let unknown = || {
        AccountError::new(
            StatusCode::CONFLICT,
            format!("no user with the id, name or email {who:?}"),
        )
    };
    match state
        .identity
        .user_by_id_or_name(Caller::Operator, who)
        .await
    {
        Ok(user) => return Ok(user.id),
        Err(IdentityError::NotFound { .. }) => {}
        Err(other) => return Err(other.into()),
    }
    if !who.contains('@') {
        return Err(unknown());
    }
    state
        .identity
        .users(Caller::Operator, &UserFilter::default())
        .await?
        .into_iter()
        .find(|u| {
            u.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(who))
        })
        .map(|u| u.id)
        .ok_or_else(unknown)
}
