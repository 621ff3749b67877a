//! One account of the object store as the caller reaches it: requests relative to the
//! account's URL, the store's error answers turned into messages, and paged listings.

use anyhow::{Context, bail};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

use super::names;
use crate::client::Session;

/// An account of the object store: the caller's own, or another that shares with it.
#[derive(Debug, Clone)]
pub struct Account<'a> {
    session: &'a Session,
    /// `…/object/v1/AUTH_<project>`, without a trailing `/`.
    url: String,
}

impl<'a> Account<'a> {
    /// The caller's own account, or `other` (`AUTH_<project>` or the bare project id).
    pub fn new(session: &'a Session, other: Option<&str>) -> anyhow::Result<Account<'a>> {
        let url = match other {
            None => session.object_url.trim_end_matches('/').to_owned(),
            Some(other) => {
                let name = if other.starts_with("AUTH_") {
                    other.to_owned()
                } else {
                    format!("AUTH_{other}")
                };
                format!(
                    "{}/{}",
                    session.storage_root(),
                    names::container_url(&name).context("not an account name")?
                )
            }
        };
        Ok(Account { session, url })
    }

    /// A request for `path` (already URL-encoded) under the account; `""` is the account.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let url = if path.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{path}", self.url)
        };
        self.session.request(method, &url)
    }

    /// Every entry of the account's listing (its containers), or of a container's.
    pub async fn listing(
        &self,
        container: Option<&str>,
        prefix: Option<&str>,
    ) -> anyhow::Result<Vec<Value>> {
        let (path, what) = match container {
            None => (String::new(), "listing the containers".to_owned()),
            Some(name) => (
                names::container_url(name)?,
                format!("listing container {name:?}"),
            ),
        };
        pages(|| self.request(Method::GET, &path), prefix, &what).await
    }
}

/// Pages through a JSON listing, `marker` by `marker`.
pub async fn pages(
    request: impl Fn() -> RequestBuilder,
    prefix: Option<&str>,
    what: &str,
) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut marker = String::new();
    loop {
        let mut page_request = request().query(&[("format", "json"), ("marker", &marker)]);
        if let Some(prefix) = prefix {
            page_request = page_request.query(&[("prefix", prefix)]);
        }
        let response = check(page_request.send().await?, what).await?;
        if response.status() == StatusCode::NO_CONTENT {
            break;
        }
        let page: Vec<Value> = response
            .json()
            .await
            .with_context(|| format!("{what}: the answer is not a JSON list"))?;
        let Some(last) = page
            .last()
            .and_then(|v| v["name"].as_str().or(v["subdir"].as_str()))
        else {
            break;
        };
        marker = last.to_owned();
        all.extend(page);
    }
    Ok(all)
}

/// Fails with `what`, the status and the store's own message unless the answer is a success.
pub async fn check(response: Response, what: &str) -> anyhow::Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // An unreadable body leaves the status alone to explain the failure.
    let body = response.text().await.unwrap_or_default();
    let message = store_message(&body);
    if message.is_empty() {
        bail!("{what}: {status}")
    }
    bail!("{what}: {status}: {message}")
}

/// The message of a Swift error answer (`<html><h1>Reason</h1><p>message</p></html>`),
/// or the body as it is.
fn store_message(body: &str) -> String {
    let inner = body
        .split_once("<p>")
        .and_then(|(_, rest)| rest.split_once("</p>"))
        .map_or(body, |(message, _)| message);
    inner
        .trim()
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_messages_lose_their_html() {
        assert_eq!(
            store_message("<html><h1>Not Found</h1><p>no &lt;container&gt; &amp; co</p></html>"),
            "no <container> & co"
        );
        assert_eq!(store_message(" plain text\n"), "plain text");
    }
}
