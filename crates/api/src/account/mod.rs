//! Synnefo's Astakos account API, `/account/v1.0` (docs/account-api.md): quotas,
//! commissions, projects and memberships over [`nefos_quota::Quotas`], in the shapes of
//! [`nefos_account_api`], which kamaki 0.16 and astakosclient speak. Errors are Astakos's
//! (`error.rs`, the one mapping of `QuotaError`).

mod applications;
mod commissions;
mod dates;
mod error;
mod extract;
mod memberships;
mod project_actions;
mod projects;
mod quotas;
mod user_catalogs;
mod views;

use axum::Router;
use axum::routing::{get, post};
use nefos_account_api::paths;

use crate::ApiState;

pub(crate) use error::AccountError;

/// Routes under [`nefos_account_api::PREFIX`].
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route(paths::QUOTAS, get(quotas::mine))
        .route(paths::SERVICE_QUOTAS, get(quotas::of_users))
        .route(paths::SERVICE_PROJECT_QUOTAS, get(quotas::of_projects))
        .route(paths::RESOURCES, get(quotas::resources))
        .route(paths::USER_CATALOGS, post(user_catalogs::lookup))
        .route(
            paths::COMMISSIONS,
            get(commissions::pending).post(commissions::issue),
        )
        .route(paths::COMMISSIONS_ACTION, post(commissions::resolve_many))
        .route(paths::COMMISSION, get(commissions::show))
        .route(paths::COMMISSION_ACTION, post(commissions::act))
        .route(paths::PROJECTS, get(projects::list).post(projects::apply))
        .route(
            paths::PROJECT,
            get(projects::show)
                .put(projects::modify)
                .post(projects::modify),
        )
        .route(paths::PROJECT_ACTION, post(project_actions::act))
        .route(
            paths::MEMBERSHIPS,
            get(memberships::list).post(memberships::create),
        )
        .route(paths::MEMBERSHIP, get(memberships::show))
        .route(paths::MEMBERSHIP_ACTION, post(memberships::act))
        .route(paths::APPLICATIONS, get(applications::list))
        .route(paths::APPLICATION, get(applications::show))
        .fallback(error::unknown_route)
        .method_not_allowed_fallback(error::method_not_allowed)
}
