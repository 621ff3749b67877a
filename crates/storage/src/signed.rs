//! The keys that sign URLs to objects (Swift's TempURL): up to two per account and two
//! per container, kept as their metadata (`Temp-URL-Key`, `Temp-URL-Key-2`), so that a
//! key can be replaced without breaking the URLs signed with the other.

use nefos_db::storage as q;

use crate::{Metadata, SignedScope, Storage, StorageError, meta};

/// The metadata names of the keys, lower-case as metadata is kept.
pub const SIGNING_KEY_NAMES: [&str; 2] = ["temp-url-key", "temp-url-key-2"];

/// The keys a URL to an object in a container may be signed with, each with what a URL it
/// signs reaches.
#[derive(Debug, Clone, Default)]
pub struct SigningKeys {
    pub keys: Vec<(String, SignedScope)>,
}

impl Storage {
    /// The keys of the account and of the container: the account's reach every object of
    /// the account, the container's only that container's. None when the container does
    /// not exist. Read without a caller: the URL's signature is the authority, and it is
    /// checked against these before anything else happens.
    pub async fn signing_keys(
        &self,
        project_id: &str,
        container: &str,
    ) -> Result<SigningKeys, StorageError> {
        let mut found = SigningKeys::default();
        let Some(row) = q::get_container(self.db.pool(), project_id, container).await? else {
            return Ok(found);
        };
        if let Some(account) = q::get_account(self.db.pool(), project_id).await? {
            let scope = SignedScope {
                project_id: project_id.to_owned(),
                container_id: None,
            };
            push_keys(&mut found, &meta::from_json(&account.meta), &scope);
        }
        let scope = SignedScope {
            project_id: project_id.to_owned(),
            container_id: Some(row.id.clone()),
        };
        push_keys(&mut found, &meta::from_json(&row.meta), &scope);
        Ok(found)
    }
}

fn push_keys(found: &mut SigningKeys, meta: &Metadata, scope: &SignedScope) {
    for name in SIGNING_KEY_NAMES {
        if let Some(key) = meta.get(name).filter(|k| !k.is_empty()) {
            found.keys.push((key.clone(), scope.clone()));
        }
    }
}
