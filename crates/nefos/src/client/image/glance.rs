//! The image service as the client reaches it: requests under the catalog's image endpoint,
//! Glance's error answers turned into messages, paged listings, and images named by id or
//! by name.

use anyhow::{Context, anyhow, bail};
use nefos_image_api::glance::{self, ErrorBody, ImageList, ImageView};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::client::Session;

/// The image service of a session's cloud.
#[derive(Debug, Clone)]
pub struct Glance<'a> {
    session: &'a Session,
    /// The service's root (`…/image`), without a trailing `/`: Glance's routes and
    /// Plankton's (`/v1.0/…`) are both under it.
    root: String,
}

impl<'a> Glance<'a> {
    pub fn new(session: &'a Session) -> anyhow::Result<Glance<'a>> {
        let url = session.image_url.as_deref().ok_or_else(|| {
            anyhow!("the cloud's catalog names no image service: log in with an auth URL")
        })?;
        // nefos lists the unversioned root; other clouds list Glance with its version.
        let url = url.trim_end_matches('/');
        let root = url.strip_suffix("/v2").unwrap_or(url).to_owned();
        Ok(Glance { session, root })
    }

    pub fn session(&self) -> &'a Session {
        self.session
    }

    /// A request for `path` (a filled template of `nefos_image_api`) under the root.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.session
            .request(method, &format!("{}{path}", self.root))
    }

    /// Sends `request` and reads its successful answer as `T`; `what` names the step in
    /// errors.
    pub async fn json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        what: &str,
    ) -> anyhow::Result<T> {
        let response = check(send(request, what).await?, what).await?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("{what}: cannot read the answer"))?;
        serde_json::from_str(&text).with_context(|| {
            format!("{what}: the cloud answered {status} with something unexpected")
        })
    }

    /// The image with this id, or `None` if the caller sees none.
    pub async fn image(&self, id: &str) -> anyhow::Result<Option<ImageView>> {
        let what = format!("reading image {id}");
        let path = nefos_image_api::fill(glance::IMAGE, &[id]);
        let response = send(self.request(Method::GET, &path), &what).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = check(response, &what).await?;
        let view = response
            .json()
            .await
            .with_context(|| format!("{what}: the answer is not an image"))?;
        Ok(Some(view))
    }

    /// An image by id, or else by name, which must then name exactly one image the caller
    /// sees (community images and offers not yet accepted included, as the caller may be
    /// about to use or answer them).
    pub async fn find(&self, reference: &str) -> anyhow::Result<ImageView> {
        if let Some(image) = self.image(reference).await? {
            return Ok(image);
        }
        let mut found = self
            .list(&[
                ("name", reference),
                ("visibility", "all"),
                ("member_status", "all"),
            ])
            .await?;
        match found.len() {
            0 => bail!("no image has the id or name {reference:?}"),
            1 => Ok(found.remove(0)),
            n => {
                let ids: Vec<&str> = found.iter().map(|i| i.id.as_str()).collect();
                bail!(
                    "{n} images are named {reference:?}; name one by its id: {}",
                    ids.join(", ")
                )
            }
        }
    }

    /// Every image of a listing with `query`, following its `next` pages.
    pub async fn list(&self, query: &[(&str, &str)]) -> anyhow::Result<Vec<ImageView>> {
        let mut images = Vec::new();
        let mut request = self.request(Method::GET, glance::IMAGES).query(query);
        loop {
            let page: ImageList = self.json(request, "listing images").await?;
            images.extend(page.images);
            match page.next {
                // The link holds the whole query (filters and marker), under the root
                // (or, from some clouds, as a whole URL).
                Some(next) if next.starts_with("http://") || next.starts_with("https://") => {
                    request = self.session.request(Method::GET, &next);
                }
                Some(next) => request = self.request(Method::GET, &next),
                None => return Ok(images),
            }
        }
    }
}

/// Sends a request; a failure to reach the cloud names the step.
pub async fn send(request: RequestBuilder, what: &str) -> anyhow::Result<Response> {
    request
        .send()
        .await
        .with_context(|| format!("{what}: cannot reach the image service"))
}

/// Fails with `what`, the cloud's own message and the status unless the answer is a
/// success.
pub async fn check(response: Response, what: &str) -> anyhow::Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // An unreadable body leaves the status alone to explain the failure.
    let body = response.text().await.unwrap_or_default();
    let message = error_message(&body);
    if message.is_empty() {
        bail!("{what}: {status}")
    }
    bail!("{what}: {message} ({status})")
}

/// The message of an error answer: Glance's `{"code", "title", "message"}`, an OpenStack
/// fault `{"itemNotFound": {"message": …}}`, or the body as it is.
fn error_message(body: &str) -> String {
    if let Ok(error) = serde_json::from_str::<ErrorBody>(body) {
        return error.message;
    }
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(body)
        && let Some(message) = fields
            .values()
            .find_map(|fault| fault.get("message").and_then(serde_json::Value::as_str))
    {
        return message.to_owned();
    }
    body.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_either_shape() {
        assert_eq!(
            error_message(
                r#"{"code": "404 Not Found", "title": "Not Found", "message": "No image found"}"#
            ),
            "No image found"
        );
        assert_eq!(
            error_message(r#"{"badRequest": {"code": 400, "message": "bad location"}}"#),
            "bad location"
        );
        assert_eq!(error_message(" plain\n"), "plain");
    }
}
