//! Swift's large objects: static manifests (SLO, `PUT ?multipart-manifest=put`) and the
//! value of dynamic ones (DLO, `X-Object-Manifest: container/prefix`).
//!
//! A static manifest lists segments that are objects (or byte ranges of them) and, between
//! them, short runs of bytes given inline (Swift's `data` segments, for headers and
//! padding of formats assembled from objects).
//!
//! A static manifest is stored as an object whose size and ETag are those of the whole
//! (Swift's rule: the ETag is the MD5 of the segments' ETags), with the segment list in
//! Swift's stored format under [`SLO_MANIFEST_KEY`] among its stored headers. When every
//! segment but the last is a whole number of blocks, its hashmap is the concatenation of
//! the segments' hashmaps, so it is served from blocks like any object and keeps working
//! whatever happens to the segments; otherwise its hashmap is empty and a GET streams the
//! segments (see [`crate::content`]).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::{Digest, Md5};
use nefos_blocks::{BLOCK_SIZE, BlockHash};
use nefos_db::storage as q;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::content::has_own_blocks;
use crate::object::{NewVersion, check_object_name};
use crate::{
    Accessor, ObjectInfo, Storage, StorageError, VersionSelector, WriteOptions, guess_content_type,
    meta,
};

/// Where a static manifest keeps its segment list among the object's stored headers. Not
/// a valid HTTP header name (it has a colon), so it can never be sent or set as one.
pub const SLO_MANIFEST_KEY: &str = "nefos:slo-manifest";

/// The stored header that marks a static manifest.
const SLO_HEADER: &str = "x-static-large-object";

/// The stored headers that make an object a large object's manifest, static or dynamic.
pub(crate) const MANIFEST_HEADERS: &[&str] = &[SLO_HEADER, SLO_MANIFEST_KEY, "x-object-manifest"];

/// Whether stored headers make a version a static large object's manifest.
pub(crate) fn is_static(headers: &BTreeMap<String, String>) -> bool {
    headers
        .get(SLO_HEADER)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Swift's defaults, advertised by `/info`. The limit counts segments that are objects;
/// inline data is bounded by the manifest's size.
pub const MAX_SEGMENTS: usize = 1000;
pub const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;

/// One item of a static manifest as stored, in Swift's format: what
/// `GET ?multipart-manifest=get` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoredItem {
    Segment(StoredSegment),
    /// Bytes given inline, base64-encoded as Swift stores them.
    Data {
        data: String,
    },
}

impl StoredItem {
    /// The segment, if the item is an object's bytes rather than inline data.
    pub fn segment(&self) -> Option<&StoredSegment> {
        match self {
            StoredItem::Segment(segment) => Some(segment),
            StoredItem::Data { .. } => None,
        }
    }

    /// Inline bytes, decoded.
    pub(crate) fn inline_data(&self) -> Option<Result<Vec<u8>, StorageError>> {
        match self {
            StoredItem::Segment(_) => None,
            StoredItem::Data { data } => {
                Some(BASE64.decode(data).map_err(|_| StorageError::Conflict {
                    reason: "the inline data of the static large object is damaged",
                }))
            }
        }
    }
}

/// How many bytes base64 `data` holds (inline data of a static manifest), without decoding
/// it: what its part of the whole is.
pub fn inline_data_len(data: &str) -> u64 {
    let trimmed = data.trim_end_matches('=');
    (trimmed.len() as u64 * 3) / 4
}

/// One object segment of a static manifest as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSegment {
    /// `/container/object`.
    pub name: String,
    /// The segment's ETag when the manifest was written.
    pub hash: String,
    /// The segment's whole size (not that of `range`).
    pub bytes: u64,
    pub content_type: String,
    pub last_modified: String,
    /// `first-last`, inclusive, when only part of the segment is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// The segment is itself a static manifest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sub_slo: bool,
}

impl StoredSegment {
    /// The bytes of the segment used: (first, length).
    pub fn window(&self) -> (u64, u64) {
        self.range
            .as_deref()
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
            .filter(|(first, last)| first <= last)
            .map_or((0, self.bytes), |(first, last)| (first, last - first + 1))
    }
}

/// One item of a manifest upload: an object's bytes or bytes given inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentSpec {
    Object(ObjectSegmentSpec),
    Data(Vec<u8>),
}

