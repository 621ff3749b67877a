//! Objects: versions as hashmaps, their metadata, and the operations on them.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use nefos_blocks::{BlockHash, merkle_root};
use nefos_db::storage::{self as q, ContainerRow, ObjectRow, PathRow};
use nefos_db::time::now_micros;
use serde::{Deserialize, Serialize};

use crate::access::Accessor;
use crate::charging::Reservation;
use crate::container::{QUOTA_BYTES, QUOTA_COUNT, Versioning};
use crate::download::{self, ByteRange};
use crate::manifest;
use crate::meta::{self, Metadata};
use crate::upload::{self, Uploaded};
use crate::write_access::{self, WriteAccess};
use crate::{Permission, Storage, StorageError};

/// Swift's single-object limit: larger objects are uploaded as segments and a manifest.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// Stored headers that are part of an object, beyond its user metadata.
pub const STORED_HEADERS: &[&str] = &[
    "content-disposition",
    "content-encoding",
    "content-language",
    "cache-control",
    "x-object-manifest",
    "x-static-large-object",
];

/// One version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub project_id: String,
    pub container_id: String,
    pub container: String,
    pub name: String,
    /// The version id (Pithos `X-Object-Version`).
    pub serial: i64,
    pub size: u64,
    /// Pithos `X-Object-Hash`: the Merkle root of the hashmap. `None` only in listings of
    /// versions written before nefos stored it, until the digest job fills it in.
    pub hash: Option<BlockHash>,
    /// How many blocks the hashmap lists (the hashmap itself is read only to serve or
    /// copy the content: [`Storage::hashmap`]).
    pub blocks: u64,
    /// MD5 of the content, or Swift's manifest ETag; `None` while the digest job has not
    /// computed it (versions made from a hashmap or by a partial update).
    pub etag: Option<String>,
    pub content_type: String,
    pub meta: Metadata,
    /// Stored headers (see [`STORED_HEADERS`]), lower-case names.
    pub headers: BTreeMap<String, String>,
    /// Seconds since the epoch (`X-Delete-At`).
    pub delete_at: Option<i64>,
    pub modified_at: i64,
    pub modified_by: String,
    pub sharing: Option<String>,
    pub public_token: Option<String>,
}

impl ObjectInfo {
    pub fn is_static_manifest(&self) -> bool {
        self.headers
            .get("x-static-large-object")
            .is_some_and(|v| v == "True")
    }

    pub fn dynamic_manifest(&self) -> Option<&str> {
        self.headers.get("x-object-manifest").map(String::as_str)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredMeta {
    #[serde(default)]
    meta: Metadata,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Which version of an object to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VersionSelector {
    #[default]
    Current,
    /// A version id from `?version=list`.
    Serial(i64),
    /// The object as it was at this time (microseconds), Pithos `until=`.
    Until(i64),
}

/// How to write a new version.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Guessed from the name when absent.
    pub content_type: Option<String>,
    /// User metadata of the new version (an empty value is kept, as Swift keeps it).
    pub meta: Metadata,
    /// Names of the source's metadata a copy leaves out (`X-Remove-Object-Meta-*`).
    pub meta_removals: Vec<String>,
    /// Values for [`STORED_HEADERS`].
    pub headers: BTreeMap<String, String>,
    /// The client's ETag: the upload is refused (and not stored) when it differs.
    pub etag: Option<String>,
    /// Seconds since the epoch.
    pub delete_at: Option<i64>,
    /// `If-None-Match: *`: fail if the object exists.
    pub if_none_match_any: bool,
    /// `X-Object-Sharing` to set with the version (`Some("")` removes it). Owner only.
    pub sharing: Option<String>,
    /// `X-Object-Public` to set with the version. Owner only.
    pub public: Option<bool>,
    /// The body's length when the request declares it (`Content-Length`): its bytes are
    /// reserved against the quota before the body is read.
    pub size: Option<u64>,
    /// The largest body to store; [`MAX_OBJECT_SIZE`] (Swift's limit) when `None`. The
    /// image service raises it: disk images are larger than Swift's single objects.
    pub size_limit: Option<u64>,
    /// Leave the MD5 (Swift's ETag) to the digest job, as for versions made from a
    /// hashmap, instead of computing it as the body arrives: for writers whose clients do
    /// not read the ETag of the write (the image service, which hashes the data itself).
    pub defer_md5: bool,
}

/// Changes to an object's metadata (Swift `POST`), and to its path's sharing and publicity.
#[derive(Debug, Clone, Default)]
pub struct ObjectUpdate {
    /// Replaces all user metadata when given (Swift semantics).
    pub meta: Option<Metadata>,
    pub content_type: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub delete_at: Option<Option<i64>>,
    /// `Some("")` removes sharing.
    pub sharing: Option<String>,
    pub public: Option<bool>,
}

/// HTTP conditional request headers, evaluated against an object.
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    pub if_match: Option<Vec<String>>,
    pub if_none_match: Option<Vec<String>>,
    /// Seconds since the epoch.
    pub if_modified_since: Option<i64>,
    pub if_unmodified_since: Option<i64>,
}

impl Preconditions {
    /// RFC 9110 order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since.
    /// `reading` is true for GET and HEAD, where a failed If-None-Match is "not modified".
    pub fn check(&self, object: &ObjectInfo, reading: bool) -> Result<(), StorageError> {
        let etag_matches = |tags: &[String]| {
            tags.iter().any(|t| {
                t == "*"
                    || object
                        .etag
                        .as_deref()
                        .is_some_and(|e| t.trim_matches('"') == e)
            })
        };
        let modified = object.modified_at / 1_000_000;
        if let Some(tags) = &self.if_match {
            if !etag_matches(tags) {
                return Err(StorageError::PreconditionFailed);
            }
        } else if let Some(since) = self.if_unmodified_since
            && modified > since
        {
            return Err(StorageError::PreconditionFailed);
        }
        if let Some(tags) = &self.if_none_match {
            if etag_matches(tags) {
                return Err(if reading {
                    StorageError::NotModified
                } else {
                    StorageError::PreconditionFailed
                });
            }
        } else if let Some(since) = self.if_modified_since
            && reading
            && modified <= since
        {
            return Err(StorageError::NotModified);
        }
        Ok(())
    }
}

/// A name of an object: Swift allows up to 1024 bytes, and no NUL (which PostgreSQL
/// cannot store).
pub(crate) fn check_object_name(name: &str) -> Result<(), StorageError> {
    if name.is_empty() || name.len() > 1024 || name.contains('\0') {
        return Err(StorageError::invalid(
            "object name",
            "1 to 1024 bytes without NUL",
        ));
    }
    Ok(())
}

/// The MIME type of a name, by its extension.
pub fn guess_content_type(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "txt" | "text" | "log" | "md" => "text/plain",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "csv" => "text/csv",
        "js" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "bz2" => "application/x-bzip2",
        "xz" => "application/x-xz",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        "iso" => "application/x-iso9660-image",
        _ => "application/octet-stream",
    }
}

