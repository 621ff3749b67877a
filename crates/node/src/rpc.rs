//! The node's RPC API (`/rpc/v1`), for the control plane only: every request must carry
//! this node's RPC key, which the control plane derives and no other node holds. Errors
//! are OpenStack-shaped JSON with the whole reason, since the caller is the operator's own
//! control plane.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use nefos_node_api::routes::rpc;
use nefos_node_api::{
    AbortIncoming, CancelMigration, ConsoleOutput, EnsureVm, ErrorBody, ErrorDetail,
    FinishIncoming, IncomingVm, MIGRATION_UPGRADE, MigrateVm, MigrationChannel, MigrationStatus,
    NetworksStatus, NodeInfo, NodeNetworks, PauseVm, RPC_PREFIX, RebootVm, RebuildVm, ResizeEnd,
    ResizeVm, Secret, SetNics, StartVm, StopVm, SuspendVm, VmDefinition, VmStatus,
};
use serde::Deserialize;

use crate::image_cache::CacheError;
use crate::net::{NetError, NetworkManager};
use crate::vm::{VmError, VmManager};

/// Room for the hashmap of a 1 TiB image.
const MAX_BODY_BYTES: usize = 32 << 20;

#[derive(Debug, Clone)]
pub struct RpcState {
    pub vms: Arc<VmManager>,
    pub networks: Arc<NetworkManager>,
    pub info: Arc<NodeInfo>,
    /// What the control plane presents: this node's RPC key, from its enrolment.
    pub rpc_key: Secret,
}

pub fn router(state: RpcState) -> Router {
    let rpc_key = state.rpc_key.clone();
    let api = Router::new()
        .route(rpc::NODE, get(node_info))
        .route(rpc::NETWORKS, get(networks).put(put_networks))
        .route(rpc::VMS, get(list))
        .route(rpc::VM, get(status).put(ensure).delete(destroy))
        .route(rpc::VM_START, post(start))
        .route(rpc::VM_STOP, post(stop))
        .route(rpc::VM_REBOOT, post(reboot))
        .route(rpc::VM_PAUSE, post(pause))
        .route(rpc::VM_UNPAUSE, post(unpause))
        .route(rpc::VM_SUSPEND, post(suspend))
        .route(rpc::VM_RESUME, post(resume))
        .route(rpc::VM_REBUILD, post(rebuild))
        .route(rpc::VM_RESIZE, post(resize))
        .route(rpc::VM_NICS, put(set_nics))
        .route(rpc::VM_RESIZE_CONFIRM, post(confirm_resize))
        .route(rpc::VM_RESIZE_REVERT, post(revert_resize))
        .route(rpc::VM_EXPORT, post(export))
        .route(rpc::VM_CONSOLE, get(console))
        .route(rpc::VM_DIAGNOSTICS, get(diagnostics))
        .route(rpc::VM_VNC, get(vnc))
        .route(rpc::VM_DEFINITION, get(vm_definition))
        .route(rpc::VM_INCOMING, put(prepare_incoming))
        .route(rpc::VM_INCOMING_FINISH, post(finish_incoming))
        .route(rpc::VM_INCOMING_ABORT, post(abort_incoming))
        .route(rpc::VM_MIGRATION, get(migration_status).post(migrate))
        .route(rpc::VM_MIGRATION_CANCEL, post(cancel_migration))
        .fallback(|| async { RpcError::new(StatusCode::NOT_FOUND, "no such RPC") })
        // A spec carries its image's hashmap: 67 bytes per 4 MiB block.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state.clone());
    let api = api.layer(axum::middleware::from_fn(move |request, next| {
        authenticate(rpc_key.clone(), request, next)
    }));
    // Authorised by the migration's own secret, which the source's agent holds, rather
    // than the node's RPC key, which it must not.
    let channels = Router::new()
        .route(rpc::VM_INCOMING_CHANNEL, get(incoming_channel))
        .with_state(state);
    let api = api
        .merge(channels)
        .layer(axum::middleware::from_fn(check_version));
    Router::new()
        .nest(RPC_PREFIX, api)
        // Liveness for process supervisors; says nothing about the VMs.
        .route(rpc::HEALTH, get(|| async { "ok\n" }))
        .fallback(|| async { RpcError::new(StatusCode::NOT_FOUND, "no such RPC") })
}

