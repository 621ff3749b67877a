//! The Pithos extensions beyond Swift: creating an object from a hashmap of blocks the
//! store already has, uploading bare blocks to a container, partial updates of an
//! object's data (append, overwrite a range, truncate), views of accounts and containers
//! as they were at a time, and listings of what is shared.
//!
//! ETags stay Swift's: the MD5 of the content. A version made from a hashmap or by a
//! partial update has no uploaded stream to hash, and reading every block back would make
//! a request of a few bytes cost a read of the whole object; so such versions are stored
//! without it and the digest job (`digest.rs`) computes it shortly after. The Pithos hash
//! (`X-Object-Hash`) is always there at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, TryStreamExt};
use nefos_blocks::{BLOCK_SIZE, BlockHash, Chunker};
use nefos_db::DbError;
use nefos_db::storage::{self as q, ContainerListing, NameRange};
use nefos_db::time::now_micros;
use nefos_identity::AuthContext;

use crate::access::{Accessor, Sharing};
use crate::account::AccountInfo;
use crate::container::ContainerInfo;
use crate::download::ByteRange;
use crate::listing::{ListEntry, ListQuery, MAX_LISTING};
use crate::meta::{self, Metadata};
use crate::object::{
    MAX_OBJECT_SIZE, NewVersion, ObjectInfo, Preconditions, VersionSelector, WriteOptions,
    check_object_name, guess_content_type, object_info,
};
use crate::{Permission, Storage, StorageError};

/// The block size as a byte count of objects.
const BLOCK: u64 = BLOCK_SIZE as u64;

/// Blocks stored at once by a container upload.
const IN_FLIGHT: usize = 4;

/// An object's data source other than the request body (Pithos `X-Source-Object`).
#[derive(Debug, Clone)]
pub struct SourceObject {
    pub project_id: String,
    pub container: String,
    pub name: String,
    pub version: VersionSelector,
}

/// A partial update of an object's data (Pithos object `POST` with `Content-Range`).
#[derive(Debug, Clone, Default)]
pub struct DataUpdate {
    /// Where the data goes; `None` appends at the end (`Content-Range: bytes */*`).
    pub offset: Option<u64>,
    /// The length of the data the range declares (`bytes A-B/*`); the data must have it.
    pub length: Option<u64>,
    /// The object size the range declares (`bytes A-B/N`): the update is refused unless the
    /// object has that size and the range lies within it.
    pub total: Option<u64>,
    /// `X-Object-Bytes`: the size of the result, applied after the data is written; smaller
    /// truncates, larger extends with zeros.
    pub final_size: Option<u64>,
    /// Take the data from this object instead of the request body.
    pub source: Option<SourceObject>,
    /// Metadata items to set on the new version (an empty value removes one).
    pub meta: Metadata,
    pub preconditions: Preconditions,
    /// `X-Object-Sharing` to set with the new version. Owner only.
    pub sharing: Option<String>,
    /// `X-Object-Public` to set with the new version. Owner only.
    pub public: Option<bool>,
}

/// Checks a client's hashmap against its declared size: a hash per started block, except
/// that an empty object may be given as no hashes or as the one hash of the empty block.
/// Returns the hashmap nefos stores.
fn check_hashmap(bytes: u64, hashes: Vec<BlockHash>) -> Result<Vec<BlockHash>, StorageError> {
    if bytes > MAX_OBJECT_SIZE {
        return Err(StorageError::TooLarge {
            limit: MAX_OBJECT_SIZE,
        });
    }
    if bytes == 0 {
        if hashes.iter().all(|h| *h == BlockHash::empty()) && hashes.len() <= 1 {
            return Ok(Vec::new());
        }
        return Err(StorageError::invalid(
            "hashmap",
            "an empty object has no blocks but the empty one",
        ));
    }
    let expected = bytes.div_ceil(BLOCK);
    if hashes.len() as u64 != expected {
        return Err(StorageError::invalid(
            "hashmap",
            format!(
                "{bytes} bytes make {expected} blocks of {BLOCK_SIZE} bytes, but {} hashes were given",
                hashes.len()
            ),
        ));
    }
    Ok(hashes)
}

