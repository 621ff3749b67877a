//! Images (migration 7): rows of `images` with their properties, tags and members.
//!
//! An image bound to an object version exists only while that version is its object's
//! current one: every read here joins on that (`LIVE`), so deleting or overwriting the
//! object unregisters the image at once, with no hook in the storage code. Rows left
//! behind are removed by [`delete_orphans`].

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use crate::flag::get_bool;
use crate::time::now_micros;
use crate::{Connection, DbError};

/// A row of `images`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    pub id: String,
    pub owner_id: String,
    pub name: Option<String>,
    pub status: String,
    pub visibility: String,
    pub protected: bool,
    pub os_hidden: bool,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub min_disk: i64,
    pub min_ram: i64,
    pub size: Option<i64>,
    pub virtual_size: Option<i64>,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub container_id: Option<String>,
    pub object_name: Option<String>,
    pub object_serial: Option<i64>,
    pub object_owned: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl FromRow<'_, AnyRow> for ImageRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(ImageRow {
            id: row.try_get("id")?,
            owner_id: row.try_get("owner_id")?,
            name: row.try_get("name")?,
            status: row.try_get("status")?,
            visibility: row.try_get("visibility")?,
            protected: get_bool(row, "protected")?,
            os_hidden: get_bool(row, "os_hidden")?,
            disk_format: row.try_get("disk_format")?,
            container_format: row.try_get("container_format")?,
            min_disk: row.try_get("min_disk")?,
            min_ram: row.try_get("min_ram")?,
            size: row.try_get("size")?,
            virtual_size: row.try_get("virtual_size")?,
            checksum: row.try_get("checksum")?,
            os_hash_algo: row.try_get("os_hash_algo")?,
            os_hash_value: row.try_get("os_hash_value")?,
            container_id: row.try_get("container_id")?,
            object_name: row.try_get("object_name")?,
            object_serial: row.try_get("object_serial")?,
            object_owned: get_bool(row, "object_owned")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// The columns of an image row. An image's MD5 (`checksum`) is its object's when the row
/// has none: uploads leave it to the object store's digest job.
const IMAGE_COLUMNS: &str = "i.id, i.owner_id, i.name, i.status, i.visibility,
    CAST(i.protected AS INTEGER) AS protected, CAST(i.os_hidden AS INTEGER) AS os_hidden,
    i.disk_format, i.container_format, i.min_disk, i.min_ram, i.size, i.virtual_size,
    COALESCE(i.checksum, (SELECT NULLIF(o.etag, '') FROM objects o
                           WHERE o.serial = i.object_serial)) AS checksum, i.os_hash_algo, i.os_hash_value, i.container_id, i.object_name,
    i.object_serial, CAST(i.object_owned AS INTEGER) AS object_owned, i.created_at,
    i.updated_at";

/// An image row `i` that still is an image: no data yet, or its object version is current.
const LIVE: &str = "(i.object_serial IS NULL OR EXISTS (
        SELECT 1 FROM objects o
         WHERE o.serial = i.object_serial AND o.current AND NOT o.deleted))";

/// Who may see an image row `i`, for the project bound as `$1` (NULL: nobody's) unless
/// `$2` (an administrator) is 1: its own, public and community images, and shared ones
/// offered to it whatever its answer (a member must see an image to accept it).
const VISIBLE: &str = "($2 = 1 OR i.owner_id = $1 OR i.visibility IN ('public', 'community')
     OR (i.visibility = 'shared' AND EXISTS (
         SELECT 1 FROM image_members m WHERE m.image_id = i.id AND m.member_id = $1)))";

