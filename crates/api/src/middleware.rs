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

/// Swift's name for a request id, on every answer of the object store.
pub const TRANS_ID: &str = "x-trans-id";

/// Gives each request an id, returns it in `X-Openstack-Request-Id` (and, for the object
/// store, in Swift's `X-Trans-Id`), and logs one line per request with its status and
/// duration.
pub async fn request_id_and_access_log(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let swift = is_object_store_path(request.uri().path());
    let id = if swift {
        swift_transaction_id(request.headers().get("x-trans-id-extra"))
    } else {
        format!("req-{}", uuid::Uuid::new_v4())
    };
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", id = %id);
    let mut response = next.run(request).instrument(span).await;
    // Made of hex digits, hyphens and percent-escapes: always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&id) {
        if swift {
            response.headers_mut().insert(TRANS_ID, value.clone());
        }
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

/// What Python's `urllib.parse.quote` escapes (all but letters, digits, `-_.~` and `/`),
/// as Swift quotes what it writes into headers.
pub(crate) const PYTHON_QUOTED: percent_encoding::AsciiSet = percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Paths of the object store's API (Swift v1 and Pithos, its authentication and `/info`).
fn is_object_store_path(path: &str) -> bool {
    ["/object/", "/v1/", "/public/"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
        || matches!(
            path,
            "/object" | "/v1" | "/info" | "/auth/v1.0" | "/healthcheck" | "/object/healthcheck"
        )
}

/// Swift's transaction id: `tx`, 21 random hex digits, `-`, the time in seconds as 10 hex
/// digits, and what the client asked to append in `X-Trans-Id-Extra` (up to 32 bytes,
/// percent-encoded), which lets it find its own requests in the logs.
fn swift_transaction_id(extra: Option<&HeaderValue>) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut id = format!("tx{}-{seconds:010x}", &random[..21]);
    if let Some(extra) = extra.map(HeaderValue::as_bytes).filter(|e| !e.is_empty()) {
        let extra = &extra[..extra.len().min(32)];
        id.push('-');
        id.extend(percent_encoding::percent_encode(extra, &PYTHON_QUOTED));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swift_transaction_ids_have_swifts_form() {
        let id = swift_transaction_id(None);
        let (random, seconds) = id.strip_prefix("tx").unwrap().split_once('-').unwrap();
        assert_eq!(random.len(), 21);
        assert_eq!(seconds.len(), 10);
        assert!(
            random
                .chars()
                .chain(seconds.chars())
                .all(|c| c.is_ascii_hexdigit())
        );

        let extra = HeaderValue::from_static("my job/1");
        assert!(swift_transaction_id(Some(&extra)).ends_with("-my%20job/1"));
    }

    #[test]
    fn object_store_paths_are_told_apart() {
        for path in [
            "/object/v1/AUTH_p",
            "/v1/AUTH_p/c",
            "/info",
            "/auth/v1.0",
            "/public/x",
        ] {
            assert!(is_object_store_path(path), "{path}");
        }
        for path in [
            "/identity/v3/auth/tokens",
            "/compute/v2.1/servers",
            "/v1beta",
        ] {
            assert!(!is_object_store_path(path), "{path}");
        }
    }
}
