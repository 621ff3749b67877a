//! The account API's extractors: the caller, JSON bodies, query strings and ids, each
//! refusing in Astakos's convention.

use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use nefos_identity::{AuthContext, Caller};
use serde::de::DeserializeOwned;

use super::error::AccountError;
use crate::auth::Authenticated;
use crate::{ApiState, extract};

/// The bearer of a valid token (scoped or not): a user acting for itself.
#[derive(Debug, Clone)]
pub(crate) struct User(pub AuthContext);

impl User {
    pub fn caller(&self) -> Caller<'_> {
        Caller::Token(&self.0)
    }

    pub fn id(&self) -> &str {
        &self.0.user_id
    }
}

impl FromRequestParts<ApiState> for User {
    type Rejection = AccountError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, AccountError> {
        let Authenticated(context) = Authenticated::from_request_parts(parts, state).await?;
        Ok(User(context))
    }
}

/// A cloud administrator: a token scoped to the system project with its `admin` role.
/// Astakos's services (its "components") call these endpoints; in nefos they are the
/// administrators, and nefos's own services call the quota engine directly.
#[derive(Debug, Clone)]
pub(crate) struct Admin(pub User);

impl FromRequestParts<ApiState> for Admin {
    type Rejection = AccountError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, AccountError> {
        let user = User::from_request_parts(parts, state).await?;
        if !user.0.is_cloud_admin() {
            return Err(AccountError::forbidden(
                "only cloud administrators (a token scoped to the admin project) may do this",
            ));
        }
        Ok(Admin(user))
    }
}

/// A JSON request body.
#[derive(Debug)]
pub(crate) struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AccountError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AccountError> {
        let extract::Json(value) = extract::Json::<T>::from_request(req, state).await?;
        Ok(Body(value))
    }
}

/// Query-string parameters.
#[derive(Debug)]
pub(crate) struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AccountError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AccountError> {
        let extract::Query(value) = extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// One path parameter, as text.
#[derive(Debug)]
pub(crate) struct Id(pub String);

impl<S> FromRequestParts<S> for Id
where
    S: Send + Sync,
{
    type Rejection = AccountError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AccountError> {
        let extract::Path(value) =
            extract::Path::<String>::from_request_parts(parts, state).await?;
        Ok(Id(value))
    }
}

impl Id {
    /// A numeric id (commission serials, membership ids); anything else names nothing.
    pub fn number(&self, what: &str) -> Result<i64, AccountError> {
        self.0
            .parse()
            .map_err(|_| AccountError::not_found(format!("no {what} {:?}", self.0)))
    }
}