pub async fn insert_image(conn: &mut Connection, row: &ImageRow) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO images (id, owner_id, name, status, visibility, protected, os_hidden,
                             disk_format, container_format, min_disk, min_ram, size,
                             virtual_size, checksum, os_hash_algo, os_hash_value, container_id,
                             object_name, object_serial, object_owned, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18, $19, $20, $21, $22)",
    )
    .bind(&row.id)
    .bind(&row.owner_id)
    .bind(&row.name)
    .bind(&row.status)
    .bind(&row.visibility)
    .bind(row.protected)
    .bind(row.os_hidden)
    .bind(&row.disk_format)
    .bind(&row.container_format)
    .bind(row.min_disk)
    .bind(row.min_ram)
    .bind(row.size)
    .bind(row.virtual_size)
    .bind(&row.checksum)
    .bind(&row.os_hash_algo)
    .bind(&row.os_hash_value)
    .bind(&row.container_id)
    .bind(&row.object_name)
    .bind(row.object_serial)
    .bind(row.object_owned)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(conn)
    .await
    .map_err(DbError::insert(
        "record an image",
        "an image of this id or object",
    ))?;
    Ok(())
}

/// Writes every column of an existing row but its id, owner and creation time.
pub async fn update_image(conn: &mut Connection, row: &ImageRow) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE images SET name = $2, status = $3, visibility = $4, protected = $5,
                os_hidden = $6, disk_format = $7, container_format = $8, min_disk = $9,
                min_ram = $10, size = $11, virtual_size = $12, checksum = $13,
                os_hash_algo = $14, os_hash_value = $15, container_id = $16,
                object_name = $17, object_serial = $18, object_owned = $19, updated_at = $20
          WHERE id = $1",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(&row.status)
    .bind(&row.visibility)
    .bind(row.protected)
    .bind(row.os_hidden)
    .bind(&row.disk_format)
    .bind(&row.container_format)
    .bind(row.min_disk)
    .bind(row.min_ram)
    .bind(row.size)
    .bind(row.virtual_size)
    .bind(&row.checksum)
    .bind(&row.os_hash_algo)
    .bind(&row.os_hash_value)
    .bind(&row.container_id)
    .bind(&row.object_name)
    .bind(row.object_serial)
    .bind(row.object_owned)
    .bind(row.updated_at)
    .execute(conn)
    .await
    .map_err(DbError::insert(
        "update an image",
        "an image of this object",
    ))?;
    Ok(())
}

/// Moves an image from one status to another only if it is still in `from`: the one
/// writer that wins a transition (two uploads of one image, say) is the one that sees
/// `true`. `receiving_instance` is the process that now receives data into it, if any.
pub async fn transition_status<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    from: &[&str],
    to: &str,
    receiving_instance: Option<&str>,
) -> Result<bool, DbError> {
    // One bind parameter per status of `from`, after the four above.
    let from_params: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 5)).collect();
    let sql = format!(
        "UPDATE images SET status = $2, updated_at = $3, receiving_instance = $4
          WHERE id = $1 AND status IN ({})",
        from_params.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .bind(id)
        .bind(to)
        .bind(now_micros())
        .bind(receiving_instance);
    for status in from {
        query = query.bind(*status);
    }
    let done = query
        .execute(ex)
        .await
        .map_err(DbError::query("change an image's status"))?;
    Ok(done.rows_affected() == 1)
}

/// Marks an image changed now (a change outside its row: tags).
pub async fn touch_image<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE images SET updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now_micros())
        .execute(ex)
        .await
        .map_err(DbError::query("touch an image"))?;
    Ok(())
}

/// An image's row by id, whether or not its object version is still current (for the
/// image service's own repairs).
pub async fn get_image_row<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<ImageRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {IMAGE_COLUMNS} FROM images i WHERE i.id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read an image"))
}

/// An image by id, if it still is one (see [`LIVE`]); visibility is the caller's concern.
pub async fn get_image<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<ImageRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {IMAGE_COLUMNS} FROM images i WHERE i.id = $1 AND {LIVE}"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read an image"))
}

/// The image an object version is, if any.
pub async fn image_of_object<'c>(
    ex: impl Executor<'c, Database = Any>,
    serial: i64,
) -> Result<Option<ImageRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {IMAGE_COLUMNS} FROM images i WHERE i.object_serial = $1 AND {LIVE}"
    ))
    .bind(serial)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read the image of an object"))
}

/// Whose images a listing may show.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    /// The caller's project; `None` for an unscoped caller (public and community only).
    pub project_id: Option<&'a str>,
    /// Sees every image.
    pub admin: bool,
}

