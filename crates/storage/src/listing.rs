//! Listings of containers and objects, Swift-style: prefix, delimiter roll-up, markers,
//! limit and reverse order, and (Pithos) `until=`.

use nefos_db::storage::{self as q, ContainerListing, NameRange};

use nefos_db::time::now_micros;

use crate::access::Accessor;
use crate::object::object_info;
use crate::{ObjectInfo, Permission, Storage, StorageError};

/// Swift's default and largest page.
pub const MAX_LISTING: i64 = 10_000;

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub prefix: Option<String>,
    pub delimiter: Option<char>,
    pub marker: Option<String>,
    pub end_marker: Option<String>,
    /// At most [`MAX_LISTING`].
    pub limit: Option<i64>,
    pub reverse: bool,
    /// Microseconds: list the container as it was then.
    pub until: Option<i64>,
}

/// One line of an object listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    Object(Box<ObjectInfo>),
    /// Names rolled up by the delimiter: everything under this prefix.
    Subdir(String),
}

impl ListEntry {
    pub fn name(&self) -> &str {
        match self {
            ListEntry::Object(o) => &o.name,
            ListEntry::Subdir(s) => s,
        }
    }
}

impl ListQuery {
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(MAX_LISTING).clamp(0, MAX_LISTING)
    }

    /// The bounds of the listing, refused when one holds a NUL (no name can).
    fn range(&self, limit: i64) -> Result<NameRange, StorageError> {
        for (field, value) in [
            ("prefix", &self.prefix),
            ("marker", &self.marker),
            ("end_marker", &self.end_marker),
        ] {
            if value.as_deref().is_some_and(|v| v.contains('\0')) {
                return Err(StorageError::invalid(field, "holds a NUL character"));
            }
        }
        if self.delimiter == Some('\0') {
            return Err(StorageError::invalid("delimiter", "is the NUL character"));
        }
        Ok(NameRange {
            prefix: self.prefix.clone().filter(|p| !p.is_empty()),
            marker: self.marker.clone().filter(|m| !m.is_empty()),
            end_marker: self.end_marker.clone().filter(|m| !m.is_empty()),
            limit,
            reverse: self.reverse,
        })
    }

    /// For a name under the prefix, the subdirectory it rolls up into, if any.
    fn subdir_of(&self, name: &str) -> Option<String> {
        let delimiter = self.delimiter?;
        let prefix = self.prefix.as_deref().unwrap_or("");
        let rest = name.strip_prefix(prefix)?;
        let at = rest.find(delimiter)?;
        Some(format!("{prefix}{}", &rest[..at + delimiter.len_utf8()]))
    }
}

impl Storage {
    /// The containers of an account (as they were at `until`, when given).
    pub async fn list_containers(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        query: &ListQuery,
    ) -> Result<Vec<ContainerListing>, StorageError> {
        Self::require_account(who, project_id, Permission::Read)?;
        let range = query.range(query.limit())?;
        if let Some(until) = query.until {
            return Ok(q::list_containers_until(self.db.pool(), project_id, &range, until).await?);
        }
        Ok(q::list_containers(self.db.pool(), project_id, &range).await?)
    }

    /// The objects of a container, with names rolled up by the delimiter.
    pub async fn list_objects(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        container: &str,
        query: &ListQuery,
    ) -> Result<Vec<ListEntry>, StorageError> {
        let container = self.object_container(who, project_id, container).await?;
        Self::require_container_read(who, &container)?;
        // A listing as it was (Pithos's `until`) shows what was deleted: not for those
        // whom only the container's ACL lets in.
        if query.until.is_some()
            && Self::container_permission(who, project_id, &container.id).is_none()
        {
            return Err(StorageError::Forbidden);
        }
        let limit = usize::try_from(query.limit()).unwrap_or(0);
        let mut query = query.clone();
        let mut entries: Vec<ListEntry> = Vec::new();
        let now_seconds = now_micros() / 1_000_000;
        while entries.len() < limit {
            let want = limit - entries.len();
            let rows = q::list_objects(
                self.db.pool(),
                &container.id,
                &query.range(i64::try_from(want).unwrap_or(MAX_LISTING))?,
                query.until,
            )
            .await?;
            let fetched = rows.len();
            let mut skipped_past = false;
            for row in rows {
                if let Some(subdir) = query.subdir_of(&row.name) {
                    entries.push(ListEntry::Subdir(subdir.clone()));
                    // Continue after every name under this subdirectory.
                    query.marker = Some(if query.reverse {
                        subdir
                    } else {
                        format!("{subdir}\u{10FFFF}")
                    });
                    skipped_past = true;
                    break;
                }
                query.marker = Some(row.name.clone());
                if row.delete_at.is_some_and(|at| at <= now_seconds) {
                    continue;
                }
                entries.push(ListEntry::Object(Box::new(object_info(
                    &container, row, None,
                ))));
                if entries.len() >= limit {
                    break;
                }
            }
            if !skipped_past && fetched < want {
                break;
            }
        }
        Ok(entries)
    }
}
