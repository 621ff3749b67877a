//! The node's client of the control plane's internal API: enrolment, registration,
//! heartbeats, and the blocks that fill the image cache.

use std::time::Duration;

use bytes::Bytes;
use nefos_blocks::BlockHash;
use nefos_node_api::routes::internal;
use nefos_node_api::{Heartbeat, INTERNAL_PREFIX, JoinRequest, NodeCredential, NodeInfo, Secret};
use nefos_route::fill;
use reqwest::StatusCode;
use thiserror::Error;

/// The client of one node, presenting that node's token.
#[derive(Debug, Clone)]
pub struct ControlPlaneClient {
    base: String,
    token: Secret,
    http: reqwest::Client,
}

#[derive(Debug, Error)]
pub enum ControlPlaneError {
    #[error("cannot build an HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("cannot reach the control plane at {url}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the control plane answered {status} to {url}")]
    Status { url: String, status: StatusCode },
    #[error("the block store has no block {hash}, or this node may not read it")]
    MissingBlock { hash: BlockHash },
    #[error("the control plane at {url} refused the join token: it is unknown, used or expired")]
    JoinRefused { url: String },
    #[error("the control plane's answer to {url} is not a node credential")]
    Decode {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

const TIMEOUT: Duration = Duration::from_secs(60);

fn http_client() -> Result<reqwest::Client, ControlPlaneError> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .default_headers(nefos_node_api::version_headers())
        .build()
        .map_err(ControlPlaneError::Client)
}

fn internal_base(url: &str) -> String {
    format!("{}{INTERNAL_PREFIX}", url.trim_end_matches('/'))
}

impl ControlPlaneClient {
    /// `url` is the control plane's internal API; `token` the node's own.
    pub fn new(url: &str, token: Secret) -> Result<ControlPlaneClient, ControlPlaneError> {
        Ok(ControlPlaneClient {
            base: internal_base(url),
            token,
            http: http_client()?,
        })
    }

    /// Exchanges a one-time join token for the node's credential.
    pub async fn join(url: &str, join_token: &str) -> Result<NodeCredential, ControlPlaneError> {
        let url = format!("{}{}", internal_base(url), internal::ENROLL);
        let request = JoinRequest {
            join_token: join_token.trim().to_owned(),
        };
        let response = http_client()?
            .post(&url)
            .json(&request)
            .send()
            .await
            .map_err(|source| ControlPlaneError::Transport {
                url: url.clone(),
                source,
            })?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(ControlPlaneError::JoinRefused { url });
        }
        Self::check(response, &url)?
            .json()
            .await
            .map_err(|source| ControlPlaneError::Decode { url, source })
    }

    pub async fn register(&self, info: &NodeInfo) -> Result<(), ControlPlaneError> {
        let url = format!("{}{}", self.base, fill(internal::NODE, &[&info.id]));
        self.send(self.http.put(&url).json(info), &url)
            .await
            .map(drop)
    }

    pub async fn heartbeat(&self, node: &str, beat: &Heartbeat) -> Result<(), ControlPlaneError> {
        let url = format!("{}{}", self.base, fill(internal::NODE_HEARTBEAT, &[node]));
        self.send(self.http.post(&url).json(beat), &url)
            .await
            .map(drop)
    }

    /// The stored bytes of a block (perhaps without its trailing zeros). The caller checks
    /// them against the hash.
    pub async fn fetch_block(&self, hash: &BlockHash) -> Result<Bytes, ControlPlaneError> {
        let url = format!(
            "{}{}",
            self.base,
            fill(internal::BLOCK, &[&hash.to_string()])
        );
        let response = self
            .http
            .get(&url)
            .header(reqwest::header::AUTHORIZATION, self.token.bearer())
            .send()
            .await
            .map_err(|source| ControlPlaneError::Transport {
                url: url.clone(),
                source,
            })?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(ControlPlaneError::MissingBlock { hash: *hash });
        }
        let response = Self::check(response, &url)?;
        response
            .bytes()
            .await
            .map_err(|source| ControlPlaneError::Transport { url, source })
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ControlPlaneError> {
        let response = request
            .header(reqwest::header::AUTHORIZATION, self.token.bearer())
            .send()
            .await
            .map_err(|source| ControlPlaneError::Transport {
                url: url.to_owned(),
                source,
            })?;
        Self::check(response, url)
    }

    fn check(
        response: reqwest::Response,
        url: &str,
    ) -> Result<reqwest::Response, ControlPlaneError> {
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(ControlPlaneError::Status {
                url: url.to_owned(),
                status: response.status(),
            })
        }
    }
}