pub(crate) fn hashmap_text(hashes: &[BlockHash]) -> String {
    let mut text = String::with_capacity(hashes.len() * 64);
    for hash in hashes {
        text.push_str(&hash.to_hex());
    }
    text
}

/// Reads a stored hashmap. A row that does not parse is an error, never a shorter list:
/// garbage collection trusting a short list would delete blocks still in use.
pub(crate) fn parse_hashmap(serial: i64, text: &str) -> Result<Vec<BlockHash>, StorageError> {
    let corrupt = || StorageError::CorruptHashmap { serial };
    if !text.len().is_multiple_of(64) {
        return Err(corrupt());
    }
    text.as_bytes()
        .chunks(64)
        .map(|chunk| {
            std::str::from_utf8(chunk)
                .ok()
                .and_then(|hex| hex.parse().ok())
                .ok_or_else(corrupt)
        })
        .collect()
}

pub(crate) fn object_info(
    container: &ContainerRow,
    row: ObjectRow,
    path: Option<PathRow>,
) -> ObjectInfo {
    let stored: StoredMeta = serde_json::from_str(&row.meta).unwrap_or_default();
    let path = path.unwrap_or_default();
    ObjectInfo {
        project_id: container.project_id.clone(),
        container_id: container.id.clone(),
        container: container.name.clone(),
        hash: row.hash.as_deref().and_then(|h| h.parse().ok()),
        blocks: u64::try_from(row.blocks).unwrap_or(0),
        name: row.name,
        serial: row.serial,
        size: u64::try_from(row.size).unwrap_or(0),
        etag: Some(row.etag).filter(|e| !e.is_empty()),
        content_type: row.content_type,
        meta: stored.meta,
        headers: stored.headers,
        delete_at: row.delete_at,
        modified_at: row.modified_at,
        modified_by: row.modified_by,
        sharing: path.sharing,
        public_token: path.public_token,
    }
}

/// What a new version will hold.
#[derive(Debug, Clone)]
pub(crate) struct NewVersion {
    pub(crate) hashes: Vec<BlockHash>,
    pub(crate) size: u64,
    /// `None`: the digest job computes it later.
    pub(crate) etag: Option<String>,
    pub(crate) content_type: String,
    pub(crate) meta: Metadata,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) delete_at: Option<i64>,
    /// What the authorisation of the write allows and brings along.
    pub(crate) access: WriteAccess,
}

