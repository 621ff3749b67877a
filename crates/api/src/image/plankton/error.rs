//! Plankton's errors: Synnefo's fault bodies, mapped from the same [`ImageError`]s Glance
//! maps (through [`GlanceError`]'s statuses, so the two APIs agree on every case).

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use nefos_account_api::{ErrorBody, Fault};
use nefos_image::ImageError;

use crate::ApiError;
use crate::image::error::GlanceError;

#[derive(Debug)]
pub(crate) struct PlanktonError {
    pub status: StatusCode,
    pub message: String,
}

impl PlanktonError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        PlanktonError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        PlanktonError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<GlanceError> for PlanktonError {
    fn from(error: GlanceError) -> Self {
        PlanktonError {
            status: error.status,
            message: error.message,
        }
    }
}

impl From<ImageError> for PlanktonError {
    fn from(error: ImageError) -> Self {
        GlanceError::from(error).into()
    }
}

impl From<ApiError> for PlanktonError {
    fn from(error: ApiError) -> Self {
        GlanceError::from(error).into()
    }
}

impl From<nefos_storage::StorageError> for PlanktonError {
    fn from(error: nefos_storage::StorageError) -> Self {
        ImageError::Storage(error).into()
    }
}

impl IntoResponse for PlanktonError {
    fn into_response(self) -> Response {
        // A 204 (an image without data, in Glance's terms) is no error in Synnefo's: there
        // is no such case in Plankton, whose images always have their object.
        let status = if self.status == StatusCode::NO_CONTENT {
            StatusCode::NOT_FOUND
        } else {
            self.status
        };
        let body = ErrorBody::new(Fault {
            code: status.as_u16(),
            message: self.message,
            details: Some(String::new()),
            data: None,
        });
        (status, Json(body)).into_response()
    }
}

pub(crate) async fn unknown_route() -> PlanktonError {
    PlanktonError::bad_request("API endpoint not found")
}

pub(crate) async fn method_not_allowed() -> PlanktonError {
    PlanktonError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "Method not allowed".to_owned(),
    }
}
