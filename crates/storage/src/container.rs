//! Containers.

use nefos_db::storage::{self as q, ContainerRow};
use nefos_db::time::now_micros;

use crate::access::Accessor;
use crate::meta::{self, Metadata};
use crate::{Permission, Storage, StorageError};

/// Swift's container quota keys, kept as container metadata.
pub(crate) const QUOTA_BYTES: &str = "quota-bytes";
pub(crate) const QUOTA_COUNT: &str = "quota-count";

/// Whether a container keeps old versions of its objects (Pithos).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Versioning {
    /// Every write and delete keeps the previous version.
    #[default]
    Auto,
    /// Only the current version is kept.
    None,
}

impl Versioning {
    pub fn as_str(self) -> &'static str {
        match self {
            Versioning::Auto => "auto",
            Versioning::None => "none",
        }
    }

    pub fn parse(value: &str) -> Result<Versioning, StorageError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Versioning::Auto),
            "none" => Ok(Versioning::None),
            _ => Err(StorageError::invalid(
                "X-Container-Policy-Versioning",
                "must be auto or none",
            )),
        }
    }

    fn from_stored(value: &str) -> Versioning {
        if value == "none" {
            Versioning::None
        } else {
            Versioning::Auto
        }
    }
}

/// A container and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub versioning: Versioning,
    pub meta: Metadata,
    /// Pithos's policy quota, if any.
    pub quota_bytes: Option<i64>,
    /// Swift's `X-Container-Read` and `X-Container-Write`, cleaned; empty for none. Only
    /// the account's owners may see them.
    pub read_acl: String,
    pub write_acl: String,
    pub objects: i64,
    pub bytes: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Changes to a container.
#[derive(Debug, Clone, Default)]
pub struct ContainerUpdate {
    /// Items to set; an empty value removes one.
    pub meta: Metadata,
    pub versioning: Option<Versioning>,
    /// Pithos's `X-Container-Policy-Quota`: bytes of every kept version; `Some(None)`
    /// (or a quota of 0, as in Pithos) removes the limit.
    pub quota_bytes: Option<Option<i64>>,
    /// Swift's container ACLs (`acl.rs`) to set; an empty value removes one.
    pub read_acl: Option<String>,
    pub write_acl: Option<String>,
}

/// Refuses a name holding NUL, which no stored name can (PostgreSQL cannot store it).
pub(crate) fn refuse_nul(field: &'static str, name: &str) -> Result<(), StorageError> {
    if name.contains('\0') {
        return Err(StorageError::invalid(field, "holds a NUL character"));
    }
    Ok(())
}

pub(crate) fn check_container_name(name: &str) -> Result<(), StorageError> {
    if name.len() > 256 {
        return Err(StorageError::invalid(
            meta::SWIFT_CONSTRAINT,
            format!("Container name length of {} longer than 256", name.len()),
        ));
    }
    if name.is_empty() || name.contains(['/', '\0']) {
        return Err(StorageError::invalid(
            "container name",
            "1 to 256 bytes without '/' or NUL",
        ));
    }
    Ok(())
}

fn check_quota_meta(meta: &Metadata) -> Result<(), StorageError> {
    for key in [QUOTA_BYTES, QUOTA_COUNT] {
        if let Some(value) = meta.get(key).filter(|v| !v.is_empty()) {
            value.parse::<u64>().map_err(|_| {
                StorageError::invalid("container quota", format!("{key} must be a whole number"))
            })?;
        }
    }
    Ok(())
}

impl Storage {
    /// Creates a container, or updates it if it exists. Returns whether it was created.
    pub async fn put_container(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        name: &str,
        update: &ContainerUpdate,
    ) -> Result<bool, StorageError> {
        Self::require_account(who, project_id, Permission::Write)?;
        check_container_name(name)?;
        check_quota_meta(&update.meta)?;
        let mut tx = self.db.begin().await?;
        self.db
            .lock_key(&mut tx, &format!("container:{project_id}/{name}"))
            .await?;
        let now = now_micros();
        let created = match q::get_container(&mut *tx, project_id, name).await? {
            Some(mut row) => {
                apply(&mut row, update)?;
                row.updated_at = now;
                q::update_container(&mut *tx, &row).await?;
                false
            }
            None => {
                let mut row = ContainerRow {
                    id: uuid::Uuid::new_v4().simple().to_string(),
                    project_id: project_id.to_owned(),
                    name: name.to_owned(),
                    versioning: Versioning::default().as_str().to_owned(),
                    meta: "{}".to_owned(),
                    quota_bytes: None,
                    read_acl: String::new(),
                    write_acl: String::new(),
                    created_at: now,
                    updated_at: now,
                };
                apply(&mut row, update)?;
                q::insert_container(&mut *tx, &row).await?;
                true
            }
        };
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit a container"))?;
        Ok(created)
    }

