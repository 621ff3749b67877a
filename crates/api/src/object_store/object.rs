//! `/object/v1/AUTH_<project>/<container>/<object>`.

use std::collections::{BTreeMap, HashMap};

use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, Method, StatusCode, header};
use nefos_identity::AuthContext;
use nefos_storage::{
    Accessor, ObjectInfo, ObjectUpdate, Preconditions, STORED_HEADERS, SignedScope, Storage,
    StorageError, VersionSelector, WriteOptions,
};

use super::error::SwiftError;
use super::headers::{self, insert};
use super::range::{self, RangeRequest};
use super::{accessor, caller, deny, manifest, project_of, tempurl};
use crate::ApiState;
use crate::extract::{Path, Query};

type Params = HashMap<String, String>;

#[allow(clippy::too_many_arguments)]
pub(super) async fn handle(
    State(state): State<ApiState>,
    method: Method,
    Path((account, container, object)): Path<(String, String, String)>,
    Query(params): Query<Params>,
    OriginalUri(uri): OriginalUri,
    client: Option<axum::Extension<crate::ClientAddress>>,
    request: HeaderMap,
    body: Body,
) -> Result<Response, SwiftError> {
    let target = Target {
        project: project_of(&account)?.to_owned(),
        container,
        object,
    };
    let parts = tempurl::SignedParts {
        method: &method,
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        headers: &request,
        client: client.map(|c| c.0.0),
        project: &target.project,
        container: &target.container,
        object: &target.object,
    };
    // A signed URL is its own authority: its token, if any, is not looked at, and of its
    // parameters only those of the signature count (Swift forwards no others).
    let (context, signed, params) = match tempurl::check(&state, &parts).await? {
        tempurl::Outcome::Unsigned => (caller(&state, &request).await?, None, params),
        tempurl::Outcome::Signed(signed) => (None, Some(signed), Params::new()),
    };
    let call = Call {
        state: &state,
        context: context.as_ref(),
        signed: signed.as_ref().map(|s| &s.scope),
        params: &params,
        request: &request,
    };
    let result = match method.as_str() {
        "GET" => call.get(&target, true).await,
        "HEAD" => call.get(&target, false).await,
        "PUT" => call.put(&target, body).await,
        "POST" => call.post(&target, body).await,
        "DELETE" => call.delete(&target).await,
        "COPY" => call.copy_to_destination(&target, false).await,
        "MOVE" => call.copy_to_destination(&target, true).await,
        _ => Err(SwiftError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "objects take GET, HEAD, PUT, POST, DELETE, COPY and MOVE",
        )),
    };
    let result = result.map_err(|e| deny(context.as_ref(), e));
    match &signed {
        Some(signed) => result.map(|response| signed.finish(&method, &target.object, response)),
        None => result,
    }
}

/// An object path.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) project: String,
    pub(super) container: String,
    pub(super) object: String,
}

struct Call<'a> {
    state: &'a ApiState,
    context: Option<&'a AuthContext>,
    /// What a signed URL reaches, when the request came with one.
    signed: Option<&'a SignedScope>,
    params: &'a Params,
    request: &'a HeaderMap,
}

