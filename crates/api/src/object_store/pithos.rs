//! The Pithos extensions of the object-store API (Synnefo's Pithos API guide): object
//! `PUT ?hashmap`, container `POST` of bare blocks, object `POST` with `Content-Range`
//! (append, overwrite, truncate, `X-Source-Object`), `until=` on accounts and containers,
//! `?shared` listings, the views sharees get of other accounts, and `GET /v1`: the
//! accounts that share something with the caller.
//!
//! The handlers of `account`, `container` and `object` call in here for these cases and
//! keep the plain Swift behaviour otherwise.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode};
use nefos_blocks::{BLOCK_SIZE, BlockHash};
use nefos_identity::AuthContext;
use nefos_storage::{
    Accessor, DataUpdate, ObjectInfo, SourceObject, Storage, VersionSelector, WriteOptions,
};
use serde::Deserialize;
use serde_json::json;

use super::error::SwiftError;
use super::headers::{self, insert};
use super::listing::{self, Format};
use super::object::Target;
use super::{accessor, caller, deny};
use crate::ApiState;
use crate::extract::Query;

type Params = HashMap<String, String>;

/// The largest hashmap body accepted: a hash (64 hex digits and JSON punctuation) per block
/// of the largest object, with room to spare.
const MAX_HASHMAP_BODY: usize = 1024 * 1024;

/// A hashmap as Pithos clients send it (`GET ?hashmap` gives the same form). kamaki sends
/// only `bytes` and `hashes`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum HashmapBody {
    Full {
        bytes: u64,
        hashes: Vec<String>,
        #[serde(default)]
        block_size: Option<u64>,
        #[serde(default)]
        block_hash: Option<String>,
    },
    /// A bare list of hashes, with the size in `X-Object-Bytes`.
    Hashes(Vec<String>),
}

/// Object `PUT ?hashmap`: creates the object from blocks the store has (201), or answers
/// 409 with the JSON list of the hashes it lacks.
pub(super) async fn put_hashmap(
    storage: &Storage,
    who: Accessor<'_>,
    params: &Params,
    request: &HeaderMap,
    target: &Target,
    body: Body,
    options: WriteOptions,
) -> Result<ObjectInfo, SwiftError> {
    if params
        .get("format")
        .is_some_and(|f| f.eq_ignore_ascii_case("xml"))
    {
        return Err(SwiftError::bad_request(
            "hashmaps are accepted as JSON only (format=json)",
        ));
    }
    let body = axum::body::to_bytes(body, MAX_HASHMAP_BODY)
        .await
        .map_err(|_| {
            SwiftError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a hashmap is at most {MAX_HASHMAP_BODY} bytes of JSON"),
            )
        })?;
    let parsed: HashmapBody = serde_json::from_slice(&body).map_err(|e| {
        SwiftError::bad_request(format!(
            "the hashmap must be JSON {{\"bytes\": N, \"hashes\": [...]}}: {e}"
        ))
    })?;
    let (bytes, hashes) = match parsed {
        HashmapBody::Full {
            bytes,
            hashes,
            block_size,
            block_hash,
        } => {
            if block_size.is_some_and(|s| s != BLOCK_SIZE as u64) {
                return Err(SwiftError::bad_request(format!(
                    "block_size must be {BLOCK_SIZE}"
                )));
            }
            if block_hash.is_some_and(|h| !h.eq_ignore_ascii_case("sha256")) {
                return Err(SwiftError::bad_request("block_hash must be sha256"));
            }
            (bytes, hashes)
        }
        HashmapBody::Hashes(hashes) => {
            let bytes = headers::number(request, "x-object-bytes")?
                .and_then(|b| u64::try_from(b).ok())
                .ok_or_else(|| {
                    SwiftError::bad_request(
                        "a bare list of hashes needs the object's size in X-Object-Bytes",
                    )
                })?;
            (bytes, hashes)
        }
    };
    let hashes = hashes
        .iter()
        .map(|h| h.trim().to_ascii_lowercase().parse::<BlockHash>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SwiftError::bad_request(e.to_string()))?;
    Ok(storage
        .put_hashmap(
            who,
            &target.project,
            &target.container,
            &target.object,
            bytes,
            hashes,
            options,
        )
        .await?)
}

/// Whether a container `POST` uploads blocks (Pithos): a body of
/// `application/octet-stream`. Without a body it stays a metadata update.
pub(super) fn is_block_upload(request: &HeaderMap) -> Result<bool, SwiftError> {
    let octets = headers::text(request, "content-type")?
        .is_some_and(|t| t.trim().starts_with("application/octet-stream"));
    let has_body = headers::number(request, "content-length")?.is_some_and(|l| l > 0)
        || headers::text(request, "transfer-encoding")?
            .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    Ok(octets && has_body)
}