    /// Updates an existing container's metadata or versioning.
    pub async fn update_container(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        name: &str,
        update: &ContainerUpdate,
    ) -> Result<(), StorageError> {
        Self::require_account(who, project_id, Permission::Write)?;
        check_quota_meta(&update.meta)?;
        let mut tx = self.db.begin().await?;
        let mut row = q::get_container(&mut *tx, project_id, name)
            .await?
            .ok_or(StorageError::NotFound { what: "container" })?;
        apply(&mut row, update)?;
        row.updated_at = now_micros();
        q::update_container(&mut *tx, &row).await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit a container update"))?;
        Ok(())
    }

    /// A container with its usage. Needs read access to the account.
    pub async fn container(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        name: &str,
    ) -> Result<ContainerInfo, StorageError> {
        let row = self.object_container(who, project_id, name).await?;
        Self::require_container_read(who, &row)?;
        let (objects, bytes) = q::container_stats(self.db.pool(), &row.id).await?;
        Ok(info(row, objects, bytes))
    }

    /// Whether the container's read ACL lets `who` read the container itself (its
    /// metadata and listing); false when there is no such container.
    pub async fn acl_lets_read_container(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        name: &str,
    ) -> Result<bool, StorageError> {
        refuse_nul("container name", name)?;
        Ok(q::get_container(self.db.pool(), project_id, name)
            .await?
            .is_some_and(|row| Self::acl_grants(who, &row, Permission::Read, true)))
    }

    /// Deletes an empty container (with any history it kept); 409 when objects remain.
    pub async fn delete_container(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        name: &str,
    ) -> Result<(), StorageError> {
        Self::require_account(who, project_id, Permission::Write)?;
        let mut tx = self.db.begin().await?;
        let row = q::get_container(&mut *tx, project_id, name)
            .await?
            .ok_or(StorageError::NotFound { what: "container" })?;
        // Alone against its writers, so that what is checked and released here is all
        // that is deleted.
        self.db
            .lock_key(&mut tx, &crate::object::container_lock(&row.id))
            .await?;
        if !q::container_is_empty(&mut *tx, &row.id).await? {
            return Err(StorageError::Conflict {
                reason: "the container is not empty",
            });
        }
        // The history it kept goes with it, and with that what it was charged.
        let released = q::container_charges(&mut *tx, &row.id).await?;
        self.release(&mut tx, &row, &released).await?;
        q::delete_container(&mut *tx, &row.id).await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit a container deletion"))?;
        Ok(())
    }

    /// Finds a container for an object operation. Without any access to the account, a
    /// missing container is "forbidden" like an existing one, so nothing leaks.
    pub(crate) async fn object_container(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        name: &str,
    ) -> Result<ContainerRow, StorageError> {
        // Names reach here from request bodies too (bulk deletes, manifests): one that no
        // container can have is refused before it reaches a database that cannot hold it.
        refuse_nul("container name", name)?;
        refuse_nul("account", project_id)?;
        match q::get_container(self.db.pool(), project_id, name).await? {
            Some(row) => Ok(row),
            None if Self::account_permission(who, project_id).is_some() => {
                Err(StorageError::NotFound { what: "container" })
            }
            None => Err(StorageError::Forbidden),
        }
    }
}

fn apply(row: &mut ContainerRow, update: &ContainerUpdate) -> Result<(), StorageError> {
    let mut stored = meta::from_json(&row.meta);
    meta::merge(&mut stored, &update.meta);
    meta::check(&stored)?;
    row.meta = meta::to_json(&stored);
    if let Some(versioning) = update.versioning {
        row.versioning = versioning.as_str().to_owned();
    }
    if let Some(quota) = update.quota_bytes {
        if quota.is_some_and(|q| q < 0) {
            return Err(StorageError::invalid(
                "X-Container-Policy-Quota",
                "must be a number of bytes",
            ));
        }
        row.quota_bytes = quota.filter(|q| *q > 0);
    }
    if let Some(acl) = &update.read_acl {
        row.read_acl = crate::acl::clean_acl(crate::AclKind::Read, acl)?;
    }
    if let Some(acl) = &update.write_acl {
        row.write_acl = crate::acl::clean_acl(crate::AclKind::Write, acl)?;
    }
    Ok(())
}

pub(crate) fn info(row: ContainerRow, objects: i64, bytes: i64) -> ContainerInfo {
    ContainerInfo {
        versioning: Versioning::from_stored(&row.versioning),
        meta: meta::from_json(&row.meta),
        quota_bytes: row.quota_bytes,
        read_acl: row.read_acl,
        write_acl: row.write_acl,
        id: row.id,
        project_id: row.project_id,
        name: row.name,
        objects,
        bytes,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}
