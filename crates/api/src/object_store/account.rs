//! `/object/v1/AUTH_<project>`: the account.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode};
use nefos_storage::AccountInfo;

use super::error::SwiftError;
use super::headers::{self, insert};
use super::{accessor, bulk, caller, deny, listing, project_of};
use crate::ApiState;
use crate::extract::{Path, Query};

pub(super) async fn handle(
    State(state): State<ApiState>,
    method: Method,
    Path(account): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    request: HeaderMap,
    body: Body,
) -> Result<Response, SwiftError> {
    let context = caller(&state, &request).await?;
    let who = accessor(context.as_ref(), &request);
    let project = project_of(&account)?;
    let storage = &state.storage;
    let result = async {
        match method {
            Method::POST | Method::DELETE if params.contains_key("bulk-delete") => {
                bulk::delete(storage, who, project, &params, &request, body).await
            }
            Method::HEAD | Method::GET => {
                let pithos = super::pithos::account_get(
                    storage,
                    who,
                    project,
                    &account,
                    &params,
                    &request,
                    method == Method::GET,
                    account_headers,
                );
                if let Some(response) = pithos.await? {
                    return Ok(response);
                }
                let info = storage.account(who, project).await?;
                let mut out = account_headers(&info);
                if method == Method::HEAD {
                    let format = listing::format(&params, &request);
                    insert(&mut out, "content-type", listing::content_type(format));
                    return Ok((StatusCode::NO_CONTENT, out).into_response());
                }
                let query = listing::query(&params)?;
                let containers = storage.list_containers(who, project, &query).await?;
                Ok(listing::containers(
                    listing::format(&params, &request),
                    &account,
                    &containers,
                    out,
                ))
            }
            Method::POST => {
                let mut meta = headers::metadata(&request, "account")?;
                quota_headers(&request, context.as_ref(), &mut meta)?;
                let groups = headers::groups(&request)?;
                storage
                    .update_account(who, project, &meta, &groups, false)
                    .await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => Err(SwiftError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "accounts take GET, HEAD and POST",
            )),
        }
    }
    .await;
    let mut response = result.map_err(|e: SwiftError| deny(context.as_ref(), e))?;
    if !nefos_storage::Storage::owns_account(who, project) {
        super::hide_owner_headers(response.headers_mut(), "account");
    }
    Ok(response)
}

/// Swift's account quota headers, which only a reseller (a cloud administrator) may send:
/// `X-Account-Quota-Bytes` is the legacy `X-Account-Meta-Quota-Bytes` under its current
/// name, `X-Account-Quota-Count` limits the objects; per-policy quotas nefos does not keep
/// (it has one policy).
fn quota_headers(
    request: &HeaderMap,
    context: Option<&nefos_identity::AuthContext>,
    meta: &mut nefos_storage::Metadata,
) -> Result<(), SwiftError> {
    let named: Vec<&str> = request
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|name| {
            name.starts_with("x-account-quota-") || name.starts_with("x-remove-account-quota-")
        })
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    if !context.is_some_and(nefos_identity::AuthContext::is_cloud_admin) {
        return Err(SwiftError::new(StatusCode::FORBIDDEN, "Forbidden"));
    }
    for name in named {
        match name {
            "x-account-quota-bytes" => {
                let value = headers::text(request, name)?.unwrap_or_default();
                meta.insert("quota-bytes".to_owned(), value.trim().to_owned());
            }
            "x-remove-account-quota-bytes" => {
                meta.insert("quota-bytes".to_owned(), String::new());
            }
            "x-account-quota-count" => {
                let value = headers::text(request, name)?.unwrap_or_default();
                meta.insert("quota-count".to_owned(), value.trim().to_owned());
            }
            "x-remove-account-quota-count" => {
                meta.insert("quota-count".to_owned(), String::new());
            }
            other => {
                return Err(SwiftError::bad_request(format!(
                    "{other}: quotas are kept for the whole account, not by storage policy"
                )));
            }
        }
    }
    Ok(())
}

fn account_headers(info: &AccountInfo) -> HeaderMap {
    let mut out = HeaderMap::new();
    insert(
        &mut out,
        "x-account-container-count",
        &info.stats.containers.to_string(),
    );
    insert(
        &mut out,
        "x-account-object-count",
        &info.stats.objects.to_string(),
    );
    insert(
        &mut out,
        "x-account-bytes-used",
        &info.stats.bytes.to_string(),
    );
    // Swift's usage by storage policy: all of it is the one policy's.
    let policy = super::container::STORAGE_POLICY;
    for (what, value) in [
        ("container-count", info.stats.containers),
        ("object-count", info.stats.objects),
        ("bytes-used", info.stats.bytes),
    ] {
        insert(
            &mut out,
            &format!("x-account-storage-policy-{policy}-{what}"),
            &value.to_string(),
        );
    }
    insert(
        &mut out,
        "x-timestamp",
        &headers::timestamp(info.updated_at),
    );
    headers::put_metadata(&mut out, "x-account-meta-", &info.meta);
    for (key, header) in [
        ("quota-bytes", "x-account-quota-bytes"),
        ("quota-count", "x-account-quota-count"),
    ] {
        if let Some(limit) = info.meta.get(key) {
            insert(&mut out, header, limit);
        }
    }
    for (group, members) in &info.groups {
        insert(
            &mut out,
            &format!("x-account-group-{group}"),
            &members.join(","),
        );
    }
    if info.updated_at > 0 {
        insert(
            &mut out,
            "last-modified",
            &headers::http_date(info.updated_at),
        );
    }
    out
}
