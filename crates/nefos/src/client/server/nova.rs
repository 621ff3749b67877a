//! The compute service as the client reaches it: requests under the catalog's compute
//! endpoint at the newest microversion nefos serves, Nova's error answers turned into
//! messages, and servers and flavors named by id or by name.

use anyhow::{Context, anyhow, bail};
use nefos_compute_api::microversion::{self, MAX};
use nefos_compute_api::paths;
use nefos_compute_api::types::{Server, ServerList};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::Session;

#[derive(Debug, Clone)]
pub struct Nova<'a> {
    session: &'a Session,
    /// The versioned endpoint (`…/compute/v2.1`).
    url: String,
}

impl<'a> Nova<'a> {
    pub fn new(session: &'a Session) -> anyhow::Result<Nova<'a>> {
        let url = session.compute_url.as_deref().ok_or_else(|| {
            anyhow!("the cloud's catalog names no compute service: log in with an auth URL")
        })?;
        Ok(Nova {
            session,
            url: url.trim_end_matches('/').to_owned(),
        })
    }

    /// A request for `path` (a filled template of `nefos_compute_api::paths`).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.session
            .request(method, &format!("{}{path}", self.url))
            .header(
                microversion::HEADER,
                format!("{} {MAX}", microversion::SERVICE),
            )
    }

    pub async fn send_raw(&self, request: RequestBuilder, what: &str) -> anyhow::Result<Response> {
        request
            .send()
            .await
            .with_context(|| format!("{what}: cannot reach the compute service"))
    }

    /// Sends `request`; an error answer becomes its message.
    pub async fn send(&self, request: RequestBuilder, what: &str) -> anyhow::Result<Response> {
        check(self.send_raw(request, what).await?, what).await
    }

    pub async fn json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        what: &str,
    ) -> anyhow::Result<T> {
        read(self.send(request, what).await?, what).await
    }

    /// Every server of the project, following the pages.
    pub async fn servers(&self) -> anyhow::Result<Vec<Server>> {
        let mut servers = Vec::new();
        let mut path = paths::SERVERS_DETAIL.to_owned();
        loop {
            let page: ServerList<Server> = self
                .json(self.request(Method::GET, &path), "listing servers")
                .await?;
            let next = page
                .servers_links
                .iter()
                .find(|l| l.rel == "next")
                .map(|l| l.href.clone());
            servers.extend(page.servers);
            match next.and_then(|href| href.split_once("/v2.1").map(|(_, p)| p.to_owned())) {
                Some(next) => path = next,
                None => return Ok(servers),
            }
        }
    }

    /// A server by id, or else by a name only it has.
    pub async fn find(&self, reference: &str) -> anyhow::Result<Server> {
        if let Some(server) = self.server(reference).await? {
            return Ok(server);
        }
        let mut named: Vec<Server> = self
            .servers()
            .await?
            .into_iter()
            .filter(|s| s.name == reference)
            .collect();
        match named.len() {
            0 => bail!("no server {reference}"),
            1 => Ok(named.remove(0)),
            n => bail!("{n} servers are named {reference}: name one by its id"),
        }
    }

    /// A flavor's id, from its id or name.
    pub async fn flavor(&self, reference: &str) -> anyhow::Result<String> {
        let path = nefos_compute_api::fill(paths::FLAVOR, &[reference]);
        let response = self
            .send_raw(self.request(Method::GET, &path), "reading the flavor")
            .await?;
        if response.status().is_success() {
            return Ok(reference.to_owned());
        }
        let list: Value = self
            .json(self.request(Method::GET, paths::FLAVORS), "listing flavors")
            .await?;
        let flavors = list["flavors"].as_array().cloned().unwrap_or_default();
        let named: Vec<&Value> = flavors.iter().filter(|f| f["name"] == reference).collect();
        match named.as_slice() {
            [flavor] => Ok(flavor["id"].as_str().unwrap_or_default().to_owned()),
            [] => bail!("no flavor {reference}"),
            _ => bail!("several flavors are named {reference}: name one by its id"),
        }
    }

    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        let path = nefos_compute_api::fill(paths::SERVER, &[id]);
        self.send(self.request(Method::DELETE, &path), "deleting the server")
            .await
            .map(drop)
    }
}

/// An answer's JSON body as `T`.
pub async fn read<T: DeserializeOwned>(response: Response, what: &str) -> anyhow::Result<T> {
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("{what}: cannot read the answer"))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{what}: the cloud answered {status} with something unexpected"))
}

/// An error answer, `{"<fault>": {"code", "message"}}`, as an error with its message.
async fn check(response: Response, what: &str) -> anyhow::Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|body| {
            body.as_object()?
                .values()
                .find_map(|fault| fault["message"].as_str().map(str::to_owned))
        })
        .unwrap_or(text);
    if status == StatusCode::UNAUTHORIZED {
        bail!("{what}: the cloud refused the token ({message})");
    }
    bail!("{what}: {status}: {message}")
}
