//! Nova's errors: the one mapping of [`ComputeError`] to statuses, in Nova's body
//! `{"<faultName>": {"code": N, "message": "…"}}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use nefos_compute::ComputeError;
use nefos_compute_api::microversion::VersionError;
use nefos_identity::IdentityError;

use crate::ApiError;

#[derive(Debug)]
pub(crate) struct NovaError {
    pub status: StatusCode,
    pub message: String,
}

impl NovaError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> NovaError {
        NovaError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> NovaError {
        NovaError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> NovaError {
        NovaError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn forbidden(message: impl Into<String>) -> NovaError {
        NovaError::new(StatusCode::FORBIDDEN, message)
    }

    /// Nova's body for a malformed JSON request.
    pub fn malformed() -> NovaError {
        NovaError::bad_request("Malformed request body")
    }
}

/// Nova's fault name for a status.
fn fault_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 | 429 => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

impl IntoResponse for NovaError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            fault_name(self.status): {"code": self.status.as_u16(), "message": self.message}
        });
        (self.status, Json(body)).into_response()
    }
}

impl From<ComputeError> for NovaError {
    fn from(error: ComputeError) -> NovaError {
        let status = match &error {
            ComputeError::NotFound { .. } => StatusCode::NOT_FOUND,
            ComputeError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ComputeError::Conflict { .. } => StatusCode::CONFLICT,
            ComputeError::Forbidden { .. } | ComputeError::OverQuota { .. } => {
                StatusCode::FORBIDDEN
            }
            ComputeError::Rpc { .. } => {
                tracing::error!(error = %crate::error_chain(&error), "a node failed");
                return NovaError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The compute node did not answer as expected; try again later.",
                );
            }
            _ => {
                let internal = ApiError::internal(&error);
                return NovaError::new(
                    internal.status,
                    "Unexpected API Error. It has been logged.",
                );
            }
        };
        NovaError::new(status, error.to_string())
    }
}

impl From<ApiError> for NovaError {
    fn from(error: ApiError) -> NovaError {
        NovaError::new(error.status, error.message)
    }
}

impl From<IdentityError> for NovaError {
    fn from(error: IdentityError) -> NovaError {
        ApiError::from(error).into()
    }
}

impl From<VersionError> for NovaError {
    fn from(error: VersionError) -> NovaError {
        let status = match error {
            VersionError::Invalid(_) => StatusCode::BAD_REQUEST,
            VersionError::Unsupported(_) => StatusCode::NOT_ACCEPTABLE,
        };
        NovaError::new(status, error.to_string())
    }
}

pub(crate) async fn unknown_route() -> NovaError {
    NovaError::not_found("The resource could not be found.")
}

pub(crate) async fn method_not_allowed() -> NovaError {
    NovaError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method is not allowed for this resource.",
    )
}