/// A segment that is an object, as a client lists it in a manifest upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSegmentSpec {
    /// `/container/object`, or `container/object`.
    pub path: String,
    pub etag: Option<String>,
    pub size_bytes: Option<u64>,
    pub range: Option<SegmentRange>,
}

/// A single byte range of a segment, as in a `Range` header (`a-b`, `a-`, `-n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentRange {
    From { first: u64, last: Option<u64> },
    Suffix(u64),
}

impl SegmentRange {
    fn parse(text: &str) -> Option<SegmentRange> {
        let (first, last) = text.trim().split_once('-')?;
        match (first.trim(), last.trim()) {
            ("", n) => n.parse().ok().map(SegmentRange::Suffix),
            (a, "") => Some(SegmentRange::From {
                first: a.parse().ok()?,
                last: None,
            }),
            (a, b) => {
                let (first, last) = (a.parse().ok()?, b.parse().ok()?);
                (first <= last).then_some(SegmentRange::From {
                    first,
                    last: Some(last),
                })
            }
        }
    }

    /// (first, length) within `size` bytes, or `None` if nothing of it is there.
    fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            SegmentRange::Suffix(0) => None,
            SegmentRange::Suffix(n) => {
                let n = n.min(size);
                (n > 0).then(|| (size - n, n))
            }
            SegmentRange::From { first, last } => {
                let last = last.unwrap_or(u64::MAX).min(size.checked_sub(1)?);
                (first <= last).then(|| (first, last - first + 1))
            }
        }
    }
}

/// What is wrong with one segment of a manifest upload (Swift's wording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentProblem {
    pub path: String,
    pub problem: String,
}

/// Why a manifest upload was refused.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The manifest is not a list of segment descriptions; one message per problem.
    #[error("the manifest is malformed: {}", .0.join("; "))]
    Malformed(Vec<String>),

    /// Segments that do not exist or do not match their description.
    #[error("{} segments of the manifest are not as described", .0.len())]
    Segments(Vec<SegmentProblem>),

    /// More object segments than [`MAX_SEGMENTS`] (Swift's 413).
    #[error("Number of object-backed segments must be <= {MAX_SEGMENTS}")]
    TooManySegments,

    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Parses the body of `PUT ?multipart-manifest=put`: a JSON list of
/// `{"path", "etag", "size_bytes", "range"}`, the last three optional.
pub fn parse_manifest(body: &[u8]) -> Result<Vec<SegmentSpec>, ManifestError> {
    let malformed = |m: &str| ManifestError::Malformed(vec![m.to_owned()]);
    if body.len() > MAX_MANIFEST_BYTES {
        return Err(malformed(&format!(
            "Manifest is larger than {MAX_MANIFEST_BYTES} bytes."
        )));
    }
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(body) else {
        return Err(malformed(
            "Manifest must be valid JSON: a list of segments.",
        ));
    };
    if items.is_empty() {
        return Err(malformed("Manifest must have at least one segment."));
    }
    let mut errors = Vec::new();
    let mut specs = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match parse_segment(item) {
            Ok(spec) => specs.push(spec),
            Err(problem) => errors.push(format!("Index {index}: {problem}")),
        }
    }
    if errors.is_empty() && specs.iter().all(|s| matches!(s, SegmentSpec::Data(_))) {
        errors.push("Inline data segments require at least one object-backed segment.".into());
    }
    if !errors.is_empty() {
        return Err(ManifestError::Malformed(errors));
    }
    let objects = specs
        .iter()
        .filter(|s| matches!(s, SegmentSpec::Object(_)))
        .count();
    if objects > MAX_SEGMENTS {
        return Err(ManifestError::TooManySegments);
    }
    Ok(specs)
}

