//! Astakos's error convention for the account API, and the one place where
//! [`QuotaError`] becomes an HTTP status: `{"<name>": {"code", "message", "data"?}}` with
//! the names of [`nefos_account_api::fault_name`].

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use nefos_account_api::{ErrorBody, Fault, OverLimitData, PROJECT_PREFIX, Provision, USER_PREFIX};
use nefos_identity::IdentityError;
use nefos_quota::QuotaError;

use crate::ApiError;

/// An error answer of the account API.
#[derive(Debug, Clone)]
pub(crate) struct AccountError {
    pub status: StatusCode,
    pub message: String,
    /// What astakosclient reads of an `overLimit`.
    pub data: Option<Box<OverLimitData>>,
    pub retry_after: Option<u64>,
}

impl AccountError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AccountError {
            status,
            message: message.into(),
            data: None,
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

    /// The body, for answers that list several errors (`POST /commissions/action`).
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(Fault {
            code: self.status.as_u16(),
            message: self.message.clone(),
            details: None,
            data: self
                .data
                .as_ref()
                .and_then(|data| serde_json::to_value(data).ok()),
        })
    }
}

impl From<QuotaError> for AccountError {
    fn from(error: QuotaError) -> Self {
        let status = match &error {
            QuotaError::Exceeded(shortfall) => {
                let (holder, source) = match &shortfall.member_id {
                    Some(member) => (
                        format!("{USER_PREFIX}{member}"),
                        Some(format!("{PROJECT_PREFIX}{}", shortfall.project_id)),
                    ),
                    None => (format!("{PROJECT_PREFIX}{}", shortfall.project_id), None),
                };
                let data = OverLimitData {
                    name: "NoCapacityError".to_owned(),
                    provision: Provision {
                        holder,
                        source,
                        resource: shortfall.resource.clone(),
                        quantity: shortfall.requested,
                    },
                    limit: shortfall.limit,
                    usage: shortfall.usage,
                };
                return over_limit(error.to_string(), data);
            }
            QuotaError::BelowZero {
                project_id,
                member_id,
                resource,
                usage,
                released,
            } => {
                let data = OverLimitData {
                    name: "NoQuantityError".to_owned(),
                    provision: Provision {
                        holder: format!("{USER_PREFIX}{member_id}"),
                        source: Some(format!("{PROJECT_PREFIX}{project_id}")),
                        resource: resource.clone(),
                        quantity: -released,
                    },
                    limit: 0,
                    usage: *usage,
                };
                return over_limit(error.to_string(), data);
            }
            QuotaError::UnknownResource { .. } | QuotaError::Invalid { .. } => {
                StatusCode::BAD_REQUEST
            }
            QuotaError::NoCommission { .. } | QuotaError::NotFound { .. } => StatusCode::NOT_FOUND,
            QuotaError::NotAllowed { .. } => StatusCode::FORBIDDEN,
            QuotaError::Conflict { .. } => StatusCode::CONFLICT,
            QuotaError::Db(_) => return ApiError::internal(&error).into(),
        };
        AccountError::new(status, error.to_string())
    }
}

fn over_limit(message: String, data: OverLimitData) -> AccountError {
    AccountError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message,
        data: Some(Box::new(data)),
        retry_after: None,
    }
}

impl From<ApiError> for AccountError {
    fn from(error: ApiError) -> Self {
        AccountError {
            status: error.status,
            message: error.message,
            data: None,
            retry_after: error.retry_after,
        }
    }
}

impl From<IdentityError> for AccountError {
    fn from(error: IdentityError) -> Self {
        ApiError::from(error).into()
    }
}

impl IntoResponse for AccountError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::PAYLOAD_TOO_LARGE && self.data.is_none() {
            // A body refused for its size was not read whole: the connection cannot carry
            // another request.
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The answer to a path under `/account/v1.0` that no route serves.
pub(crate) async fn unknown_route(uri: http::Uri) -> AccountError {
    AccountError::not_found(format!("no resource at {}", uri.path()))
}

/// The answer to a method a route does not serve.
pub(crate) async fn method_not_allowed(method: http::Method, uri: http::Uri) -> AccountError {
    AccountError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nefos_quota::Shortfall;

    #[test]
    fn a_shortfall_is_an_over_limit_astakosclient_can_read() {
        let error = AccountError::from(QuotaError::Exceeded(Box::new(Shortfall {
            project_id: "p".into(),
            member_id: Some("u".into()),
            resource: "pithos.diskspace".into(),
            limit: 10,
            usage: 4,
            requested: 7,
        })));
        assert_eq!(error.status, StatusCode::PAYLOAD_TOO_LARGE);
        let body = serde_json::to_value(error.body()).unwrap();
        let fault = &body["overLimit"];
        assert_eq!(fault["code"], 413);
        assert_eq!(fault["data"]["limit"], 10);
        assert_eq!(fault["data"]["usage"], 4);
        assert_eq!(fault["data"]["provision"]["quantity"], 7);
        assert_eq!(fault["data"]["provision"]["holder"], "user:u");
        assert_eq!(fault["data"]["provision"]["source"], "project:p");
        assert_eq!(fault["data"]["name"], "NoCapacityError");
    }

    #[test]
    fn quota_errors_get_astakos_names() {
        let cases = [
            (QuotaError::NoCommission { serial: 3 }, "itemNotFound"),
            (
                QuotaError::NotAllowed {
                    reason: "no".into(),
                },
                "forbidden",
            ),
            (
                QuotaError::Conflict {
                    reason: "no".into(),
                },
                "conflict",
            ),
            (
                QuotaError::UnknownResource {
                    resource: "x".into(),
                },
                "badRequest",
            ),
        ];
        for (error, name) in cases {
            let body = AccountError::from(error).body();
            assert_eq!(body.fault().map(|f| f.0), Some(name));
        }
    }
}
