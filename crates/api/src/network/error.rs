//! Neutron's errors: the one mapping of [`NetworkError`] to statuses, in Neutron's body
//! `{"NeutronError": {"type": "…", "message": "…", "detail": ""}}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use nefos_identity::IdentityError;
use nefos_network::NetworkError;

use crate::ApiError;

#[derive(Debug)]
pub(crate) struct NeutronError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl NeutronError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        NeutronError {
            status,
            kind,
            message: message.into(),
        }
    }

    /// A malformed request: Neutron's `HTTPBadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        NeutronError::new(StatusCode::BAD_REQUEST, "HTTPBadRequest", message)
    }
}

impl IntoResponse for NeutronError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"NeutronError": {
            "type": self.kind, "message": self.message, "detail": ""
        }});
        (self.status, Json(body)).into_response()
    }
}

impl From<NetworkError> for NeutronError {
    fn from(error: NetworkError) -> Self {
        let status = match &error {
            NetworkError::NotFound { .. } => StatusCode::NOT_FOUND,
            NetworkError::Invalid { .. } => StatusCode::BAD_REQUEST,
            NetworkError::Conflict { .. } | NetworkError::OverQuota { .. } => StatusCode::CONFLICT,
            NetworkError::Forbidden { .. } => StatusCode::FORBIDDEN,
            NetworkError::Corrupt { .. } | NetworkError::Quota(_) | NetworkError::Db(_) => {
                let internal = ApiError::internal(&error);
                return NeutronError::new(
                    internal.status,
                    "HTTPInternalServerError",
                    "Request Failed: internal server error while processing your request.",
                );
            }
        };
        NeutronError::new(status, error.kind(), error.to_string())
    }
}

impl From<ApiError> for NeutronError {
    fn from(error: ApiError) -> Self {
        let kind = match error.status.as_u16() {
            401 => "HTTPUnauthorized",
            403 => "HTTPForbidden",
            404 => "HTTPNotFound",
            413 => "HTTPRequestEntityTooLarge",
            429 => "HTTPTooManyRequests",
            s if s >= 500 => "HTTPInternalServerError",
            _ => "HTTPBadRequest",
        };
        NeutronError::new(error.status, kind, error.message)
    }
}

impl From<IdentityError> for NeutronError {
    fn from(error: IdentityError) -> Self {
        ApiError::from(error).into()
    }
}

pub(crate) async fn unknown_route() -> NeutronError {
    NeutronError::new(
        StatusCode::NOT_FOUND,
        "HTTPNotFound",
        "The resource could not be found.",
    )
}

pub(crate) async fn method_not_allowed() -> NeutronError {
    NeutronError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTPMethodNotAllowed",
        "The method is not allowed for this resource.",
    )
}
