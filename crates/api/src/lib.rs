//! The nefos HTTP APIs (docs/design.md §8). Each API family is a router that parses the
//! request, calls a domain crate and renders the answer in that family's conventions; no
//! domain logic lives here. [`router`] is every public API; [`internal_router`] is the API
//! of node agents, served on a listener of its own (docs/design.md §3).

mod account;
mod auth;
mod catalog;
mod clean_text;
mod client_address;
mod compute;
mod error;
mod extract;
mod identity;
mod image;
mod internal;
mod middleware;
mod network;
mod object_store;
pub mod server;
mod slow_body;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use nefos_compute::{Compute, NodeRegistry};
use nefos_identity::Identity;
use nefos_image::Images;
use nefos_quota::Quotas;
use nefos_storage::Storage;

pub use catalog::{Catalog, CatalogService};
pub use client_address::ClientAddress;
pub use error::{ApiError, chain as error_chain};
pub use internal::{InternalState, router as internal_router};
pub use server::{HttpLimits, TlsFiles};
pub use slow_body::BodyPace;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub identity: Identity,
    pub storage: Storage,
    pub images: Images,
    pub quotas: Quotas,
    pub nodes: NodeRegistry,
    /// Absent where no compute service is set up (some tests serve storage only).
    pub compute: Option<Compute>,
    pub networks: nefos_network::Networks,
    pub catalog: Arc<Catalog>,
}

impl ApiState {
    pub fn new(identity: Identity, storage: Storage, public_url: &str) -> Self {
        let networks = nefos_network::Networks::new(
            identity.database().clone(),
            storage.quotas().clone(),
            nefos_network::NetworkSettings::default(),
        );
        ApiState {
            nodes: NodeRegistry::new(identity.database().clone()),
            identity,
            quotas: storage.quotas().clone(),
            images: Images::new(storage.clone()),
            storage,
            compute: None,
            networks,
            catalog: Arc::new(Catalog::new(public_url)),
        }
    }

    /// The compute service, or Nova's 503 where there is none.
    pub(crate) fn compute(&self) -> Result<&Compute, compute::NovaError> {
        self.compute.as_ref().ok_or_else(|| {
            compute::NovaError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "The compute service is not running here.",
            )
        })
    }

    pub fn public_url(&self) -> &str {
        self.catalog.public_url()
    }
}

/// Every API nefos serves, with request ids and the access log around them.
pub fn router(state: ApiState, limits: &HttpLimits) -> Router {
    let max_header_bytes = limits.max_header_bytes;
    let body_pace = limits.body_pace;
    // A service of its own, so that Synnefo's account names are rewritten before its
    // routes are matched (a router's layers run after its routing).
    let object_service = tower::Layer::layer(
        &axum::middleware::from_fn_with_state(state.clone(), object_store::synnefo_account_names),
        object_store::router()
            .layer(axum::middleware::from_fn(clean_text::swift))
            .fallback(error::unknown_route)
            .layer(axum::middleware::from_fn(object_store::reply_headers))
            .with_state(state.clone()),
    );
    Router::new()
        .route("/healthz", get(health))
        .nest(
            "/identity",
            identity::router().layer(axum::middleware::from_fn(clean_text::keystone)),
        )
        .nest(
            nefos_account_api::PREFIX,
            account::router().layer(axum::middleware::from_fn(clean_text::account)),
        )
        .nest(
            nefos_image_api::PREFIX,
            image::router().layer(axum::middleware::from_fn(clean_text::image)),
        )
        .nest(nefos_compute_api::PREFIX, compute::router())
        .nest(
            nefos_network_api::PREFIX,
            network::router().layer(axum::middleware::from_fn(clean_text::neutron)),
        )
        .route(
            &format!("{}/", nefos_compute_api::PREFIX),
            get(compute::version_list),
        )
        // The catalog's object-store endpoint, and Swift's own place for it (where v1
        // authentication and Swift's test suites expect it): one service at both.
        .nest_service("/object/v1", object_service.clone())
        .nest_service("/v1", object_service)
        .merge(
            object_store::root_router()
                .layer(axum::middleware::from_fn(clean_text::swift))
                .layer(axum::middleware::from_fn(object_store::reply_headers)),
        )
        .fallback(error::unknown_route)
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn(move |request, next| {
            slow_body::pace_bodies(body_pace, request, next)
        }))
        .layer(axum::middleware::from_fn(move |request, next| {
            middleware::limit_header_size(max_header_bytes, request, next)
        }))
        .layer(axum::middleware::from_fn(
            middleware::request_id_and_access_log,
        ))
}

/// Liveness and database reachability.
async fn health(
    axum::extract::State(state): axum::extract::State<ApiState>,
) -> Result<&'static str, ApiError> {
    sqlx_ping(&state).await?;
    Ok("ok\n")
}

pub(crate) async fn sqlx_ping(state: &ApiState) -> Result<(), ApiError> {
    state
        .identity
        .database()
        .schema_version()
        .await
        .map_err(|e| {
            tracing::error!(error = %error::chain(&e), "health check: database unreachable");
            ApiError::unavailable("the database is unreachable")
        })?;
    Ok(())
}