/// The length of block `index` of an object of `size` bytes (0 past its end).
fn block_len(size: u64, index: u64) -> u64 {
    size.saturating_sub(index * BLOCK).min(BLOCK)
}

/// Offsets within one block, which is never larger than `BLOCK_SIZE`.
fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// A refused insert of a current version means another write committed one first.
fn concurrent_write(error: StorageError) -> StorageError {
    match error {
        StorageError::Database(DbError::Conflict { .. }) => StorageError::Conflict {
            reason: "the object was written concurrently; retry",
        },
        other => other,
    }
}

impl Storage {
    /// Creates a version of `name` from a hashmap (Pithos `PUT ?hashmap`): every block must
    /// already be stored, else [`StorageError::MissingBlocks`] lists those that are not (the
    /// client uploads them to the container and tries again). No data moves.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_hashmap(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        container: &str,
        name: &str,
        bytes: u64,
        hashes: Vec<BlockHash>,
        options: WriteOptions,
    ) -> Result<ObjectInfo, StorageError> {
        check_object_name(name)?;
        let container = self.object_container(who, project_id, container).await?;
        let access = self
            .authorize_write(who, &container, name, &options, false)
            .await?;
        let hashes = check_hashmap(bytes, hashes)?;
        meta::check(&options.meta)?;
        if options.if_none_match_any
            && q::get_current(self.db.pool(), &container.id, name)
                .await?
                .is_some()
        {
            return Err(StorageError::PreconditionFailed);
        }
        // Touch, not just ask: a garbage collection running now must keep the blocks this
        // version is about to refer to.
        let missing = self.blocks.touch(&hashes).await?;
        if !missing.is_empty() {
            return Err(StorageError::MissingBlocks {
                missing: missing.iter().map(BlockHash::to_hex).collect(),
            });
        }
        // The MD5 would take a read of every block: the digest job computes it after the
        // version is stored, so this request costs what its hashmap costs. A client that
        // sends an ETag asked for the check, and pays for it.
        let etag = match &options.etag {
            None => None,
            Some(expected) => {
                let expected = expected.trim_matches('"').to_ascii_lowercase();
                let md5 = self.md5_of(&hashes, bytes).await?;
                if expected != md5 {
                    return Err(StorageError::EtagMismatch {
                        expected,
                        actual: md5,
                    });
                }
                Some(md5)
            }
        };
        let version = NewVersion {
            hashes,
            size: bytes,
            etag,
            content_type: options
                .content_type
                .unwrap_or_else(|| guess_content_type(name).to_owned()),
            meta: options.meta,
            headers: options.headers,
            delete_at: options.delete_at,
            access,
        };
        self.commit_version(who, &container, name, version)
            .await
            .map_err(concurrent_write)
    }

    /// Stores a body of blocks for a later `PUT ?hashmap` (Pithos container `POST` with
    /// `application/octet-stream`): the body is cut into blocks of [`BLOCK_SIZE`] bytes
    /// (the last may be shorter) and their hashes are returned in order. Needs write access
    /// to the container's account.
    pub async fn put_blocks<S, E>(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        container: &str,
        body: S,
        declared_size: Option<u64>,
    ) -> Result<Vec<BlockHash>, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Self::require_account(who, project_id, Permission::Write)?;
        let container = self.object_container(who, project_id, container).await?;
        // Blocks are charged when an object names them; storing them needs the room.
        self.check_room(who, &container, declared_size.unwrap_or(1))
            .await?;
        let mut body = std::pin::pin!(body.map_err(|e| StorageError::Body(e.into())));
        let mut chunker = Chunker::new();
        let mut pending = futures::stream::FuturesOrdered::new();
        let mut hashes = Vec::new();
        let mut size: u64 = 0;
        while let Some(chunk) = body.next().await {
            let mut chunk = chunk?;
            size += chunk.len() as u64;
            if size > MAX_OBJECT_SIZE {
                return Err(StorageError::TooLarge {
                    limit: MAX_OBJECT_SIZE,
                });
            }
            while let Some(block) = chunker.next_block(&mut chunk) {
                pending.push_back(self.blocks.put(block));
                if pending.len() >= IN_FLIGHT
                    && let Some(hash) = pending.next().await
                {
                    hashes.push(hash?);
                }
            }
        }
        if let Some(block) = chunker.finish() {
            pending.push_back(self.blocks.put(block));
        }
        while let Some(hash) = pending.next().await {
            hashes.push(hash?);
        }
        Ok(hashes)
    }

    /// Updates part of an object's data (Pithos object `POST` with `Content-Range`):
    /// writes the body (or a source object's data) at an offset or at the end, then
    /// optionally sets the size. The new version shares every block the update does not
    /// touch with the previous one; only changed blocks are stored. Needs write access to
    /// the object, and read access to a source object.
    pub async fn update_object_data<S, E>(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        container: &str,
        name: &str,
        update: DataUpdate,
        body: S,
    ) -> Result<ObjectInfo, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let container = self.object_container(who, project_id, container).await?;
        let owner_parts = WriteOptions {
            meta: update.meta.clone(),
            sharing: update.sharing.clone(),
            public: update.public,
            ..WriteOptions::default()
        };
        let access = self
            .authorize_write(who, &container, name, &owner_parts, false)
            .await?;
        let current = self
            .find_object(&container, name, VersionSelector::Current)
            .await?;
        if current.is_static_manifest() || current.dynamic_manifest().is_some() {
            return Err(StorageError::invalid(
                "object",
                "the data of a large-object manifest cannot be updated in place",
            ));
        }
        update.preconditions.check(&current, false)?;
        let size = current.size;
        let offset = update.offset.unwrap_or(size);
        if offset > size {
            return Err(StorageError::RangeNotSatisfiable { size });
        }
        let mut merged_meta = current.meta.clone();
        meta::merge(&mut merged_meta, &update.meta);
        meta::check(&merged_meta)?;
        let source = match &update.source {
            None => None,
            Some(source) => {
                let object = self
                    .object(
                        who,
                        &source.project_id,
                        &source.container,
                        &source.name,
                        source.version,
                    )
                    .await?;
                Some(object)
            }
        };
        let length = match (&source, update.length) {
            (Some(source), Some(length)) if length > source.size => {
                return Err(StorageError::invalid(
                    "Content-Range",
                    "the range is longer than the source object",
                ));
            }
            (Some(source), length) => Some(length.unwrap_or(source.size)),
            (None, length) => length,
        };
        if let Some(total) = update.total
            && (total != size || length.is_some_and(|l| l > 0 && offset + l > size))
        {
            return Err(StorageError::RangeNotSatisfiable { size });
        }
        // The new version's size, when the request says it, is reserved before any data
        // is read; otherwise only that some room is left is checked.
        let expected_size = update
            .final_size
            .or(length.map(|length| size.max(offset + length)));
        let reservation = self.reserve(who, &container, name, expected_size).await?;
        let mut writer = Splice::new(self, self.hashmap(&current).await?, size, offset);
        match &source {
            Some(object) => {
                let length = length.unwrap_or(0);
                let range = (length > 0).then(|| ByteRange {
                    first: 0,
                    last: length - 1,
                });
                let data = if length > 0 {
                    self.read(object, range).await?.boxed()
                } else {
                    futures::stream::empty().boxed()
                };
                writer.write_all(data, Some(length)).await?;
            }
            None => {
                let data = body.map_err(|e| StorageError::Body(e.into()));
                writer.write_all(data, length).await?;
            }
        }
        let (mut hashes, mut new_size) = (writer.hashes, writer.size);
        if let Some(final_size) = update.final_size {
            self.resize(&mut hashes, new_size, final_size).await?;
            new_size = final_size;
        }
        // Only the changed blocks were read or written; the MD5 of the whole is left to
        // the digest job.
        let version = NewVersion {
            hashes,
            size: new_size,
            etag: None,
            content_type: current.content_type.clone(),
            meta: merged_meta,
            headers: current.headers.clone(),
            delete_at: current.delete_at,
            access,
        };
        self.commit_version_over(
            who,
            &container,
            name,
            version,
            Some(Some(current.serial)),
            Some(reservation),
        )
        .await
        .map_err(concurrent_write)
    }

    /// Sets the size of the object made of `hashes` and `size` bytes to `to`: a cut into a
    /// block stores that block's remaining bytes as a new block; zeros added need no data
    /// (trailing zeros do not change a block's hash, and a block of zeros is the empty block).
    async fn resize(
        &self,
        hashes: &mut Vec<BlockHash>,
        size: u64,
        to: u64,
    ) -> Result<(), StorageError> {
        if to > MAX_OBJECT_SIZE {
            return Err(StorageError::TooLarge {
                limit: MAX_OBJECT_SIZE,
            });
        }
        let blocks = to_usize(to.div_ceil(BLOCK));
        if to < size {
            hashes.truncate(blocks);
            let last_len = block_len(to, (blocks as u64).saturating_sub(1));
            if let Some(last) = hashes.last_mut()
                && last_len < BLOCK
            {
                let stored = self.blocks.get(last).await?.ok_or(StorageError::NotFound {
                    what: "block of the object",
                })?;
                if stored.len() as u64 > last_len {
                    *last = self.blocks.put(stored.slice(..to_usize(last_len))).await?;
                }
            }
        } else if blocks > hashes.len() {
            let empty = self.blocks.put(Bytes::new()).await?;
            hashes.resize(blocks, empty);
        }
        Ok(())
    }

    /// Whether the caller has rights on the whole account (as its owner or an
    /// administrator), rather than reaching into it only through sharing.
    pub fn can_access_account(who: Accessor<'_>, project_id: &str) -> bool {
        Self::account_permission(who, project_id).is_some()
    }

    /// An account as it was at `until` (microseconds): its usage then, its metadata now.
    pub async fn account_until(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        until: i64,
    ) -> Result<AccountInfo, StorageError> {
        let mut info = self.account(who, project_id).await?;
        let (containers, objects, bytes) =
            q::account_stats_until(self.db.pool(), project_id, until).await?;
        info.stats.containers = containers;
        info.stats.objects = objects;
        info.stats.bytes = bytes;
        Ok(info)
    }

    /// A container as it was at `until` (microseconds): what it held then.
    pub async fn container_until(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        name: &str,
        until: i64,
    ) -> Result<ContainerInfo, StorageError> {
        let mut info = self.container(who, project_id, name).await?;
        if info.created_at > until {
            return Err(StorageError::NotFound { what: "container" });
        }
        let (objects, bytes) = q::container_stats_until(self.db.pool(), &info.id, until).await?;
        info.objects = objects;
        info.bytes = bytes;
        Ok(info)
    }

    /// The containers of an account holding shared objects (Pithos account `?shared`).
    pub async fn list_shared_containers(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        query: &ListQuery,
    ) -> Result<Vec<ContainerListing>, StorageError> {
        Self::require_account(who, project_id, Permission::Read)?;
        let range = NameRange {
            prefix: query.prefix.clone().filter(|p| !p.is_empty()),
            marker: query.marker.clone().filter(|m| !m.is_empty()),
            end_marker: query.end_marker.clone().filter(|m| !m.is_empty()),
            limit: query.limit.unwrap_or(MAX_LISTING).clamp(0, MAX_LISTING),
            reverse: query.reverse,
        };
        Ok(q::list_shared_containers(self.db.pool(), project_id, &range).await?)
    }

    /// The shared objects of a container (Pithos container `?shared`). The owner sees every
    /// shared object; another user sees those shared with them, and is refused (as for a
    /// private container) when there are none.
    pub async fn list_shared_objects(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        container: &str,
        query: &ListQuery,
    ) -> Result<Vec<ListEntry>, StorageError> {
        let rows = q::shared_objects(self.db.pool(), project_id, Some(container)).await?;
        let is_owner = Self::account_permission(who, project_id).is_some();
        if is_owner && rows.is_empty() {
            // Tells an existing empty container from a missing one.
            self.container(who, project_id, container).await?;
        }
        let visible = self.visible(who, project_id, rows).await?;
        if !is_owner && visible.is_empty() {
            return Err(StorageError::Forbidden);
        }
        let Some(container_row) = q::get_container(self.db.pool(), project_id, container).await?
        else {
            return Err(StorageError::NotFound { what: "container" });
        };
        let now_seconds = now_micros() / 1_000_000;
        let mut objects = Vec::with_capacity(visible.len());
        for (row, _) in visible {
            if row.object.delete_at.is_some_and(|at| at <= now_seconds) {
                continue;
            }
            let path = q::PathRow {
                container_id: row.object.container_id.clone(),
                name: row.object.name.clone(),
                sharing: Some(row.sharing),
                public_token: row.public_token,
            };
            objects.push(
                self.shown(object_info(&container_row, row.object, Some(path)))
                    .await?,
            );
        }
        Ok(page(objects, query))
    }

    /// The containers of another account that hold objects shared with the caller (what a
    /// sharee's `GET` of that account lists), each with the count and bytes of those
    /// objects. Refused when nothing there is shared with the caller, so that an account
    /// that shares nothing with them looks like any other.
    pub async fn containers_shared_with(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        query: &ListQuery,
    ) -> Result<Vec<ContainerListing>, StorageError> {
        let rows = q::shared_objects(self.db.pool(), project_id, None).await?;
        let visible = self.visible(who, project_id, rows).await?;
        if visible.is_empty() {
            return Err(StorageError::Forbidden);
        }
        let mut containers: BTreeMap<String, ContainerListing> = BTreeMap::new();
        for (row, _) in visible {
            let entry =
                containers
                    .entry(row.container.clone())
                    .or_insert_with(|| ContainerListing {
                        name: row.container.clone(),
                        objects: 0,
                        bytes: 0,
                        updated_at: row.container_updated_at,
                    });
            entry.objects += 1;
            entry.bytes += row.object.size;
        }
        let mut listed: Vec<ContainerListing> = containers
            .into_values()
            .filter(|c| in_range(&c.name, query))
            .collect();
        if query.reverse {
            listed.reverse();
        }
        listed.truncate(query_limit(query));
        Ok(listed)
    }

    /// The accounts (projects) that share at least one object with the caller (Pithos
    /// `GET /v1` with a token), in order.
    pub async fn accounts_sharing_with(
        &self,
        who: Accessor<'_>,
    ) -> Result<Vec<String>, StorageError> {
        let Accessor::Token(ctx) = who else {
            return Err(StorageError::Forbidden);
        };
        let mut grants = Grants::new(self);
        let mut accounts = BTreeSet::new();
        for (project_id, sharing) in q::sharing_accounts(self.db.pool()).await? {
            if accounts.contains(&project_id) || ctx.project_id() == Some(project_id.as_str()) {
                continue;
            }
            if grants
                .permission(ctx, &project_id, &sharing)
                .await?
                .is_some()
            {
                accounts.insert(project_id);
            }
        }
        Ok(accounts.into_iter().collect())
    }

    /// The shared objects of `rows` the caller may see: all for those with rights on the
    /// account, else those whose sharing names them. Each comes with the caller's right.
    async fn visible(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        rows: Vec<q::SharedObjectRow>,
    ) -> Result<Vec<(q::SharedObjectRow, Permission)>, StorageError> {
        if let Some(permission) = Self::account_permission(who, project_id) {
            return Ok(rows.into_iter().map(|r| (r, permission)).collect());
        }
        let Accessor::Token(ctx) = who else {
            return Ok(Vec::new());
        };
        let mut grants = Grants::new(self);
        let mut visible = Vec::new();
        for row in rows {
            if let Some(permission) = grants.permission(ctx, project_id, &row.sharing).await? {
                visible.push((row, permission));
            }
        }
        Ok(visible)
    }
}

