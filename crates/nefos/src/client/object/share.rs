//! `nefos object share` and `nefos object publish`: an object's sharing grants and its
//! public URL.
//!
//! Both are object `POST`s, which in Swift replace the object's user metadata with the
//! request's; each sends the metadata it read just before, so they change only what
//! they are about.

use anyhow::bail;
use nefos_storage::Sharing;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};

use super::names;
use super::store::{Account, check};

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
        .and_then(|text| Sharing::parse(text).ok())
        .unwrap_or_default();
    let changes = clear || !read.is_empty() || !write.is_empty();
    let grants = if changes {
        let mut grants = if clear { Sharing::default() } else { before };
        grants.add(read, write);
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
    fn grants_merge_without_duplicates() {
        let mut grants = Sharing::parse("read=alice, bob;write=p1:team").unwrap();
        grants.add(&strings(&["bob", "carol"]), &[]);
        assert_eq!(grants.render(), "read=alice,bob,carol;write=p1:team");
        assert_eq!(Sharing::default().render(), "");
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
