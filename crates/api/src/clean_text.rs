//! Text the databases cannot hold: a NUL character, or bytes that are not UTF-8, anywhere a
//! request names something. PostgreSQL refuses NUL in text and SQLite would store it, so
//! such requests are refused at the edge, the same way on both: Swift answers `412 Invalid
//! UTF8 or contains NULL`, Keystone 400.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use percent_encoding::percent_decode_str;

use crate::ApiError;
use crate::account::AccountError;
use crate::object_store::SwiftError;

/// Headers of the object-store API whose values are (percent-encoded) object paths.
const SWIFT_PATH_HEADERS: &[&str] = &[
    "x-copy-from",
    "x-move-from",
    "destination",
    "destination-account",
    "x-copy-from-account",
    "x-object-manifest",
];

/// Whether percent-decoded `raw` is UTF-8 without NUL.
pub(crate) fn is_clean(raw: &str) -> bool {
    // Without escapes it is already text (a `&str`), and a URI or header value cannot hold
    // a raw NUL: nothing to decode on the common path.
    if !raw.contains('%') {
        return !raw.contains('\0');
    }
    let decoded: Vec<u8> = percent_decode_str(raw).collect();
    !decoded.contains(&0) && std::str::from_utf8(&decoded).is_ok()
}

/// Whether a text holds no NUL (text already decoded, such as a JSON string).
pub(crate) fn has_no_nul(text: &str) -> bool {
    !text.contains('\0')
}

fn request_is_clean(request: &Request, headers: &[&str]) -> bool {
    let uri = request.uri();
    is_clean(uri.path())
        && uri.query().is_none_or(is_clean)
        && headers.iter().all(|name| {
            request
                .headers()
                .get_all(*name)
                .iter()
                .all(|value| std::str::from_utf8(value.as_bytes()).is_ok_and(is_clean))
        })
}

/// The object-store API's check, with Swift's answer.
pub(crate) async fn swift(request: Request, next: Next) -> Response {
    if !request_is_clean(&request, SWIFT_PATH_HEADERS) {
        return SwiftError::new(
            StatusCode::PRECONDITION_FAILED,
            "Invalid UTF8 or contains NULL",
        )
        .into_response();
    }
    next.run(request).await
}

/// The identity API's check, with Keystone's answer. JSON bodies are checked by the
/// [`crate::extract::Json`] extractor.
pub(crate) async fn keystone(request: Request, next: Next) -> Response {
    if !request_is_clean(&request, &[]) {
        return ApiError::bad_request(
            "the request path or query holds a NUL character or is not UTF-8",
        )
        .into_response();
    }
    next.run(request).await
}

/// The account API's check, with Astakos's answer. JSON bodies are checked by the
/// [`crate::extract::Json`] extractor.
pub(crate) async fn account(request: Request, next: Next) -> Response {
    if !request_is_clean(&request, &[]) {
        return AccountError::bad_request(
            "the request path or query holds a NUL character or is not UTF-8",
        )
        .into_response();
    }
    next.run(request).await
}

/// The image APIs' check: the path, the query and Plankton's `x-image-meta-*` headers
/// (percent-encoded names and values), with Glance's answer.
pub(crate) async fn image(request: Request, next: Next) -> Response {
    let meta_clean = request.headers().iter().all(|(name, value)| {
        !name.as_str().starts_with("x-image-meta-")
            || (is_clean(name.as_str()) && value.to_str().is_ok_and(is_clean))
    });
    if !meta_clean || !request_is_clean(&request, &[]) {
        return crate::image::GlanceError::bad_request(
            "the request path, query or image headers hold a NUL character or are not UTF-8",
        )
        .into_response();
    }
    next.run(request).await
}

/// Neutron's check of the path and query, with Neutron's answer.
pub(crate) async fn neutron(request: Request, next: Next) -> Response {
    if !request_is_clean(&request, &[]) {
        return crate::network::NeutronError::bad_request(
            "the request path or query holds a NUL character or is not UTF-8",
        )
        .into_response();
    }
    next.run(request).await
}

/// Whether every string (and key) in a JSON document is free of NUL.
pub(crate) fn json_has_no_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => has_no_nul(text),
        serde_json::Value::Array(items) => items.iter().all(json_has_no_nul),
        serde_json::Value::Object(map) => map
            .iter()
            .all(|(key, value)| has_no_nul(key) && json_has_no_nul(value)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_bad_utf8_are_caught_after_decoding() {
        assert!(is_clean("/v1/AUTH_p/c/o%20name"));
        assert!(is_clean("prefix=caf%C3%A9"));
        assert!(!is_clean("/v1/AUTH_p/c/a%00b"));
        assert!(!is_clean("marker=%00"));
        assert!(!is_clean("/v1/AUTH_p/c/%FF"));
        // A literal "%00" in a name is itself percent-encoded: that is fine.
        assert!(is_clean("/v1/AUTH_p/c/%2500"));
        let body: serde_json::Value =
            serde_json::from_str(r#"{"auth": {"scope": {"project": {"name": "a\u0000b"}}}}"#)
                .unwrap();
        assert!(!json_has_no_nul(&body));
        let key: serde_json::Value = serde_json::from_str(r#"{"a\u0000": 1}"#).unwrap();
        assert!(!json_has_no_nul(&key));
        assert!(json_has_no_nul(&serde_json::json!({"a": ["b", 1, null]})));
    }
}
