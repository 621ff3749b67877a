//! Swift's error convention: a status and a short text body.

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use nefos_quota::QuotaError;
use nefos_storage::StorageError;

use crate::ApiError;

/// An error answer of the object-store API.
#[derive(Debug)]
pub struct SwiftError {
    pub status: StatusCode,
    pub message: String,
    /// Extra headers (`Content-Range` on 416).
    pub headers: Vec<(header::HeaderName, String)>,
    /// A JSON body instead of text (Pithos's list of missing blocks).
    pub json: Option<serde_json::Value>,
}

impl SwiftError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        SwiftError {
            status,
            message: message.into(),
            headers: Vec::new(),
            json: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: this resource needs a valid X-Auth-Token",
        )
    }
}

impl From<StorageError> for SwiftError {
    fn from(error: StorageError) -> Self {
        if let StorageError::InvalidInput { field, reason } = &error
            && *field == nefos_storage::SWIFT_CONSTRAINT
        {
            return SwiftError::bad_request(reason.clone());
        }
        let status = match &error {
            StorageError::NotFound { .. } => StatusCode::NOT_FOUND,
            StorageError::Forbidden => StatusCode::FORBIDDEN,
            StorageError::Conflict { .. } => StatusCode::CONFLICT,
            StorageError::Body(source) if crate::slow_body::is_slow_body(source.as_ref()) => {
                StatusCode::REQUEST_TIMEOUT
            }
            StorageError::InvalidInput { .. } | StorageError::Body(_) => StatusCode::BAD_REQUEST,
            StorageError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            StorageError::NotModified => StatusCode::NOT_MODIFIED,
            StorageError::RangeNotSatisfiable { size } => {
                let mut e = SwiftError::new(StatusCode::RANGE_NOT_SATISFIABLE, error.to_string());
                e.headers
                    .push((header::CONTENT_RANGE, format!("bytes */{size}")));
                return e;
            }
            StorageError::EtagMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            StorageError::QuotaExceeded { .. }
            | StorageError::TooLarge { .. }
            | StorageError::Quota(QuotaError::Exceeded(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            StorageError::MissingBlocks { missing } => {
                let mut e = SwiftError::new(StatusCode::CONFLICT, error.to_string());
                e.json = Some(serde_json::json!(missing));
                return e;
            }
            StorageError::Blocks(_)
            | StorageError::Quota(_)
            | StorageError::Database(_)
            | StorageError::CorruptHashmap { .. } => {
                let internal = ApiError::internal(&error);
                return SwiftError::new(internal.status, internal.message);
            }
        };
        SwiftError::new(status, error.to_string())
    }
}

impl From<ApiError> for SwiftError {
    fn from(error: ApiError) -> Self {
        let mut swift = SwiftError::new(error.status, error.message);
        if let Some(seconds) = error.retry_after {
            swift
                .headers
                .push((header::RETRY_AFTER, seconds.to_string()));
        }
        swift
    }
}

impl IntoResponse for SwiftError {
    fn into_response(self) -> Response {
        let mut response = match self.json {
            Some(json) => (self.status, axum::Json(json)).into_response(),
            None if self.status == StatusCode::NOT_MODIFIED => self.status.into_response(),
            // Swift answers errors with its explanation as the whole body, typed as its
            // WSGI framework types every body it does not type itself. Explanations can
            // quote the request (a name, a header), so markup in them is escaped.
            None => (
                self.status,
                [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
                html_escape(&self.message),
            )
                .into_response(),
        };
        for (name, value) in self.headers {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // An upload refused for its size or the quota is answered before its body is
            // read: the connection cannot carry another request, and saying so keeps
            // clients from sending one on it.
            response
                .headers_mut()
                .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        response
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