fn parse_segment(item: &Value) -> Result<SegmentSpec, String> {
    let Value::Object(fields) = item else {
        return Err("not a JSON object".to_owned());
    };
    let (kind, allowed): (&str, &[&str]) = if fields.contains_key("data") {
        ("data", &["data"])
    } else if fields.contains_key("path") {
        ("path", &["path", "etag", "size_bytes", "range"])
    } else {
        return Err("expected keys to include one of 'data' or 'path'".to_owned());
    };
    let mut extraneous: Vec<&String> = fields
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    if !extraneous.is_empty() {
        extraneous.sort();
        let names: Vec<String> = extraneous.iter().map(|k| format!("{k:?}")).collect();
        return Err(format!("extraneous keys {}", names.join(", ")));
    }
    if kind == "data" {
        let data = fields
            .get("data")
            .and_then(Value::as_str)
            .and_then(|text| BASE64.decode(text).ok())
            .ok_or("data must be valid base64")?;
        if data.is_empty() {
            return Err("too small; each segment must be at least 1 byte.".to_owned());
        }
        return Ok(SegmentSpec::Data(data));
    }
    let path = fields
        .get("path")
        .and_then(Value::as_str)
        .filter(|p| split_path(p).is_some())
        .ok_or("path does not refer to an object. Path must be of the form /container/object.")?
        .to_owned();
    let etag = match fields.get("etag") {
        None | Some(Value::Null) => None,
        Some(Value::String(etag)) => Some(etag.trim_matches('"').to_ascii_lowercase()),
        Some(_) => return Err("etag must be a string".to_owned()),
    };
    let size_bytes = match fields.get("size_bytes") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_u64().ok_or("invalid size_bytes")?),
        Some(Value::String(s)) => Some(s.parse().map_err(|_| "invalid size_bytes")?),
        Some(_) => return Err("invalid size_bytes".to_owned()),
    };
    let range = match fields.get("range") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r.contains(',') => {
            return Err("multiple ranges (only one allowed)".to_owned());
        }
        Some(Value::String(r)) => Some(SegmentRange::parse(r).ok_or("invalid range")?),
        Some(_) => return Err("invalid range".to_owned()),
    };
    Ok(SegmentSpec::Object(ObjectSegmentSpec {
        path,
        etag,
        size_bytes,
        range,
    }))
}

/// `container` and `object` of `/container/object`.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix('/')
        .unwrap_or(path)
        .split_once('/')
        .filter(|(c, o)| !c.is_empty() && !o.is_empty())
}

/// The container and prefix of an `X-Object-Manifest` value, which clients send
/// URL-encoded. A value without a `/` names a whole container.
pub fn parse_dynamic(value: &str) -> (String, String) {
    let (container, prefix) = value
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((value.trim_start_matches('/'), ""));
    (percent_decode(container), percent_decode(prefix))
}

/// Whether an `X-Object-Manifest` value has Swift's required `container/prefix` form.
pub fn is_valid_dynamic(value: &str) -> bool {
    value
        .split_once('/')
        .is_some_and(|(container, _)| !container.is_empty())
}

/// Decodes `%XX` escapes; invalid escapes stay as they are.
fn percent_decode(text: &str) -> String {
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

/// A static manifest's item list as stored (Swift's JSON), the body of
/// `GET ?multipart-manifest=get`; `None` for other objects.
pub fn manifest_text(object: &ObjectInfo) -> Option<&str> {
    if !object.is_static_manifest() {
        return None;
    }
    object.headers.get(SLO_MANIFEST_KEY).map(String::as_str)
}

/// The items of a static manifest; `None` for other objects.
pub fn stored_segments(object: &ObjectInfo) -> Result<Option<Vec<StoredItem>>, StorageError> {
    if !object.is_static_manifest() {
        return Ok(None);
    }
    let text = object
        .headers
        .get(SLO_MANIFEST_KEY)
        .ok_or(StorageError::NotFound {
            what: "segment list of the static large object",
        })?;
    serde_json::from_str(text)
        .map(Some)
        .map_err(|_| StorageError::Conflict {
            reason: "the segment list of the static large object is damaged",
        })
}

/// The headers of a static manifest that describe its content rather than metadata: they
/// go wherever its hashmap goes (a copy with fresh metadata stays a large object).
pub fn content_headers(headers: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(name, _)| *name == SLO_HEADER || *name == SLO_MANIFEST_KEY)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// A validated item of a manifest upload.
enum Resolved {
    /// An object segment: its description as stored and its current version.
    Object {
        stored: StoredSegment,
        object: Box<ObjectInfo>,
        first: u64,
        len: u64,
    },
    Data(Vec<u8>),
}

impl Resolved {
    fn len(&self) -> u64 {
        match self {
            Resolved::Object { len, .. } => *len,
            Resolved::Data(data) => data.len() as u64,
        }
    }

    fn etag_part(&self) -> EtagPart<'_> {
        match self {
            Resolved::Object { stored, .. } => EtagPart::Segment(stored),
            Resolved::Data(data) => EtagPart::Data(data),
        }
    }

    fn stored(&self) -> StoredItem {
        match self {
            Resolved::Object { stored, .. } => StoredItem::Segment(stored.clone()),
            Resolved::Data(data) => StoredItem::Data {
                data: BASE64.encode(data),
            },
        }
    }
}

