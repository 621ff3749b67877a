//! The control plane's internal API (`/internal/v1`), called by node agents only and
//! authenticated by the cluster secret: node registration and heartbeats, and the blocks
//! of images for their caches. Without a configured secret it refuses every call.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http::{StatusCode, header};
use nefos_blocks::BlockHash;
use nefos_compute::ComputeError;
use nefos_node_api::{Heartbeat, NodeInfo};

use crate::extract::{Json, Path};
use crate::{ApiError, ApiState};

pub(crate) fn router(state: ApiState) -> Router<ApiState> {
    Router::new()
        .route("/nodes/{id}", put(register))
        .route("/nodes/{id}/heartbeat", post(heartbeat))
        .route("/blocks/{hash}", get(block))
        .layer(axum::middleware::from_fn_with_state(state, authenticate))
}

async fn authenticate(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match (&state.cluster_secret, presented) {
        (Some(secret), Some(header)) if secret.verify_bearer(header) => next.run(request).await,
        _ => ApiError::unauthorized("the internal API needs the cluster secret").into_response(),
    }
}

impl From<ComputeError> for ApiError {
    fn from(error: ComputeError) -> Self {
        match &error {
            ComputeError::UnknownNode { .. } => ApiError::not_found(error.to_string()),
            ComputeError::InvalidNode { .. } => ApiError::bad_request(error.to_string()),
            ComputeError::Db(_) => ApiError::internal(&error),
        }
    }
}

async fn register(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(info): Json<NodeInfo>,
) -> Result<StatusCode, ApiError> {
    if info.id != id {
        return Err(ApiError::bad_request(format!(
            "the body describes node {:?}, the path names {id:?}",
            info.id
        )));
    }
    state.nodes.register(&info).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn heartbeat(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(beat): Json<Heartbeat>,
) -> Result<StatusCode, ApiError> {
    state.nodes.heartbeat(&id, &beat).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn block(
    State(state): State<ApiState>,
    Path(hash): Path<String>,
) -> Result<Response, ApiError> {
    let hash: BlockHash = hash
        .parse()
        .map_err(|e: nefos_blocks::ParseBlockHashError| ApiError::bad_request(e.to_string()))?;
    let data = state
        .storage
        .blocks()
        .get(&hash)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| ApiError::not_found(format!("no block {hash}")))?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from(data),
    )
        .into_response())
}
