//! Large objects in the Swift API: `?multipart-manifest=put|get|delete` for static
//! manifests (SLO), and the ETag and checks of dynamic ones (DLO, `X-Object-Manifest`).
//! What the bytes of a large object are is decided by [`nefos_storage::Storage::content`].

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use http::{HeaderMap, StatusCode, header};
use md5::{Digest, Md5};
use nefos_storage::{
    Accessor, Content, MAX_MANIFEST_BYTES, ManifestError, ObjectInfo, SegmentProblem, Storage,
    StorageError, StoredItem, VersionSelector, WriteOptions, manifest_text, parse_manifest,
    split_path, stored_segments,
};
use serde_json::json;

use super::bulk::Tally;
use super::error::SwiftError;
use super::headers::{self, insert};
use super::listing::{self, Format};
use super::object::{Target, object_headers};
use crate::ApiState;

type Params = HashMap<String, String>;

/// How deeply `?multipart-manifest=delete` follows manifests listed as segments.
const MAX_DEPTH: usize = 10;

/// Whether the request has `?multipart-manifest=<action>`.
pub(super) fn wants(params: &Params, action: &str) -> bool {
    params
        .get("multipart-manifest")
        .is_some_and(|v| v.eq_ignore_ascii_case(action))
}

/// Refuses an `X-Object-Manifest` that is not `container/prefix`, as Swift does.
pub(super) fn check_dynamic(options: &WriteOptions) -> Result<(), SwiftError> {
    match options.headers.get("x-object-manifest") {
        Some(value) if !nefos_storage::is_valid_dynamic(value) => Err(SwiftError::bad_request(
            "X-Object-Manifest must be in the format container/prefix",
        )),
        _ => Ok(()),
    }
}

/// `PUT ?multipart-manifest=put`: stores a static manifest after checking its segments.
pub(super) async fn put_static(
    storage: &Storage,
    who: Accessor<'_>,
    target: &Target,
    format: Format,
    options: WriteOptions,
    body: Body,
) -> Result<Response, SwiftError> {
    let body = axum::body::to_bytes(body, MAX_MANIFEST_BYTES)
        .await
        .map_err(|error| {
            if crate::slow_body::is_slow_body(&error) {
                SwiftError::new(StatusCode::REQUEST_TIMEOUT, error.to_string())
            } else {
                SwiftError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("a manifest is at most {MAX_MANIFEST_BYTES} bytes"),
                )
            }
        })?;
    let stored = match parse_manifest(&body) {
        Ok(segments) => {
            storage
                .put_static_manifest(
                    who,
                    &target.project,
                    &target.container,
                    &target.object,
                    segments,
                    options,
                )
                .await
        }
        Err(error) => Err(error),
    };
    match stored {
        Ok(object) => Ok(created(&object)),
        Err(ManifestError::Storage(error)) => Err(error.into()),
        Err(ManifestError::Malformed(problems)) => Ok(plain(
            StatusCode::BAD_REQUEST,
            format!("{}\n", problems.join("\n")),
        )),
        Err(ManifestError::Segments(problems)) => Ok(segment_problems(format, &problems)),
        Err(error @ ManifestError::TooManySegments) => {
            Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, error.to_string()))
        }
    }
}

fn created(object: &ObjectInfo) -> Response {
    let mut out = HeaderMap::new();
    if let Some(etag) = &object.etag {
        insert(&mut out, "etag", &format!("\"{etag}\""));
    }
    insert(
        &mut out,
        "last-modified",
        &headers::http_date(object.modified_at),
    );
    insert(&mut out, "x-object-version", &object.serial.to_string());
    insert(&mut out, "content-length", "0");
    (StatusCode::CREATED, out).into_response()
}