impl Storage {
    /// Reads an object version's description. Needs read access to it.
    pub async fn object(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        container: &str,
        name: &str,
        version: VersionSelector,
    ) -> Result<ObjectInfo, StorageError> {
        let container = self.object_container(who, project_id, container).await?;
        if version == VersionSelector::Current {
            self.require_object(who, &container, name, Permission::Read)
                .await?;
        } else {
            self.require_object_as_owner_or_sharee(who, &container, name, Permission::Read)
                .await?;
        }
        self.find_object(&container, name, version).await
    }

    pub(crate) async fn find_object(
        &self,
        container: &ContainerRow,
        name: &str,
        version: VersionSelector,
    ) -> Result<ObjectInfo, StorageError> {
        let pool = self.db.pool();
        let row = match version {
            VersionSelector::Current => q::get_current(pool, &container.id, name).await?,
            VersionSelector::Serial(serial) => {
                q::get_version(pool, &container.id, name, serial).await?
            }
            VersionSelector::Until(until) => q::get_as_of(pool, &container.id, name, until)
                .await?
                .filter(|r| !r.deleted),
        };
        let row = row.ok_or(StorageError::NotFound { what: "object" })?;
        if row
            .delete_at
            .is_some_and(|at| at <= now_micros() / 1_000_000)
        {
            return Err(StorageError::NotFound { what: "object" });
        }
        let path = q::get_path(pool, &container.id, name).await?;
        let mut object = object_info(container, row, path);
        if object.hash.is_none() {
            // Written before the hash was stored: one object's hashmap is cheap to read.
            object.hash = Some(merkle_root(&self.hashmap(&object).await?));
        }
        self.shown(object).await
    }

    /// An object as clients see it: its sharing names users by name.
    pub(crate) async fn shown(&self, mut object: ObjectInfo) -> Result<ObjectInfo, StorageError> {
        if let Some(stored) = &object.sharing {
            let shown = self.show_sharing(stored).await?;
            object.sharing = (!shown.is_empty()).then_some(shown);
        }
        Ok(object)
    }

