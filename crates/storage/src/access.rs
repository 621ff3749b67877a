//! Who may read and write what.
//!
//! An account belongs to a project: a token scoped to that project may write it (roles
//! `admin` and `member`) or read it (`reader`); a cloud administrator may do anything.
//! Beyond that, Pithos sharing grants read or write on single objects to users (stored by
//! id, shown by name: `grantees.rs`), to every authenticated user (`*`), or to a group of
//! the owner account (`ACCOUNT:GROUP`). A signed URL (Swift's TempURL) reaches the
//! objects of one account or one container, without a token.

use nefos_db::storage::{self as q, ContainerRow};
use nefos_identity::{AuthContext, Role};

use crate::acl::Acl;
use crate::{Storage, StorageError};

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub enum Accessor<'a> {
    Token(&'a AuthContext),
    /// A URL signed with a key of the account or of one of its containers (the API has
    /// checked the signature): the objects in its scope, as their owner would reach them.
    Signed(&'a SignedScope),
    /// No token: only public objects are reachable, and objects of containers whose ACL
    /// lets the request's `Referer` read them.
    Anonymous {
        referrer: Option<&'a str>,
    },
}

/// What a signed URL reaches: the objects of an account, or of one container of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedScope {
    pub project_id: String,
    /// The container's id when the key was the container's.
    pub container_id: Option<String>,
}

impl<'a> Accessor<'a> {
    /// A caller with no token and no `Referer`.
    pub const ANONYMOUS: Accessor<'a> = Accessor::Anonymous { referrer: None };

    /// Who the writes of this accessor are recorded as made by (`X-Object-Modified-By`).
    pub(crate) fn modifier(&self) -> String {
        match self {
            Accessor::Token(ctx) => ctx.user_id.clone(),
            Accessor::Signed(_) | Accessor::Anonymous { .. } => String::new(),
        }
    }
}

/// What an accessor may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    Read,
    Write,
}

/// A parsed `X-Object-Sharing` value: `read=a,b;write=c`. The one reading of that
/// grammar: the server's, and the `nefos object` client's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sharing {
    pub read: Vec<String>,
    pub write: Vec<String>,
}

impl Sharing {
    pub fn parse(text: &str) -> Result<Sharing, StorageError> {
        let mut sharing = Sharing::default();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, names) = part.split_once('=').ok_or_else(|| {
                StorageError::invalid(
                    "X-Object-Sharing",
                    format!("{part:?} is not read=… or write=…"),
                )
            })?;
            let names: Vec<String> = names
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect();
            match kind.trim() {
                "read" => sharing.read.extend(names),
                "write" => sharing.write.extend(names),
                other => {
                    return Err(StorageError::invalid(
                        "X-Object-Sharing",
                        format!("unknown permission {other:?}"),
                    ));
                }
            }
        }
        Ok(sharing)
    }

    pub fn is_empty(&self) -> bool {
        self.read.is_empty() && self.write.is_empty()
    }

    /// Adds grants to those held, each grantee once.
    pub fn add(&mut self, read: &[String], write: &[String]) {
        for (list, names) in [(&mut self.read, read), (&mut self.write, write)] {
            for name in names {
                if !list.contains(name) {
                    list.push(name.clone());
                }
            }
        }
    }

    pub fn render(&self) -> String {
        let mut parts = Vec::new();
        if !self.read.is_empty() {
            parts.push(format!("read={}", self.read.join(",")));
        }
        if !self.write.is_empty() {
            parts.push(format!("write={}", self.write.join(",")));
        }
        parts.join(";")
    }
}

impl Storage {
    /// The caller's rights on a whole account, as its owner or an administrator (or
    /// through a URL signed with one of the account's keys).
    pub(crate) fn account_permission(who: Accessor<'_>, project_id: &str) -> Option<Permission> {
        let ctx = match who {
            Accessor::Token(ctx) => ctx,
            Accessor::Signed(scope) => {
                return (scope.project_id == project_id && scope.container_id.is_none())
                    .then_some(Permission::Write);
            }
            Accessor::Anonymous { .. } => return None,
        };
        if ctx.is_cloud_admin() {
            return Some(Permission::Write);
        }
        if ctx.project_id() != Some(project_id) {
            return None;
        }
        if ctx
            .roles
            .iter()
            .any(|r| matches!(r, Role::Admin | Role::Member))
        {
            Some(Permission::Write)
        } else if ctx.roles.contains(&Role::Reader) {
            Some(Permission::Read)
        } else {
            None
        }
    }

    /// Whether the caller may write the whole account, as its owner or an administrator:
    /// who may see and set its keys (those that sign URLs, and its containers').
    pub fn owns_account(who: Accessor<'_>, project_id: &str) -> bool {
        matches!(who, Accessor::Token(_))
            && Self::account_permission(who, project_id) == Some(Permission::Write)
    }

