//! `POST /user_catalogs`: what kamaki asks to print owners' names beside their ids.

use axum::Json;
use axum::extract::State;
use nefos_account_api::{UserCatalogs, UserCatalogsQuery};

use super::error::AccountError;
use super::extract::{Body, User};
use crate::ApiState;

/// Names looked up by one request, at most.
const MAX_LOOKUPS: usize = 1000;

pub(super) async fn lookup(
    State(state): State<ApiState>,
    _user: User,
    Body(query): Body<UserCatalogsQuery>,
) -> Result<Json<UserCatalogs>, AccountError> {
    if query.uuids.len() + query.displaynames.len() > MAX_LOOKUPS {
        return Err(AccountError::bad_request(format!(
            "at most {MAX_LOOKUPS} ids and names at once"
        )));
    }
    let (uuid_catalog, displayname_catalog) = state
        .identity
        .user_catalogs(&query.uuids, &query.displaynames)
        .await?;
    Ok(Json(UserCatalogs {
        uuid_catalog,
        displayname_catalog,
    }))
}
