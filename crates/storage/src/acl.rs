//! Swift's container ACLs: `X-Container-Read` and `X-Container-Write`, comma-separated
//! lists of who besides the account's owners may read or write a container's objects.
//!
//! - `project:user` names a user of a project, each by id or by name, either of them `*`
//!   (`*:*` is every authenticated user), as Swift's Keystone middleware reads them. A
//!   bare name (`project` or `*`) names nobody there, and so nobody here.
//! - `.r:host`, `.r:.domain` (every host under it), `.r:*` (everyone, with or without a
//!   token) and their negations `.r:-host` grant reading by the request's `Referer`; the
//!   last rule that matches wins. `.rlistings` lets them list the container too.
//!
//! A read ACL grants reading objects (and, to users it names, listing the container); a
//! write ACL grants writing, replacing and deleting objects, never reading them.

use nefos_identity::AuthContext;

use crate::StorageError;

/// Which of a container's ACLs a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclKind {
    Read,
    Write,
}

impl AclKind {
    fn header(self) -> &'static str {
        match self {
            AclKind::Read => "X-Container-Read",
            AclKind::Write => "X-Container-Write",
        }
    }
}

/// Swift's normalisation of an ACL as a client writes it: items trimmed, empty ones
/// dropped, referrer designations (`.ref:`, `.referer:`, `.referrer:`) written `.r:`, a
/// `*.domain` written `.domain`. Referrers have no place in a write ACL. The errors are
/// Swift's texts.
pub fn clean_acl(kind: AclKind, value: &str) -> Result<String, StorageError> {
    let invalid = |message: String| StorageError::InvalidInput {
        field: kind.header(),
        reason: message,
    };
    let mut items = Vec::new();
    for raw in value.split(',') {
        let item = raw.trim();
        if item.is_empty() {
            continue;
        }
        let Some((first, second)) = item.split_once(':') else {
            items.push(item.to_owned());
            continue;
        };
        let (first, second) = (first.trim(), second.trim());
        if !first.starts_with('.') {
            items.push(item.to_owned());
            continue;
        }
        if !matches!(first, ".r" | ".ref" | ".referer" | ".referrer") {
            return Err(invalid(format!(
                "Unknown designator '{first}' in ACL: '{item}'"
            )));
        }
        if kind == AclKind::Write {
            return Err(invalid(format!(
                "Referrers not allowed in write ACL: '{item}'"
            )));
        }
        let (negated, host) = match second.strip_prefix('-') {
            Some(rest) => (true, rest.trim()),
            None => (false, second),
        };
        let host = if host != "*" && host.starts_with('*') {
            host.trim_start_matches('*').trim()
        } else {
            host
        };
        if host.is_empty() || host == "." {
            return Err(invalid(format!(
                "No host/domain value after referrer designation in ACL: '{item}'"
            )));
        }
        items.push(format!(".r:{}{host}", if negated { "-" } else { "" }));
    }
    Ok(items.join(","))
}

/// A stored (cleaned) ACL, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Acl {
    /// `.r:` rules in order: (host or `.domain` or `*`, whether it denies).
    referrers: Vec<(String, bool)>,
    /// `.rlistings`.
    listings: bool,
    /// `project:user` items, percent-decoded.
    grantees: Vec<String>,
}

impl Acl {
    pub(crate) fn parse(stored: &str) -> Acl {
        let mut acl = Acl::default();
        for item in stored.split(',').filter(|i| !i.is_empty()) {
            if let Some(rule) = item.strip_prefix(".r:") {
                match rule.strip_prefix('-') {
                    Some(host) => acl.referrers.push((host.to_owned(), true)),
                    None => acl.referrers.push((rule.to_owned(), false)),
                }
            } else if item == ".rlistings" {
                acl.listings = true;
            } else {
                let decoded = percent_encoding::percent_decode_str(item).decode_utf8_lossy();
                acl.grantees.push(decoded.into_owned());
            }
        }
        acl
    }

    /// Whether the ACL names the token's user: `project:user` with the project (of the
    /// token) and the user each by id, by name, or `*`.
    pub(crate) fn names(&self, ctx: &AuthContext) -> bool {
        let Some(project) = &ctx.project else {
            return false;
        };
        let projects = [project.id.as_str(), "*", project.name.as_str()];
        let users = [ctx.user_id.as_str(), "*", ctx.user_name.as_str()];
        self.grantees.iter().any(|grantee| {
            grantee
                .split_once(':')
                .is_some_and(|(p, u)| projects.contains(&p) && users.contains(&u))
        })
    }

