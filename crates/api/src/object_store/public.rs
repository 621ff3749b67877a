//! `/public/<token>`: objects their owner made public, served without credentials.

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode};

use super::error::SwiftError;
use super::headers::insert;
use super::object::object_headers;
use super::range::{self, RangeRequest};
use crate::ApiState;
use crate::extract::Path;

pub(super) async fn handle(
    State(state): State<ApiState>,
    method: Method,
    Path(token): Path<String>,
    request: HeaderMap,
) -> Result<Response, SwiftError> {
    let object = state.storage.public_object(&token).await?;
    // The segments of a large object are read as the anonymous caller, so they must be
    // public too (a static manifest that lines up with blocks is its own blocks).
    let content = state
        .storage
        .content(nefos_storage::Accessor::ANONYMOUS, &object, false)
        .await?;
    let size = content.size();
    let mut out = object_headers(&state, &object);
    super::manifest::large_object_headers(&mut out, &object, &content, &Default::default());
    // The owner's metadata, sharing and version history are not for the public.
    let private: Vec<_> = out
        .keys()
        .filter(|k| {
            k.as_str().starts_with("x-object-meta-")
                || matches!(
                    k.as_str(),
                    "x-object-sharing"
                        | "x-object-modified-by"
                        | "x-object-version"
                        | "x-object-version-timestamp"
                )
        })
        .cloned()
        .collect();
    for key in private {
        out.remove(key);
    }
    let with_body = method != Method::HEAD;
    let range_header = request.get("range").and_then(|v| v.to_str().ok());
    let (status, range) = match range::parse(range_header, size) {
        RangeRequest::Ranges(ranges) if ranges.len() == 1 => {
            (StatusCode::PARTIAL_CONTENT, Some(ranges[0]))
        }
        RangeRequest::Unsatisfiable => {
            return Err(nefos_storage::StorageError::RangeNotSatisfiable { size }.into());
        }
        _ => (StatusCode::OK, None),
    };
    let length = range.map_or(size, |r| r.len());
    insert(&mut out, "content-length", &length.to_string());
    if let Some(r) = range {
        insert(
            &mut out,
            "content-range",
            &format!("bytes {}-{}/{}", r.first, r.last, size),
        );
    }
    let body = if with_body {
        Body::from_stream(state.storage.read_content(&content, range))
    } else {
        Body::empty()
    };
    Ok((status, out, body).into_response())
}
