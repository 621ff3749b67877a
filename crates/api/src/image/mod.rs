//! The image APIs under [`nefos_image_api::PREFIX`] (docs/images.md): Glance v2 at `/v2`
//! with its version document at the root, and Synnefo's Plankton at `/v1.0`
//! (`plankton/`), both over [`nefos_image::Images`], in the shapes of [`nefos_image_api`].
//! Glance's errors (`error.rs`) are the one mapping of `ImageError` to statuses.

mod data;
mod error;
mod images;
mod list_query;
mod members;
mod plankton;
mod request;
mod schemas;
mod views;

use axum::Router;
use axum::routing::{get, post, put};
use nefos_image_api::glance as paths;

use crate::ApiState;

pub(crate) use error::GlanceError;

/// Routes under [`nefos_image_api::PREFIX`].
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route(paths::ROOT, get(schemas::versions))
        .route(paths::VERSIONS, get(schemas::v2_versions))
        .route(paths::V2_ROOT, get(schemas::v2_versions))
        .route(paths::IMAGES, get(images::list).post(images::create))
        .route(
            paths::IMAGE,
            get(images::show)
                .patch(images::update)
                .delete(images::delete),
        )
        .route(paths::IMAGE_FILE, get(data::download).put(data::upload))
        .route(paths::IMAGE_STAGE, put(data::stage))
        .route(paths::IMAGE_IMPORT, post(data::import))
        .route(paths::IMAGE_DEACTIVATE, post(images::deactivate))
        .route(paths::IMAGE_REACTIVATE, post(images::reactivate))
        .route(
            paths::IMAGE_TAG,
            put(images::add_tag).delete(images::remove_tag),
        )
        .route(paths::IMAGE_MEMBERS, get(members::list).post(members::add))
        .route(
            paths::IMAGE_MEMBER,
            get(members::show)
                .put(members::answer)
                .delete(members::remove),
        )
        .route(paths::INFO_IMPORT, get(schemas::import_info))
        .route(paths::INFO_STORES, get(schemas::stores_info))
        .route(paths::SCHEMA_IMAGE, get(schemas::image))
        .route(paths::SCHEMA_IMAGES, get(schemas::images))
        .route(paths::SCHEMA_MEMBER, get(schemas::member))
        .route(paths::SCHEMA_MEMBERS, get(schemas::members))
        .nest(
            nefos_image_api::plankton::VERSION_PREFIX,
            plankton::router(),
        )
        .nest("/v1", plankton::router())
        .fallback(error::unknown_route)
        .method_not_allowed_fallback(error::method_not_allowed)
}