    /// Requires `needed` on the whole account.
    pub(crate) fn require_account(
        who: Accessor<'_>,
        project_id: &str,
        needed: Permission,
    ) -> Result<(), StorageError> {
        match Self::account_permission(who, project_id) {
            Some(held) if held >= needed => Ok(()),
            _ => Err(StorageError::Forbidden),
        }
    }

    /// The caller's rights on the objects of one container as a whole: as the account's
    /// owner, or through a URL signed with the container's key.
    pub(crate) fn container_permission(
        who: Accessor<'_>,
        project_id: &str,
        container_id: &str,
    ) -> Option<Permission> {
        if let Accessor::Signed(scope) = who
            && scope.project_id == project_id
            && scope.container_id.as_deref() == Some(container_id)
        {
            return Some(Permission::Write);
        }
        Self::account_permission(who, project_id)
    }

    /// Whether a container's ACLs (`acl.rs`) grant the caller `needed` on its objects (a
    /// read ACL reading, a write ACL writing), or with `listing` reading the container
    /// itself: users it names may, referrer rules only with `.rlistings`.
    pub(crate) fn acl_grants(
        who: Accessor<'_>,
        container: &ContainerRow,
        needed: Permission,
        listing: bool,
    ) -> bool {
        match needed {
            Permission::Read => {
                let acl = Acl::parse(&container.read_acl);
                let by_referrer =
                    |referrer| acl.lets_referrer(referrer) && (!listing || acl.lists());
                match who {
                    // A token's request is judged by its user, and by the referrer rules
                    // as a request from an unknown page (`.r:*` lets it through).
                    Accessor::Token(ctx) => acl.names(ctx) || by_referrer(None),
                    Accessor::Anonymous { referrer } => by_referrer(referrer),
                    Accessor::Signed(_) => false,
                }
            }
            Permission::Write => match who {
                Accessor::Token(ctx) => Acl::parse(&container.write_acl).names(ctx),
                Accessor::Signed(_) | Accessor::Anonymous { .. } => false,
            },
        }
    }

    /// Requires reading a container itself (its metadata, its listing): as an owner of
    /// the account, through a URL signed with its key, or through its read ACL.
    pub(crate) fn require_container_read(
        who: Accessor<'_>,
        container: &ContainerRow,
    ) -> Result<(), StorageError> {
        if Self::container_permission(who, &container.project_id, &container.id).is_some()
            || Self::acl_grants(who, container, Permission::Read, true)
        {
            Ok(())
        } else {
            Err(StorageError::Forbidden)
        }
    }

    /// The caller's rights on one object path: as the account's owner, or through sharing.
    pub(crate) async fn object_permission(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        container_id: &str,
        name: &str,
    ) -> Result<Option<Permission>, StorageError> {
        crate::container::refuse_nul("object name", name)?;
        if let Some(permission) = Self::container_permission(who, project_id, container_id) {
            return Ok(Some(permission));
        }
        let Accessor::Token(ctx) = who else {
            return Ok(None);
        };
        let Some(path) = q::get_path(self.db.pool(), container_id, name).await? else {
            return Ok(None);
        };
        let Some(sharing) = path.sharing.as_deref() else {
            return Ok(None);
        };
        let sharing = Sharing::parse(sharing).unwrap_or_default();
        if self.grants(&sharing.write, ctx, project_id).await? {
            Ok(Some(Permission::Write))
        } else if self.grants(&sharing.read, ctx, project_id).await? {
            Ok(Some(Permission::Read))
        } else {
            Ok(None)
        }
    }

    /// Whether a sharing list names the caller, by user id, as `*`, or through a group
    /// of the owner account (groups hold user ids too: see `grantees.rs`).
    async fn grants(
        &self,
        entries: &[String],
        ctx: &AuthContext,
        owner: &str,
    ) -> Result<bool, StorageError> {
        for entry in entries {
            if entry == "*" || *entry == ctx.user_id {
                return Ok(true);
            }
            if let Some((account, group)) = entry.split_once(':')
                && account == owner
            {
                let groups = self.account_groups(owner).await?;
                if groups
                    .get(group)
                    .is_some_and(|members| members.contains(&ctx.user_id))
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharing_round_trips() {
        let sharing = Sharing::parse("read=alice, bob;write=p1:team").unwrap();
        assert_eq!(sharing.read, vec!["alice", "bob"]);
        assert_eq!(sharing.write, vec!["p1:team"]);
        assert_eq!(sharing.render(), "read=alice,bob;write=p1:team");
        assert!(Sharing::parse("").unwrap().is_empty());
        assert!(Sharing::parse("delete=alice").is_err());
        assert!(Sharing::parse("alice").is_err());
    }
}
