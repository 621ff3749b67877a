use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use nefos_route::fill;

use crate::routes::rpc;
use crate::{
    ConsoleOutput, EnsureVm, ErrorBody, NodeInfo, PauseVm, RPC_PREFIX, RebootVm, Secret, StartVm,
    StopVm, VmStatus,
};

/// The control plane's client of one node's RPC API, holding that node's RPC key.
#[derive(Debug, Clone)]
pub struct NodeClient {
    base: String,
    rpc_key: Secret,
    http: reqwest::Client,
}

#[derive(Debug, Error)]
pub enum NodeClientError {
    #[error("cannot build an HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("cannot reach the node at {url}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the node answered {status}: {message}")]
    Rpc { status: StatusCode, message: String },
    #[error("the node's answer to {url} is not what was expected")]
    Decode {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

impl NodeClientError {
    /// The HTTP status the node answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            NodeClientError::Rpc { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Long enough for the slowest call: a stop waits for the guest up to its timeout, and
/// the first ensure of a VM may fill the image cache.
const CALL_TIMEOUT: Duration = Duration::from_secs(600);

impl NodeClient {
    /// `rpc_url` is the node's base URL, e.g. `http://10.0.0.5:8081`; `rpc_key` the key
    /// the control plane derives for it ([`crate::ClusterSecret::node_rpc_key`]).
    pub fn new(rpc_url: &str, rpc_key: Secret) -> Result<NodeClient, NodeClientError> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(NodeClientError::Client)?;
        Ok(NodeClient {
            base: format!("{}{RPC_PREFIX}", rpc_url.trim_end_matches('/')),
            rpc_key,
            http,
        })
    }

    pub async fn node_info(&self) -> Result<NodeInfo, NodeClientError> {
        self.call(Method::GET, rpc::NODE, None::<&()>).await
    }

    /// Defines and powers a VM. The node fetches the image's blocks from the control plane,
    /// which serves a node only the blocks granted to it: the control plane asks through
    /// `nefos_compute::NodeRpc::ensure_vm`, which records the grant first.
    pub async fn ensure_vm(
        &self,
        id: &str,
        request: &EnsureVm,
    ) -> Result<VmStatus, NodeClientError> {
        self.call(Method::PUT, &fill(rpc::VM, &[id]), Some(request))
            .await
    }

    pub async fn start_vm(&self, id: &str, request: &StartVm) -> Result<VmStatus, NodeClientError> {
        self.call(Method::POST, &fill(rpc::VM_START, &[id]), Some(request))
            .await
    }

    pub async fn stop_vm(&self, id: &str, request: &StopVm) -> Result<VmStatus, NodeClientError> {
        self.call(Method::POST, &fill(rpc::VM_STOP, &[id]), Some(request))
            .await
    }

    pub async fn reboot_vm(
        &self,
        id: &str,
        request: &RebootVm,
    ) -> Result<VmStatus, NodeClientError> {
        self.call(Method::POST, &fill(rpc::VM_REBOOT, &[id]), Some(request))
            .await
    }

    pub async fn pause_vm(&self, id: &str, request: &PauseVm) -> Result<VmStatus, NodeClientError> {
        self.call(Method::POST, &fill(rpc::VM_PAUSE, &[id]), Some(request))
            .await
    }

    pub async fn unpause_vm(
        &self,
        id: &str,
        request: &PauseVm,
    ) -> Result<VmStatus, NodeClientError> {
        self.call(Method::POST, &fill(rpc::VM_UNPAUSE, &[id]), Some(request))
            .await
    }

    /// Removes the VM, its disk and run directory. A VM the node does not have is already
    /// destroyed: that is success too.
    pub async fn destroy_vm(&self, id: &str, generation: u64) -> Result<(), NodeClientError> {
        let url = format!(
            "{}{}?generation={generation}",
            self.base,
            fill(rpc::VM, &[id])
        );
        let response = self.send(Method::DELETE, &url, None::<&()>).await?;
        Self::check(response).await.map(drop)
    }

    pub async fn vm_status(&self, id: &str) -> Result<VmStatus, NodeClientError> {
        self.call(Method::GET, &fill(rpc::VM, &[id]), None::<&()>)
            .await
    }

    pub async fn list_vms(&self) -> Result<Vec<VmStatus>, NodeClientError> {
        self.call(Method::GET, rpc::VMS, None::<&()>).await
    }

    /// The last `max_bytes` of the VM's serial console.
    pub async fn console(
        &self,
        id: &str,
        max_bytes: u64,
    ) -> Result<ConsoleOutput, NodeClientError> {
        self.call(
            Method::GET,
            &format!("{}?max_bytes={max_bytes}", fill(rpc::VM_CONSOLE, &[id])),
            None::<&()>,
        )
        .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, NodeClientError> {
        let url = format!("{}{path}", self.base);
        let response = self.send(method, &url, body).await?;
        Self::check(response)
            .await?
            .json()
            .await
            .map_err(|source| NodeClientError::Decode { url, source })
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&impl Serialize>,
    ) -> Result<reqwest::Response, NodeClientError> {
        let mut request = self
            .http
            .request(method, url)
            .header(reqwest::header::AUTHORIZATION, self.rpc_key.bearer());
        if let Some(body) = body {
            request = request.json(body);
        }
        request
            .send()
            .await
            .map_err(|source| NodeClientError::Transport {
                url: url.to_owned(),
                source,
            })
    }

    async fn check(response: reqwest::Response) -> Result<reqwest::Response, NodeClientError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => body.error.message,
            Err(_) => text,
        };
        Err(NodeClientError::Rpc { status, message })
    }
}
