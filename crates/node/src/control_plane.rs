//! The node's client of the control plane's internal API: registration, heartbeats, and
//! the blocks that fill the image cache.

use std::time::Duration;

use bytes::Bytes;
use nefos_blocks::BlockHash;
use nefos_node_api::{ClusterSecret, Heartbeat, INTERNAL_PREFIX, NodeInfo};
use reqwest::StatusCode;
use thiserror::Error;

#[derive(Debug, Clone)]
pub struct ControlPlaneClient {
    base: String,
    secret: ClusterSecret,
    http: reqwest::Client,
}

#[derive(Debug, Error)]
pub enum ControlPlaneError {
    #[error("cannot reach the control plane at {url}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the control plane answered {status} to {url}")]
    Status { url: String, status: StatusCode },
    #[error("the block store has no block {hash}")]
    MissingBlock { hash: BlockHash },
}

const TIMEOUT: Duration = Duration::from_secs(60);

impl ControlPlaneClient {
    pub fn new(url: &str, secret: ClusterSecret) -> ControlPlaneClient {
        ControlPlaneClient {
            base: format!("{}{INTERNAL_PREFIX}", url.trim_end_matches('/')),
            secret,
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    pub async fn register(&self, info: &NodeInfo) -> Result<(), ControlPlaneError> {
        let url = format!("{}/nodes/{}", self.base, info.id);
        self.send(self.http.put(&url).json(info), &url)
            .await
            .map(drop)
    }

    pub async fn heartbeat(&self, node: &str, beat: &Heartbeat) -> Result<(), ControlPlaneError> {
        let url = format!("{}/nodes/{node}/heartbeat", self.base);
        self.send(self.http.post(&url).json(beat), &url)
            .await
            .map(drop)
    }

    /// The stored bytes of a block (perhaps without its trailing zeros). The caller checks
    /// them against the hash.
    pub async fn fetch_block(&self, hash: &BlockHash) -> Result<Bytes, ControlPlaneError> {
        let url = format!("{}/blocks/{hash}", self.base);
        let response = self
            .http
            .get(&url)
            .header(reqwest::header::AUTHORIZATION, self.secret.bearer())
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
            .header(reqwest::header::AUTHORIZATION, self.secret.bearer())
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
