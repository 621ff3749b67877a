//! Plankton's `x-image-meta-*` headers: images rendered into them, and request headers
//! read into parameters, as Synnefo names, quotes and normalises them.

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use nefos_db::time::from_micros;
use nefos_image::{Image, ImageStatus, Visibility};
use nefos_image_api::plankton::{self as p, ImageDetail, ImageSummary};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::error::PlanktonError;

/// What Python's `urllib.quote` leaves alone (Synnefo quotes names and values with it).
const QUOTE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');

fn quote(text: &str) -> String {
    utf8_percent_encode(text, QUOTE).to_string()
}

/// Synnefo's dates: `YYYY-MM-DD HH:MM:SS`, UTC.
fn plankton_time(micros: i64) -> String {
    from_micros(micros).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Plankton's status of an image, as listings show it.
fn status(image: &Image) -> &'static str {
    match image.status {
        ImageStatus::Active => p::STATUS_AVAILABLE,
        ImageStatus::Killed => p::STATUS_ERROR,
        _ => p::STATUS_UNAVAILABLE,
    }
}

/// Plankton has one flag for "everyone may use it": Glance's public and community both.
pub(crate) fn is_public(image: &Image) -> bool {
    matches!(image.visibility, Visibility::Public | Visibility::Community)
}

fn location(image: &Image) -> String {
    image
        .location
        .as_ref()
        .map(|l| {
            format!(
                "pithos://AUTH_{}/{}/{}",
                quote(&l.project_id),
                quote(&l.container),
                quote(&l.name)
            )
        })
        .unwrap_or_default()
}

/// The short entry of `GET /images`, or with `detail` the whole one.
pub(crate) fn summary(image: &Image, detail: bool) -> ImageSummary {
    ImageSummary {
        id: image.id.clone(),
        name: image.name.clone().unwrap_or_default(),
        status: status(image).to_owned(),
        disk_format: image.disk_format.clone().unwrap_or_default(),
        container_format: image.container_format.clone().unwrap_or_default(),
        size: image.size.unwrap_or(0),
        detail: detail.then(|| ImageDetail {
            checksum: image.checksum.clone().unwrap_or_default(),
            location: location(image),
            created_at: plankton_time(image.created_at),
            updated_at: plankton_time(image.updated_at),
            deleted_at: String::new(),
            is_public: is_public(image),
            owner: image.owner.clone(),
            is_snapshot: false,
            description: image.properties.get("description").cloned(),
            properties: image.properties.clone(),
        }),
    }
}

/// A `200 OK` whose headers describe `image` (register, `HEAD`, update).
pub(crate) fn image_response(image: &Image) -> Response {
    let header_status = match status(image) {
        p::STATUS_UNAVAILABLE => p::STATUS_SAVING,
        other => other,
    };
    let mut fields: Vec<(String, String)> = vec![
        (p::META_ID.to_owned(), image.id.clone()),
        (
            p::META_NAME.to_owned(),
            quote(image.name.as_deref().unwrap_or("")),
        ),
        (
            p::META_DISK_FORMAT.to_owned(),
            image.disk_format.clone().unwrap_or_default(),
        ),
        (
            p::META_CONTAINER_FORMAT.to_owned(),
            image.container_format.clone().unwrap_or_default(),
        ),
        (p::META_SIZE.to_owned(), image.size.unwrap_or(0).to_string()),
        (
            p::META_CHECKSUM.to_owned(),
            image.checksum.clone().unwrap_or_default(),
        ),
        (p::META_LOCATION.to_owned(), location(image)),
        (
            p::META_CREATED_AT.to_owned(),
            plankton_time(image.created_at),
        ),
        (
            p::META_UPDATED_AT.to_owned(),
            plankton_time(image.updated_at),
        ),
        (p::META_DELETED_AT.to_owned(), String::new()),
        (p::META_STATUS.to_owned(), header_status.to_owned()),
        (
            p::META_IS_PUBLIC.to_owned(),
            if is_public(image) { "True" } else { "False" }.to_owned(),
        ),
        (p::META_OWNER.to_owned(), image.owner.clone()),
        (p::META_IS_SNAPSHOT.to_owned(), "False".to_owned()),
    ];
    if let Some(description) = image.properties.get("description") {
        fields.push((p::META_DESCRIPTION.to_owned(), quote(description)));
    }
    for (key, value) in &image.properties {
        fields.push((
            format!("{}{}", p::PROPERTY_PREFIX, quote(&key.replace('_', "-"))).to_ascii_lowercase(),
            quote(value),
        ));
    }
    let mut response = (
        StatusCode::OK,
        [(
            http::header::CONTENT_TYPE,
            "application/json; charset=UTF-8",
        )],
    )
        .into_response();
    let headers = response.headers_mut();
    for (name, value) in fields {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
    response
}

/// The `x-image-meta-*` parameters of a request, Synnefo's way: names lower case with
/// punctuation as `_`, `name` and properties URL-unquoted.
#[derive(Debug, Default)]
pub(crate) struct MetaParams {
    pub fields: BTreeMap<String, String>,
    pub properties: BTreeMap<String, String>,
}

pub(crate) fn meta_params(headers: &HeaderMap) -> Result<MetaParams, PlanktonError> {
    let mut params = MetaParams::default();
    for (name, value) in headers {
        let name = name.as_str();
        let Some(rest) = name.strip_prefix(p::META_PREFIX) else {
            continue;
        };
        let value = value.to_str().map_err(|_| {
            PlanktonError::bad_request(format!("The {name} header is not ASCII text"))
        })?;
        let unquoted = || {
            percent_decode_str(value)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| PlanktonError::bad_request(format!("The {name} header is not UTF-8")))
        };
        if let Some(key) = name.strip_prefix(p::PROPERTY_PREFIX) {
            let key = percent_decode_str(key)
                .decode_utf8()
                .map_err(|_| PlanktonError::bad_request("A property name is not UTF-8"))?;
            params.properties.insert(p::property_key(&key), unquoted()?);
        } else {
            let key = p::property_key(rest);
            let value = match key.as_str() {
                "name" | "description" | "location" => unquoted()?,
                _ => value.to_owned(),
            };
            params.fields.insert(key, value);
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kamaki_headers_are_normalised() {
        let mut headers = HeaderMap::new();
        headers.insert("x-image-meta-name", HeaderValue::from_static("my%20image"));
        headers.insert(
            "x-image-meta-property-os_family",
            HeaderValue::from_static("linux"),
        );
        headers.insert(
            "x-image-meta-disk-format",
            HeaderValue::from_static("diskdump"),
        );
        let params = meta_params(&headers).unwrap_or_default();
        assert_eq!(
            params.fields.get("name").map(String::as_str),
            Some("my image")
        );
        assert_eq!(
            params.fields.get("disk_format").map(String::as_str),
            Some("diskdump")
        );
        assert_eq!(
            params.properties.get("os_family").map(String::as_str),
            Some("linux")
        );
    }
}
