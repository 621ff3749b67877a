//! `/v2/images` and `/v2/images/{id}`: create, list, show, update, delete; tags and the
//! deactivate/reactivate actions.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use nefos_image_api::glance::{self, ImageList, ImageView};

use super::error::GlanceError;
use super::list_query::list_query;
use super::request::{GlanceUser, json_document, new_image, patch, query_pairs};
use super::views::image_view;
use crate::ApiState;

pub(crate) async fn create(
    State(state): State<ApiState>,
    user: GlanceUser,
    body: Bytes,
) -> Result<Response, GlanceError> {
    let new = new_image(json_document(&body)?)?;
    let image = state.images.create(user.caller(), new).await?;
    let view = image_view(&image);
    let mut response = (StatusCode::CREATED, Json(&view)).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!(
        "{}{}{}",
        state.public_url(),
        nefos_image_api::PREFIX,
        view.self_link
    )) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(
        glance::HEADER_IMPORT_METHODS,
        HeaderValue::from_static(glance::IMPORT_GLANCE_DIRECT),
    );
    headers.insert(
        glance::HEADER_STORE_IDS,
        HeaderValue::from_static(glance::STORE_ID),
    );
    Ok(response)
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    user: GlanceUser,
    RawQuery(raw): RawQuery,
) -> Result<Json<ImageList>, GlanceError> {
    let pairs = query_pairs(raw.as_deref())?;
    let query = list_query(&pairs)?;
    let page = state.images.list(user.caller(), &query).await?;
    let next = page.next_marker.map(|marker| {
        let mut next = format!(
            "{}?marker={}",
            glance::IMAGES,
            percent_encoding::utf8_percent_encode(&marker, QUERY_VALUE)
        );
        for (key, value) in pairs.iter().filter(|(k, _)| k != "marker") {
            next.push('&');
            next.push_str(&percent_encoding::utf8_percent_encode(key, QUERY_VALUE).to_string());
            next.push('=');
            next.push_str(&percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string());
        }
        next
    });
    Ok(Json(ImageList {
        images: page.images.iter().map(image_view).collect(),
        first: glance::IMAGES.to_owned(),
        schema: glance::SCHEMA_IMAGES.to_owned(),
        next,
    }))
}

/// What stays literal in a query value of a `next` link.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b':');

pub(crate) async fn show(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
) -> Result<Json<ImageView>, GlanceError> {
    let image = state.images.get(user.caller(), &id).await?;
    Ok(Json(image_view(&image)))
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ImageView>, GlanceError> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if media_type != glance::PATCH_MEDIA_TYPE && media_type != glance::PATCH_MEDIA_TYPE_2_0 {
        return Err(GlanceError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Unsupported Content-Type: use {} for image updates",
                glance::PATCH_MEDIA_TYPE
            ),
        ));
    }
    let changes = patch(json_document(&body)?)?;
    let image = state.images.update(user.caller(), &id, changes).await?;
    Ok(Json(image_view(&image)))
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
) -> Result<StatusCode, GlanceError> {
    state.images.delete(user.caller(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn add_tag(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, GlanceError> {
    state.images.add_tag(user.caller(), &id, &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn remove_tag(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, GlanceError> {
    state.images.remove_tag(user.caller(), &id, &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn deactivate(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
) -> Result<StatusCode, GlanceError> {
    state.images.deactivate(user.caller(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn reactivate(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
) -> Result<StatusCode, GlanceError> {
    state.images.reactivate(user.caller(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