    /// An object's current version if it is version `serial`, with no access check: for
    /// services that authorised their caller themselves (the image service serves an
    /// image's object to whoever may see the image). `None` once that version is no
    /// longer the current one.
    pub async fn version_for_service(
        &self,
        container_id: &str,
        name: &str,
        serial: i64,
    ) -> Result<Option<ObjectInfo>, StorageError> {
        let Some(container) = q::get_container_by_id(self.db.pool(), container_id).await? else {
            return Ok(None);
        };
        // Only while it is the current version: an image stops being one when its object
        // is overwritten, and must not serve the replaced bytes in between.
        match self
            .find_object(&container, name, VersionSelector::Current)
            .await
        {
            Ok(object) if object.serial == serial => Ok(Some(object)),
            Ok(_) | Err(StorageError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The hashmap of an object version: what serving or copying its content needs, and
    /// nothing else does.
    pub async fn hashmap(&self, object: &ObjectInfo) -> Result<Vec<BlockHash>, StorageError> {
        let text = q::get_hashmap(self.db.pool(), object.serial)
            .await?
            .ok_or(StorageError::NotFound { what: "object" })?;
        parse_hashmap(object.serial, &text)
    }

    /// Requires `needed` on one object: as the owner, through the container's ACLs, or
    /// through sharing.
    pub(crate) async fn require_object(
        &self,
        who: Accessor<'_>,
        container: &ContainerRow,
        name: &str,
        needed: Permission,
    ) -> Result<(), StorageError> {
        crate::container::refuse_nul("object name", name)?;
        if Self::acl_grants(who, container, needed, false) {
            return Ok(());
        }
        self.require_object_as_owner_or_sharee(who, container, name, needed)
            .await
    }

    /// Requires `needed` on one object as the owner or through sharing: what reaches an
    /// object's history, which a container's ACL does not (Swift's reach only the
    /// current objects).
    pub(crate) async fn require_object_as_owner_or_sharee(
        &self,
        who: Accessor<'_>,
        container: &ContainerRow,
        name: &str,
        needed: Permission,
    ) -> Result<(), StorageError> {
        match self
            .object_permission(who, &container.project_id, &container.id, name)
            .await?
        {
            Some(held) if held >= needed => Ok(()),
            _ => Err(StorageError::Forbidden),
        }
    }

    /// The bytes of an object version, or of `range` of them.
    pub async fn read(
        &self,
        object: &ObjectInfo,
        range: Option<ByteRange>,
    ) -> Result<impl Stream<Item = Result<Bytes, StorageError>> + Send + 'static, StorageError>
    {
        let hashes = self.hashmap(object).await?;
        Ok(download::read(
            self.blocks.clone(),
            Arc::new(hashes),
            object.size,
            range,
        ))
    }

    /// Uploads a new version from a stream of bytes.
    pub async fn put_object<S, E>(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        container: &str,
        name: &str,
        body: S,
        options: WriteOptions,
    ) -> Result<ObjectInfo, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        check_object_name(name)?;
        let container = self.object_container(who, project_id, container).await?;
        let access = self
            .authorize_write(who, &container, name, &options, false)
            .await?;
        if options.if_none_match_any
            && q::get_current(self.db.pool(), &container.id, name)
                .await?
                .is_some()
        {
            return Err(StorageError::PreconditionFailed);
        }
        meta::check(&options.meta)?;
        let size_limit = options.size_limit.unwrap_or(MAX_OBJECT_SIZE);
        if options.size.is_some_and(|size| size > size_limit) {
            return Err(StorageError::TooLarge { limit: size_limit });
        }
        let reservation = self.reserve(who, &container, name, options.size).await?;
        // A client's ETag is checked as the body arrives, so its MD5 is needed now.
        let with_md5 = !options.defer_md5 || options.etag.is_some();
        let Uploaded { hashes, size, md5 } =
            upload::upload(&self.blocks, body, size_limit, with_md5).await?;
        if let (Some(expected), Some(actual)) = (&options.etag, &md5) {
            let expected = expected.trim_matches('"').to_ascii_lowercase();
            if expected != *actual {
                return Err(StorageError::EtagMismatch {
                    expected,
                    actual: actual.clone(),
                });
            }
        }
        let version = NewVersion {
            hashes,
            size,
            etag: md5,
            content_type: options
                .content_type
                .unwrap_or_else(|| guess_content_type(name).to_owned()),
            meta: options.meta,
            headers: options.headers,
            delete_at: options.delete_at,
            access,
        };
        self.commit_version_over(who, &container, name, version, None, Some(reservation))
            .await
    }

    /// Records a new current version of `name`, checking quotas, in one transaction.
    pub(crate) async fn commit_version(
        &self,
        who: Accessor<'_>,
        container: &ContainerRow,
        name: &str,
        version: NewVersion,
    ) -> Result<ObjectInfo, StorageError> {
        self.commit_version_over(who, container, name, version, None, None)
            .await
    }

    /// [`Storage::commit_version`], but when `base` is given only if the current version is
    /// still that one (its serial; `None` for no current version): an update computed from
    /// the current version (a Pithos partial update) then fails with a conflict rather than
    /// silently undoing a write that committed meanwhile.
    pub(crate) async fn commit_version_over(
        &self,
        who: Accessor<'_>,
        container: &ContainerRow,
        name: &str,
        version: NewVersion,
        base: Option<Option<i64>>,
        mut reservation: Option<Reservation>,
    ) -> Result<ObjectInfo, StorageError> {
        check_object_name(name)?;
        let NewVersion {
            hashes,
            size,
            etag,
            content_type,
            meta: user_meta,
            headers,
            delete_at,
            access,
        } = version;
        let mut stored = StoredMeta {
            meta: user_meta,
            headers,
        };
        let mut delete_at = delete_at;
        let now = now_micros();
        let modified_by = who.modifier();
        let mut tx = self.db.begin().await?;
        self.db
            .lock_key(&mut tx, &name_lock(&container.id, name))
            .await?;
        self.db
            .lock_key_shared(&mut tx, &container_lock(&container.id))
            .await?;
        if let Some(base) = base {
            let now_current = q::get_current(&mut *tx, &container.id, name).await?;
            if now_current.map(|r| r.serial) != base {
                return Err(StorageError::Conflict {
                    reason: "the object changed during the update; retry",
                });
            }
        }
        if access.keeps_owner_fields && write_access::makes_manifest(&stored.headers) {
            // A sharee's copy of a manifest onto the owner's object would make the owner's
            // GET serve, and delete, objects the sharee chose.
            return Err(StorageError::Forbidden);
        }
        if access.keeps_owner_fields
            && let Some(replaced) = q::get_current(&mut *tx, &container.id, name).await?
        {
            // A sharee replaces the data; what the object is beyond it stays the owner's.
            let owners: StoredMeta = serde_json::from_str(&replaced.meta).unwrap_or_default();
            stored.meta = owners.meta;
            delete_at = replaced.delete_at;
        }
        let serial = q::next_serial(&mut tx).await?;
        let Some(now_container) = q::get_container_by_id(&mut *tx, &container.id).await? else {
            return Err(StorageError::NotFound { what: "container" });
        };
        let released = if now_container.versioning == Versioning::None.as_str() {
            q::delete_all_versions(&mut *tx, &container.id, name).await?
        } else {
            q::retire_current(&mut *tx, &container.id, name).await?;
            Vec::new()
        };
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        // A static large object's manifest holds no bytes of its own: its segments are
        // charged for them.
        let charged_bytes = if manifest::is_static(&stored.headers) {
            0
        } else {
            size
        };
        self.check_container_quotas(&mut tx, &now_container, charged_bytes)
            .await?;
        let member = self
            .charged_member(&mut tx, who, &container.project_id)
            .await?;
        self.charge_version(
            &mut tx,
            container,
            &member,
            charged_bytes,
            &released,
            reservation.as_mut(),
        )
        .await?;
        let row = ObjectRow {
            serial,
            container_id: container.id.clone(),
            name: name.to_owned(),
            current: true,
            deleted: false,
            size,
            hash: Some(merkle_root(&hashes).to_hex()),
            blocks: i64::try_from(hashes.len()).unwrap_or(i64::MAX),
            etag: etag.unwrap_or_default(),
            content_type,
            meta: serde_json::to_string(&stored).unwrap_or_else(|_| "{}".to_owned()),
            delete_at,
            modified_at: now,
            modified_by,
            charged_to: member,
            charged_bytes,
        };
        q::insert_object(&mut *tx, &row, &hashmap_text(&hashes)).await?;
        let mut path = q::get_path(&mut *tx, &container.id, name).await?;
        if access.sharing.is_some() || access.public.is_some() {
            let mut attributes = path.unwrap_or(PathRow {
                container_id: container.id.clone(),
                name: name.to_owned(),
                ..PathRow::default()
            });
            if let Some(sharing) = access.sharing {
                attributes.sharing = sharing;
            }
            match access.public {
                Some(true) if attributes.public_token.is_none() => {
                    attributes.public_token = Some(public_token());
                }
                Some(false) => attributes.public_token = None,
                _ => {}
            }
            q::put_path(&mut *tx, &attributes).await?;
            path = Some(attributes);
        }
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit an object version"))?;
        if let Some(reservation) = reservation {
            reservation.settle();
        }
        self.shown(object_info(container, row, path)).await
    }

    /// Refuses a new version of `size` bytes that would exceed the container's quotas
    /// (Swift's `X-Container-Meta-Quota-Bytes`/`-Count` over current objects, Pithos's
    /// policy quota over every kept version) or Swift's account quota. Called inside the
    /// transaction that writes it, once the version it replaces is gone or history, with
    /// the container (or account) locked, so concurrent writers check one at a time.
    async fn check_container_quotas(
        &self,
        tx: &mut nefos_db::Transaction,
        container: &ContainerRow,
        size: i64,
    ) -> Result<(), StorageError> {
        let container_meta = meta::from_json(&container.meta);
        let limit = |key: &str| container_meta.get(key).and_then(|v| v.parse::<i64>().ok());
        let (max_bytes, max_count) = (limit(QUOTA_BYTES), limit(QUOTA_COUNT));
        if max_bytes.is_some() || max_count.is_some() || container.quota_bytes.is_some() {
            q::lock_container(&mut **tx, &container.id).await?;
            let (count, bytes) = q::container_stats(&mut **tx, &container.id).await?;
            if max_bytes.is_some_and(|max| bytes + size > max)
                || max_count.is_some_and(|max| count + 1 > max)
            {
                return Err(StorageError::QuotaExceeded { scope: "container" });
            }
            if let Some(max) = container.quota_bytes
                && q::container_version_bytes(&mut **tx, &container.id).await? + size > max
            {
                return Err(StorageError::QuotaExceeded { scope: "container" });
            }
        }
        let quota = Self::account_quota(tx, &container.project_id).await?;
        if quota.bytes.is_some() || quota.objects.is_some() {
            self.db
                .lock_key(tx, &format!("account:{}", container.project_id))
                .await?;
            let stats = q::account_stats(&mut **tx, &container.project_id).await?;
            let over = |used: i64, max: Option<u64>| {
                max.is_some_and(|max| used > i64::try_from(max).unwrap_or(i64::MAX))
            };
            if over(stats.bytes + size, quota.bytes) || over(stats.objects + 1, quota.objects) {
                return Err(StorageError::QuotaExceeded { scope: "account" });
            }
        }
        Ok(())
    }

    /// Copies a version to a new name, sharing its blocks (no data is copied). Metadata is
    /// carried over unless `fresh_meta`; `options` adds to or replaces it.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_object(
        &self,
        who: Accessor<'_>,
        source: (&str, &str, &str),
        version: VersionSelector,
        target: (&str, &str, &str),
        options: WriteOptions,
        fresh_meta: bool,
    ) -> Result<ObjectInfo, StorageError> {
        let (src_project, src_container, src_name) = source;
        let object = self
            .object(who, src_project, src_container, src_name, version)
            .await?;
        self.copy_version(who, &object, target, options, fresh_meta)
            .await
    }

    /// Swift's `COPY`: copies what a GET of the source serves, or `range` of it (a
    /// `Range`, a `?part-number`). A large object (a static or dynamic manifest) becomes a
    /// plain object holding its segments' bytes, read and stored again (the blocks they
    /// fill are found stored already), with its own MD5; a whole plain object is copied
    /// as [`Storage::copy_object`] copies it.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_object_as_served(
        &self,
        who: Accessor<'_>,
        object: &ObjectInfo,
        range: Option<ByteRange>,
        target: (&str, &str, &str),
        options: WriteOptions,
        fresh_meta: bool,
    ) -> Result<ObjectInfo, StorageError> {
        let large = object.is_static_manifest() || object.dynamic_manifest().is_some();
        if !large && range.is_none() {
            return self
                .copy_version(who, object, target, options, fresh_meta)
                .await;
        }
        let content = self.content(who, object, false).await?;
        let (mut meta, mut headers) = if fresh_meta {
            (Metadata::new(), BTreeMap::new())
        } else {
            (object.meta.clone(), object.headers.clone())
        };
        for name in manifest::MANIFEST_HEADERS {
            headers.remove(*name);
        }
        meta.extend(options.meta);
        for name in &options.meta_removals {
            meta.remove(name);
        }
        headers.extend(options.headers);
        let size = range.map_or(content.size(), |r| r.len());
        let options = WriteOptions {
            content_type: options.content_type.or(Some(object.content_type.clone())),
            meta,
            headers,
            size: Some(size),
            ..options
        };
        let (dst_project, dst_container, dst_name) = target;
        let body = self.read_content(&content, range);
        self.put_object(who, dst_project, dst_container, dst_name, body, options)
            .await
    }