impl Call<'_> {
    fn storage(&self) -> &Storage {
        &self.state.storage
    }

    fn who(&self) -> Accessor<'_> {
        match self.signed {
            Some(scope) => Accessor::Signed(scope),
            None => accessor(self.context, self.request),
        }
    }

    fn version(&self) -> Result<VersionSelector, SwiftError> {
        if let Some(until) = super::container::until(self.params)? {
            return Ok(VersionSelector::Until(until));
        }
        match self.params.get("version").map(String::as_str) {
            None | Some("") | Some("list") => Ok(VersionSelector::Current),
            Some(v) => v
                .parse()
                .map(VersionSelector::Serial)
                .map_err(|_| SwiftError::bad_request("version must be a version id or 'list'")),
        }
    }

    fn preconditions(&self) -> Result<Preconditions, SwiftError> {
        let date = |name| -> Result<Option<i64>, SwiftError> {
            Ok(headers::text(self.request, name)?.and_then(headers::parse_http_date))
        };
        Ok(Preconditions {
            if_match: headers::etag_list(self.request, "if-match")?,
            if_none_match: headers::etag_list(self.request, "if-none-match")?,
            if_modified_since: date("if-modified-since")?,
            if_unmodified_since: date("if-unmodified-since")?,
        })
    }

    async fn get(&self, target: &Target, with_body: bool) -> Result<Response, SwiftError> {
        let storage = self.storage();
        if self.params.get("version").is_some_and(|v| v == "list") {
            let versions = storage
                .object_versions(
                    self.who(),
                    &target.project,
                    &target.container,
                    &target.object,
                )
                .await?;
            let list: Vec<_> = versions
                .iter()
                .map(|(serial, at)| serde_json::json!([serial, headers::timestamp(*at)]))
                .collect();
            return Ok(axum::Json(serde_json::json!({ "versions": list })).into_response());
        }
        let object = storage
            .object(
                self.who(),
                &target.project,
                &target.container,
                &target.object,
                self.version()?,
            )
            .await?;
        if let Some(response) =
            manifest::manifest_body(self.state, &object, self.params, with_body)?
        {
            return Ok(response);
        }
        // A large object is served as its segments, resolved (and access-checked) now.
        let content =
            manifest::content(storage, self.who(), &object, self.params, with_body).await?;
        self.preconditions()?
            .check(&manifest::as_served(&object, &content), true)?;
        let mut out = object_headers(self.state, &object);
        manifest::large_object_headers(&mut out, &object, &content, self.params);
        // Pithos: a sharee sees the object, not the public URL its owner made of it.
        if !Storage::can_access_account(self.who(), &target.project) {
            out.remove("x-object-public");
        }
        if self.params.contains_key("hashmap") {
            let hashes = storage.hashmap(&object).await?;
            let body = serde_json::json!({
                "block_size": nefos_blocks::BLOCK_SIZE,
                "block_hash": "sha256",
                "bytes": object.size,
                "hashes": hashes.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
            });
            return Ok((StatusCode::OK, out, axum::Json(body)).into_response());
        }
        let range_header = headers::text(self.request, "range")?;
        let size = content.size();
        let requested = match manifest::part(&object, self.params, self.request)? {
            Some((part, count)) => {
                insert(&mut out, "x-parts-count", &count.to_string());
                RangeRequest::Ranges(vec![part])
            }
            None => match range::parse(range_header, size) {
                // As Swift's: a dynamic large object answers several ranges with the
                // whole (its segments are not known in advance to cut them from).
                RangeRequest::Ranges(ranges)
                    if ranges.len() > 1
                        && object.dynamic_manifest().is_some()
                        && !manifest::wants(self.params, "get") =>
                {
                    RangeRequest::Full
                }
                requested => requested,
            },
        };
        match requested {
            RangeRequest::Unsatisfiable => Err(StorageError::RangeNotSatisfiable { size }.into()),
            RangeRequest::Full => {
                insert(&mut out, "content-length", &size.to_string());
                let body = if with_body {
                    Body::from_stream(storage.read_content(&content, None))
                } else {
                    Body::empty()
                };
                Ok((StatusCode::OK, out, body).into_response())
            }
            RangeRequest::Ranges(ranges) if ranges.len() == 1 => {
                let r = ranges[0];
                insert(&mut out, "content-length", &r.len().to_string());
                insert(
                    &mut out,
                    "content-range",
                    &format!("bytes {}-{}/{}", r.first, r.last, size),
                );
                let body = if with_body {
                    Body::from_stream(storage.read_content(&content, Some(r)))
                } else {
                    Body::empty()
                };
                Ok((StatusCode::PARTIAL_CONTENT, out, body).into_response())
            }
            RangeRequest::Ranges(ranges) => {
                let boundary = uuid::Uuid::new_v4().simple().to_string();
                let parts: Vec<(String, nefos_storage::ByteRange)> = ranges
                    .iter()
                    .map(|r| {
                        let head = format!(
                            "--{boundary}\r\nContent-Type: {}\r\nContent-Range: bytes {}-{}/{}\r\n\r\n",
                            object.content_type, r.first, r.last, size
                        );
                        (head, *r)
                    })
                    .collect();
                let tail = format!("\r\n--{boundary}--\r\n");
                let length: u64 = parts
                    .iter()
                    .map(|(h, r)| h.len() as u64 + r.len() + 2)
                    .sum::<u64>()
                    + tail.len() as u64
                    - 2;
                insert(
                    &mut out,
                    "content-type",
                    &format!("multipart/byteranges;boundary={boundary}"),
                );
                insert(&mut out, "content-length", &length.to_string());
                if !with_body {
                    return Ok((StatusCode::PARTIAL_CONTENT, out).into_response());
                }
                let storage = storage.clone();
                let mut streams = Vec::new();
                for (index, (head, r)) in parts.into_iter().enumerate() {
                    let lead = if index == 0 {
                        head
                    } else {
                        format!("\r\n{head}")
                    };
                    streams.push(
                        futures::stream::once(async move {
                            Ok::<_, StorageError>(bytes::Bytes::from(lead))
                        })
                        .boxed(),
                    );
                    streams.push(storage.read_content(&content, Some(r)).boxed());
                }
                streams.push(
                    futures::stream::once(async move { Ok(bytes::Bytes::from(tail)) }).boxed(),
                );
                let body = Body::from_stream(futures::stream::iter(streams).flatten());
                Ok((StatusCode::PARTIAL_CONTENT, out, body).into_response())
            }
        }
    }

    fn write_options(&self, target: &Target) -> Result<WriteOptions, SwiftError> {
        let content_type = match headers::text(self.request, "content-type")? {
            Some(t)
                if !t.is_empty()
                    && !headers::text(self.request, "x-detect-content-type")?
                        .is_some_and(|v| v.eq_ignore_ascii_case("true")) =>
            {
                Some(t.to_owned())
            }
            _ => Some(nefos_storage::guess_content_type(&target.object).to_owned()),
        };
        let mut stored = BTreeMap::new();
        for name in STORED_HEADERS {
            if let Some(value) = headers::text(self.request, name)? {
                stored.insert((*name).to_owned(), value.to_owned());
            }
        }
        // Only a manifest PUT (`?multipart-manifest=put`) may mark an object static.
        stored.remove("x-static-large-object");
        // A write sets what `X-Object-Meta-*` names, even to an empty value, as Swift's
        // does; `X-Remove-Object-Meta-*` matters to a copy, leaving the source's out.
        let meta_removals = headers::metadata_removals(self.request, "object");
        let mut meta = headers::metadata(self.request, "object")?;
        meta.retain(|name, _| !meta_removals.contains(name));
        Ok(WriteOptions {
            content_type,
            meta,
            meta_removals,
            headers: stored,
            etag: headers::text(self.request, "etag")?.map(str::to_owned),
            delete_at: self.delete_at()?.flatten(),
            if_none_match_any: match headers::text(self.request, "if-none-match")? {
                None => false,
                Some(v) if v.trim() == "*" => true,
                Some(_) => {
                    return Err(SwiftError::bad_request("If-None-Match only supports *"));
                }
            },
            sharing: self.sharing()?,
            public: self.public()?,
            // A chunked body has none: its room is checked only as it is committed.
            size: headers::text(self.request, "content-length")?.and_then(|v| v.parse().ok()),
            size_limit: None,
            defer_md5: false,
        })
    }

    /// `X-Object-Sharing` given on a write or an update.
    fn sharing(&self) -> Result<Option<String>, SwiftError> {
        Ok(headers::text(self.request, "x-object-sharing")?.map(str::to_owned))
    }

    /// `X-Object-Public` given on a write or an update.
    fn public(&self) -> Result<Option<bool>, SwiftError> {
        Ok(headers::text(self.request, "x-object-public")?.map(|v| v.eq_ignore_ascii_case("true")))
    }

    /// `X-Delete-At` / `X-Delete-After` / `X-Remove-Delete-At`: `Some(None)` removes.
    fn delete_at(&self) -> Result<Option<Option<i64>>, SwiftError> {
        let now = nefos_db::time::now_micros() / 1_000_000;
        if headers::text(self.request, "x-remove-delete-at")?.is_some() {
            return Ok(Some(None));
        }
        if let Some(at) = expiry_seconds(self.request, "x-delete-at", "Non-integer X-Delete-At")? {
            return nefos_storage::delete_at(at, now)
                .map(|at| Some(Some(at)))
                .map_err(|_| SwiftError::bad_request("X-Delete-At in past"));
        }
        if let Some(after) =
            expiry_seconds(self.request, "x-delete-after", "Non-integer X-Delete-After")?
        {
            return nefos_storage::delete_after(after, now)
                .map(|at| Some(Some(at)))
                .map_err(|_| SwiftError::bad_request("X-Delete-After in past"));
        }
        Ok(None)
    }

    async fn put(&self, target: &Target, body: Body) -> Result<Response, SwiftError> {
        let options = self.write_options(target)?;
        manifest::check_dynamic(&options)?;
        if manifest::wants(self.params, "put") {
            let format = super::listing::format(self.params, self.request);
            return manifest::put_static(self.storage(), self.who(), target, format, options, body)
                .await;
        }
        let storage = self.storage();
        for (header, is_move) in [("x-copy-from", false), ("x-move-from", true)] {
            if let Some(source) = headers::text(self.request, header)? {
                let source_account = headers::text(self.request, &format!("{header}-account"))?;
                let source = self.parse_path(
                    source,
                    source_account.or(Some(&format!("AUTH_{}", target.project))),
                )?;
                drop(body);
                return self.copy(&source, target, options, is_move).await;
            }
        }
        if self.params.contains_key("hashmap") {
            let object = super::pithos::put_hashmap(
                storage,
                self.who(),
                self.params,
                self.request,
                target,
                body,
                options,
            )
            .await?;
            return Ok(created(&object));
        }
        let object = storage
            .put_object(
                self.who(),
                &target.project,
                &target.container,
                &target.object,
                body.into_data_stream(),
                options,
            )
            .await?;
        Ok(created(&object))
    }

    /// `container/object` from a copy header, in `account` (`AUTH_<project>`).
    fn parse_path(&self, path: &str, account: Option<&str>) -> Result<Target, SwiftError> {
        let path = percent_decode(path.trim_start_matches('/'));
        let (container, object) = path
            .split_once('/')
            .filter(|(c, o)| !c.is_empty() && !o.is_empty())
            .ok_or_else(|| {
                SwiftError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "a copy source or destination must be <container>/<object>",
                )
            })?;
        let project = project_of(account.unwrap_or_default())?.to_owned();
        Ok(Target {
            project,
            container: container.to_owned(),
            object: object.to_owned(),
        })
    }

    async fn copy(
        &self,
        source: &Target,
        target: &Target,
        options: WriteOptions,
        is_move: bool,
    ) -> Result<Response, SwiftError> {
        let fresh = headers::text(self.request, "x-fresh-metadata")?
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let keep_type = headers::text(self.request, "content-type")?.is_none();
        let options = WriteOptions {
            content_type: if keep_type {
                None
            } else {
                options.content_type
            },
            ..options
        };
        let storage = self.storage();
        let from = (
            source.project.as_str(),
            source.container.as_str(),
            source.object.as_str(),
        );
        let to = (
            target.project.as_str(),
            target.container.as_str(),
            target.object.as_str(),
        );
        let mut source_modified = None;
        let object = if is_move {
            storage
                .move_object(self.who(), from, to, options, fresh)
                .await?
        } else if manifest::wants(self.params, "get") {
            storage
                .copy_object(self.who(), from, self.version()?, to, options, fresh)
                .await?
        } else {
            let object = storage
                .object(self.who(), from.0, from.1, from.2, self.version()?)
                .await?;
            source_modified = Some(object.modified_at);
            let range = self.copied_range(&object)?;
            storage
                .copy_object_as_served(self.who(), &object, range, to, options, fresh)
                .await?
        };
        let mut response = created(&object);
        // As Swift's: the copy's metadata comes back with the answer.
        headers::put_metadata(response.headers_mut(), "x-object-meta-", &object.meta);
        if let Some(modified) = source_modified {
            insert(
                response.headers_mut(),
                "x-copied-from-last-modified",
                &headers::http_date(modified),
            );
        }
        insert(
            response.headers_mut(),
            "x-copied-from",
            &format!("{}/{}", source.container, source.object),
        );
        Ok(response)
    }

    /// The part of a source a copy takes: a static large object's `?part-number`, or one
    /// range of a plain or static large object (Swift's `Range` on a `COPY`).
    fn copied_range(
        &self,
        object: &ObjectInfo,
    ) -> Result<Option<nefos_storage::ByteRange>, SwiftError> {
        if let Some((part, _)) = manifest::part(object, self.params, self.request)? {
            return Ok(Some(part));
        }
        if object.dynamic_manifest().is_some() {
            return Ok(None);
        }
        match range::parse(headers::text(self.request, "range")?, object.size) {
            RangeRequest::Full => Ok(None),
            RangeRequest::Ranges(ranges) if ranges.len() == 1 => Ok(Some(ranges[0])),
            RangeRequest::Ranges(_) => Err(SwiftError::bad_request(
                "a copy takes one range of its source",
            )),
            RangeRequest::Unsatisfiable => {
                Err(StorageError::RangeNotSatisfiable { size: object.size }.into())
            }
        }
    }

    /// `COPY`/`MOVE` with a `Destination` header.
    async fn copy_to_destination(
        &self,
        source: &Target,
        is_move: bool,
    ) -> Result<Response, SwiftError> {
        let destination = headers::text(self.request, "destination")?.ok_or_else(|| {
            SwiftError::new(StatusCode::PRECONDITION_FAILED, "Destination is missing")
        })?;
        let account = headers::text(self.request, "destination-account")?
            .map(str::to_owned)
            .unwrap_or(format!("AUTH_{}", source.project));
        let target = self.parse_path(destination, Some(&account))?;
        let options = self.write_options(&target)?;
        self.copy(source, &target, options, is_move).await
    }

    async fn post(&self, target: &Target, body: Body) -> Result<Response, SwiftError> {
        // Pithos: a Content-Range (or X-Source-Object, or X-Object-Bytes) updates the data.
        if let Some(mut update) = super::pithos::data_update(self.request, target)? {
            update.preconditions = self.preconditions()?;
            update.sharing = self.sharing()?;
            update.public = self.public()?;
            let object = self
                .storage()
                .update_object_data(
                    self.who(),
                    &target.project,
                    &target.container,
                    &target.object,
                    update,
                    body.into_data_stream(),
                )
                .await?;
            return Ok(super::pithos::updated(&object));
        }
        let content_type = headers::text(self.request, "content-type")?
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let kept_headers = STORED_HEADERS.iter().filter(|n| !n.starts_with("x-static"));
        // What `X-Object-Meta-*` names, even empty (Swift keeps empty values); a removal
        // is simply not named again.
        let removals = headers::metadata_removals(self.request, "object");
        let mut meta = headers::metadata(self.request, "object")?;
        meta.retain(|name, _| !removals.contains(name));
        let mut stored = BTreeMap::new();
        for name in kept_headers.clone() {
            if let Some(value) = headers::text(self.request, name)? {
                stored.insert((*name).to_owned(), value.to_owned());
            }
        }
        // Pithos: a POST of sharing or publicity alone changes only that. Otherwise, as
        // Swift's POST, the metadata and the headers kept with the object are replaced,
        // so one not sent is removed (a DLO posted without `X-Object-Manifest` becomes the
        // plain object its manifest is).
        let permissions_only = meta.is_empty()
            && removals.is_empty()
            && stored.is_empty()
            && (self.sharing()?.is_some() || self.public()?.is_some());
        let meta = if permissions_only {
            None
        } else {
            for name in kept_headers {
                stored.entry((*name).to_owned()).or_default();
            }
            Some(meta)
        };
        let update = ObjectUpdate {
            meta,
            content_type,
            headers: stored,
            delete_at: self.delete_at()?,
            sharing: self.sharing()?,
            public: self.public()?,
        };
        let object = self
            .storage()
            .update_object(
                self.who(),
                &target.project,
                &target.container,
                &target.object,
                update,
            )
            .await?;
        let mut out = HeaderMap::new();
        if let Some(token) = &object.public_token {
            insert(
                &mut out,
                "x-object-public",
                &format!("{}/public/{token}", self.state.public_url()),
            );
        }
        Ok((StatusCode::ACCEPTED, out).into_response())
    }

    async fn delete(&self, target: &Target) -> Result<Response, SwiftError> {
        if manifest::wants(self.params, "delete") {
            return manifest::delete_static(
                self.storage(),
                self.who(),
                target,
                self.params,
                self.request,
            )
            .await;
        }
        self.storage()
            .delete_object(
                self.who(),
                &target.project,
                &target.container,
                &target.object,
            )
            .await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}