/// Container `POST` with blocks: stores them and answers 202 with their hashes, one per
/// line, or as a JSON (`format=json`) or XML (`format=xml`) list.
pub(super) async fn upload_blocks(
    storage: &Storage,
    who: Accessor<'_>,
    project: &str,
    container: &str,
    params: &Params,
    request: &HeaderMap,
    body: Body,
) -> Result<Response, SwiftError> {
    let declared_size = headers::text(request, "content-length")?.and_then(|v| v.parse().ok());
    let hashes = storage
        .put_blocks(
            who,
            project,
            container,
            body.into_data_stream(),
            declared_size,
        )
        .await?;
    let hexes: Vec<String> = hashes.iter().map(BlockHash::to_hex).collect();
    let mut out = HeaderMap::new();
    let body = match listing::format(params, request) {
        Format::Json => {
            insert(&mut out, "content-type", "application/json; charset=utf-8");
            json!(hexes).to_string()
        }
        Format::Xml => {
            insert(&mut out, "content-type", "application/xml; charset=utf-8");
            let items: String = hexes.iter().map(|h| format!("<hash>{h}</hash>")).collect();
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<hashes>{items}</hashes>")
        }
        Format::Plain => {
            insert(&mut out, "content-type", "text/plain; charset=utf-8");
            hexes.iter().map(|h| format!("{h}\n")).collect()
        }
    };
    Ok((StatusCode::ACCEPTED, out, body).into_response())
}

/// A parsed `Content-Range` of an update: (offset, length, total), `None` for `*`.
type UpdateRange = (Option<u64>, Option<u64>, Option<u64>);

/// Parses Pithos's `Content-Range` of an update: `bytes A-B/T`, `bytes A-/T` (the length
/// is the body's) or `bytes */T` (append), where `T` is the object's size or `*`.
fn parse_update_range(value: &str) -> Result<UpdateRange, SwiftError> {
    let invalid = || {
        SwiftError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            format!(
                "invalid Content-Range {value:?}: expected bytes A-B/*, bytes A-/* or bytes */*"
            ),
        )
    };
    let spec = value
        .trim()
        .strip_prefix("bytes")
        .map(str::trim_start)
        .ok_or_else(invalid)?;
    let (range, total) = spec.split_once('/').ok_or_else(invalid)?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().map_err(|_| invalid())?),
    };
    let range = range.trim();
    if range == "*" {
        return Ok((None, None, total));
    }
    let (first, last) = range.split_once('-').ok_or_else(invalid)?;
    let first: u64 = first.trim().parse().map_err(|_| invalid())?;
    let length = match last.trim() {
        "" => None,
        last => {
            let last: u64 = last.parse().map_err(|_| invalid())?;
            if last < first {
                return Err(invalid());
            }
            Some(last - first + 1)
        }
    };
    Ok((Some(first), length, total))
}

/// The data update an object `POST` asks for, if any: a `Content-Range` (with a body of
/// `application/octet-stream`, or with `X-Source-Object`), or `X-Object-Bytes` alone to
/// truncate. Metadata headers given with it are merged into the new version.
pub(super) fn data_update(
    request: &HeaderMap,
    target: &Target,
) -> Result<Option<DataUpdate>, SwiftError> {
    let range = headers::text(request, "content-range")?;
    let source = headers::text(request, "x-source-object")?;
    let final_size = match headers::number(request, "x-object-bytes")? {
        None => None,
        Some(bytes) => Some(
            u64::try_from(bytes)
                .map_err(|_| SwiftError::bad_request("X-Object-Bytes must not be negative"))?,
        ),
    };
    let content_length = headers::number(request, "content-length")?;
    let has_body = content_length.is_some_and(|l| l > 0)
        || headers::text(request, "transfer-encoding")?
            .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    if range.is_none() && source.is_none() && final_size.is_none() {
        return Ok(None);
    }
    let (offset, length, total) = match range {
        Some(range) => parse_update_range(range)?,
        None if source.is_some() || has_body => {
            return Err(SwiftError::bad_request(
                "updating an object's data needs a Content-Range",
            ));
        }
        // `X-Object-Bytes` alone: a truncation, no data.
        None => (None, Some(0), None),
    };
    if source.is_none()
        && let (Some(length), Some(given)) = (length, content_length)
        && u64::try_from(given).ok() != Some(length)
    {
        return Err(SwiftError::bad_request(
            "Content-Length does not match the length of the Content-Range",
        ));
    }
    let source = match source {
        None => None,
        Some(path) => {
            let path = path.trim_start_matches('/');
            let (container, name) = path
                .split_once('/')
                .filter(|(c, o)| !c.is_empty() && !o.is_empty())
                .ok_or_else(|| {
                    SwiftError::bad_request("X-Source-Object must be /<container>/<object>")
                })?;
            let project_id = match headers::text(request, "x-source-account")? {
                Some(account) => account.strip_prefix("AUTH_").unwrap_or(account).to_owned(),
                None => target.project.clone(),
            };
            let version = match headers::number(request, "x-source-version")? {
                Some(serial) => VersionSelector::Serial(serial),
                None => VersionSelector::Current,
            };
            Some(SourceObject {
                project_id,
                container: container.to_owned(),
                name: name.to_owned(),
                version,
            })
        }
    };
    Ok(Some(DataUpdate {
        offset,
        length,
        total,
        final_size,
        source,
        meta: headers::metadata(request, "object")?,
        ..DataUpdate::default()
    }))
}

