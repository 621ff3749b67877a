//! `/object/v1/AUTH_<project>/<container>`.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode};
use nefos_storage::{AclKind, ContainerInfo, ContainerUpdate, Versioning};

use super::error::SwiftError;
use super::headers::{self, insert};
use super::{accessor, caller, deny, listing, project_of};
use crate::ApiState;
use crate::extract::{Path, Query};

pub(super) async fn handle(
    State(state): State<ApiState>,
    method: Method,
    Path((account, container)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    request: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, SwiftError> {
    let context = caller(&state, &request).await?;
    let who = accessor(context.as_ref(), &request);
    let project = project_of(&account)?;
    let storage = &state.storage;
    let result = async {
        match method {
            Method::HEAD | Method::GET => {
                let pithos = super::pithos::container_get(
                    storage,
                    who,
                    project,
                    &container,
                    &params,
                    &request,
                    method == Method::GET,
                    container_headers,
                );
                if let Some(response) = pithos.await? {
                    return Ok(response);
                }
                let info = storage.container(who, project, &container).await?;
                let mut out = container_headers(&info);
                if method == Method::HEAD {
                    let format = listing::format(&params, &request);
                    insert(&mut out, "content-type", listing::content_type(format));
                    return Ok((StatusCode::NO_CONTENT, out).into_response());
                }
                let mut query = listing::query(&params)?;
                query.until = until(&params)?;
                let entries = storage
                    .list_objects(who, project, &container, &query)
                    .await?;
                Ok(listing::objects(
                    listing::format(&params, &request),
                    &container,
                    &entries,
                    out,
                ))
            }
            Method::PUT => {
                check_storage_policy(&request)?;
                let created = storage
                    .put_container(who, project, &container, &update(&request)?)
                    .await?;
                let status = if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::ACCEPTED
                };
                Ok(status.into_response())
            }
            Method::POST => {
                if super::pithos::is_block_upload(&request)? {
                    let upload = super::pithos::upload_blocks(
                        storage, who, project, &container, &params, &request, body,
                    );
                    return upload.await;
                }
                storage
                    .update_container(who, project, &container, &update(&request)?)
                    .await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            Method::DELETE => match storage.delete_container(who, project, &container).await {
                Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
                // Swift's text for a container that still holds objects.
                Err(nefos_storage::StorageError::Conflict { .. }) => Err(SwiftError::new(
                    StatusCode::CONFLICT,
                    "There was a conflict when trying to complete your request.",
                )),
                Err(other) => Err(other.into()),
            },
            _ => Err(SwiftError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "containers take GET, HEAD, PUT, POST and DELETE",
            )),
        }
    }
    .await;
    let mut response = result.map_err(|e: SwiftError| deny(context.as_ref(), e))?;
    if !nefos_storage::Storage::owns_account(who, project) {
        super::hide_owner_headers(response.headers_mut(), "container");
    }
    Ok(response)
}

/// The one storage policy there is, as `/info` lists it: asking for another is Swift's 400.
pub(super) const STORAGE_POLICY: &str = "default";

fn check_storage_policy(request: &HeaderMap) -> Result<(), SwiftError> {
    match headers::text(request, "x-storage-policy")? {
        Some(name) if !name.is_empty() && !name.eq_ignore_ascii_case(STORAGE_POLICY) => Err(
            SwiftError::bad_request(format!("Invalid X-Storage-Policy '{name}'")),
        ),
        _ => Ok(()),
    }
}

/// Pithos `until=`: seconds since the epoch (fractions allowed).
pub(super) fn until(params: &HashMap<String, String>) -> Result<Option<i64>, SwiftError> {
    match params.get("until") {
        None => Ok(None),
        Some(v) => seconds_to_micros(v)
            .map(Some)
            .ok_or_else(|| SwiftError::bad_request("until must be seconds since the epoch")),
    }
}

/// `1700000000` or `1700000000.123456` as microseconds, without float rounding.
fn seconds_to_micros(text: &str) -> Option<i64> {
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let whole: i64 = whole.parse().ok().filter(|w| *w >= 0)?;
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros: i64 = format!("{fraction:0<6}")[..6].parse().ok()?;
    whole.checked_mul(1_000_000)?.checked_add(micros)
}

fn update(request: &HeaderMap) -> Result<ContainerUpdate, SwiftError> {
    let versioning = match headers::text(request, "x-container-policy-versioning")? {
        Some(v) => Some(Versioning::parse(v)?),
        None => None,
    };
    // Pithos: a quota of 0 (or an empty value) means none.
    let quota_bytes = match headers::text(request, "x-container-policy-quota")? {
        None => None,
        Some(v) if v.trim().is_empty() => Some(None),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(bytes) if bytes >= 0 => Some(Some(bytes)),
            _ => {
                return Err(SwiftError::bad_request(
                    "X-Container-Policy-Quota must be a number of bytes",
                ));
            }
        },
    };
    Ok(ContainerUpdate {
        meta: headers::metadata(request, "container")?,
        versioning,
        quota_bytes,
        read_acl: acl(request, AclKind::Read)?,
        write_acl: acl(request, AclKind::Write)?,
    })
}