    /// Copies one version to a new name, sharing its blocks.
    async fn copy_version(
        &self,
        who: Accessor<'_>,
        object: &ObjectInfo,
        target: (&str, &str, &str),
        options: WriteOptions,
        fresh_meta: bool,
    ) -> Result<ObjectInfo, StorageError> {
        let (dst_project, dst_container, dst_name) = target;
        let container = self
            .object_container(who, dst_project, dst_container)
            .await?;
        let access = self
            .authorize_write(who, &container, dst_name, &options, false)
            .await?;
        meta::check(&options.meta)?;
        let hashes = self.hashmap(object).await?;
        // A copy refers to blocks without storing them: touching them first keeps a
        // garbage collection from taking them should the source go meanwhile.
        let missing = self.blocks.touch(&hashes).await?;
        if !missing.is_empty() {
            let missing = missing.iter().map(BlockHash::to_hex).collect();
            return Err(StorageError::MissingBlocks { missing });
        }
        let (mut user_meta, mut headers) = if fresh_meta {
            // A static large object's segment list describes its bytes, not its metadata.
            (Metadata::new(), manifest::content_headers(&object.headers))
        } else {
            (object.meta.clone(), object.headers.clone())
        };
        user_meta.extend(options.meta);
        for name in &options.meta_removals {
            user_meta.remove(name);
        }
        headers.extend(options.headers);
        let new = NewVersion {
            hashes,
            size: object.size,
            etag: object.etag.clone(),
            content_type: options.content_type.unwrap_or(object.content_type.clone()),
            meta: user_meta,
            headers,
            delete_at: options.delete_at,
            access,
        };
        self.commit_version(who, &container, dst_name, new).await
    }

