//! A **simulated node**, for scale benchmarks only: it enrols, registers and heartbeats as
//! a node agent does and serves the node RPC API (the routes of `nefos_node_api::routes`,
//! behind the node's RPC key), but its VMs are entries in memory that are "running" the
//! moment they are ensured. It lets one machine stand for a hundred nodes so that the
//! control plane's own costs (API, sagas, scheduler, reconciler) can be measured at scale.
//! Nothing of it is used by the product.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use nefos_node::control_plane::ControlPlaneClient;
use nefos_node_api::routes::rpc;
use nefos_node_api::{
    Accelerator, DiskStatus, EnsureVm, Heartbeat, NodeInfo, PowerState, RPC_PREFIX, Secret,
    VmState, VmStatus,
};
use serde::Deserialize;

use crate::cluster::Cloud;

#[derive(Debug, Default)]
struct Vms {
    by_id: BTreeMap<String, VmStatus>,
}

#[derive(Debug, Clone)]
struct Simulated {
    info: Arc<NodeInfo>,
    rpc_key: Secret,
    vms: Arc<Mutex<Vms>>,
}

/// A simulated node serving on a port of its own; stops when dropped.
#[derive(Debug)]
pub struct SimulatedNode {
    pub id: String,
    server: tokio::task::JoinHandle<()>,
    heartbeat: tokio::task::JoinHandle<()>,
    vms: Arc<Mutex<Vms>>,
}

impl Drop for SimulatedNode {
    fn drop(&mut self) {
        self.server.abort();
        self.heartbeat.abort();
    }
}

impl SimulatedNode {
    /// Enrols node `id` with `cloud`, joins, serves its RPC API and registers.
    pub async fn start(cloud: &Cloud, id: &str) -> anyhow::Result<SimulatedNode> {
        let enrolment = cloud
            .nodes
            .registry()
            .enroll(id, Duration::from_secs(600))
            .await?;
        let credential =
            ControlPlaneClient::join(&cloud.internal_url, enrolment.join_token.expose()).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let rpc_url = format!("http://{}", listener.local_addr()?);
        let info = NodeInfo {
            id: id.to_owned(),
            rpc_url,
            cpus: 64,
            ram_mib: 256 * 1024,
            disk_free_bytes: 10 << 40,
            disk_total_bytes: 10 << 40,
            guest_cpu_model: "x86-64-v2-AES".to_owned(),
            host_cpu: "simulated".to_owned(),
            // A host that runs every model.
            cpu_features: nefos_node_api::CPU_MODELS
                .iter()
                .flat_map(|model| model.features.iter().map(|f| (*f).to_owned()))
                .collect(),
            accelerator: Accelerator::Kvm,
            qemu_version: "simulated".to_owned(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            api_version: nefos_node_api::API_VERSION,
            heartbeat_seconds: 10,
            tunnel_address: None,
            public_network: false,
        };
        let vms = Arc::new(Mutex::new(Vms::default()));
        let state = Simulated {
            info: Arc::new(info.clone()),
            rpc_key: Secret::new(credential.rpc_key.clone()),
            vms: vms.clone(),
        };
        let api = Router::new()
            .route(rpc::NODE, get(node_info))
            .route(rpc::VMS, get(list))
            .route(rpc::VM, get(status).put(ensure).delete(destroy))
            .route(rpc::VM_START, post(start))
            .route(rpc::VM_STOP, post(stop))
            .with_state(state);
        let app = Router::new().nest(RPC_PREFIX, api);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let control_plane =
            ControlPlaneClient::new(&cloud.internal_url, Secret::new(credential.token.clone()))?;
        control_plane
            .register(&info)
            .await
            .context("the simulated node could not register")?;
        let beats = vms.clone();
        let node = id.to_owned();
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let running = u32::try_from(beats.lock().map(|v| v.by_id.len()).unwrap_or(0))
                    .unwrap_or(u32::MAX);
                let beat = Heartbeat {
                    running_vms: running,
                    disk_free_bytes: 10 << 40,
                };
                let _ = control_plane.heartbeat(&node, &beat).await;
            }
        });
        Ok(SimulatedNode {
            id: id.to_owned(),
            server,
            heartbeat,
            vms,
        })
    }

    /// How many VMs the node holds.
    pub fn vm_count(&self) -> usize {
        self.vms.lock().map(|v| v.by_id.len()).unwrap_or(0)
    }
}