/// An expiry header's whole number of seconds (Swift's texts for the rest).
fn expiry_seconds(
    request: &HeaderMap,
    name: &str,
    not_a_number: &'static str,
) -> Result<Option<i64>, SwiftError> {
    headers::text(request, name)?
        .map(|text| headers::python_int(text).ok_or_else(|| SwiftError::bad_request(not_a_number)))
        .transpose()
}

fn created(object: &ObjectInfo) -> Response {
    let mut out = HeaderMap::new();
    if let Some(etag) = &object.etag {
        insert(&mut out, "etag", etag);
    }
    insert(
        &mut out,
        "last-modified",
        &headers::http_date(object.modified_at),
    );
    insert(&mut out, "x-object-version", &object.serial.to_string());
    if let Some(hash) = &object.hash {
        insert(&mut out, "x-object-hash", &hash.to_hex());
    }
    insert(&mut out, "content-length", "0");
    (StatusCode::CREATED, out).into_response()
}

/// The headers describing an object (GET and HEAD).
pub(super) fn object_headers(state: &ApiState, object: &ObjectInfo) -> HeaderMap {
    let mut out = HeaderMap::new();
    // Absent while the digest job has not computed the MD5 (see nefos_storage's digest).
    if let Some(etag) = &object.etag {
        if object.is_static_manifest() {
            insert(&mut out, "etag", &format!("\"{etag}\""));
        } else {
            insert(&mut out, "etag", etag);
        }
    }
    insert(
        &mut out,
        header::CONTENT_TYPE.as_str(),
        &object.content_type,
    );
    insert(
        &mut out,
        "last-modified",
        &headers::http_date(object.modified_at),
    );
    insert(
        &mut out,
        "x-timestamp",
        &headers::timestamp(object.modified_at),
    );
    insert(&mut out, "accept-ranges", "bytes");
    if let Some(hash) = &object.hash {
        insert(&mut out, "x-object-hash", &hash.to_hex());
    }
    insert(&mut out, "x-object-version", &object.serial.to_string());
    insert(
        &mut out,
        "x-object-version-timestamp",
        &headers::timestamp(object.modified_at),
    );
    insert(&mut out, "x-object-modified-by", &object.modified_by);
    if let Some(at) = object.delete_at {
        insert(&mut out, "x-delete-at", &at.to_string());
    }
    if let Some(sharing) = &object.sharing {
        insert(&mut out, "x-object-sharing", sharing);
    }
    if let Some(token) = &object.public_token {
        insert(
            &mut out,
            "x-object-public",
            &format!("{}/public/{token}", state.public_url()),
        );
    }
    for (name, value) in &object.headers {
        insert(&mut out, name, value);
    }
    headers::put_metadata(&mut out, "x-object-meta-", &object.meta);
    out
}

/// Decodes `%XX` escapes in a copy path; invalid escapes stay as they are.
pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(value) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(value);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
