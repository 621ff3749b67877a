use futures::{Stream, TryStreamExt};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::flag::get_bool;
use crate::storage::NameRange;
use crate::{Connection, DbError};

/// A row of `objects`: one version of one object, without its hashmap, which can be
/// large (a 5 GiB object's is 80 KB) and is read only where the content is needed
/// ([`get_hashmap`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRow {
    pub serial: i64,
    pub container_id: String,
    pub name: String,
    pub current: bool,
    pub deleted: bool,
    pub size: i64,
    /// The Pithos hash (Merkle root of the hashmap), hex; `None` for versions written
    /// before it was stored, until the digest job fills it in.
    pub hash: Option<String>,
    /// How many block hashes the hashmap holds.
    pub blocks: i64,
    /// MD5 of the content, hex (Swift's ETag), or Swift's manifest ETag; empty while the
    /// digest job has not computed it yet.
    pub etag: String,
    pub content_type: String,
    /// JSON object of metadata and stored headers.
    pub meta: String,
    pub delete_at: Option<i64>,
    pub modified_at: i64,
    pub modified_by: String,
    /// The member whose `pithos.diskspace` this version is charged to.
    pub charged_to: String,
    /// What it is charged: its size, but nothing for a deletion marker or a static large
    /// object's manifest, whose bytes are its segments' (charged as such).
    pub charged_bytes: i64,
}

impl FromRow<'_, AnyRow> for ObjectRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(ObjectRow {
            serial: row.try_get("serial")?,
            container_id: row.try_get("container_id")?,
            name: row.try_get("name")?,
            current: get_bool(row, "current")?,
            deleted: get_bool(row, "deleted")?,
            size: row.try_get("size")?,
            hash: row.try_get("hash")?,
            blocks: row.try_get("blocks")?,
            etag: row.try_get("etag")?,
            content_type: row.try_get("content_type")?,
            meta: row.try_get("meta")?,
            delete_at: row.try_get("delete_at")?,
            modified_at: row.try_get("modified_at")?,
            modified_by: row.try_get("modified_by")?,
            charged_to: row.try_get("charged_to")?,
            charged_bytes: row.try_get("charged_bytes")?,
        })
    }
}

const OBJECT_COLUMNS: &str = "serial, container_id, name, CAST(current AS INTEGER) AS current,
    CAST(deleted AS INTEGER) AS deleted, size, hash, blocks, etag, content_type, meta, delete_at,
    modified_at, modified_by, charged_to, charged_bytes";

/// A new, never reused version number; call inside the transaction that uses it.
pub async fn next_serial(conn: &mut Connection) -> Result<i64, DbError> {
    sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'object_serial' RETURNING value",
    )
    .fetch_one(conn)
    .await
    .map_err(DbError::query("allocate a version number"))
}

/// Stores a version with its hashmap (block hashes, 64 hex digits each, concatenated).
pub async fn insert_object<'c>(
    ex: impl Executor<'c, Database = Any>,
    row: &ObjectRow,
    hashmap: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO objects (serial, container_id, name, current, deleted, size, hashmap, hash,
                              blocks, etag, content_type, meta, delete_at, modified_at,
                              modified_by, charged_to, charged_bytes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(row.serial)
    .bind(&row.container_id)
    .bind(&row.name)
    .bind(row.current)
    .bind(row.deleted)
    .bind(row.size)
    .bind(hashmap)
    .bind(&row.hash)
    .bind(row.blocks)
    .bind(&row.etag)
    .bind(&row.content_type)
    .bind(&row.meta)
    .bind(row.delete_at)
    .bind(row.modified_at)
    .bind(&row.modified_by)
    .bind(&row.charged_to)
    .bind(row.charged_bytes)
    .execute(ex)
    .await
    .map_err(DbError::insert(
        "store an object version",
        "a current version of this object",
    ))?;
    Ok(())
}

/// The live version of an object.
pub async fn get_current<'c>(
    ex: impl Executor<'c, Database = Any>,
    container_id: &str,
    name: &str,
) -> Result<Option<ObjectRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {OBJECT_COLUMNS} FROM objects WHERE container_id = $1 AND name = $2 AND current"
    ))
    .bind(container_id)
    .bind(name)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read an object"))
}

/// One version of an object, by its serial.
pub async fn get_version<'c>(
    ex: impl Executor<'c, Database = Any>,
    container_id: &str,
    name: &str,
    serial: i64,
) -> Result<Option<ObjectRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {OBJECT_COLUMNS} FROM objects
         WHERE container_id = $1 AND name = $2 AND serial = $3 AND NOT deleted"
    ))
    .bind(container_id)
    .bind(name)
    .bind(serial)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read an object version"))
}

