//! Accounts: a project's storage, its metadata and its Pithos groups.

use std::collections::BTreeMap;

use nefos_db::storage::{self as q, AccountRow, AccountStats};
use nefos_db::time::now_micros;

use crate::access::Accessor;
use crate::meta::{self, Metadata};
use crate::{Permission, Storage, StorageError};

/// The metadata keys of Swift's account quotas (bytes, and objects); only an
/// administrator may set them.
pub(crate) const QUOTA_BYTES: &str = "quota-bytes";
pub(crate) const QUOTA_COUNT: &str = "quota-count";

/// Swift's account quotas, where set.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AccountQuota {
    pub(crate) bytes: Option<u64>,
    pub(crate) objects: Option<u64>,
}

/// What `HEAD` on an account shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub project_id: String,
    pub stats: AccountStats,
    pub meta: Metadata,
    /// Group name → user names (stored by id).
    pub groups: BTreeMap<String, Vec<String>>,
    pub updated_at: i64,
}

impl Storage {
    /// An account's usage, metadata and groups. Needs read access to the account.
    pub async fn account(
        &self,
        who: Accessor<'_>,
        project_id: &str,
    ) -> Result<AccountInfo, StorageError> {
        Self::require_account(who, project_id, Permission::Read)?;
        let row = q::get_account(self.db.pool(), project_id).await?;
        let stats = q::account_stats(self.db.pool(), project_id).await?;
        Ok(AccountInfo {
            project_id: project_id.to_owned(),
            stats,
            meta: row
                .as_ref()
                .map(|r| meta::from_json(&r.meta))
                .unwrap_or_default(),
            groups: self
                .show_groups(
                    row.as_ref()
                        .map(|r| parse_groups(&r.groups))
                        .unwrap_or_default(),
                )
                .await?,
            updated_at: row.map_or(0, |r| r.updated_at),
        })
    }

    /// Updates account metadata (an empty value removes an item) and groups (an empty
    /// member list removes a group; `replace_groups` drops the groups not given).
    pub async fn update_account(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        meta_update: &Metadata,
        groups_update: &BTreeMap<String, Vec<String>>,
        replace_groups: bool,
    ) -> Result<(), StorageError> {
        Self::require_account(who, project_id, Permission::Write)?;
        let is_admin = matches!(who, Accessor::Token(ctx) if ctx.is_cloud_admin());
        for (key, header) in [
            (QUOTA_BYTES, "X-Account-Quota-Bytes"),
            (QUOTA_COUNT, "X-Account-Quota-Count"),
        ] {
            if meta_update.contains_key(key) && !is_admin {
                return Err(StorageError::Forbidden);
            }
            if let Some(value) = meta_update.get(key).filter(|v| !v.is_empty()) {
                value
                    .parse::<u64>()
                    .map_err(|_| StorageError::invalid(header, "not a whole number"))?;
            }
        }
        for (name, members) in groups_update {
            if name.is_empty() || name.len() > 128 || name.contains([':', ',', ';', '=']) {
                return Err(StorageError::invalid("group name", format!("{name:?}")));
            }
            if members.len() > 256 {
                return Err(StorageError::invalid(
                    "group",
                    format!("{name:?} has more than 256 members"),
                ));
            }
        }
        // Members are stored by user id; an unknown user is refused before anything is
        // written.
        let mut resolved = BTreeMap::new();
        for (name, members) in groups_update {
            let ids = self.resolve_grantees("X-Account-Group", members).await?;
            resolved.insert(name.clone(), ids);
        }
        let groups_update = &resolved;
        let mut tx = self.db.begin().await?;
        let existing = q::get_account(&mut *tx, project_id).await?;
        let mut stored = existing
            .as_ref()
            .map(|r| meta::from_json(&r.meta))
            .unwrap_or_default();
        let mut groups = existing
            .as_ref()
            .map(|r| parse_groups(&r.groups))
            .unwrap_or_default();
        meta::merge(&mut stored, meta_update);
        meta::check(&stored)?;
        if replace_groups {
            groups.clear();
        }
        for (name, members) in groups_update {
            if members.is_empty() {
                groups.remove(name);
            } else {
                groups.insert(name.clone(), members.clone());
            }
        }
        let row = AccountRow {
            project_id: project_id.to_owned(),
            meta: meta::to_json(&stored),
            groups: serde_json::to_string(&groups).unwrap_or_else(|_| "{}".to_owned()),
            updated_at: now_micros(),
        };
        q::upsert_account(&mut *tx, &row).await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit an account update"))?;
        Ok(())
    }

    /// Groups as clients see them: members by name.
    async fn show_groups(
        &self,
        groups: BTreeMap<String, Vec<String>>,
    ) -> Result<BTreeMap<String, Vec<String>>, StorageError> {
        let mut shown = BTreeMap::new();
        for (name, members) in groups {
            let members = self.show_grantees(&members).await?;
            if !members.is_empty() {
                shown.insert(name, members);
            }
        }
        Ok(shown)
    }

    /// An account's groups (members by user id), for sharing checks.
    pub(crate) async fn account_groups(
        &self,
        project_id: &str,
    ) -> Result<BTreeMap<String, Vec<String>>, StorageError> {
        let row = q::get_account(self.db.pool(), project_id).await?;
        Ok(row.map(|r| parse_groups(&r.groups)).unwrap_or_default())
    }

    /// The account's quotas. Read through the caller's connection (a write's
    /// transaction): a second connection from the pool could wait forever on a pool that
    /// writers have exhausted.
    pub(crate) async fn account_quota(
        conn: &mut nefos_db::Connection,
        project_id: &str,
    ) -> Result<AccountQuota, StorageError> {
        let Some(row) = q::get_account(&mut *conn, project_id).await? else {
            return Ok(AccountQuota::default());
        };
        let meta = meta::from_json(&row.meta);
        let limit = |key| meta.get(key).and_then(|v| v.parse().ok());
        Ok(AccountQuota {
            bytes: limit(QUOTA_BYTES),
            objects: limit(QUOTA_COUNT),
        })
    }
}

fn parse_groups(text: &str) -> BTreeMap<String, Vec<String>> {
    serde_json::from_str(text).unwrap_or_default()
}

impl Storage {
    /// The project whose account `name` is. nefos names accounts `AUTH_<project id>`;
    /// Synnefo's clients (kamaki) name a user's account by the user's id, which is that
    /// user's personal project here. `None` when the name is neither.
    pub async fn resolve_account(&self, name: &str) -> Result<Option<String>, StorageError> {
        if let Some(project) = name.strip_prefix("AUTH_") {
            return Ok((!project.is_empty()).then(|| project.to_owned()));
        }
        if name.is_empty() || name.contains('\0') {
            return Ok(None);
        }
        let user = nefos_db::identity::get_user(self.db.pool(), name).await?;
        Ok(user.map(|u| u.base_project_id))
    }
}