    /// Whether the referrer rules let a request from `referrer` (its `Referer` header)
    /// through. Swift's rule: the host of the URL (`unknown` when there is none), matched
    /// exactly or, for a `.domain` rule, by suffix; `*` matches anything; the last rule
    /// that matches decides.
    pub(crate) fn lets_referrer(&self, referrer: Option<&str>) -> bool {
        let host = referrer
            .and_then(referrer_host)
            .unwrap_or_else(|| "unknown".to_owned());
        let mut allowed = false;
        for (rule, denies) in &self.referrers {
            let matches = if *denies {
                *rule == host || (rule.starts_with('.') && host.ends_with(rule.as_str()))
            } else {
                rule == "*"
                    || *rule == host
                    || (rule.starts_with('.') && host.ends_with(rule.as_str()))
            };
            if matches {
                allowed = !denies;
            }
        }
        allowed
    }

    /// Whether referrer-granted readers may list the container (`.rlistings`).
    pub(crate) fn lists(&self) -> bool {
        self.listings
    }
}

/// The lower-cased host of a URL, as Python's `urlparse(…).hostname`.
fn referrer_host(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use nefos_identity::{ProjectKind, Role, ScopedProject};

    use super::*;

    #[test]
    fn acls_are_cleaned_as_swift_cleans_them() {
        let read = |v: &str| clean_acl(AclKind::Read, v);
        assert_eq!(read("bob , sue,,").unwrap(), "bob,sue");
        assert_eq!(read(".referrer : *").unwrap(), ".r:*");
        assert_eq!(read(".ref:*.example.com").unwrap(), ".r:.example.com");
        assert_eq!(read(".r:*, .rlistings").unwrap(), ".r:*,.rlistings");
        assert_eq!(read(".r:-*.x.com").unwrap(), ".r:-.x.com");
        assert_eq!(read("acct : user").unwrap(), "acct : user");
        assert_eq!(read("").unwrap(), "");
        let error = |kind, v: &str| match clean_acl(kind, v) {
            Err(StorageError::InvalidInput { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            error(AclKind::Write, ".r:*"),
            "Referrers not allowed in write ACL: '.r:*'"
        );
        assert_eq!(
            error(AclKind::Read, ".r:"),
            "No host/domain value after referrer designation in ACL: '.r:'"
        );
        assert_eq!(error(AclKind::Read, ".r:*."), error(AclKind::Read, ".r:*."));
        assert_eq!(
            error(AclKind::Read, ".x:y"),
            "Unknown designator '.x' in ACL: '.x:y'"
        );
    }

    fn token(project: (&str, &str), user: (&str, &str)) -> AuthContext {
        AuthContext {
            user_id: user.0.into(),
            user_name: user.1.into(),
            project: Some(ScopedProject {
                id: project.0.into(),
                name: project.1.into(),
                kind: ProjectKind::Regular,
            }),
            roles: vec![Role::Member],
            methods: Vec::new(),
            issued_at: 0,
            expires_at: 0,
            audit_id: String::new(),
        }
    }

    #[test]
    fn grantees_are_named_as_keystone_names_them() {
        let alice = token(("p1", "team"), ("u1", "alice"));
        for granting in [
            "team:alice",
            "p1:u1",
            "team:u1",
            "p1:alice",
            "team:*",
            "*:alice",
            "*:*",
        ] {
            assert!(Acl::parse(granting).names(&alice), "{granting}");
        }
        for denying in [
            "team",
            "p1",
            "*",
            "team:bob",
            "other:alice",
            ".rlistings",
            ".r:*",
        ] {
            assert!(!Acl::parse(denying).names(&alice), "{denying}");
        }
        assert!(Acl::parse("x:y,team%3Aalice").grantees.len() == 2);
    }

    #[test]
    fn referrers_match_by_host_and_the_last_rule_wins() {
        let acl = Acl::parse(".r:*,.r:-.thief.com");
        assert!(acl.lets_referrer(None));
        assert!(acl.lets_referrer(Some("https://friend.org/page")));
        assert!(!acl.lets_referrer(Some("http://www.thief.com/x")));
        let acl = Acl::parse(".r:.example.com");
        assert!(acl.lets_referrer(Some("http://WWW.Example.com:8080/p")));
        assert!(!acl.lets_referrer(Some("http://example.com/")));
        assert!(!acl.lets_referrer(None));
        assert!(!Acl::parse("team:*").lets_referrer(None));
        assert!(!Acl::parse(".r:*").lists());
        assert!(Acl::parse(".r:*,.rlistings").lists());
    }
}