    /// Moves an object (Pithos `MOVE`, `X-Move-From`): a copy that shares its blocks, then
    /// the deletion of the source. The right to delete the source is checked first, with
    /// everything the copy needs, so a refused move writes nothing.
    pub async fn move_object(
        &self,
        who: Accessor<'_>,
        source: (&str, &str, &str),
        target: (&str, &str, &str),
        options: WriteOptions,
        fresh_meta: bool,
    ) -> Result<ObjectInfo, StorageError> {
        let (src_project, src_container, src_name) = source;
        let container = self
            .object_container(who, src_project, src_container)
            .await?;
        self.require_object(who, &container, src_name, Permission::Write)
            .await?;
        let moved = self
            .copy_object(
                who,
                source,
                VersionSelector::Current,
                target,
                options,
                fresh_meta,
            )
            .await?;
        if source != target {
            self.delete_object(who, src_project, src_container, src_name)
                .await?;
        }
        Ok(moved)
    }

    /// Deletes the current version. A versioned container keeps the history and records
    /// the deletion, so `until=` still sees what was there.
    pub async fn delete_object(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        container: &str,
        name: &str,
    ) -> Result<(), StorageError> {
        let container = self.object_container(who, project_id, container).await?;
        self.require_object(who, &container, name, Permission::Write)
            .await?;
        let mut tx = self.db.begin().await?;
        self.db
            .lock_key(&mut tx, &name_lock(&container.id, name))
            .await?;
        let Some(current) = q::get_current(&mut *tx, &container.id, name).await? else {
            return Err(StorageError::NotFound { what: "object" });
        };
        // One past its `X-Delete-At` was gone already: deleted now as the expirer would
        // have, and answered as not found.
        let expired = current
            .delete_at
            .is_some_and(|at| at <= now_micros() / 1_000_000);
        let modified_by = who.modifier();
        self.record_deletion(&mut tx, current, modified_by).await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit an object deletion"))?;
        if expired {
            return Err(StorageError::NotFound { what: "object" });
        }
        Ok(())
    }

