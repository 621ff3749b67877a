//! The caller of a request, from its `X-Auth-Token` header.

use axum::extract::FromRequestParts;
use http::request::Parts;
use nefos_identity::{AuthContext, Caller};

use crate::{ApiError, ApiState};

pub(crate) const AUTH_TOKEN: &str = "x-auth-token";

/// A request whose token is valid.
#[derive(Debug, Clone)]
pub struct Authenticated(pub AuthContext);

impl Authenticated {
    pub fn caller(&self) -> Caller<'_> {
        Caller::Token(&self.0)
    }
}

impl FromRequestParts<ApiState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = header_str(parts, AUTH_TOKEN)?.ok_or_else(|| {
            ApiError::unauthorized(
                "the request you have made requires authentication (X-Auth-Token)",
            )
        })?;
        let context = state.identity.validate(token).await?;
        Ok(Authenticated(context))
    }
}

/// A header as text; a header that is not visible ASCII is a bad request.
pub(crate) fn header_str<'a>(parts: &'a Parts, name: &str) -> Result<Option<&'a str>, ApiError> {
    match parts.headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("the {name} header is not valid text"))),
    }
}