/// Evaluates sharing values for one caller, reading each owner account's groups once.
struct Grants<'a> {
    storage: &'a Storage,
    groups: HashMap<String, BTreeMap<String, Vec<String>>>,
}

impl<'a> Grants<'a> {
    fn new(storage: &'a Storage) -> Self {
        Grants {
            storage,
            groups: HashMap::new(),
        }
    }

    /// What a sharing value of an object of `owner` grants the caller, if anything.
    async fn permission(
        &mut self,
        ctx: &AuthContext,
        owner: &str,
        sharing: &str,
    ) -> Result<Option<Permission>, StorageError> {
        // A damaged value grants nothing, as in the access check.
        let sharing = Sharing::parse(sharing).unwrap_or_default();
        if self.names(ctx, owner, &sharing.write).await? {
            Ok(Some(Permission::Write))
        } else if self.names(ctx, owner, &sharing.read).await? {
            Ok(Some(Permission::Read))
        } else {
            Ok(None)
        }
    }

    async fn names(
        &mut self,
        ctx: &AuthContext,
        owner: &str,
        names: &[String],
    ) -> Result<bool, StorageError> {
        let is_caller = |n: &str| n == ctx.user_id;
        for name in names {
            if name == "*" || is_caller(name) {
                return Ok(true);
            }
            if let Some((account, group)) = name.split_once(':')
                && account == owner
            {
                if !self.groups.contains_key(owner) {
                    let groups = self.storage.account_groups(owner).await?;
                    self.groups.insert(owner.to_owned(), groups);
                }
                if self
                    .groups
                    .get(owner)
                    .and_then(|g| g.get(group))
                    .is_some_and(|members| members.iter().any(|m| is_caller(m)))
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// Writes a stream of data into an object's hashmap at an offset, block by block: a block
/// the data covers only in part is read, patched and stored anew; one it covers whole is
/// stored from the data alone; every other block keeps its hash.
struct Splice<'a> {
    storage: &'a Storage,
    hashes: Vec<BlockHash>,
    /// The size of the object before the update; blocks are read as they were then.
    old_size: u64,
    /// The size so far.
    size: u64,
    /// Where the next byte goes.
    position: u64,
}

impl<'a> Splice<'a> {
    fn new(storage: &'a Storage, hashes: Vec<BlockHash>, size: u64, offset: u64) -> Self {
        Splice {
            storage,
            hashes,
            old_size: size,
            size,
            position: offset,
        }
    }

    /// Writes all of `data`, which must hold `length` bytes when that is given.
    async fn write_all<D>(&mut self, data: D, length: Option<u64>) -> Result<(), StorageError>
    where
        D: Stream<Item = Result<Bytes, StorageError>> + Send,
    {
        let mut data = std::pin::pin!(data);
        let start = self.position;
        // The first piece ends at the end of the block the offset falls in; then whole
        // blocks, so that no block is written twice.
        let first = BLOCK - start % BLOCK;
        let mut chunker = Chunker::with_block_size(to_usize(first));
        let mut aligned = first == BLOCK;
        let mut received: u64 = 0;
        while let Some(chunk) = data.next().await {
            let mut chunk = chunk?;
            received += chunk.len() as u64;
            if length.is_some_and(|l| received > l) {
                return Err(StorageError::invalid(
                    "Content-Length",
                    "more data than the range declares",
                ));
            }
            if start + received > MAX_OBJECT_SIZE {
                return Err(StorageError::TooLarge {
                    limit: MAX_OBJECT_SIZE,
                });
            }
            while let Some(piece) = chunker.next_block(&mut chunk) {
                self.write_piece(piece).await?;
                if !aligned {
                    chunker = Chunker::new();
                    aligned = true;
                }
            }
        }
        if let Some(piece) = chunker.finish() {
            self.write_piece(piece).await?;
        }
        if length.is_some_and(|l| received != l) {
            return Err(StorageError::invalid(
                "Content-Length",
                "the data is shorter than the range declares",
            ));
        }
        Ok(())
    }

    /// Writes a piece that lies within one block, at the current position.
    async fn write_piece(&mut self, piece: Bytes) -> Result<(), StorageError> {
        let index = self.position / BLOCK;
        let within = self.position % BLOCK;
        let end = within + piece.len() as u64;
        let old_len = block_len(self.old_size, index);
        let slot = to_usize(index);
        let block = if old_len > 0 && (within > 0 || end < old_len) {
            let hash = self.hashes.get(slot).ok_or(StorageError::NotFound {
                what: "block of the object",
            })?;
            let stored = self
                .storage
                .blocks
                .get(hash)
                .await?
                .ok_or(StorageError::NotFound {
                    what: "block of the object",
                })?;
            let mut block = BytesMut::with_capacity(to_usize(old_len.max(end)));
            block.extend_from_slice(&stored[..stored.len().min(to_usize(old_len))]);
            block.resize(to_usize(old_len.max(end)), 0);
            block[to_usize(within)..to_usize(end)].copy_from_slice(&piece);
            block.freeze()
        } else {
            // Nothing of the old block survives (or there was none): at a block start,
            // since the position never passes the old end.
            piece
        };
        let hash = self.storage.blocks.put(block).await?;
        match self.hashes.get_mut(slot) {
            Some(existing) => *existing = hash,
            None => self.hashes.push(hash),
        }
        self.position = index * BLOCK + end;
        self.size = self.size.max(self.position);
        Ok(())
    }
}

fn query_limit(query: &ListQuery) -> usize {
    usize::try_from(query.limit.unwrap_or(MAX_LISTING).clamp(0, MAX_LISTING)).unwrap_or(0)
}

/// Whether a name passes a listing's prefix and markers.
fn in_range(name: &str, query: &ListQuery) -> bool {
    let prefix = query.prefix.as_deref().unwrap_or("");
    let marker = query.marker.as_deref().filter(|m| !m.is_empty());
    let end_marker = query.end_marker.as_deref().filter(|m| !m.is_empty());
    // In reverse order the marker is where the listing starts, from the top.
    let (after, before) = if query.reverse {
        (end_marker, marker)
    } else {
        (marker, end_marker)
    };
    name.starts_with(prefix) && after.is_none_or(|m| name > m) && before.is_none_or(|m| name < m)
}

/// One page of a listing of objects held in memory (in name order), Swift-style: prefix,
/// markers, reverse order, delimiter roll-up and limit.
fn page(objects: Vec<ObjectInfo>, query: &ListQuery) -> Vec<ListEntry> {
    let limit = query_limit(query);
    let prefix = query.prefix.as_deref().unwrap_or("");
    let mut ordered: Vec<ObjectInfo> = objects
        .into_iter()
        .filter(|o| in_range(&o.name, query))
        .collect();
    if query.reverse {
        ordered.reverse();
    }
    let mut entries: Vec<ListEntry> = Vec::new();
    for object in ordered {
        if entries.len() >= limit {
            break;
        }
        let subdir = query.delimiter.and_then(|d| {
            let rest = &object.name[prefix.len()..];
            rest.find(d)
                .map(|at| format!("{prefix}{}", &rest[..at + d.len_utf8()]))
        });
        match subdir {
            Some(subdir) => {
                if !matches!(entries.last(), Some(ListEntry::Subdir(s)) if *s == subdir) {
                    entries.push(ListEntry::Subdir(subdir));
                }
            }
            None => entries.push(ListEntry::Object(Box::new(object))),
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashmaps_must_match_their_size() {
        let h = nefos_blocks::hash_block(b"x");
        assert_eq!(check_hashmap(0, vec![]).unwrap(), vec![]);
        assert_eq!(check_hashmap(0, vec![BlockHash::empty()]).unwrap(), vec![]);
        assert!(check_hashmap(0, vec![h]).is_err());
        assert_eq!(check_hashmap(1, vec![h]).unwrap(), vec![h]);
        assert_eq!(check_hashmap(BLOCK, vec![h]).unwrap(), vec![h]);
        assert!(check_hashmap(BLOCK + 1, vec![h]).is_err());
        assert_eq!(check_hashmap(BLOCK + 1, vec![h, h]).unwrap().len(), 2);
        assert!(check_hashmap(1, vec![h, h]).is_err());
        assert!(check_hashmap(MAX_OBJECT_SIZE + 1, vec![]).is_err());
    }

    #[test]
    fn block_lengths() {
        assert_eq!(block_len(0, 0), 0);
        assert_eq!(block_len(10, 0), 10);
        assert_eq!(block_len(BLOCK + 10, 0), BLOCK);
        assert_eq!(block_len(BLOCK + 10, 1), 10);
        assert_eq!(block_len(BLOCK + 10, 2), 0);
    }

    #[test]
    fn ranges_follow_swift_markers() {
        let query = ListQuery {
            prefix: Some("a".into()),
            marker: Some("a1".into()),
            end_marker: Some("a4".into()),
            ..ListQuery::default()
        };
        assert!(!in_range("a1", &query));
        assert!(in_range("a2", &query));
        assert!(!in_range("a4", &query));
        assert!(!in_range("b2", &query));
        let reverse = ListQuery {
            marker: Some("c".into()),
            end_marker: Some("a".into()),
            reverse: true,
            ..ListQuery::default()
        };
        assert!(in_range("b", &reverse));
        assert!(!in_range("c", &reverse));
        assert!(!in_range("a", &reverse));
    }
}