impl Viewer<'_> {
    fn admin_flag(&self) -> i64 {
        i64::from(self.admin)
    }
}

/// Every image `viewer` may see, oldest first; the API narrows, sorts and pages them.
pub async fn list_visible<'c>(
    ex: impl Executor<'c, Database = Any>,
    viewer: Viewer<'_>,
) -> Result<Vec<ImageRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {IMAGE_COLUMNS} FROM images i WHERE {VISIBLE} AND {LIVE}
          ORDER BY i.created_at, i.id"
    ))
    .bind(viewer.project_id)
    .bind(viewer.admin_flag())
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list images"))
}

/// Whether `viewer` may see image `id` at all (see [`VISIBLE`]).
pub async fn is_visible<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
    viewer: Viewer<'_>,
) -> Result<bool, DbError> {
    let found: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT 1 FROM images i WHERE i.id = $3 AND {VISIBLE}"
    ))
    .bind(viewer.project_id)
    .bind(viewer.admin_flag())
    .bind(id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("check an image's visibility"))?;
    Ok(found.is_some())
}

pub async fn delete_image<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM images WHERE id = $1")
        .bind(id)
        .execute(ex)
        .await
        .map_err(DbError::query("delete an image"))?;
    Ok(done.rows_affected() == 1)
}

/// Images data was being received into by a process silent since `alive_since` (other
/// than `this_instance`): uploads, stages and imports that process will never finish.
pub async fn interrupted_by_stopped<'c>(
    ex: impl Executor<'c, Database = Any>,
    alive_since: i64,
    this_instance: &str,
) -> Result<Vec<ImageRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {IMAGE_COLUMNS} FROM images i
          WHERE (i.status IN ('saving', 'importing')
                 OR (i.status = 'uploading' AND i.object_serial IS NULL))
            AND i.receiving_instance IS NOT NULL AND i.receiving_instance <> $2
            AND NOT EXISTS (SELECT 1 FROM control_plane_instances c
                             WHERE c.id = i.receiving_instance AND c.heartbeat_at >= $1)"
    ))
    .bind(alive_since)
    .bind(this_instance)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list interrupted image uploads"))
}

/// Removes the rows of images whose object version is gone; returns how many.
pub async fn delete_orphans<'c>(ex: impl Executor<'c, Database = Any>) -> Result<u64, DbError> {
    let done = sqlx::query(&format!(
        "DELETE FROM images WHERE id IN (SELECT i.id FROM images i WHERE NOT {LIVE})"
    ))
    .execute(ex)
    .await
    .map_err(DbError::query("remove unregistered images"))?;
    Ok(done.rows_affected())
}

/// Properties of every image `viewer` may see, by image id (for listings).
pub async fn visible_properties<'c>(
    ex: impl Executor<'c, Database = Any>,
    viewer: Viewer<'_>,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, DbError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(&format!(
        "SELECT p.image_id, p.name, p.value FROM image_properties p
           JOIN images i ON i.id = p.image_id WHERE {VISIBLE}"
    ))
    .bind(viewer.project_id)
    .bind(viewer.admin_flag())
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list image properties"))?;
    let mut by_image: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (image, name, value) in rows {
        by_image.entry(image).or_default().insert(name, value);
    }
    Ok(by_image)
}

/// Tags of every image `viewer` may see, by image id (for listings).
pub async fn visible_tags<'c>(
    ex: impl Executor<'c, Database = Any>,
    viewer: Viewer<'_>,
) -> Result<BTreeMap<String, Vec<String>>, DbError> {
    let rows: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT t.image_id, t.tag FROM image_tags t
           JOIN images i ON i.id = t.image_id WHERE {VISIBLE} ORDER BY t.tag"
    ))
    .bind(viewer.project_id)
    .bind(viewer.admin_flag())
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list image tags"))?;
    let mut by_image: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (image, tag) in rows {
        by_image.entry(image).or_default().push(tag);
    }
    Ok(by_image)
}

pub async fn properties<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<BTreeMap<String, String>, DbError> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT name, value FROM image_properties WHERE image_id = $1")
            .bind(id)
            .fetch_all(ex)
            .await
            .map_err(DbError::query("read image properties"))?;
    Ok(rows.into_iter().collect())
}