/// `X-Container-Read`/`-Write` (cleaned as Swift cleans them: its errors are a 400 with
/// Swift's text), or `X-Remove-Container-Read`/`-Write` to remove one.
fn acl(request: &HeaderMap, kind: AclKind) -> Result<Option<String>, SwiftError> {
    let name = match kind {
        AclKind::Read => "read",
        AclKind::Write => "write",
    };
    if headers::text(request, &format!("x-remove-container-{name}"))?.is_some() {
        return Ok(Some(String::new()));
    }
    match headers::text(request, &format!("x-container-{name}"))? {
        None => Ok(None),
        Some(value) => {
            nefos_storage::clean_acl(kind, value)
                .map(Some)
                .map_err(|error| match error {
                    nefos_storage::StorageError::InvalidInput { reason, .. } => {
                        SwiftError::bad_request(reason)
                    }
                    other => other.into(),
                })
        }
    }
}

fn container_headers(info: &ContainerInfo) -> HeaderMap {
    let mut out = HeaderMap::new();
    insert(
        &mut out,
        "x-container-object-count",
        &info.objects.to_string(),
    );
    insert(&mut out, "x-container-bytes-used", &info.bytes.to_string());
    insert(
        &mut out,
        "x-container-policy-versioning",
        info.versioning.as_str(),
    );
    insert(
        &mut out,
        "x-timestamp",
        &headers::timestamp(info.created_at),
    );
    insert(
        &mut out,
        "last-modified",
        &headers::http_date(info.updated_at),
    );
    insert(
        &mut out,
        "x-container-policy-quota",
        &info.quota_bytes.unwrap_or(0).to_string(),
    );
    insert(&mut out, "x-storage-policy", STORAGE_POLICY);
    for (name, acl) in [
        ("x-container-read", &info.read_acl),
        ("x-container-write", &info.write_acl),
    ] {
        if !acl.is_empty() {
            insert(&mut out, name, acl);
        }
    }
    out.extend(super::pithos::block_headers());
    headers::put_metadata(&mut out, "x-container-meta-", &info.meta);
    out
}

#[cfg(test)]
mod tests {
    use super::seconds_to_micros;

    #[test]
    fn until_is_read_without_float_rounding() {
        assert_eq!(seconds_to_micros("1700000000"), Some(1_700_000_000_000_000));
        assert_eq!(
            seconds_to_micros("1700000000.5"),
            Some(1_700_000_000_500_000)
        );
        assert_eq!(seconds_to_micros("1.123456789"), Some(1_123_456));
        assert_eq!(seconds_to_micros("-1"), None);
        assert_eq!(seconds_to_micros("1.x"), None);
        assert_eq!(seconds_to_micros("soon"), None);
    }
}
