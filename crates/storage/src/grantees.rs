//! Who a sharing grant or a group names, kept by immutable user id.
//!
//! Clients write and read `X-Object-Sharing` and `X-Account-Group-*` with user names, as
//! Pithos's do; nefos stores the users' ids (Pithos stores UUIDs too). A grant therefore
//! follows the user, not the name: a user created later under a deleted user's name gets
//! nothing, and renaming a user keeps their grants. Names are resolved when a grant is
//! written (an unknown user is refused, so a typo cannot silently grant nobody) and shown
//! again when it is read; a deleted user's grants and memberships are removed with them
//! ([`Storage::forget_user`]).

use std::collections::BTreeMap;

use nefos_db::identity as users;
use nefos_db::storage as q;
use nefos_db::time::now_micros;

use crate::access::Sharing;
use crate::{Storage, StorageError};

/// Whether a grant entry names a user (not everyone, not a group of an account).
fn names_a_user(entry: &str) -> bool {
    entry != "*" && !entry.contains(':')
}

impl Storage {
    /// The ids of the users `entries` name (by name or by id), other entries unchanged.
    pub(crate) async fn resolve_grantees(
        &self,
        field: &'static str,
        entries: &[String],
    ) -> Result<Vec<String>, StorageError> {
        let mut resolved = Vec::with_capacity(entries.len());
        for entry in entries {
            if !names_a_user(entry) {
                resolved.push(entry.clone());
                continue;
            }
            let user = match users::get_user_by_name(self.db.pool(), entry).await? {
                Some(user) => Some(user),
                None => users::get_user(self.db.pool(), entry).await?,
            };
            match user {
                Some(user) => resolved.push(user.id),
                None => {
                    return Err(StorageError::invalid(
                        field,
                        format!("there is no user {entry:?}"),
                    ));
                }
            }
        }
        resolved.dedup();
        Ok(resolved)
    }

    /// Stored entries as clients see them: users by name; users that no longer exist are
    /// left out.
    pub(crate) async fn show_grantees(
        &self,
        entries: &[String],
    ) -> Result<Vec<String>, StorageError> {
        let mut shown = Vec::with_capacity(entries.len());
        for entry in entries {
            if !names_a_user(entry) {
                shown.push(entry.clone());
            } else if let Some(user) = users::get_user(self.db.pool(), entry).await? {
                shown.push(user.name);
            }
        }
        Ok(shown)
    }

    /// A client's `X-Object-Sharing` value in stored form (user ids); `None` when it
    /// grants nothing.
    pub(crate) async fn store_sharing(&self, text: &str) -> Result<Option<String>, StorageError> {
        let mut sharing = Sharing::parse(text)?;
        sharing.read = self
            .resolve_grantees("X-Object-Sharing", &sharing.read)
            .await?;
        sharing.write = self
            .resolve_grantees("X-Object-Sharing", &sharing.write)
            .await?;
        Ok((!sharing.is_empty()).then(|| sharing.render()))
    }

    /// A stored sharing value as clients see it (user names).
    pub(crate) async fn show_sharing(&self, stored: &str) -> Result<String, StorageError> {
        let mut sharing = Sharing::parse(stored).unwrap_or_default();
        sharing.read = self.show_grantees(&sharing.read).await?;
        sharing.write = self.show_grantees(&sharing.write).await?;
        Ok(sharing.render())
    }

    /// Removes a deleted user from every sharing grant and group. The id can never come
    /// back (ids are not reused), so a grant left behind by a failure here grants nothing;
    /// this keeps what owners see true.
    pub async fn forget_user(&self, user_id: &str) -> Result<(), StorageError> {
        for path in q::paths_sharing_with(self.db.pool(), Some(user_id)).await? {
            let Some(text) = &path.sharing else {
                continue;
            };
            let mut sharing = Sharing::parse(text).unwrap_or_default();
            sharing.read.retain(|entry| entry != user_id);
            sharing.write.retain(|entry| entry != user_id);
            self.set_sharing(&path, &sharing).await?;
        }
        for account in q::accounts_grouping(self.db.pool(), Some(user_id)).await? {
            let mut groups: BTreeMap<String, Vec<String>> =
                serde_json::from_str(&account.groups).unwrap_or_default();
            for members in groups.values_mut() {
                members.retain(|member| member != user_id);
            }
            groups.retain(|_, members| !members.is_empty());
            self.set_groups(&account.project_id, &groups).await?;
        }
        Ok(())
    }

    /// Rewrites only a path's sharing: its public URL, which someone may be changing at
    /// this moment, is not written back.
    async fn set_sharing(&self, path: &q::PathRow, sharing: &Sharing) -> Result<(), StorageError> {
        let text = (!sharing.is_empty()).then(|| sharing.render());
        q::set_path_sharing(
            self.db.pool(),
            &path.container_id,
            &path.name,
            text.as_deref(),
        )
        .await?;
        Ok(())
    }

    /// Rewrites only an account's groups, not its metadata.
    async fn set_groups(
        &self,
        project_id: &str,
        groups: &BTreeMap<String, Vec<String>>,
    ) -> Result<(), StorageError> {
        let text = serde_json::to_string(groups).unwrap_or_else(|_| "{}".to_owned());
        q::set_account_groups(self.db.pool(), project_id, &text, now_micros()).await?;
        Ok(())
    }

    /// Rewrites grants and groups stored by earlier versions, which named users by name,
    /// into ids; names of users that no longer exist are dropped. Idempotent: entries that
    /// already are ids stay. Run at start.
    pub async fn upgrade_grantee_names(&self) -> Result<u64, StorageError> {
        let mut changed = 0;
        for path in q::paths_sharing_with(self.db.pool(), None).await? {
            let Some(text) = &path.sharing else {
                continue;
            };
            let mut sharing = Sharing::parse(text).unwrap_or_default();
            let read = self.ids_of_legacy(&sharing.read).await?;
            let write = self.ids_of_legacy(&sharing.write).await?;
            if read == sharing.read && write == sharing.write {
                continue;
            }
            (sharing.read, sharing.write) = (read, write);
            self.set_sharing(&path, &sharing).await?;
            changed += 1;
        }
        for account in q::accounts_grouping(self.db.pool(), None).await? {
            let groups: BTreeMap<String, Vec<String>> =
                serde_json::from_str(&account.groups).unwrap_or_default();
            let mut upgraded = BTreeMap::new();
            for (name, members) in &groups {
                let ids = self.ids_of_legacy(members).await?;
                if !ids.is_empty() {
                    upgraded.insert(name.clone(), ids);
                }
            }
            if upgraded == groups {
                continue;
            }
            self.set_groups(&account.project_id, &upgraded).await?;
            changed += 1;
        }
        Ok(changed)
    }

    /// Entries as ids: an entry that is a user's id stays, one that is a user's name
    /// becomes their id, one that is neither is dropped.
    async fn ids_of_legacy(&self, entries: &[String]) -> Result<Vec<String>, StorageError> {
        let mut ids = Vec::with_capacity(entries.len());
        for entry in entries {
            let keep =
                !names_a_user(entry) || users::get_user(self.db.pool(), entry).await?.is_some();
            if keep {
                ids.push(entry.clone());
            } else if let Some(user) = users::get_user_by_name(self.db.pool(), entry).await? {
                ids.push(user.id);
            }
        }
        Ok(ids)
    }
}