/// The newest version written at or before `until` (possibly a deletion marker).
pub async fn get_as_of<'c>(
    ex: impl Executor<'c, Database = Any>,
    container_id: &str,
    name: &str,
    until: i64,
) -> Result<Option<ObjectRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {OBJECT_COLUMNS} FROM objects
         WHERE container_id = $1 AND name = $2 AND modified_at <= $3
         ORDER BY serial DESC LIMIT 1"
    ))
    .bind(container_id)
    .bind(name)
    .bind(until)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read an object as it was"))
}

/// Every stored version of an object (not deletion markers), oldest first.
pub async fn list_versions<'c>(
    ex: impl Executor<'c, Database = Any>,
    container_id: &str,
    name: &str,
) -> Result<Vec<ObjectRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {OBJECT_COLUMNS} FROM objects
         WHERE container_id = $1 AND name = $2 AND NOT deleted ORDER BY serial"
    ))
    .bind(container_id)
    .bind(name)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list object versions"))
}

/// Makes the live version of a name history; returns whether there was one.
pub async fn retire_current<'c>(
    ex: impl Executor<'c, Database = Any>,
    container_id: &str,
    name: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE objects SET current = FALSE WHERE container_id = $1 AND name = $2 AND current",
    )
    .bind(container_id)
    .bind(name)
    .execute(ex)
    .await
    .map_err(DbError::query("retire an object version"))?;
    Ok(done.rows_affected() > 0)
}

/// Bytes charged to each member, as `(member, bytes)`.
pub type Charges = Vec<(String, i64)>;

/// Deletes every version of a name (unversioned containers keep no history); returns the
/// bytes they were charged, by member.
pub async fn delete_all_versions<'c>(
    ex: impl Executor<'c, Database = Any>,
    container_id: &str,
    name: &str,
) -> Result<Charges, DbError> {
    let rows = sqlx::query(
        "DELETE FROM objects WHERE container_id = $1 AND name = $2
         RETURNING charged_to, charged_bytes",
    )
    .bind(container_id)
    .bind(name)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("delete object versions"))?;
    let mut charges: Charges = Vec::new();
    for row in rows {
        let read = |source| DbError::Query {
            action: "delete object versions",
            source,
        };
        let member: String = row.try_get("charged_to").map_err(read)?;
        let size: i64 = row.try_get("charged_bytes").map_err(read)?;
        match charges.iter_mut().find(|(m, _)| *m == member) {
            Some((_, bytes)) => *bytes += size,
            None => charges.push((member, size)),
        }
    }
    Ok(charges)
}

/// The bytes every version in a container is charged, by member.
pub async fn container_charges<'c>(
    ex: impl Executor<'c, Database = Any>,
    container_id: &str,
) -> Result<Charges, DbError> {
    let rows = sqlx::query(
        "SELECT charged_to, CAST(SUM(charged_bytes) AS BIGINT) AS bytes FROM objects
         WHERE container_id = $1 GROUP BY charged_to ORDER BY charged_to",
    )
    .bind(container_id)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("sum a container's charges"))?;
    rows.iter()
        .map(|row| Ok((row.try_get("charged_to")?, row.try_get("bytes")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::query("sum a container's charges"))
}

/// The bytes of every version of every object, by (account, member): what
/// `pithos.diskspace` usage must be.
pub async fn stored_bytes_by_member<'c>(
    ex: impl Executor<'c, Database = Any>,
) -> Result<Vec<(String, String, i64)>, DbError> {
    let rows = sqlx::query(
        "SELECT c.project_id, o.charged_to, CAST(SUM(o.charged_bytes) AS BIGINT) AS bytes
           FROM objects o JOIN containers c ON c.id = o.container_id
          GROUP BY c.project_id, o.charged_to ORDER BY c.project_id, o.charged_to",
    )
    .fetch_all(ex)
    .await
    .map_err(DbError::query("sum stored bytes"))?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("project_id")?,
                row.try_get("charged_to")?,
                row.try_get("bytes")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::query("sum stored bytes"))
}

/// The bytes of every version in a container: what its Pithos policy quota counts.
pub async fn container_version_bytes<'c>(
    ex: impl Executor<'c, Database = Any>,
    container_id: &str,
) -> Result<i64, DbError> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(charged_bytes), 0) AS BIGINT) FROM objects
         WHERE container_id = $1",
    )
    .bind(container_id)
    .fetch_one(ex)
    .await
    .map_err(DbError::query("sum a container's versions"))
}