fn plain(status: StatusCode, text: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// 400 listing each segment that is not as described, in Swift's format.
fn segment_problems(format: Format, problems: &[SegmentProblem]) -> Response {
    let pairs: Vec<[&str; 2]> = problems
        .iter()
        .map(|p| [p.path.as_str(), p.problem.as_str()])
        .collect();
    if format == Format::Json {
        let body = json!({ "Errors": pairs });
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let mut text = String::from("Errors:\n");
    for [path, problem] in pairs {
        text.push_str(&format!("{path}, {problem}\n"));
    }
    plain(StatusCode::BAD_REQUEST, text)
}

/// `GET ?multipart-manifest=get` of a static manifest: the segment list as stored, or as
/// uploaded with `&format=raw`. `None` for other objects, which are served as they are.
pub(super) fn manifest_body(
    state: &ApiState,
    object: &ObjectInfo,
    params: &Params,
    with_body: bool,
) -> Result<Option<Response>, SwiftError> {
    if !wants(params, "get") {
        return Ok(None);
    }
    let Some(text) = manifest_text(object) else {
        return Ok(None);
    };
    // As Swift: the list as stored, or with `format=raw` as uploaded and typed as the
    // object is.
    let (body, content_type) = if params.get("format").is_some_and(|f| f == "raw") {
        let segments = stored_segments(object)?.unwrap_or_default();
        let raw = json!(segments.iter().map(as_uploaded).collect::<Vec<_>>());
        (raw.to_string(), object.content_type.as_str())
    } else {
        (text.to_owned(), "application/json; charset=utf-8")
    };
    let mut out = object_headers(state, object);
    insert(&mut out, "content-type", content_type);
    insert(&mut out, "content-length", &body.len().to_string());
    insert(&mut out, "etag", &hex::encode(Md5::digest(body.as_bytes())));
    let body = if with_body {
        Body::from(body)
    } else {
        Body::empty()
    };
    Ok(Some((StatusCode::OK, out, body).into_response()))
}

/// A stored item in the form a client uploads.
fn as_uploaded(item: &StoredItem) -> serde_json::Value {
    let segment = match item {
        StoredItem::Segment(segment) => segment,
        StoredItem::Data { data } => return json!({ "data": data }),
    };
    let mut item = json!({
        "path": segment.name,
        "etag": segment.hash,
        "size_bytes": segment.bytes,
    });
    if let Some(range) = &segment.range {
        item["range"] = json!(range);
    }
    item
}

/// The bytes a GET serves: a dynamic manifest's segments unless
/// `?multipart-manifest=get` asks for the manifest itself. A HEAD of a static manifest
/// answers from what is stored, without looking at the segments (as Swift does).
pub(super) async fn content(
    storage: &Storage,
    who: Accessor<'_>,
    object: &ObjectInfo,
    params: &Params,
    with_body: bool,
) -> Result<Content, SwiftError> {
    // A HEAD needs the size and ETag only: no hashmap is read.
    if !with_body {
        return Ok(storage
            .content_description(who, object, wants(params, "get"))
            .await?);
    }
    Ok(storage.content(who, object, wants(params, "get")).await?)
}

/// The object as served, for conditional requests and headers: a dynamic large object
/// has the ETag of its segments.
pub(super) fn as_served<'a>(object: &'a ObjectInfo, content: &Content) -> Cow<'a, ObjectInfo> {
    if object.etag.as_deref() == content.etag() {
        Cow::Borrowed(object)
    } else {
        let mut served = object.clone();
        served.etag = content.etag().map(str::to_owned);
        Cow::Owned(served)
    }
}

/// The headers of a large object served as a whole: Swift quotes its ETag (it is not the
/// MD5 of the bytes), and `X-Object-Hash` is left out unless the object's own hashmap
/// holds the bytes served.
pub(super) fn large_object_headers(
    out: &mut HeaderMap,
    object: &ObjectInfo,
    content: &Content,
    params: &Params,
) {
    let dynamic = object.dynamic_manifest().is_some() && !wants(params, "get");
    if dynamic || object.is_static_manifest() {
        match content.etag() {
            Some(etag) => insert(out, "etag", &format!("\"{etag}\"")),
            None => {
                out.remove("etag");
            }
        }
    }
    if dynamic || !nefos_storage::has_own_blocks(object) {
        out.remove("x-object-hash");
    }
    if !wants(params, "get")
        && let Some((manifest_etag, _)) = listing_etags(object)
    {
        insert(out, "x-manifest-etag", &manifest_etag);
    }
}

