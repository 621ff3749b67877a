//! Request ids and the access log.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use http::{HeaderValue, StatusCode};
use tracing::Instrument;

use crate::ApiError;

/// The header OpenStack services use to name a request in answers and logs.
pub const REQUEST_ID: &str = "x-openstack-request-id";

/// A request's id, as its handlers see it (Nova records it with instance actions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Gives each request an id (`req-<uuid>`), returns it in `X-Openstack-Request-Id`, and logs
/// one line per request with its status and duration.
pub async fn request_id_and_access_log(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = format!("req-{}", uuid::Uuid::new_v4());
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", id = %id);
    let mut response = next.run(request).instrument(span).await;
    // A "req-" prefix and a hyphenated UUID are always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    tracing::info!(
        target: "nefos::access",
        request_id = %id,
        %method,
        path,
        status = response.status().as_u16(),
        micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    );
    response
}

/// Refuses requests whose request line and headers exceed `max_bytes` with 431. The HTTP
/// parser bounds its buffer too, but only loosely: it checks the bound when a read leaves
/// the headers incomplete, so a large header block read in one go would pass it.
pub async fn limit_header_size(max_bytes: usize, request: Request, next: Next) -> Response {
    let size = request.uri().to_string().len()
        + request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if size > max_bytes {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request line and headers exceed {max_bytes} bytes"),
        )
        .into_response();
    }
    next.run(request).await
}