/// The answer to a data update: 204 with the new version's ETag and version.
pub(super) fn updated(object: &ObjectInfo) -> Response {
    let mut out = HeaderMap::new();
    if let Some(etag) = &object.etag {
        insert(&mut out, "etag", etag);
    }
    insert(&mut out, "x-object-version", &object.serial.to_string());
    if let Some(hash) = &object.hash {
        insert(&mut out, "x-object-hash", &hash.to_hex());
    }
    insert(
        &mut out,
        "last-modified",
        &headers::http_date(object.modified_at),
    );
    (StatusCode::NO_CONTENT, out).into_response()
}

/// Account `GET`/`HEAD` cases of Pithos: `?shared`, `until=`, and another user's view of
/// an account that shares objects with them. `None` leaves the request to plain Swift.
#[allow(clippy::too_many_arguments)]
pub(super) async fn account_get(
    storage: &Storage,
    who: Accessor<'_>,
    project: &str,
    account: &str,
    params: &Params,
    request: &HeaderMap,
    with_body: bool,
    account_headers: impl Fn(&nefos_storage::AccountInfo) -> HeaderMap,
) -> Result<Option<Response>, SwiftError> {
    let mut query = listing::query(params)?;
    let format = listing::format(params, request);
    if !Storage::can_access_account(who, project) {
        if matches!(who, Accessor::Anonymous { .. }) {
            return Ok(None);
        }
        // A sharee sees the containers that hold objects shared with them, nothing of
        // the account itself; an account that shares nothing with them stays forbidden.
        let containers = storage.containers_shared_with(who, project, &query).await?;
        if !with_body {
            return Ok(Some(StatusCode::NO_CONTENT.into_response()));
        }
        return Ok(Some(listing::containers(
            format,
            account,
            &containers,
            HeaderMap::new(),
        )));
    }
    let until = super::container::until(params)?;
    let shared = params.contains_key("shared");
    if until.is_none() && !shared {
        return Ok(None);
    }
    let info = match until {
        Some(until) => storage.account_until(who, project, until).await?,
        None => storage.account(who, project).await?,
    };
    let mut out = account_headers(&info);
    if let Some(until) = until {
        insert(
            &mut out,
            "x-account-until-timestamp",
            &headers::timestamp(until),
        );
    }
    if !with_body {
        return Ok(Some((StatusCode::NO_CONTENT, out).into_response()));
    }
    let containers = if shared {
        storage.list_shared_containers(who, project, &query).await?
    } else {
        query.until = until;
        storage.list_containers(who, project, &query).await?
    };
    Ok(Some(listing::containers(format, account, &containers, out)))
}

