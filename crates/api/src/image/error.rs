//! Glance's errors: the one mapping of [`ImageError`] to statuses, and the body Glance's
//! WSGI stack writes for clients that accept JSON, as openstacksdk and the `openstack` CLI
//! do: `{"code": "404 Not Found", "title": "Not Found", "message": …}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use nefos_identity::IdentityError;
use nefos_image::ImageError;
use nefos_image_api::glance::ErrorBody;
use nefos_quota::QuotaError;
use nefos_storage::StorageError;

use crate::ApiError;

/// An error answer of the image APIs.
#[derive(Debug)]
pub(crate) struct GlanceError {
    pub status: StatusCode,
    pub message: String,
    /// The image size for a 416.
    range_size: Option<u64>,
    retry_after: Option<u64>,
}

impl GlanceError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        GlanceError {
            status,
            message: message.into(),
            range_size: None,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
}

fn status_line(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    )
}

impl IntoResponse for GlanceError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: status_line(self.status),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            message: self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(size) = self.range_size
            && let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            headers.insert(http::header::CONTENT_RANGE, value);
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The body was refused before it was read whole: the connection cannot carry
            // another request.
            headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<ApiError> for GlanceError {
    fn from(error: ApiError) -> Self {
        GlanceError {
            retry_after: error.retry_after,
            ..GlanceError::new(error.status, error.message)
        }
    }
}

impl From<IdentityError> for GlanceError {
    fn from(error: IdentityError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<ImageError> for GlanceError {
    fn from(error: ImageError) -> Self {
        let status = match &error {
            ImageError::NotFound { .. }
            | ImageError::MemberNotFound { .. }
            | ImageError::TagNotFound { .. } => StatusCode::NOT_FOUND,
            ImageError::Forbidden { .. } | ImageError::ReservedAttribute { .. } => {
                StatusCode::FORBIDDEN
            }
            ImageError::Invalid { .. } | ImageError::UnsafeData { .. } => StatusCode::BAD_REQUEST,
            ImageError::Conflict { .. } => StatusCode::CONFLICT,
            ImageError::RangeNotSatisfiable { size } => {
                return GlanceError {
                    range_size: Some(*size),
                    ..GlanceError::new(
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        "Requested range not satisfiable",
                    )
                };
            }
            ImageError::NoData { .. } => StatusCode::NO_CONTENT,
            ImageError::Storage(storage) => return storage_error(storage, &error),
            ImageError::Inspection(_) | ImageError::Database(_) | ImageError::Corrupt { .. } => {
                return ApiError::internal(&error).into();
            }
        };
        let message = match &error {
            ImageError::NotFound { id } => format!("No image found with ID {id}"),
            ImageError::Invalid { reason, .. } => reason.clone(),
            ImageError::ReservedAttribute { attribute, kind } => {
                format!("Attribute '{attribute}' is {kind}.")
            }
            other => other.to_string(),
        };
        GlanceError::new(status, message)
    }
}

/// What a failure of the object store under an image operation tells the client.
fn storage_error(storage: &StorageError, error: &ImageError) -> GlanceError {
    let (status, message) = match storage {
        StorageError::NotFound { what } => {
            (StatusCode::NOT_FOUND, format!("The {what} does not exist"))
        }
        StorageError::Forbidden => (
            StatusCode::FORBIDDEN,
            "You are not authorized to complete this action.".to_owned(),
        ),
        StorageError::QuotaExceeded { .. } | StorageError::Quota(QuotaError::Exceeded(_)) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Denying attempt to upload image because it exceeds the quota: {storage}"),
        ),
        StorageError::TooLarge { limit } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Image exceeds the storage quota: the largest image is {limit} bytes"),
        ),
        StorageError::Body(source) if crate::slow_body::is_slow_body(source.as_ref()) => (
            StatusCode::REQUEST_TIMEOUT,
            "The request body arrived too slowly".to_owned(),
        ),
        StorageError::Body(_) => (
            StatusCode::BAD_REQUEST,
            "Error in store: the image data did not arrive whole".to_owned(),
        ),
        StorageError::InvalidInput { .. } => (StatusCode::BAD_REQUEST, storage.to_string()),
        StorageError::Conflict { .. } => (StatusCode::CONFLICT, storage.to_string()),
        StorageError::RangeNotSatisfiable { size } => {
            return GlanceError {
                range_size: Some(*size),
                ..GlanceError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "Requested range not satisfiable",
                )
            };
        }
        _ => return ApiError::internal(error).into(),
    };
    GlanceError::new(status, message)
}

/// Any path under the image endpoint that names nothing.
pub(crate) async fn unknown_route() -> GlanceError {
    GlanceError::not_found("The resource could not be found.")
}

pub(crate) async fn method_not_allowed() -> GlanceError {
    GlanceError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method is not allowed for this resource.",
    )
}
