//! Synnefo's Cyclades compute API at `/compute/v2.0` (docs/servers.md, "kamaki"): the same
//! servers, flavors and images as Nova's `/v2.1`, in the shapes kamaki 0.16 reads. Errors
//! keep Nova's envelope (`{"itemNotFound": {"code", "message"}}`), which is Cyclades' too.

mod console;
mod servers;
mod views;

pub(crate) use views::time;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::routing::{get, post};
use http::StatusCode;
use http::request::Parts;
use nefos_compute_api::cyclades::{self as c, paths};
use nefos_compute_api::types::Link;
use nefos_identity::AuthContext;

use super::NovaError;
use super::request::Nova;
use crate::ApiState;

/// A Cyclades request: who asks, and where links point.
#[derive(Debug, Clone)]
pub(crate) struct Cyclades {
    pub caller: AuthContext,
    pub request_id: String,
    pub public_url: String,
    /// `{public}/compute/v2.0`.
    pub base: String,
}

impl FromRequestParts<ApiState> for Cyclades {
    type Rejection = NovaError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, NovaError> {
        let nova = Nova::from_request_parts(parts, state).await?;
        Ok(Cyclades {
            caller: nova.caller,
            request_id: nova.request_id,
            public_url: state.public_url().to_owned(),
            base: format!("{}{}", nova.base, c::PREFIX),
        })
    }
}

impl Cyclades {
    /// `self` and `bookmark` links to `path`, both under `/v2.0` as Cyclades gives them.
    pub fn links(&self, path: &str) -> Vec<Link> {
        let href = format!("{}{path}", self.base);
        vec![Link::new("self", href.clone()), Link::new("bookmark", href)]
    }
}

/// Routes under `/compute/v2.0`.
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route(paths::SERVERS, get(servers::list).post(servers::create))
        .route(paths::SERVERS_DETAIL, get(servers::detail))
        .route(
            paths::SERVER,
            get(servers::show)
                .put(servers::update)
                .delete(servers::delete),
        )
        .route(paths::SERVER_ACTION, post(servers::action))
        .route(paths::SERVER_IPS, get(servers::ips))
        .route(paths::SERVER_DIAGNOSTICS, get(servers::diagnostics))
        .route(
            paths::SERVER_METADATA,
            get(servers::metadata).post(servers::merge_metadata),
        )
        .route(
            paths::SERVER_METADATA_KEY,
            get(servers::metadata_item)
                .put(servers::put_metadata_item)
                .delete(servers::delete_metadata_item),
        )
        .route(paths::FLAVORS, get(flavors))
        .route(paths::FLAVORS_DETAIL, get(flavors_detail))
        .route(paths::FLAVOR, get(flavor))
        .route(paths::IMAGE, get(image))
        .fallback(|| async { NovaError::bad_request("API endpoint not found") })
}

async fn flavors(
    State(state): State<ApiState>,
    cyclades: Cyclades,
) -> Result<Json<c::FlavorList<c::FlavorBrief>>, NovaError> {
    let flavors = state.compute()?.list_flavors(&cyclades.caller).await?;
    Ok(Json(c::FlavorList {
        flavors: flavors
            .iter()
            .map(|f| views::flavor_brief(&cyclades, f))
            .collect(),
    }))
}

async fn flavors_detail(
    State(state): State<ApiState>,
    cyclades: Cyclades,
) -> Result<Json<c::FlavorList<c::Flavor>>, NovaError> {
    let flavors = state.compute()?.list_flavors(&cyclades.caller).await?;
    Ok(Json(c::FlavorList {
        flavors: flavors
            .iter()
            .map(|f| views::flavor(&cyclades, f))
            .collect(),
    }))
}

async fn flavor(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    Path(id): Path<String>,
) -> Result<Json<c::FlavorBody>, NovaError> {
    let flavor = state.compute()?.flavor(&cyclades.caller, &id).await?;
    Ok(Json(c::FlavorBody {
        flavor: views::flavor(&cyclades, &flavor),
    }))
}

/// An image as the compute endpoint shows it (kamaki reads it before creating a server,
/// for the `os` and `users` it copies into the server's metadata).
async fn image(
    State(state): State<ApiState>,
    cyclades: Cyclades,
    Path(id): Path<String>,
) -> Result<Json<c::ImageBody>, NovaError> {
    let image = state
        .images
        .get(nefos_image::Caller::new(&cyclades.caller), &id)
        .await
        .map_err(|error| match error {
            nefos_image::ImageError::NotFound { .. } => {
                NovaError::new(StatusCode::NOT_FOUND, "Image not found.")
            }
            other => NovaError::from(nefos_compute::ComputeError::Image(other)),
        })?;
    Ok(Json(c::ImageBody {
        image: views::image(&cyclades, &image),
    }))
}
