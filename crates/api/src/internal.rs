//! The control plane's internal API (`/internal/v1`), served on a listener of its own for
//! node agents only (docs/design.md §3): enrolment, registration and heartbeats, and the blocks of
//! the images a node runs. Each node authenticates with its own token; it may act only as
//! itself and read only the blocks granted to it.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use http::{StatusCode, header};
use nefos_blocks::BlockHash;
use nefos_compute::{ComputeError, NodeRegistry, NodeRpc, Reconciler};
use nefos_node_api::routes::internal;
use nefos_node_api::{Heartbeat, JoinRequest, NodeCredential, NodeInfo, Secret};
use nefos_storage::Storage;

use crate::extract::{Json, Path};
use crate::{ApiError, HttpLimits, error, middleware};

/// What the internal API's handlers reach.
#[derive(Debug, Clone)]
pub struct InternalState {
    pub nodes: NodeRpc,
    pub storage: Storage,
    /// Run for a node as it registers (a node that restarted, or came back): what it runs
    /// is compared with the database at once.
    pub reconciler: Option<Reconciler>,
}

impl InternalState {
    fn registry(&self) -> &NodeRegistry {
        self.nodes.registry()
    }
}

/// The node a request's token belongs to.
#[derive(Debug, Clone)]
struct CallingNode(String);

/// The internal API, with request ids, the access log and the HTTP limits around it.
pub fn router(state: InternalState, limits: &HttpLimits) -> Router {
    let max_header_bytes = limits.max_header_bytes;
    let authenticated = Router::new()
        .route(internal::NODE, put(register))
        .route(internal::NODE_HEARTBEAT, post(heartbeat))
        .route(internal::BLOCK, get(block))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ));
    let internal = Router::new()
        .route(internal::ENROLL, post(enroll))
        .merge(authenticated)
        .layer(axum::middleware::from_fn(check_version));
    Router::new()
        .nest(nefos_node_api::INTERNAL_PREFIX, internal)
        .fallback(error::unknown_route)
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn(move |request, next| {
            middleware::limit_header_size(max_header_bytes, request, next)
        }))
        .layer(axum::middleware::from_fn(
            middleware::request_id_and_access_log,
        ))
}

/// Refuses an agent whose API version this control plane cannot speak with.
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
    ApiError::bad_request(format!(
        "the agent speaks API version {version}; this control plane speaks {} and works with \
         one version older or newer: upgrade one process at a time",
        nefos_node_api::API_VERSION
    ))
    .into_response()
}

async fn authenticate(
    State(state): State<InternalState>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(Secret::from_bearer);
    let node = match token {
        Some(token) => match state.registry().authenticate(&token).await {
            Ok(node) => node,
            Err(error) => return ApiError::from(error).into_response(),
        },
        None => None,
    };
    match node {
        Some(node) => {
            request.extensions_mut().insert(CallingNode(node));
            next.run(request).await
        }
        None => ApiError::unauthorized(
            "the internal API needs a node's own token (Authorization: Bearer …); this one is \
             missing, unknown or revoked",
        )
        .into_response(),
    }
}

impl From<ComputeError> for ApiError {
    fn from(error: ComputeError) -> Self {
        match &error {
            ComputeError::UnknownNode { .. } => ApiError::not_found(error.to_string()),
            ComputeError::InvalidNode { .. } => ApiError::bad_request(error.to_string()),
            ComputeError::JoinRefused => ApiError::unauthorized(error.to_string()),
            ComputeError::NotEnrolled { .. } | ComputeError::AlreadyEnrolled { .. } => {
                ApiError::new(StatusCode::CONFLICT, error.to_string())
            }
            // The internal API calls only the node registry; the rest are the public
            // compute API's (`compute/error.rs`).
            _ => ApiError::internal(&error),
        }
    }
}

/// A node's credential may act for that node only.
fn check_self(node: &CallingNode, id: &str) -> Result<(), ApiError> {
    if node.0 == id {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the credential of node {:?} cannot act for node {id:?}",
                node.0
            ),
        ))
    }
}

async fn enroll(
    State(state): State<InternalState>,
    Json(request): Json<JoinRequest>,
) -> Result<axum::Json<NodeCredential>, ApiError> {
    let credential = state
        .nodes
        .join(&Secret::new(request.join_token.trim()))
        .await?;
    Ok(axum::Json(credential))
}

async fn register(
    State(state): State<InternalState>,
    Extension(node): Extension<CallingNode>,
    Path(id): Path<String>,
    Json(info): Json<NodeInfo>,
) -> Result<StatusCode, ApiError> {
    check_self(&node, &id)?;
    if info.id != id {
        return Err(ApiError::bad_request(format!(
            "the body describes node {:?}, the path names {id:?}",
            info.id
        )));
    }
    state.registry().register(&info).await?;
    if let Some(reconciler) = state.reconciler.clone() {
        tokio::spawn(async move {
            match reconciler
                .reconcile_node(&id, nefos_compute::ReconcileMode::default())
                .await
            {
                Ok(report) if !report.repairs.is_empty() => {
                    tracing::warn!(node = %id, repairs = report.repairs.len(), "reconciled a node as it registered");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(node = %id, error = %error::chain(&error), "cannot reconcile a node as it registered");
                }
            }
        });
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn heartbeat(
    State(state): State<InternalState>,
    Extension(node): Extension<CallingNode>,
    Path(id): Path<String>,
    Json(beat): Json<Heartbeat>,
) -> Result<StatusCode, ApiError> {
    check_self(&node, &id)?;
    state.registry().heartbeat(&id, &beat).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn block(
    State(state): State<InternalState>,
    Extension(node): Extension<CallingNode>,
    Path(hash): Path<String>,
) -> Result<Response, ApiError> {
    let hash: BlockHash = hash
        .parse()
        .map_err(|e: nefos_blocks::ParseBlockHashError| ApiError::bad_request(e.to_string()))?;
    // A block not granted to this node reads exactly as a missing one: the node learns
    // nothing about what the store holds beyond its own images.
    let missing = || ApiError::not_found(format!("no block {hash}"));
    if !state
        .registry()
        .may_read_block(&node.0, &hash.to_hex())
        .await?
    {
        return Err(missing());
    }
    let data = state
        .storage
        .blocks()
        .get(&hash)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(missing)?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from(data),
    )
        .into_response())
}
