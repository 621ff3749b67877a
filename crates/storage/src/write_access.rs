//! Authorising a write completely before anything is written.
//!
//! The owner of an account (a member of its project, or a cloud administrator) writes
//! anything. A user the owner shared an object with for writing may replace its data, and
//! nothing else: what an object *is* beyond its bytes — its user metadata, its expiry, a
//! large-object manifest (which makes a GET serve, and a `swift delete` remove, other
//! objects), its sharing and its public URL — stays the owner's. A sharee's write that
//! tries to set any of those is refused whole with 403, before its body is read, and the
//! version it writes keeps the owner's metadata and expiry.
//!
//! Those a container's write ACL names, and signed URLs, write objects with their metadata
//! as in Swift; sharing and public URLs stay the owner's for them too.
//!
//! Sharing given with a write is resolved here too (unknown users are a 400), and applied
//! in the transaction that records the version, so a write never half-happens.

use crate::manifest::MANIFEST_HEADERS;
use crate::object::WriteOptions;
use crate::{Accessor, Permission, Storage, StorageError};
use nefos_db::storage::ContainerRow;

/// Whether stored headers make an object a large-object manifest.
pub(crate) fn makes_manifest(headers: &std::collections::BTreeMap<String, String>) -> bool {
    MANIFEST_HEADERS.iter().any(|h| headers.contains_key(*h))
}

/// What a write authorised by [`Storage::authorize_write`] may do.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteAccess {
    /// The writer is a sharee: the new version keeps the owner's metadata and expiry.
    pub(crate) keeps_owner_fields: bool,
    /// Sharing to set with the version, in stored form: `Some(None)` removes it.
    pub(crate) sharing: Option<Option<String>>,
    pub(crate) public: Option<bool>,
}

/// Which owner-only parts a write sets, by their headers' names; `manifest_upload` for a
/// static large-object upload (`?multipart-manifest=put`).
fn owner_only_parts(options: &WriteOptions, manifest_upload: bool) -> Vec<&'static str> {
    let mut parts = Vec::new();
    if !options.meta.is_empty() {
        parts.push("X-Object-Meta-*");
    }
    if makes_manifest(&options.headers) || manifest_upload {
        parts.push("a large-object manifest");
    }
    if options.delete_at.is_some() {
        parts.push("X-Delete-At");
    }
    if options.sharing.is_some() {
        parts.push("X-Object-Sharing");
    }
    if options.public.is_some() {
        parts.push("X-Object-Public");
    }
    parts
}

impl Storage {
    /// Checks that `who` may write `name` in `container` with `options`, all of it, and
    /// prepares the parts applied with the version.
    pub(crate) async fn authorize_write(
        &self,
        who: Accessor<'_>,
        container: &ContainerRow,
        name: &str,
        options: &WriteOptions,
        manifest_upload: bool,
    ) -> Result<WriteAccess, StorageError> {
        let owner = Self::container_permission(who, &container.project_id, &container.id)
            .is_some_and(|held| held >= Permission::Write);
        let acl_writer = !owner && Self::acl_grants(who, container, Permission::Write, false);
        // A signed URL and a container's write ACL write objects and their metadata, as
        // Swift's do; Pithos's sharing and public URLs stay the account's owners'.
        let swift_writer = acl_writer || matches!(who, Accessor::Signed(_));
        if swift_writer && (options.sharing.is_some() || options.public.is_some()) {
            return Err(StorageError::Forbidden);
        }
        if !owner && !acl_writer {
            self.require_object(who, container, name, Permission::Write)
                .await?;
            let parts = owner_only_parts(options, manifest_upload);
            if !parts.is_empty() {
                tracing::debug!(?parts, "a sharee's write sets what only the owner may");
                return Err(StorageError::Forbidden);
            }
        }
        let sharing = match &options.sharing {
            None => None,
            Some(text) => Some(self.store_sharing(text).await?),
        };
        Ok(WriteAccess {
            keeps_owner_fields: !owner && !acl_writer,
            sharing,
            public: options.public,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_alone_is_what_a_sharee_may_write() {
        assert!(owner_only_parts(&WriteOptions::default(), false).is_empty());
        assert!(!owner_only_parts(&WriteOptions::default(), true).is_empty());
        let with = |change: fn(&mut WriteOptions)| {
            let mut options = WriteOptions::default();
            change(&mut options);
            owner_only_parts(&options, false)
        };
        assert_eq!(
            with(|o| {
                o.headers
                    .insert("x-object-manifest".into(), "vic/keep".into());
            }),
            ["a large-object manifest"]
        );
        assert_eq!(with(|o| o.delete_at = Some(1)), ["X-Delete-At"]);
        assert_eq!(
            with(|o| o.sharing = Some("read=x".into())),
            ["X-Object-Sharing"]
        );
        assert_eq!(with(|o| o.public = Some(true)), ["X-Object-Public"]);
        assert_eq!(
            with(|o| {
                o.meta.insert("color".into(), "red".into());
            }),
            ["X-Object-Meta-*"]
        );
        assert_eq!(
            with(|o| {
                o.headers
                    .insert("content-disposition".into(), "inline".into());
            }),
            Vec::<&str>::new()
        );
    }
}