impl Storage {
    /// Stores a static manifest (`PUT ?multipart-manifest=put`) after checking that every
    /// segment exists as described and that `who` may read it. Segments live in the
    /// manifest's account.
    pub async fn put_static_manifest(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        container: &str,
        name: &str,
        segments: Vec<SegmentSpec>,
        options: WriteOptions,
    ) -> Result<ObjectInfo, ManifestError> {
        check_object_name(name)?;
        let target = self.object_container(who, project_id, container).await?;
        let access = self
            .authorize_write(who, &target, name, &options, true)
            .await?;
        if options.if_none_match_any
            && q::get_current(self.db.pool(), &target.id, name)
                .await
                .map_err(StorageError::from)?
                .is_some()
        {
            return Err(StorageError::PreconditionFailed.into());
        }
        meta::check(&options.meta)?;
        let mut problems = Vec::new();
        let mut resolved = Vec::with_capacity(segments.len());
        for spec in segments {
            let spec = match spec {
                SegmentSpec::Data(data) => {
                    resolved.push(Resolved::Data(data));
                    continue;
                }
                SegmentSpec::Object(spec) => spec,
            };
            match self
                .resolve_segment(who, project_id, (container, name), &spec)
                .await?
            {
                Ok(segment) => resolved.push(segment),
                Err(problem) => problems.push(SegmentProblem {
                    path: spec.path.clone(),
                    problem,
                }),
            }
        }
        if !problems.is_empty() {
            return Err(ManifestError::Segments(problems));
        }
        let stored: Vec<StoredItem> = resolved.iter().map(Resolved::stored).collect();
        let etag = manifest_etag(resolved.iter().map(Resolved::etag_part));
        if let Some(expected) = &options.etag {
            let expected = expected.trim_matches('"').to_ascii_lowercase();
            if expected != etag {
                return Err(StorageError::EtagMismatch {
                    expected,
                    actual: etag,
                }
                .into());
            }
        }
        let size = resolved.iter().map(Resolved::len).sum();
        let hashes = match block_aligned_windows(&resolved) {
            Some(windows) => self.aligned_hashmap(&windows).await?,
            None => Vec::new(),
        };
        let mut headers = options.headers;
        headers.remove("x-object-manifest");
        headers.insert(SLO_HEADER.to_owned(), "True".to_owned());
        headers.insert(
            SLO_MANIFEST_KEY.to_owned(),
            serde_json::to_string(&stored).map_err(|_| StorageError::Conflict {
                reason: "the segment list cannot be stored",
            })?,
        );
        let version = NewVersion {
            hashes,
            size,
            etag: Some(etag),
            content_type: options
                .content_type
                .unwrap_or_else(|| guess_content_type(name).to_owned()),
            meta: options.meta,
            headers,
            delete_at: options.delete_at,
            access,
        };
        Ok(self.commit_version(who, &target, name, version).await?)
    }

    /// Looks up one segment of a manifest upload: `Ok(Err(problem))` when it is not as
    /// described, in Swift's words.
    async fn resolve_segment(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        manifest: (&str, &str),
        spec: &ObjectSegmentSpec,
    ) -> Result<Result<Resolved, String>, StorageError> {
        let Some((container, name)) = split_path(&spec.path) else {
            return Ok(Err("path must be /container/object".to_owned()));
        };
        if (container, name) == manifest {
            return Ok(Err(
                "a manifest must not include itself as a segment".to_owned()
            ));
        }
        let object = match self
            .object(who, project_id, container, name, VersionSelector::Current)
            .await
        {
            Ok(object) => object,
            Err(StorageError::NotFound { .. }) => return Ok(Err("404 Not Found".to_owned())),
            Err(StorageError::Forbidden) => return Ok(Err("403 Forbidden".to_owned())),
            Err(other) => return Err(other),
        };
        let mut problems = Vec::new();
        let (first, len) = match spec.range {
            None => (0, object.size),
            Some(range) => match range.resolve(object.size) {
                Some(window) => window,
                None => {
                    problems.push("Unsatisfiable Range");
                    (0, 0)
                }
            },
        };
        if len < 1 && problems.is_empty() {
            problems.push("Too small; each segment must be at least 1 byte.");
        }
        if spec.size_bytes.is_some_and(|size| size != object.size) {
            problems.push("Size Mismatch");
        }
        // A segment made from a hashmap has no MD5 until the digest job computes it, and a
        // manifest records its segments' MD5s.
        let Some(segment_etag) = object.etag.clone() else {
            return Ok(Err(
                "Etag not computed yet; retry in a few seconds".to_owned()
            ));
        };
        if spec.etag.as_ref().is_some_and(|etag| *etag != segment_etag) {
            problems.push("Etag Mismatch");
        }
        if !problems.is_empty() {
            return Ok(Err(problems.join(", ")));
        }
        let whole = first == 0 && len == object.size;
        let stored = StoredSegment {
            name: format!("/{container}/{name}"),
            hash: segment_etag,
            bytes: object.size,
            content_type: object.content_type.clone(),
            last_modified: nefos_db::time::from_micros(object.modified_at)
                .format("%Y-%m-%dT%H:%M:%S%.6f")
                .to_string(),
            range: (!whole).then(|| format!("{first}-{}", first + len - 1)),
            sub_slo: object.is_static_manifest(),
        };
        Ok(Ok(Resolved::Object {
            stored,
            object: Box::new(object),
            first,
            len,
        }))
    }
}