/// Container `GET`/`HEAD` cases of Pithos: `?shared`, `until=` (the headers show what the
/// container held then; the listing already honours it), and a sharee's view of a
/// container holding objects shared with them. `None` leaves the request to plain Swift.
#[allow(clippy::too_many_arguments)]
pub(super) async fn container_get(
    storage: &Storage,
    who: Accessor<'_>,
    project: &str,
    container: &str,
    params: &Params,
    request: &HeaderMap,
    with_body: bool,
    container_headers: impl Fn(&nefos_storage::ContainerInfo) -> HeaderMap,
) -> Result<Option<Response>, SwiftError> {
    let query = listing::query(params)?;
    let format = listing::format(params, request);
    let shared = params.contains_key("shared");
    if !Storage::can_access_account(who, project) {
        // Anonymous callers, and those the container's ACL lets read it, see it as Swift
        // shows it; other users see the objects shared with them (Pithos).
        if matches!(who, Accessor::Anonymous { .. })
            || storage
                .acl_lets_read_container(who, project, container)
                .await?
        {
            return Ok(None);
        }
        let entries = storage
            .list_shared_objects(who, project, container, &query)
            .await?;
        if !with_body {
            return Ok(Some(StatusCode::NO_CONTENT.into_response()));
        }
        return Ok(Some(listing::objects(
            format,
            container,
            &entries,
            block_headers(),
        )));
    }
    let until = super::container::until(params)?;
    if until.is_none() && !shared {
        return Ok(None);
    }
    let info = match until {
        Some(until) => {
            storage
                .container_until(who, project, container, until)
                .await?
        }
        None => storage.container(who, project, container).await?,
    };
    let mut out = container_headers(&info);
    if let Some(until) = until {
        insert(
            &mut out,
            "x-container-until-timestamp",
            &headers::timestamp(until),
        );
    }
    if !with_body {
        return Ok(Some((StatusCode::NO_CONTENT, out).into_response()));
    }
    let entries = if shared {
        storage
            .list_shared_objects(who, project, container, &query)
            .await?
    } else {
        let mut query = query;
        query.until = until;
        storage
            .list_objects(who, project, container, &query)
            .await?
    };
    Ok(Some(listing::objects(format, container, &entries, out)))
}

/// Pithos's `X-Container-Block-*`: how clients compute hashmaps for this store.
pub(super) fn block_headers() -> HeaderMap {
    let mut out = HeaderMap::new();
    insert(&mut out, "x-container-block-size", &BLOCK_SIZE.to_string());
    insert(&mut out, "x-container-block-hash", "sha256");
    out
}

/// `GET /object/v1`: the accounts that share objects with the caller, as `AUTH_<project>`
/// names (plain, or JSON/XML with `format`).
pub(super) async fn sharing_accounts(
    State(state): State<ApiState>,
    method: Method,
    Query(params): Query<Params>,
    request: HeaderMap,
) -> Result<Response, SwiftError> {
    let context: Option<AuthContext> = caller(&state, &request).await?;
    let result = async {
        if method != Method::GET && method != Method::HEAD {
            return Err(SwiftError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "the top level takes GET and HEAD",
            ));
        }
        let accounts = state
            .storage
            .accounts_sharing_with(accessor(context.as_ref(), &HeaderMap::new()))
            .await?;
        let mut names: Vec<String> = accounts.iter().map(|p| format!("AUTH_{p}")).collect();
        let query = listing::query(&params)?;
        if let Some(marker) = query.marker.as_deref().filter(|m| !m.is_empty()) {
            names.retain(|n| n.as_str() > marker);
        }
        if let Some(limit) = query.limit {
            names.truncate(usize::try_from(limit).unwrap_or(0));
        }
        let format = listing::format(&params, &request);
        let mut out = HeaderMap::new();
        if method == Method::HEAD {
            return Ok((StatusCode::NO_CONTENT, out).into_response());
        }
        let body = match format {
            Format::Plain if names.is_empty() => {
                return Ok((StatusCode::NO_CONTENT, out).into_response());
            }
            Format::Plain => {
                insert(&mut out, "content-type", "text/plain; charset=utf-8");
                names.iter().map(|n| format!("{n}\n")).collect()
            }
            Format::Json => {
                insert(&mut out, "content-type", "application/json; charset=utf-8");
                let items: Vec<_> = names.iter().map(|n| json!({ "name": n })).collect();
                serde_json::Value::Array(items).to_string()
            }
            Format::Xml => {
                insert(&mut out, "content-type", "application/xml; charset=utf-8");
                let items: String = names
                    .iter()
                    .map(|n| format!("<account><name>{n}</name></account>"))
                    .collect();
                format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<accounts>{items}</accounts>")
            }
        };
        Ok((StatusCode::OK, out, body).into_response())
    }
    .await;
    result.map_err(|e: SwiftError| deny(context.as_ref(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_ranges_parse_like_pithos() {
        assert_eq!(
            parse_update_range("bytes 10-19/*").unwrap(),
            (Some(10), Some(10), None)
        );
        assert_eq!(
            parse_update_range("bytes 10-/*").unwrap(),
            (Some(10), None, None)
        );
        assert_eq!(parse_update_range("bytes */*").unwrap(), (None, None, None));
        assert_eq!(
            parse_update_range("bytes 0-0/100").unwrap(),
            (Some(0), Some(1), Some(100))
        );
        assert!(parse_update_range("bytes 5-4/*").is_err());
        assert!(parse_update_range("items 0-1/*").is_err());
        assert!(parse_update_range("bytes 0-1").is_err());
    }
}
