//! `nefos object share` and `nefos object publish`: an object's sharing grants and its
//! public URL.
//!
//! Both are object `POST`s, which in Swift replace the object's user metadata with the
//! request's; each sends the metadata it read just before, so they change only what
//! they are about.

use anyhow::bail;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};

use super::names;
use super::store::{Account, check};

/// Who may read and who may write an object (`X-Object-Sharing: read=a,b;write=c`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Grants {
    read: Vec<String>,
    write: Vec<String>,
}

impl Grants {
    fn parse(header: &str) -> Grants {
        let mut grants = Grants::default();
        for part in header.split(';') {
            let Some((kind, who)) = part.split_once('=') else {
                continue;
            };
            let who: Vec<String> = who
                .split(',')
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect();
            match kind.trim() {
                "read" => add(&mut grants.read, &who),
                "write" => add(&mut grants.write, &who),
                _ => {}
            }
        }
        grants
    }

    fn render(&self) -> String {
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

/// Adds the names `list` does not hold yet.
fn add(list: &mut Vec<String>, names: &[String]) {
    for name in names {
        if !list.contains(name) {
            list.push(name.clone());
        }
    }
}

/// A grantee as the sharing header can carry it: a user name, `*`, or `ACCOUNT:GROUP`.
fn check_grantee(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c == ';' || c == '=' || c == ',' || c.is_whitespace() || c.is_control())
    {
        bail!("{name:?} is not a user name, '*' or ACCOUNT:GROUP");
    }
    Ok(())
}

/// The object's headers, from a `HEAD`.
async fn head(account: &Account<'_>, path: &str, what: &str) -> anyhow::Result<HeaderMap> {
    let response = account.request(Method::HEAD, path).send().await?;
    Ok(check(response, what).await?.headers().clone())
}

/// A `POST` to the object that keeps its user metadata.
fn post_keeping_metadata(account: &Account<'_>, path: &str, current: &HeaderMap) -> RequestBuilder {
    let mut request = account.request(Method::POST, path);
    for (name, value) in current {
        if name.as_str().starts_with("x-object-meta-") {
            request = request.header(name, value);
        }
    }
    request
}

/// Shows the object's grants, adds to them, or (`clear`) replaces them; nobody loses
/// access unless `clear` says so.
pub async fn share(
    account: &Account<'_>,
    container: &str,
    object: &str,
    read: &[String],
    write: &[String],
    clear: bool,
) -> anyhow::Result<()> {
    for name in read.iter().chain(write) {
        check_grantee(name)?;
    }
    let path = names::object_path(container, object)?;
    let what = format!("sharing {container}/{object}");
    let current = head(account, &path, &what).await?;
    let before = current
        .get("x-object-sharing")
        .and_then(|v| v.to_str().ok())
        .map(Grants::parse)
        .unwrap_or_default();
    let changes = clear || !read.is_empty() || !write.is_empty();
    let grants = if changes {
        let mut grants = if clear { Grants::default() } else { before };
        add(&mut grants.read, read);
        add(&mut grants.write, write);
        let response = post_keeping_metadata(account, &path, &current)
            .header("X-Object-Sharing", grants.render())
            .send()
            .await?;
        check(response, &what).await?;
        grants
    } else {
        before
    };
    match grants.render() {
        text if text.is_empty() => println!("{container}/{object}: not shared"),
        text => println!("{container}/{object}: shared {text}"),
    }
    Ok(())
}

/// Publishes the object and prints its public URL, or (`revoke`) withdraws it.
pub async fn publish(
    account: &Account<'_>,
    container: &str,
    object: &str,
    revoke: bool,
) -> anyhow::Result<()> {
    let path = names::object_path(container, object)?;
    let what = format!("publishing {container}/{object}");
    let current = head(account, &path, &what).await?;
    let response = post_keeping_metadata(account, &path, &current)
        .header("X-Object-Public", if revoke { "false" } else { "true" })
        .send()
        .await?;
    let response = check(response, &what).await?;
    match response
        .headers()
        .get("x-object-public")
        .and_then(|v| v.to_str().ok())
    {
        Some(url) if !revoke => println!("{url}"),
        _ => println!("{container}/{object} is not public"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn grants_round_trip_and_merge_without_duplicates() {
        let mut grants = Grants::parse("read=alice, bob;write=p1:team");
        assert_eq!(grants.read, strings(&["alice", "bob"]));
        add(&mut grants.read, &strings(&["bob", "carol"]));
        assert_eq!(grants.render(), "read=alice,bob,carol;write=p1:team");
        assert_eq!(Grants::parse(""), Grants::default());
        assert_eq!(Grants::default().render(), "");
    }

    #[test]
    fn grantees_cannot_smuggle_grants() {
        for bad in ["", "a;write=b", "a=b", "a b", "a,b"] {
            assert!(check_grantee(bad).is_err(), "{bad:?}");
        }
        for good in ["alice", "*", "AUTH_p:team", "user@example.org"] {
            assert!(check_grantee(good).is_ok(), "{good:?}");
        }
    }
}