    /// Deletes every version of an object, whatever its container keeps, and releases what
    /// they were charged: for a service that owns an object name and deletes what it wrote
    /// (the image service's uploads), leaving no history behind in a versioned container.
    pub async fn purge_object(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        container: &str,
        name: &str,
    ) -> Result<(), StorageError> {
        // The account's own writers only: a Pithos write-sharee may replace an object, not
        // erase its history.
        Self::require_account(who, project_id, Permission::Write)?;
        let container = self.object_container(who, project_id, container).await?;
        self.purge(&container, name).await
    }

    /// [`Storage::purge_object`] with no caller: for a service cleaning up what it wrote
    /// for a request that can no longer do it (its process stopped). A missing container
    /// or object is nothing to do.
    pub async fn purge_object_for_service(
        &self,
        project_id: &str,
        container: &str,
        name: &str,
    ) -> Result<(), StorageError> {
        match q::get_container(self.db.pool(), project_id, container).await? {
            Some(container) => self.purge(&container, name).await,
            None => Ok(()),
        }
    }

    async fn purge(&self, container: &ContainerRow, name: &str) -> Result<(), StorageError> {
        let mut tx = self.db.begin().await?;
        self.db
            .lock_key(&mut tx, &name_lock(&container.id, name))
            .await?;
        self.db
            .lock_key_shared(&mut tx, &container_lock(&container.id))
            .await?;
        let released = q::delete_all_versions(&mut *tx, &container.id, name).await?;
        self.release(&mut tx, container, &released).await?;
        q::put_path(
            &mut *tx,
            &PathRow {
                container_id: container.id.clone(),
                name: name.to_owned(),
                ..PathRow::default()
            },
        )
        .await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit an object purge"))?;
        Ok(())
    }

    /// Every stored version of an object, oldest first: (version id, modified at).
    pub async fn object_versions(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        container: &str,
        name: &str,
    ) -> Result<Vec<(i64, i64)>, StorageError> {
        let container = self.object_container(who, project_id, container).await?;
        self.require_object_as_owner_or_sharee(who, &container, name, Permission::Read)
            .await?;
        let versions = q::list_versions(self.db.pool(), &container.id, name).await?;
        if versions.is_empty() {
            return Err(StorageError::NotFound { what: "object" });
        }
        Ok(versions
            .into_iter()
            .map(|v| (v.serial, v.modified_at))
            .collect())
    }

    /// Updates metadata, sharing or publicity of the current version. Metadata and
    /// headers are owner business (and that of those the container's write ACL names, as
    /// in Swift); sharing and publicity are the owner's alone (sharees may only write data).
    pub async fn update_object(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        container: &str,
        name: &str,
        update: ObjectUpdate,
    ) -> Result<ObjectInfo, StorageError> {
        let container = self.object_container(who, project_id, container).await?;
        let owner =
            Self::container_permission(who, project_id, &container.id) == Some(Permission::Write);
        let acl_writer = Self::acl_grants(who, &container, Permission::Write, false);
        // Sharing and public URLs are the account's owners' alone, not a signed URL's.
        let pithos_part = update.sharing.is_some() || update.public.is_some();
        let swift_writer = acl_writer || matches!(who, Accessor::Signed(_));
        if !(owner || acl_writer) || (pithos_part && swift_writer) {
            return Err(StorageError::Forbidden);
        }
        if let Some(meta) = &update.meta {
            meta::check(meta)?;
        }
        let sharing = match update.sharing.as_deref() {
            None => None,
            Some(text) => Some(self.store_sharing(text).await?),
        };
        let mut tx = self.db.begin().await?;
        // An object past its `X-Delete-At` is gone, whether or not the expirer has been.
        let now_seconds = now_micros() / 1_000_000;
        let mut row = q::get_current(&mut *tx, &container.id, name)
            .await?
            .filter(|row| row.delete_at.is_none_or(|at| at > now_seconds))
            .ok_or(StorageError::NotFound { what: "object" })?;
        let mut stored: StoredMeta = serde_json::from_str(&row.meta).unwrap_or_default();
        if let Some(meta) = update.meta {
            stored.meta = meta;
        }
        for (header, value) in update.headers {
            if value.is_empty() {
                stored.headers.remove(&header);
            } else {
                stored.headers.insert(header, value);
            }
        }
        row.meta = serde_json::to_string(&stored).unwrap_or_else(|_| "{}".to_owned());
        if let Some(content_type) = update.content_type {
            row.content_type = content_type;
        }
        if let Some(delete_at) = update.delete_at {
            row.delete_at = delete_at;
        }
        q::update_object_meta(&mut *tx, &row).await?;
        let mut path = q::get_path(&mut *tx, &container.id, name)
            .await?
            .unwrap_or(PathRow {
                container_id: container.id.clone(),
                name: name.to_owned(),
                ..PathRow::default()
            });
        if let Some(sharing) = sharing {
            path.sharing = sharing;
        }
        match update.public {
            Some(true) if path.public_token.is_none() => path.public_token = Some(public_token()),
            Some(false) => path.public_token = None,
            _ => {}
        }
        q::put_path(&mut *tx, &path).await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit an object update"))?;
        self.shown(object_info(&container, row, Some(path))).await
    }

