//! `POST /user_catalogs`: what kamaki asks to print owners' names beside their ids.

use axum::Json;
use axum::extract::State;
use nefos_account_api::{UserCatalogs, UserCatalogsQuery};

use super::error::AccountError;
use super::extract::{Body, User};
use crate::ApiState;

pub(super) async fn lookup(
    State(state): State<ApiState>,
    _user: User,
    Body(query): Body<UserCatalogsQuery>,
) -> Result<Json<UserCatalogs>, AccountError> {
    let (uuid_catalog, displayname_catalog) = state
        .identity
        .user_catalogs(&query.uuids, &query.displaynames)
        .await?;
    Ok(Json(UserCatalogs {
        uuid_catalog,
        displayname_catalog,
    }))
}
