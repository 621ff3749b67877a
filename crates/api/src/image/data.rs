//! An image's data: upload (`PUT …/file`), stage and import (`glance-direct`), download
//! with ranges (`GET …/file`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use nefos_image::{Arrival, ByteRangeRequest, ImageError};
use nefos_image_api::glance::{self, ImportRequest};

use super::error::GlanceError;
use super::request::{GlanceUser, json_document};
use crate::ApiState;

/// The size a client may declare for a chunked upload (Glance's size hint).
const IMAGE_SIZE_HEADER: &str = "x-openstack-image-size";

/// The body's declared length, and a refusal of anything but raw bytes.
fn upload_headers(headers: &HeaderMap) -> Result<Option<u64>, GlanceError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if content_type.is_some_and(|t| t != "application/octet-stream") {
        return Err(GlanceError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Image data must be sent as application/octet-stream",
        ));
    }
    // The length of the body, or for a chunked body the size the client declares
    // (openstacksdk sends it): reserved against the quota, and the most it may send.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .map(|v| (v, "Content-Length"))
        .or_else(|| {
            headers
                .get(IMAGE_SIZE_HEADER)
                .map(|v| (v, IMAGE_SIZE_HEADER))
        });
    match declared {
        None => Ok(None),
        Some((value, name)) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| GlanceError::bad_request(format!("{name} is not a number"))),
    }
}

pub(crate) async fn upload(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, GlanceError> {
    receive(&state, &user, &id, &headers, body, Arrival::Upload).await
}

pub(crate) async fn stage(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, GlanceError> {
    receive(&state, &user, &id, &headers, body, Arrival::Stage).await
}

async fn receive(
    state: &ApiState,
    user: &GlanceUser,
    id: &str,
    headers: &HeaderMap,
    body: Body,
    arrival: Arrival,
) -> Result<StatusCode, GlanceError> {
    let size = upload_headers(headers)?;
    state
        .images
        .receive(user.caller(), id, body.into_data_stream(), size, arrival)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn import(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, GlanceError> {
    let request: ImportRequest = serde_json::from_value(json_document(&body)?)
        .map_err(|e| GlanceError::bad_request(format!("Malformed import request: {e}")))?;
    if request.method.name != glance::IMPORT_GLANCE_DIRECT {
        return Err(GlanceError::bad_request(format!(
            "Import method {} is not valid for this cloud: it offers {}",
            request.method.name,
            glance::IMPORT_GLANCE_DIRECT
        )));
    }
    state.images.import(user.caller(), &id).await?;
    Ok(StatusCode::ACCEPTED)
}

pub(crate) async fn download(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GlanceError> {
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(value) => Some(parse_range(value.to_str().unwrap_or(""))?),
    };
    let data = match state.images.download(user.caller(), &id, range).await {
        // A queued image has no data: Glance answers 204 with no body.
        Err(ImageError::NoData { .. }) => return Ok(StatusCode::NO_CONTENT.into_response()),
        other => other?,
    };
    let (status, length) = match data.range {
        Some(range) => (StatusCode::PARTIAL_CONTENT, range.len()),
        None => (StatusCode::OK, data.size),
    };
    let mut response = Response::new(Body::from_stream(data.body));
    *response.status_mut() = status;
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(range) = data.range
        && let Ok(value) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{}",
            range.first, range.last, data.size
        ))
    {
        out.insert(header::CONTENT_RANGE, value);
    }
    if let Some(md5) = data.image.checksum.as_deref()
        && data.range.is_none()
        && let Ok(value) = HeaderValue::from_str(md5)
    {
        out.insert("content-md5", value);
    }
    Ok(response)
}

/// One range of `bytes=…` (Glance serves a single range).
fn parse_range(text: &str) -> Result<ByteRangeRequest, GlanceError> {
    let invalid = || GlanceError::bad_request(format!("Invalid Range header: {text}"));
    let spec = text.trim().strip_prefix("bytes=").ok_or_else(invalid)?;
    if spec.contains(',') {
        return Err(GlanceError::bad_request(
            "Only one range may be requested at a time",
        ));
    }
    let (first, last) = spec.split_once('-').ok_or_else(invalid)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| invalid());
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => Ok(ByteRangeRequest::Suffix(number(last)?)),
        (false, true) => Ok(ByteRangeRequest::From {
            first: number(first)?,
            last: None,
        }),
        (false, false) => {
            let (first, last) = (number(first)?, number(last)?);
            if last < first {
                return Err(invalid());
            }
            Ok(ByteRangeRequest::From {
                first,
                last: Some(last),
            })
        }
        (true, true) => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            parse_range("bytes=0-9").ok(),
            Some(ByteRangeRequest::From {
                first: 0,
                last: Some(9)
            })
        );
        assert_eq!(
            parse_range("bytes=-5").ok(),
            Some(ByteRangeRequest::Suffix(5))
        );
        assert_eq!(
            parse_range("bytes=7-").ok(),
            Some(ByteRangeRequest::From {
                first: 7,
                last: None
            })
        );
        assert!(parse_range("bytes=5-1").is_err());
        assert!(parse_range("bytes=0-1,3-4").is_err());
        assert!(parse_range("items=0-1").is_err());
    }
}