pub async fn tags<'c>(
    ex: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar("SELECT tag FROM image_tags WHERE image_id = $1 ORDER BY tag")
        .bind(id)
        .fetch_all(ex)
        .await
        .map_err(DbError::query("read image tags"))
}

/// Replaces an image's properties with `properties`.
pub async fn set_properties(
    conn: &mut Connection,
    id: &str,
    properties: &BTreeMap<String, String>,
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM image_properties WHERE image_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(DbError::query("replace image properties"))?;
    for (name, value) in properties {
        sqlx::query("INSERT INTO image_properties (image_id, name, value) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(name)
            .bind(value)
            .execute(&mut *conn)
            .await
            .map_err(DbError::query("store an image property"))?;
    }
    Ok(())
}

/// Replaces an image's tags with `tags`.
pub async fn set_tags(conn: &mut Connection, id: &str, tags: &[String]) -> Result<(), DbError> {
    sqlx::query("DELETE FROM image_tags WHERE image_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(DbError::query("replace image tags"))?;
    for tag in tags {
        sqlx::query(
            "INSERT INTO image_tags (image_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(tag)
        .execute(&mut *conn)
        .await
        .map_err(DbError::query("store an image tag"))?;
    }
    Ok(())
}

/// A row of `image_members`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct MemberRow {
    pub image_id: String,
    pub member_id: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const MEMBER_COLUMNS: &str = "image_id, member_id, status, created_at, updated_at";

pub async fn members<'c>(
    ex: impl Executor<'c, Database = Any>,
    image_id: &str,
) -> Result<Vec<MemberRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {MEMBER_COLUMNS} FROM image_members WHERE image_id = $1 ORDER BY created_at"
    ))
    .bind(image_id)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list image members"))
}

/// Every membership of `member_id` in images, by image id (for listings).
pub async fn memberships_of<'c>(
    ex: impl Executor<'c, Database = Any>,
    member_id: &str,
) -> Result<BTreeMap<String, MemberRow>, DbError> {
    let rows: Vec<MemberRow> = sqlx::query_as(&format!(
        "SELECT {MEMBER_COLUMNS} FROM image_members WHERE member_id = $1"
    ))
    .bind(member_id)
    .fetch_all(ex)
    .await
    .map_err(DbError::query("list a project's image memberships"))?;
    Ok(rows.into_iter().map(|r| (r.image_id.clone(), r)).collect())
}

pub async fn member<'c>(
    ex: impl Executor<'c, Database = Any>,
    image_id: &str,
    member_id: &str,
) -> Result<Option<MemberRow>, DbError> {
    sqlx::query_as(&format!(
        "SELECT {MEMBER_COLUMNS} FROM image_members WHERE image_id = $1 AND member_id = $2"
    ))
    .bind(image_id)
    .bind(member_id)
    .fetch_optional(ex)
    .await
    .map_err(DbError::query("read an image member"))
}

pub async fn insert_member(conn: &mut Connection, row: &MemberRow) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO image_members (image_id, member_id, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&row.image_id)
    .bind(&row.member_id)
    .bind(&row.status)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(conn)
    .await
    .map_err(DbError::insert(
        "add an image member",
        "this member of the image",
    ))?;
    Ok(())
}

pub async fn set_member_status<'c>(
    ex: impl Executor<'c, Database = Any>,
    image_id: &str,
    member_id: &str,
    status: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE image_members SET status = $3, updated_at = $4
          WHERE image_id = $1 AND member_id = $2",
    )
    .bind(image_id)
    .bind(member_id)
    .bind(status)
    .bind(now_micros())
    .execute(ex)
    .await
    .map_err(DbError::query("answer an image membership"))?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_member<'c>(
    ex: impl Executor<'c, Database = Any>,
    image_id: &str,
    member_id: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM image_members WHERE image_id = $1 AND member_id = $2")
        .bind(image_id)
        .bind(member_id)
        .execute(ex)
        .await
        .map_err(DbError::query("remove an image member"))?;
    Ok(done.rows_affected() == 1)
}