/// Swift's SLO ETag: the MD5 of the segments' ETags, each with `:range;` when ranged, and
/// of the MD5s of inline data.
fn manifest_etag<'a>(items: impl IntoIterator<Item = EtagPart<'a>>) -> String {
    let mut md5 = Md5::new();
    for item in items {
        match item {
            EtagPart::Data(data) => md5.update(hex::encode(Md5::digest(data)).as_bytes()),
            EtagPart::Segment(stored) => match &stored.range {
                Some(range) => md5.update(format!("{}:{range};", stored.hash).as_bytes()),
                None => md5.update(stored.hash.as_bytes()),
            },
        }
    }
    hex::encode(md5.finalize())
}

/// What one item of a manifest adds to its ETag.
#[derive(Debug, Clone, Copy)]
enum EtagPart<'a> {
    Segment(&'a StoredSegment),
    Data(&'a [u8]),
}

impl Storage {
    /// The hashmap of the whole: the given block windows of each segment's hashmap.
    async fn aligned_hashmap(
        &self,
        windows: &[(&ObjectInfo, usize, usize)],
    ) -> Result<Vec<BlockHash>, StorageError> {
        let mut hashes = Vec::new();
        for &(object, from, to) in windows {
            let own = self.hashmap(object).await?;
            let window = own.get(from..to).ok_or(StorageError::CorruptHashmap {
                serial: object.serial,
            })?;
            hashes.extend_from_slice(window);
        }
        Ok(hashes)
    }
}

/// When the segments line up with blocks, the window of blocks each contributes to the
/// hashmap of the whole: each uses whole blocks of a self-contained segment from a block
/// boundary, and all but the last a whole number of blocks (the last may end with its
/// segment's own short final block). Inline data never lines up.
fn block_aligned_windows(items: &[Resolved]) -> Option<Vec<(&ObjectInfo, usize, usize)>> {
    let block = BLOCK_SIZE as u64;
    let mut windows = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Resolved::Object {
            object, first, len, ..
        } = item
        else {
            return None;
        };
        let last = index + 1 == items.len();
        let end = first + len;
        let ends_cleanly = end % block == 0 || end == object.size;
        if !has_own_blocks(object)
            || first % block != 0
            || !ends_cleanly
            || (!last && len % block != 0)
        {
            return None;
        }
        let from = usize::try_from(first / block).ok()?;
        let to = usize::try_from(end.div_ceil(block)).ok()?;
        windows.push((&**object, from, to));
    }
    Some(windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_parse_with_swift_rules() {
        let specs = parse_manifest(
            br#"[{"path": "/c/a", "etag": "\"ABC\"", "size_bytes": 5},
                 {"path": "c/b", "etag": null, "size_bytes": null, "range": "-3"}]"#,
        )
        .unwrap();
        let object = |spec: &SegmentSpec| match spec {
            SegmentSpec::Object(object) => object.clone(),
            SegmentSpec::Data(_) => panic!("{spec:?}"),
        };
        assert_eq!(object(&specs[0]).etag.as_deref(), Some("abc"));
        assert_eq!(object(&specs[0]).size_bytes, Some(5));
        assert_eq!(object(&specs[1]).range, Some(SegmentRange::Suffix(3)));
        let with_data = parse_manifest(br#"[{"data": "QUJD"}, {"path": "/c/a"}]"#).unwrap();
        assert_eq!(with_data[0], SegmentSpec::Data(b"ABC".to_vec()));
        let malformed = |body: &[u8]| match parse_manifest(body) {
            Err(ManifestError::Malformed(m)) => m.join("\n"),
            other => panic!("{other:?}"),
        };
        assert!(malformed(b"{}").contains("valid JSON"));
        assert!(malformed(b"[]").contains("at least one"));
        assert!(malformed(br#"[{"path": "/c"}]"#).starts_with("Index 0: path"));
        assert!(
            malformed(br#"[{"path": "/c/o", "etc": "x"}]"#).contains("extraneous keys \"etc\"")
        );
        assert!(malformed(br#"[{"data": "QUJD", "path": "/c/o"}]"#).contains("extraneous"));
        assert!(malformed(br#"[{"data": "not base64!"}, {"path": "/c/o"}]"#).contains("base64"));
        assert!(malformed(br#"[{"data": ""}, {"path": "/c/o"}]"#).contains("too small"));
        assert!(malformed(br#"[{"data": "QUJD"}]"#).contains("at least one object-backed"));
        assert!(malformed(br#"[{"size_bytes": 1}]"#).contains("'data' or 'path'"));
        assert!(malformed(br#"[{"path": "/c/o", "range": "1-2,4-5"}]"#).contains("multiple"));
        assert!(malformed(br#"[{"path": "/c/o", "range": "5-2"}]"#).contains("invalid range"));
    }

    #[test]
    fn segment_ranges_resolve_like_http_ranges() {
        let r = |text: &str, size| SegmentRange::parse(text).unwrap().resolve(size);
        assert_eq!(r("0-4", 10), Some((0, 5)));
        assert_eq!(r("5-", 10), Some((5, 5)));
        assert_eq!(r("-3", 10), Some((7, 3)));
        assert_eq!(r("8-100", 10), Some((8, 2)));
        assert_eq!(r("10-", 10), None);
        assert_eq!(r("-0", 10), None);
    }

    #[test]
    fn etags_follow_swift() {
        let stored = |hash: &str, range: Option<&str>| StoredSegment {
            name: "/c/o".into(),
            hash: hash.into(),
            bytes: 10,
            content_type: String::new(),
            last_modified: String::new(),
            range: range.map(str::to_owned),
            sub_slo: false,
        };
        let (aa, bb, aa_ranged) = (
            stored("aa", None),
            stored("bb", None),
            stored("aa", Some("0-4")),
        );
        let plain = [EtagPart::Segment(&aa), EtagPart::Segment(&bb)];
        assert_eq!(manifest_etag(plain), hex::encode(Md5::digest(b"aabb")));
        assert_eq!(
            manifest_etag([EtagPart::Segment(&aa_ranged)]),
            hex::encode(Md5::digest(b"aa:0-4;"))
        );
        let data = hex::encode(Md5::digest(b"xyz"));
        assert_eq!(
            manifest_etag([EtagPart::Data(b"xyz"), EtagPart::Segment(&aa)]),
            hex::encode(Md5::digest(format!("{data}aa").as_bytes()))
        );
        assert_eq!(stored("aa", Some("0-4")).window(), (0, 5));
        assert_eq!(stored("aa", None).window(), (0, 10));
    }

    #[test]
    fn stored_items_read_back_in_swifts_format() {
        let items: Vec<StoredItem> = serde_json::from_str(
            r#"[{"data": "QUJD"}, {"name": "/c/o", "hash": "aa", "bytes": 3,
                "content_type": "text/plain", "last_modified": "x"}]"#,
        )
        .unwrap();
        assert_eq!(items[0].inline_data().unwrap().unwrap(), b"ABC");
        assert_eq!(items[1].segment().unwrap().name, "/c/o");
    }

    #[test]
    fn dynamic_manifests_are_decoded() {
        assert_eq!(
            parse_dynamic("c_segments/my%20file/123/"),
            ("c_segments".to_owned(), "my file/123/".to_owned())
        );
        assert_eq!(parse_dynamic("c"), ("c".to_owned(), String::new()));
        assert!(is_valid_dynamic("c/"));
        assert!(!is_valid_dynamic("c"));
        assert!(!is_valid_dynamic("/p"));
    }
}
