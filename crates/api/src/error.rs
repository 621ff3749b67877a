//! The one place where errors become HTTP statuses and bodies.
//!
//! Bodies follow Keystone's convention, `{"error": {"code", "title", "message"}}`, which
//! the OpenStack clients print as the reason. A server-side failure is logged with its whole
//! chain and answered with a generic message.

use std::error::Error as StdError;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use nefos_identity::IdentityError;

/// An error answer: a status and a message safe to show the caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds a refused client should wait (`Retry-After`, on 429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// Logs `error` with its sources and answers 500 without details.
    pub fn internal(error: &(dyn StdError + 'static)) -> Self {
        tracing::error!(error = %chain(error), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "an internal error occurred; it has been logged",
        )
    }
}

impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        let status = match &error {
            IdentityError::NotFound { .. } => StatusCode::NOT_FOUND,
            IdentityError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            IdentityError::Forbidden { .. } => StatusCode::FORBIDDEN,
            IdentityError::Conflict { .. } | IdentityError::NotAllowed { .. } => {
                StatusCode::CONFLICT
            }
            IdentityError::InvalidInput { .. } => StatusCode::BAD_REQUEST,
            IdentityError::Throttled { retry_after_secs }
            | IdentityError::Busy { retry_after_secs } => {
                return ApiError::new(StatusCode::TOO_MANY_REQUESTS, error.to_string())
                    .with_retry_after(*retry_after_secs);
            }
            IdentityError::PasswordHash { .. }
            | IdentityError::Task(_)
            | IdentityError::Database(_) => return ApiError::internal(&error),
        };
        ApiError::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = serde_json::json!({
            "error": { "code": self.status.as_u16(), "title": title, "message": self.message }
        });
        let mut response = (self.status, Json(body)).into_response();
        if matches!(
            self.status,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        ) {
            // The request was refused before it was read whole, so the connection cannot
            // carry another one; saying so keeps clients from reusing it.
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // Keystone names itself so clients know which credentials to present.
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Keystone"),
            );
        }
        response
    }
}

/// The answer to a path no router knows.
pub(crate) async fn unknown_route(uri: http::Uri) -> ApiError {
    ApiError::not_found(format!("no resource at {}", uri.path()))
}

/// `error: cause: cause…`, for logs.
pub fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