/// Refuses a caller whose API version this node cannot speak with.
async fn check_version(request: Request, next: Next) -> Response {
    let version = nefos_node_api::api_version_of(
        request
            .headers()
            .get(nefos_node_api::API_VERSION_HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    if nefos_node_api::api_compatible(version) {
        return next.run(request).await;
    }
    RpcError::new(
        StatusCode::BAD_REQUEST,
        format!(
            "the caller speaks API version {version}; this node speaks {} and works with \
             one version older or newer: upgrade one process at a time",
            nefos_node_api::API_VERSION
        ),
    )
    .into_response()
}

async fn authenticate(rpc_key: Secret, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match presented {
        Some(header) if rpc_key.verify_bearer(header) => next.run(request).await,
        _ => RpcError::new(
            StatusCode::UNAUTHORIZED,
            "the node's RPC API needs this node's RPC key (Authorization: Bearer …)",
        )
        .into_response(),
    }
}

/// A request body that did not parse is a 400 with serde's reason.
struct Body<T>(T);

impl<T, S> axum::extract::FromRequest<S> for Body<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = RpcError;

    async fn from_request(request: Request, state: &S) -> Result<Self, RpcError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(RpcError::new(
                StatusCode::BAD_REQUEST,
                rejection.body_text(),
            )),
        }
    }
}

async fn node_info(State(state): State<RpcState>) -> Json<NodeInfo> {
    Json((*state.info).clone())
}

async fn networks(State(state): State<RpcState>) -> Json<NetworksStatus> {
    Json(state.networks.status().await)
}

async fn put_networks(
    State(state): State<RpcState>,
    Body(request): Body<NodeNetworks>,
) -> Result<Json<NetworksStatus>, RpcError> {
    Ok(Json(state.networks.apply(request).await?))
}

async fn list(State(state): State<RpcState>) -> Result<Json<Vec<VmStatus>>, RpcError> {
    Ok(Json(state.vms.list().await?))
}

async fn status(
    State(state): State<RpcState>,
    Path(id): Path<String>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.status(&id).await?))
}

async fn ensure(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<EnsureVm>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.ensure(&id, &request).await?))
}

async fn start(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<StartVm>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.start(&id, &request).await?))
}

async fn stop(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<StopVm>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.stop(&id, &request).await?))
}

async fn reboot(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<RebootVm>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.reboot(&id, &request).await?))
}

async fn pause(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<PauseVm>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.pause(&id, &request).await?))
}

async fn unpause(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<PauseVm>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.unpause(&id, &request).await?))
}

async fn suspend(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<SuspendVm>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.suspend(&id, &request).await?))
}

async fn resume(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<SuspendVm>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.resume(&id, &request).await?))
}

async fn rebuild(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<RebuildVm>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.rebuild(&id, &request).await?))
}

async fn set_nics(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<SetNics>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.set_nics(&id, &request).await?))
}

async fn resize(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<ResizeVm>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.resize(&id, &request).await?))
}

async fn confirm_resize(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<ResizeEnd>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.confirm_resize(&id, &request).await?))
}

async fn revert_resize(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<ResizeEnd>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.revert_resize(&id, &request).await?))
}

/// Streams the exported disk. The file is unlinked as soon as it is open, so nothing is
/// left behind however the transfer ends.
async fn export(
    State(state): State<RpcState>,
    Path(id): Path<String>,
) -> Result<Response, RpcError> {
    let exported = state.vms.export_disk(&id).await?;
    let file = tokio::fs::File::open(exported.path())
        .await
        .map_err(|source| VmError::Io {
            path: exported.path().to_owned(),
            source,
        })?;
    let len = exported.bytes();
    drop(exported);
    let chunks = futures::stream::unfold(file, |mut file| async move {
        let mut buffer = vec![0u8; 1 << 20];
        match tokio::io::AsyncReadExt::read(&mut file, &mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buffer)), file))
            }
            Err(error) => Some((Err(error), file)),
        }
    });
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/octet-stream".to_owned(),
            ),
            (axum::http::header::CONTENT_LENGTH, len.to_string()),
        ],
        axum::body::Body::from_stream(chunks),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct DestroyQuery {
    generation: u64,
}

