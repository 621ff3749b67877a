use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use nefos_route::fill;

use crate::routes::rpc;
use crate::{
    AbortIncoming, CancelMigration, ConsoleOutput, EnsureVm, ErrorBody, FinishIncoming, IncomingVm,
    MIGRATION_UPGRADE, MigrateVm, MigrationChannel, MigrationStatus, NetworksStatus, NodeInfo,
    NodeNetworks, PauseVm, RPC_PREFIX, RebootVm, RebuildVm, ResizeEnd, ResizeVm, Secret, SetNics,
    StartVm, StopVm, SuspendVm, VmDefinition, VmDiagnostics, VmStatus,
};

/// The control plane's client of one node's RPC API, holding that node's RPC key.
#[derive(Debug, Clone)]
pub struct NodeClient {
    base: String,
    rpc_key: Secret,
    http: reqwest::Client,
    /// For bodies of any length (an exported disk): no limit on the whole call, only on
    /// each wait for bytes.
    streams: reqwest::Client,
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
    #[error("cannot open a stream at {url}")]
    Stream {
        url: String,
        #[source]
        source: std::io::Error,
    },
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
/// How long opening a stream to a node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl NodeClient {
    /// `rpc_url` is the node's base URL, e.g. `http://10.0.0.5:8081`; `rpc_key` the key
    /// the control plane derives for it ([`crate::ClusterSecret::node_rpc_key`]).
    pub fn new(rpc_url: &str, rpc_key: Secret) -> Result<NodeClient, NodeClientError> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .default_headers(version_headers())
            .build()
            .map_err(NodeClientError::Client)?;
        let streams = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(CALL_TIMEOUT)
            .default_headers(version_headers())
            .build()
            .map_err(NodeClientError::Client)?;
        Ok(NodeClient {
            base: format!("{}{RPC_PREFIX}", rpc_url.trim_end_matches('/')),
            rpc_key,
            http,
            streams,
        })
    }

    /// Gives the node everything of the networks it must have; it converges on it.
    pub async fn put_networks(
        &self,
        request: &NodeNetworks,
    ) -> Result<NetworksStatus, NodeClientError> {
        self.call(Method::PUT, rpc::NETWORKS, Some(request)).await
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

    pub async fn suspend_vm(
        &self,
        id: &str,
        request: &SuspendVm,
    ) -> Result<VmStatus, NodeClientError> {
        self.call(Method::POST, &fill(rpc::VM_SUSPEND, &[id]), Some(request))
            .await
    }

    pub async fn resume_vm(
        &self,
        id: &str,
        request: &SuspendVm,
    ) -> Result<VmStatus, NodeClientError> {
        self.call(Method::POST, &fill(rpc::VM_RESUME, &[id]), Some(request))
            .await
    }

    pub async fn rebuild_vm(
        &self,
        id: &str,
        request: &RebuildVm,
    ) -> Result<VmStatus, NodeClientError> {
        self.call(Method::POST, &fill(rpc::VM_REBUILD, &[id]), Some(request))
            .await
    }

    pub async fn set_nics(&self, id: &str, request: &SetNics) -> Result<VmStatus, NodeClientError> {
        self.call(Method::PUT, &fill(rpc::VM_NICS, &[id]), Some(request))
            .await
    }

    pub async fn resize_vm(
        &self,
        id: &str,
        request: &ResizeVm,
    ) -> Result<VmStatus, NodeClientError> {
        self.call(Method::POST, &fill(rpc::VM_RESIZE, &[id]), Some(request))
            .await
    }

    pub async fn confirm_resize(
        &self,
        id: &str,
        request: &ResizeEnd,
    ) -> Result<VmStatus, NodeClientError> {
        self.call(
            Method::POST,
            &fill(rpc::VM_RESIZE_CONFIRM, &[id]),
            Some(request),
        )
        .await
    }

    pub async fn revert_resize(
        &self,
        id: &str,
        request: &ResizeEnd,
    ) -> Result<VmStatus, NodeClientError> {
        self.call(
            Method::POST,
            &fill(rpc::VM_RESIZE_REVERT, &[id]),
            Some(request),
        )
        .await
    }

    /// The VM's root disk as one self-contained qcow2 image, streamed; see
    /// [`rpc::VM_EXPORT`]. The length is the response's `Content-Length`. The copy may
    /// take long before the first byte and the body be large: each wait for bytes is
    /// limited, not the whole.
    pub async fn export_disk(&self, id: &str) -> Result<reqwest::Response, NodeClientError> {
        let url = format!("{}{}", self.base, fill(rpc::VM_EXPORT, &[id]));
        let response = self
            .streams
            .post(&url)
            .header(reqwest::header::AUTHORIZATION, self.rpc_key.bearer())
            .send()
            .await
            .map_err(|source| NodeClientError::Transport {
                url: url.clone(),
                source,
            })?;
        Self::check(response).await
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

    pub async fn vm_diagnostics(&self, id: &str) -> Result<VmDiagnostics, NodeClientError> {
        self.call(Method::GET, &fill(rpc::VM_DIAGNOSTICS, &[id]), None::<&()>)
            .await
    }

    /// The VM's VNC (RFB) stream: an HTTP/1.1 upgrade on a connection of its own, after
    /// which the connection carries RFB both ways.
    pub async fn open_vnc(&self, id: &str) -> Result<tokio::net::TcpStream, NodeClientError> {
        let url = format!("{}{}", self.base, fill(rpc::VM_VNC, &[id]));
        open_upgraded(&url, &self.rpc_key.bearer(), "vnc").await
    }

    /// What a node receiving the running VM needs of it here.
    pub async fn vm_definition(&self, id: &str) -> Result<VmDefinition, NodeClientError> {
        self.call(Method::GET, &fill(rpc::VM_DEFINITION, &[id]), None::<&()>)
            .await
    }

    /// Makes the node ready to receive the running VM `id`.
    pub async fn prepare_incoming(
        &self,
        id: &str,
        request: &IncomingVm,
    ) -> Result<VmStatus, NodeClientError> {
        self.call(Method::PUT, &fill(rpc::VM_INCOMING, &[id]), Some(request))
            .await
    }

    /// Lets the received guest run on the node.
    pub async fn finish_incoming(
        &self,
        id: &str,
        request: &FinishIncoming,
    ) -> Result<VmStatus, NodeClientError> {
        self.call(
            Method::POST,
            &fill(rpc::VM_INCOMING_FINISH, &[id]),
            Some(request),
        )
        .await
    }

    /// Undoes the reception of the VM: 409 if its guest may have run here.
    pub async fn abort_incoming(
        &self,
        id: &str,
        request: &AbortIncoming,
    ) -> Result<(), NodeClientError> {
        let url = format!("{}{}", self.base, fill(rpc::VM_INCOMING_ABORT, &[id]));
        Self::check(self.send(Method::POST, &url, Some(request)).await?).await?;
        Ok(())
    }

    /// Starts sending the VM to another node (or, again, reports the same migration).
    pub async fn migrate_vm(
        &self,
        id: &str,
        request: &MigrateVm,
    ) -> Result<MigrationStatus, NodeClientError> {
        self.call(Method::POST, &fill(rpc::VM_MIGRATION, &[id]), Some(request))
            .await
    }

    /// Where the VM's last outgoing migration is.
    pub async fn migration_status(&self, id: &str) -> Result<MigrationStatus, NodeClientError> {
        self.call(Method::GET, &fill(rpc::VM_MIGRATION, &[id]), None::<&()>)
            .await
    }

    /// Stops the VM's outgoing migration; the guest goes on on this node.
    pub async fn cancel_migration(
        &self,
        id: &str,
        request: &CancelMigration,
    ) -> Result<VmStatus, NodeClientError> {
        self.call(
            Method::POST,
            &fill(rpc::VM_MIGRATION_CANCEL, &[id]),
            Some(request),
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

/// The header that says which API version a call speaks.
pub fn version_headers() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        crate::API_VERSION_HEADER,
        reqwest::header::HeaderValue::from(crate::API_VERSION),
    );
    headers
}

/// One channel of a migration to the node at `rpc_url` (its RPC base URL): an HTTP/1.1
/// upgrade authorised by the migration's `secret`, after which the connection is joined
/// to the destination QEMU's socket for `channel`. The source's agent opens these; it
/// holds no key of the destination's.
pub async fn open_migration_channel(
    rpc_url: &str,
    id: &str,
    channel: MigrationChannel,
    secret: &Secret,
) -> Result<tokio::net::TcpStream, NodeClientError> {
    let url = format!(
        "{}{RPC_PREFIX}{}",
        rpc_url.trim_end_matches('/'),
        fill(rpc::VM_INCOMING_CHANNEL, &[id, channel.as_str()])
    );
    open_upgraded(&url, &secret.bearer(), MIGRATION_UPGRADE).await
}

/// A connection of its own to `url`, upgraded to `protocol` (`Connection: Upgrade`) with
/// `authorization`; what follows the node's `101` is the stream.
async fn open_upgraded(
    url: &str,
    authorization: &str,
    protocol: &str,
) -> Result<tokio::net::TcpStream, NodeClientError> {
    let stream_error = |source| NodeClientError::Stream {
        url: url.to_owned(),
        source,
    };
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| stream_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    if parsed.scheme() != "http" {
        return Err(stream_error(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "streams are opened over plain HTTP only",
        )));
    }
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let mut stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| stream_error(std::io::ErrorKind::TimedOut.into()))?
    .map_err(stream_error)?;
    // The streams carry bulk data one way and latency-bound requests the other (NBD).
    stream.set_nodelay(true).map_err(stream_error)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {authorization}\r\n\
         {}: {}\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n",
        parsed.path(),
        crate::API_VERSION_HEADER,
        crate::API_VERSION,
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(stream_error)?;
    // The head, byte by byte: what follows it is the other end's, and must stay in the
    // stream.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(stream_error(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the node's answer has no end of head",
            )));
        }
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(CONNECT_TIMEOUT, stream.read(&mut byte))
            .await
            .map_err(|_| stream_error(std::io::ErrorKind::TimedOut.into()))?
            .map_err(stream_error)?;
        if read == 0 {
            return Err(stream_error(std::io::ErrorKind::UnexpectedEof.into()));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(0);
    if status != 101 {
        return Err(NodeClientError::Rpc {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            message: format!(
                "the node refused the {protocol} stream: {}",
                head.lines().next().unwrap_or("")
            ),
        });
    }
    Ok(stream)
}
