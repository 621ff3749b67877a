//! Synnefo's Plankton, `/image/v1.0` (and `/image/v1`), for kamaki's `image` commands: an
//! object already in the store is registered as an image, and image metadata travels in
//! `x-image-meta-*` headers. The images are the ones Glance serves; this is another view
//! of the same registry (docs/images.md says how the two models meet).
//!
//! Errors are Synnefo's faults (`{"itemNotFound": {"code": 404, …}}`).

mod error;
mod headers;
mod images;
mod members;

use axum::Router;
use axum::routing::{get, put};
use nefos_image_api::plankton as paths;

use crate::ApiState;

/// Routes under [`nefos_image_api::plankton::VERSION_PREFIX`].
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route(paths::IMAGES, get(images::list).post(images::register))
        .route(
            paths::IMAGES_SLASH,
            get(images::list).post(images::register),
        )
        .route(paths::IMAGES_DETAIL, get(images::detail))
        .route(
            paths::IMAGE,
            get(images::head)
                .head(images::head)
                .put(images::update)
                .delete(images::unregister),
        )
        .route(
            paths::IMAGE_MEMBERS,
            get(members::list).put(members::replace),
        )
        .route(
            paths::IMAGE_MEMBER,
            put(members::add).delete(members::remove),
        )
        .route(paths::SHARED_IMAGES, get(members::shared_images))
        .fallback(error::unknown_route)
        .method_not_allowed_fallback(error::method_not_allowed)
}