async fn destroy(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    query: Result<Query<DestroyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, RpcError> {
    let Query(query) = query.map_err(|r| RpcError::new(StatusCode::BAD_REQUEST, r.body_text()))?;
    state.vms.destroy(&id, query.generation).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The VM's VNC stream: the request is upgraded (`Upgrade: vnc`) and the connection then
/// joined to the VM's VNC socket until either side closes.
async fn vnc(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, RpcError> {
    let socket = state.vms.vnc_socket(&id)?;
    join_upgraded(request, &socket, "vnc", "the VM's VNC server", id).await
}

/// Answers an HTTP/1.1 upgrade to `protocol` and joins the connection to the unix socket
/// `socket` (`what` serves there) until either side closes. The socket is connected
/// before the answer, so that one whose QEMU just went is an error, not a stream that
/// ends at once.
async fn join_upgraded(
    mut request: Request,
    socket: &std::path::Path,
    protocol: &'static str,
    what: &'static str,
    id: String,
) -> Result<Response, RpcError> {
    let upgrade = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| {
            RpcError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "this stream needs an HTTP/1.1 upgrade (Connection: Upgrade, Upgrade: \
                     {protocol})"
                ),
            )
        })?;
    let mut local = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|error| {
            RpcError::new(
                StatusCode::CONFLICT,
                format!("cannot reach {what}: {error}"),
            )
        })?;
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let mut remote = hyper_util::rt::TokioIo::new(upgraded);
                if let Err(error) = tokio::io::copy_bidirectional(&mut remote, &mut local).await {
                    tracing::debug!(vm = %id, protocol, %error, "stream ended");
                }
            }
            Err(error) => tracing::warn!(vm = %id, protocol, %error, "upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(axum::http::header::CONNECTION, "upgrade")
        .header(axum::http::header::UPGRADE, protocol)
        .body(axum::body::Body::empty())
        .map_err(|error| RpcError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))
}

async fn vm_definition(
    State(state): State<RpcState>,
    Path(id): Path<String>,
) -> Result<Json<VmDefinition>, RpcError> {
    Ok(Json(state.vms.vm_definition(&id).await?))
}

async fn prepare_incoming(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<IncomingVm>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.prepare_incoming(&id, &request).await?))
}

async fn finish_incoming(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<FinishIncoming>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.finish_incoming(&id, &request).await?))
}

