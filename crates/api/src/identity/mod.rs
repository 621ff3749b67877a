//! Identity APIs under `/identity`: Keystone v3 and Synnefo's `/v2.0/tokens`.

mod discovery;
mod projects;
mod roles;
mod synnefo_v2;
mod tokens;
mod users;
mod views;

use axum::Router;
use axum::routing::{get, post, put};

use crate::ApiState;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/", get(discovery::versions))
        .route("/v3", get(discovery::v3))
        .route("/v3/", get(discovery::v3))
        .route(
            "/v3/auth/tokens",
            post(tokens::issue)
                .get(tokens::validate)
                .head(tokens::check)
                .delete(tokens::revoke),
        )
        .route("/v3/auth/catalog", get(tokens::catalog))
        .route("/v3/auth/projects", get(tokens::projects))
        .route("/v3/users", get(users::list).post(users::create))
        .route(
            "/v3/users/{user_id}",
            get(users::show).patch(users::update).delete(users::delete),
        )
        .route("/v3/users/{user_id}/projects", get(users::projects))
        .route("/v3/users/{user_id}/password", post(users::change_password))
        .route("/v3/projects", get(projects::list).post(projects::create))
        .route(
            "/v3/projects/{project_id}",
            get(projects::show)
                .patch(projects::update)
                .delete(projects::delete),
        )
        .route(
            "/v3/projects/{project_id}/users/{user_id}/roles",
            get(roles::list_on_project),
        )
        .route(
            "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}",
            put(roles::grant)
                .head(roles::check)
                .get(roles::check)
                .delete(roles::revoke),
        )
        .route("/v3/roles", get(roles::list))
        .route("/v3/roles/{role_id}", get(roles::show))
        .route("/v3/role_assignments", get(roles::assignments))
        .route("/v3/domains", get(discovery::domains))
        .route("/v3/domains/{domain_id}", get(discovery::domain))
        .route("/v2.0/tokens", post(synnefo_v2::tokens))
}