type Refusal = (StatusCode, &'static str);

fn authorised(state: &Simulated, headers: &HeaderMap) -> Result<(), Refusal> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match presented {
        Some(header) if state.rpc_key.verify_bearer(header) => Ok(()),
        _ => Err((StatusCode::UNAUTHORIZED, "no RPC key")),
    }
}

async fn node_info(State(state): State<Simulated>, headers: HeaderMap) -> Response {
    match authorised(&state, &headers) {
        Ok(()) => Json((*state.info).clone()).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn list(State(state): State<Simulated>, headers: HeaderMap) -> Response {
    if let Err(refusal) = authorised(&state, &headers) {
        return refusal.into_response();
    }
    let vms: Vec<VmStatus> = state
        .vms
        .lock()
        .map(|v| v.by_id.values().cloned().collect())
        .unwrap_or_default();
    Json(vms).into_response()
}

async fn status(
    State(state): State<Simulated>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(refusal) = authorised(&state, &headers) {
        return refusal.into_response();
    }
    match state
        .vms
        .lock()
        .ok()
        .and_then(|v| v.by_id.get(&id).cloned())
    {
        Some(vm) => Json(vm).into_response(),
        None => (StatusCode::NOT_FOUND, "no such VM").into_response(),
    }
}

async fn ensure(
    State(state): State<Simulated>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(request): Json<EnsureVm>,
) -> Response {
    if let Err(refusal) = authorised(&state, &headers) {
        return refusal.into_response();
    }
    let vm = VmStatus {
        id: id.clone(),
        name: request.spec.name.clone(),
        generation: request.generation,
        power: request.power,
        state: match request.power {
            PowerState::Running => VmState::Running,
            PowerState::Paused => VmState::Paused,
            PowerState::Stopped => VmState::Stopped,
            PowerState::Suspended => VmState::Suspended,
        },
        qemu_status: None,
        pid: None,
        forwards: Vec::new(),
        disk: DiskStatus {
            virtual_bytes: request.spec.disk_bytes,
            allocated_bytes: 0,
        },
        image_id: "simulated".to_owned(),
        pending_changes: Vec::new(),
        resized_from: None,
        size: Some(nefos_node_api::VmSize {
            vcpus: request.spec.vcpus,
            ram_mib: request.spec.ram_mib,
            disk_bytes: request.spec.disk_bytes,
        }),
    };
    if let Ok(mut vms) = state.vms.lock() {
        vms.by_id.insert(id, vm.clone());
    }
    Json(vm).into_response()
}

#[derive(Debug, Deserialize)]
struct Generation {
    generation: u64,
}

async fn destroy(
    State(state): State<Simulated>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(_generation): Query<Generation>,
) -> Response {
    if let Err(refusal) = authorised(&state, &headers) {
        return refusal.into_response();
    }
    if let Ok(mut vms) = state.vms.lock() {
        vms.by_id.remove(&id);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn set_power(state: &Simulated, id: &str, generation: u64, running: bool) -> Response {
    let mut vms = match state.vms.lock() {
        Ok(vms) => vms,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    match vms.by_id.get_mut(id) {
        Some(vm) => {
            vm.generation = generation;
            (vm.power, vm.state) = if running {
                (PowerState::Running, VmState::Running)
            } else {
                (PowerState::Stopped, VmState::Stopped)
            };
            Json(vm.clone()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such VM").into_response(),
    }
}

async fn start(
    State(state): State<Simulated>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(request): Json<Generation>,
) -> Response {
    if let Err(refusal) = authorised(&state, &headers) {
        return refusal.into_response();
    }
    set_power(&state, &id, request.generation, true).await
}

async fn stop(
    State(state): State<Simulated>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(request): Json<Generation>,
) -> Response {
    if let Err(refusal) = authorised(&state, &headers) {
        return refusal.into_response();
    }
    set_power(&state, &id, request.generation, false).await
}