/// Current objects of a container in name order (or as they were at `until`).
pub async fn list_objects<'c>(
    ex: impl Executor<'c, Database = Any>,
    container_id: &str,
    range: &NameRange,
    until: Option<i64>,
) -> Result<Vec<ObjectRow>, DbError> {
    let range_sql = range.sql("o.name");
    let which = match until {
        None => "o.current".to_owned(),
        // The newest version at `until` of each name, unless that is a deletion marker.
        Some(_) => "o.modified_at <= $6 AND NOT o.deleted AND o.serial = (
                SELECT MAX(h.serial) FROM objects h
                WHERE h.container_id = o.container_id AND h.name = o.name
                  AND h.modified_at <= $6)"
            .to_owned(),
    };
    let columns = OBJECT_COLUMNS.replace("CAST(current", "CAST(o.current");
    let sql = format!(
        "SELECT {columns} FROM objects o
         WHERE o.container_id = $1 AND {which}
           AND {range_sql}"
    );
    range
        .bind(sqlx::query_as(&sql).bind(container_id))
        .bind(until.unwrap_or(0))
        .fetch_all(ex)
        .await
        .map_err(DbError::query("list objects"))
}

/// Whether a container holds any current object.
pub async fn container_is_empty<'c>(
    ex: impl Executor<'c, Database = Any>,
    container_id: &str,
) -> Result<bool, DbError> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT serial FROM objects WHERE container_id = $1 AND current LIMIT 1",
    )
    .bind(container_id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("check a container is empty"))?;
    Ok(found.is_none())
}

/// Current objects whose `X-Delete-At` has passed: (container id, name).
pub async fn expired_objects<'c>(
    ex: impl Executor<'c, Database = Any>,
    now: i64,
    limit: i64,
) -> Result<Vec<(String, String)>, DbError> {
    sqlx::query_as(
        "SELECT container_id, name FROM objects
         WHERE delete_at IS NOT NULL AND delete_at <= $1 AND current LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("find expired objects"))
}

/// The hashmap of one version (block hashes, 64 hex digits each, concatenated).
pub async fn get_hashmap<'c>(
    ex: impl Executor<'c, Database = Any>,
    serial: i64,
) -> Result<Option<String>, DbError> {
    sqlx::query_scalar("SELECT hashmap FROM objects WHERE serial = $1")
        .bind(serial)
        .fetch_optional(ex)
        .await
        .map_err(DbError::query("read an object's hashmap"))
}

/// The hashmaps of every stored version, one row at a time, for garbage collection of
/// blocks: memory stays that of one hashmap whatever the number of objects.
pub fn live_hashmaps<'c>(
    ex: impl Executor<'c, Database = Any> + 'c,
) -> impl Stream<Item = Result<(i64, String), DbError>> + Send + 'c {
    sqlx::query_as("SELECT serial, hashmap FROM objects WHERE NOT deleted")
        .fetch(ex)
        .map_err(|source| DbError::Query {
            action: "read every hashmap",
            source,
        })
}

/// A version whose MD5 or Pithos hash is still to be computed.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct PendingDigest {
    pub serial: i64,
    pub size: i64,
    /// The MD5 is missing (else only the hash is).
    pub etag_pending: bool,
}

/// Up to `limit` versions whose MD5 or hash is missing, oldest first.
pub async fn pending_digests<'c>(
    ex: impl Executor<'c, Database = Any>,
    limit: i64,
) -> Result<Vec<PendingDigest>, DbError> {
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT serial, size, CASE WHEN etag = '' THEN 1 ELSE 0 END FROM objects
         WHERE (etag = '' OR hash IS NULL) AND NOT deleted ORDER BY serial LIMIT $1",
    )
    .bind(limit)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("find objects without digests"))?;
    Ok(rows
        .into_iter()
        .map(|(serial, size, etag_pending)| PendingDigest {
            serial,
            size,
            etag_pending: etag_pending != 0,
        })
        .collect())
}

/// Records a version's computed digests; a digest already set is kept (versions never
/// change content, so whoever computed it first computed the same value).
pub async fn set_digests<'c>(
    ex: impl Executor<'c, Database = Any>,
    serial: i64,
    etag: &str,
    hash: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE objects SET etag = CASE WHEN etag = '' THEN $2 ELSE etag END,
                            hash = COALESCE(hash, $3)
         WHERE serial = $1",
    )
    .bind(serial)
    .bind(etag)
    .bind(hash)
    .execute(ex)
    .await
    .map_err(DbError::query("record an object's digests"))?;
    Ok(())
}

/// Rewrites the metadata, content type and expiry of one version in place.
pub async fn update_object_meta<'c>(
    ex: impl Executor<'c, Database = Any>,
    row: &ObjectRow,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE objects SET meta = $2, content_type = $3, delete_at = $4 WHERE serial = $1",
    )
    .bind(row.serial)
    .bind(&row.meta)
    .bind(&row.content_type)
    .bind(row.delete_at)
    .execute(ex)
    .await
    .map_err(DbError::query("update an object's metadata"))?;
    Ok(())
}