async fn abort_incoming(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<AbortIncoming>,
) -> Result<StatusCode, RpcError> {
    state.vms.abort_incoming(&id, request.generation).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn migrate(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<MigrateVm>,
) -> Result<Json<MigrationStatus>, RpcError> {
    Ok(Json(state.vms.migrate(&id, &request).await?))
}

async fn migration_status(
    State(state): State<RpcState>,
    Path(id): Path<String>,
) -> Result<Json<MigrationStatus>, RpcError> {
    Ok(Json(state.vms.migration_status(&id).await?))
}

async fn cancel_migration(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    Body(request): Body<CancelMigration>,
) -> Result<Json<VmStatus>, RpcError> {
    Ok(Json(state.vms.cancel_migration(&id, &request).await?))
}

/// One channel of a migration to this node: the source's agent presents the migration's
/// secret, the request is upgraded (`Upgrade: nefos-migration`) and the connection joined
/// to the waiting QEMU's socket for the channel until either side closes.
async fn incoming_channel(
    State(state): State<RpcState>,
    Path((id, channel)): Path<(String, String)>,
    request: Request,
) -> Result<Response, RpcError> {
    let channel = MigrationChannel::parse(&channel)
        .ok_or_else(|| RpcError::new(StatusCode::NOT_FOUND, "no such migration channel"))?;
    let secret = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(Secret::from_bearer)
        .ok_or_else(|| {
            RpcError::new(
                StatusCode::UNAUTHORIZED,
                "a migration channel needs the migration's secret (Authorization: Bearer …)",
            )
        })?;
    let socket = state.vms.incoming_channel(&id, channel, &secret)?;
    join_upgraded(request, &socket, MIGRATION_UPGRADE, "the waiting QEMU", id).await
}

#[derive(Debug, Deserialize)]
struct ConsoleQuery {
    #[serde(default = "default_console_bytes")]
    max_bytes: u64,
}

fn default_console_bytes() -> u64 {
    64 * 1024
}

async fn diagnostics(
    State(state): State<RpcState>,
    Path(id): Path<String>,
) -> Result<Json<nefos_node_api::VmDiagnostics>, RpcError> {
    Ok(Json(state.vms.diagnostics(&id).await?))
}

async fn console(
    State(state): State<RpcState>,
    Path(id): Path<String>,
    query: Result<Query<ConsoleQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ConsoleOutput>, RpcError> {
    let Query(query) = query.map_err(|r| RpcError::new(StatusCode::BAD_REQUEST, r.body_text()))?;
    Ok(Json(
        state
            .vms
            .console(&id, query.max_bytes.min(16 << 20))
            .await?,
    ))
}

#[derive(Debug)]
pub struct RpcError {
    status: StatusCode,
    message: String,
}

impl RpcError {
    fn new(status: StatusCode, message: impl Into<String>) -> RpcError {
        RpcError {
            status,
            message: message.into(),
        }
    }
}

impl From<NetError> for RpcError {
    fn from(error: NetError) -> RpcError {
        let status = match &error {
            NetError::Stale { .. } => StatusCode::CONFLICT,
            NetError::Invalid(_) | NetError::NoTunnel => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = chain(&error);
        if status.is_server_error() {
            tracing::error!(%message, "cannot realise the node's networks");
        }
        RpcError::new(status, message)
    }
}

impl From<VmError> for RpcError {
    fn from(error: VmError) -> RpcError {
        let status = match &error {
            VmError::NotFound { .. } | VmError::NoMigration => StatusCode::NOT_FOUND,
            VmError::MigrationSecret => StatusCode::UNAUTHORIZED,
            VmError::Invalid { .. }
            | VmError::DiskTooSmall { .. }
            | VmError::Immutable { .. }
            | VmError::DiskShrink { .. }
            | VmError::TooManyNics { .. } => StatusCode::BAD_REQUEST,
            VmError::Stale { .. }
            | VmError::GenerationReused { .. }
            | VmError::Destroyed { .. }
            | VmError::NotRunning
            | VmError::Running
            | VmError::NotSuspended
            | VmError::Suspended
            | VmError::SuspendFailed(_)
            | VmError::ResumeFailed(_)
            | VmError::StateTransfer { .. }
            | VmError::Busy
            | VmError::ResizeUnfinished
            | VmError::NotResized
            | VmError::PortMissing { .. }
            | VmError::AlreadyHere
            | VmError::NotIncoming
            | VmError::Incoming
            | VmError::Unhealthy { .. }
            | VmError::GuestMayHaveRun
            | VmError::UnplugTimeout { .. } => StatusCode::CONFLICT,
            VmError::Image(
                CacheError::BlockSize { .. }
                | CacheError::BlockCount { .. }
                | CacheError::BadHash { .. }
                | CacheError::Refused(_),
            ) => StatusCode::BAD_REQUEST,
            VmError::Image(CacheError::Fetch { .. } | CacheError::Corrupt { .. }) => {
                StatusCode::BAD_GATEWAY
            }
            VmError::ConfigDrive(crate::config_drive::ConfigDriveError::UserData(_)) => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = chain(&error);
        if status.is_server_error() {
            tracing::error!(error = %message, "RPC failed");
        } else {
            tracing::info!(error = %message, "RPC refused");
        }
        RpcError { status, message }
    }
}

/// An error and its sources, joined: the control plane sees the whole reason.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.status.as_u16(),
                title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