/// `DELETE ?multipart-manifest=delete`: deletes a static manifest's segments (and those of
/// manifests among them), then the manifest; another object is simply deleted. Answers
/// with the bulk-delete tally, as Swift does.
pub(super) async fn delete_static(
    storage: &Storage,
    who: Accessor<'_>,
    target: &Target,
    params: &Params,
    request: &HeaderMap,
) -> Result<Response, SwiftError> {
    let format = listing::format(params, request);
    let mut tally = Tally::default();
    let path = format!("/{}/{}", target.container, target.object);
    let object = match storage
        .object(
            who,
            &target.project,
            &target.container,
            &target.object,
            VersionSelector::Current,
        )
        .await
    {
        Ok(object) => object,
        Err(StorageError::NotFound { .. }) => {
            tally.record(&path, Err(StorageError::NotFound { what: "object" }));
            return Ok(tally.response(format));
        }
        Err(other) => return Err(other.into()),
    };
    if let Some(segments) = stored_segments(&object)? {
        let mut seen = HashSet::new();
        delete_segments(
            storage,
            who,
            &target.project,
            segments,
            &mut seen,
            &mut tally,
            0,
        )
        .await?;
    }
    let outcome = storage
        .delete_object(who, &target.project, &target.container, &target.object)
        .await;
    tally.record(&path, outcome);
    Ok(tally.response(format))
}

fn delete_segments<'a>(
    storage: &'a Storage,
    who: Accessor<'a>,
    project: &'a str,
    segments: Vec<StoredItem>,
    seen: &'a mut HashSet<String>,
    tally: &'a mut Tally,
    depth: usize,
) -> BoxFuture<'a, Result<(), SwiftError>> {
    Box::pin(async move {
        for segment in segments.iter().filter_map(StoredItem::segment) {
            if !seen.insert(segment.name.clone()) {
                continue;
            }
            let Some((container, name)) = split_path(&segment.name) else {
                continue;
            };
            if segment.sub_slo && depth < MAX_DEPTH {
                let inner = storage
                    .object(who, project, container, name, VersionSelector::Current)
                    .await
                    .ok()
                    .and_then(|o| stored_segments(&o).ok().flatten());
                if let Some(inner) = inner {
                    delete_segments(storage, who, project, inner, seen, tally, depth + 1).await?;
                }
            }
            let outcome = storage.delete_object(who, project, container, name).await;
            tally.record(&segment.name, outcome);
        }
        Ok(())
    })
}

/// Swift's `?part-number=N` on a static large object: the bytes of its N-th item (an
/// object segment, or inline data), as a range of the whole, with the number of items.
/// `None` for other objects and requests, which are served as they are.
pub(super) fn part(
    object: &ObjectInfo,
    params: &Params,
    request: &HeaderMap,
) -> Result<Option<(nefos_storage::ByteRange, usize)>, SwiftError> {
    let Some(wanted) = params.get("part-number") else {
        return Ok(None);
    };
    let Some(items) = stored_segments(object)? else {
        return Ok(None);
    };
    let number = wanted
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| SwiftError::bad_request("Part number must be an integer greater than 0"))?;
    if request.contains_key(header::RANGE) {
        return Err(SwiftError::bad_request(
            "Range requests are not supported with part number queries",
        ));
    }
    let count = items.len();
    let Some(item) = items.get(number - 1) else {
        let mut error = SwiftError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "The requested part number is not satisfiable",
        );
        error.headers.extend([
            (header::CONTENT_RANGE, format!("bytes */{}", object.size)),
            (
                header::HeaderName::from_static("x-parts-count"),
                count.to_string(),
            ),
            (
                header::ETAG,
                format!("\"{}\"", object.etag.as_deref().unwrap_or_default()),
            ),
            (
                header::HeaderName::from_static("x-static-large-object"),
                "True".to_owned(),
            ),
        ]);
        if let Some((manifest_etag, _)) = listing_etags(object) {
            error.headers.push((
                header::HeaderName::from_static("x-manifest-etag"),
                manifest_etag,
            ));
        }
        return Err(error);
    };
    let length = |item: &StoredItem| match item {
        StoredItem::Segment(segment) => segment.window().1,
        StoredItem::Data { data } => nefos_storage::inline_data_len(data),
    };
    let first: u64 = items[..number - 1].iter().map(length).sum();
    let len = length(item);
    let range = nefos_storage::ByteRange {
        first,
        last: (first + len).saturating_sub(1),
    };
    Ok(Some((range, count)))
}

/// What a container listing says of a static manifest, as Swift: `hash` is the MD5 of the
/// stored item list (the manifest's own ETag) and `slo_etag` the quoted ETag of the whole.
pub(super) fn listing_etags(object: &ObjectInfo) -> Option<(String, String)> {
    let text = manifest_text(object)?;
    let whole = object.etag.as_deref().unwrap_or_default();
    Some((
        hex::encode(Md5::digest(text.as_bytes())),
        format!("\"{whole}\""),
    ))
}