    /// A public object by its token: no credentials needed.
    pub async fn public_object(&self, token: &str) -> Result<ObjectInfo, StorageError> {
        let path = q::get_path_by_public_token(self.db.pool(), token)
            .await?
            .ok_or(StorageError::NotFound { what: "object" })?;
        let container = q::get_container_by_id(self.db.pool(), &path.container_id)
            .await?
            .ok_or(StorageError::NotFound { what: "object" })?;
        self.find_object(&container, &path.name, VersionSelector::Current)
            .await
    }
}

impl Storage {
    /// Deletes the current version `current` inside `tx`. A versioned container keeps the
    /// history and records the deletion, so `until=` still sees what was there; sharing and
    /// the public URL of the path go with it. In an unversioned container the versions
    /// removed release what they were charged.
    pub(crate) async fn record_deletion(
        &self,
        tx: &mut nefos_db::Transaction,
        current: ObjectRow,
        modified_by: String,
    ) -> Result<(), StorageError> {
        let (container_id, name) = (current.container_id.clone(), current.name.clone());
        self.db
            .lock_key_shared(tx, &container_lock(&container_id))
            .await?;
        let container = q::get_container_by_id(&mut **tx, &container_id)
            .await?
            .ok_or(StorageError::NotFound { what: "container" })?;
        if container.versioning == Versioning::None.as_str() {
            let released = q::delete_all_versions(&mut **tx, &container_id, &name).await?;
            self.release(tx, &container, &released).await?;
        } else {
            q::retire_current(&mut **tx, &container_id, &name).await?;
            let serial = q::next_serial(tx).await?;
            let marker = ObjectRow {
                serial,
                current: false,
                deleted: true,
                size: 0,
                hash: None,
                blocks: 0,
                etag: String::new(),
                meta: "{}".to_owned(),
                delete_at: None,
                modified_at: now_micros().max(current.modified_at + 1),
                modified_by,
                charged_bytes: 0,
                ..current
            };
            q::insert_object(&mut **tx, &marker, "").await?;
        }
        q::put_path(
            &mut **tx,
            &PathRow {
                container_id,
                name,
                ..PathRow::default()
            },
        )
        .await?;
        Ok(())
    }
}

/// The lock key of a container: its writers share it, its deletion takes it alone, so a
/// version cannot be written into a container as it is deleted (and vanish uncounted).
pub(crate) fn container_lock(container_id: &str) -> String {
    format!("container:{container_id}")
}

/// The lock key of an object name: writers of one name take turns.
pub(crate) fn name_lock(container_id: &str, name: &str) -> String {
    format!("object:{container_id}/{name}")
}

/// 128 random bits, URL-safe: the secret part of a public URL.
fn public_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_guessed_from_extensions() {
        assert_eq!(guess_content_type("notes.TXT"), "text/plain");
        assert_eq!(guess_content_type("a/b/photo.jpeg"), "image/jpeg");
        assert_eq!(
            guess_content_type("no-extension"),
            "application/octet-stream"
        );
    }

    #[test]
    fn hashmaps_round_trip_through_text() {
        let hashes = vec![
            nefos_blocks::hash_block(b"a"),
            nefos_blocks::hash_block(b"b"),
        ];
        assert_eq!(parse_hashmap(1, &hashmap_text(&hashes)).unwrap(), hashes);
        assert!(parse_hashmap(1, "").unwrap().is_empty());
    }

    #[test]
    fn a_damaged_hashmap_is_an_error_not_a_shorter_list() {
        let good = hashmap_text(&[nefos_blocks::hash_block(b"a")]);
        let not_hex = format!("{good}{}", "z".repeat(64));
        assert!(matches!(
            parse_hashmap(7, &not_hex),
            Err(StorageError::CorruptHashmap { serial: 7 })
        ));
        assert!(parse_hashmap(7, &good[..63]).is_err());
    }
}
