//! Shared parts of the nefos benchmark programs: a lean HTTP load generator that keeps one
//! connection per client (any method, any body), latency statistics, and a cloud with
//! nodes for benchmarks that boot VMs (`cluster`), and simulated nodes for scale
//! benchmarks (`simulated_node`).

pub mod cluster;
pub mod simulated_node;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use nefos_db::{Database, PoolSettings};
use tokio::net::TcpStream;

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub requests: u64,
    pub elapsed: Duration,
    /// Sorted request latencies.
    pub latencies: Vec<Duration>,
    /// Requests each client completed, warm-up included.
    pub per_client: Vec<u64>,
    /// Body bytes received, warm-up included.
    pub received_bytes: u64,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency below which `per_mille`/1000 of the requests finished.
    pub fn quantile(&self, per_mille: usize) -> Duration {
        let Some(last) = self.latencies.len().checked_sub(1) else {
            return Duration::ZERO;
        };
        self.latencies[(last * per_mille.min(1000)).div_ceil(1000)]
    }
}

/// One GET to repeat: a path and its headers.
#[derive(Debug, Clone)]
pub struct Probe {
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
}

/// Runs `clients` concurrent connections, each sending `probe` back to back, for `duration`
/// after `warmup`. Every answer must be 200, or the run fails.
pub async fn run_load(
    addr: SocketAddr,
    probe: &Probe,
    clients: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let call = Call {
        method: Method::GET,
        path: probe.path.clone(),
        headers: probe.headers.clone(),
        body: Bytes::new(),
    };
    run_calls(
        addr,
        clients,
        Until::Elapsed { warmup, duration },
        move |_, _| Some(call.clone()),
    )
    .await
}

/// One request of a [`run_calls`] loop.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    /// Path and query, e.g. `/v1/AUTH_x/bench/o-1`.
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    /// The request body (sent with its Content-Length; empty for none).
    pub body: Bytes,
}

/// When a [`run_calls`] loop ends.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After `warmup` (not measured) and then `duration` (measured), or sooner for a client
    /// that runs out of calls.
    Elapsed {
        warmup: Duration,
        duration: Duration,
    },
    /// When every client has run out of calls; all of them are measured, and the elapsed
    /// time is from the start to the last answer.
    Exhausted,
}

/// Runs `clients` concurrent keep-alive connections; client `c` sends `next(c, 0)`,
/// `next(c, 1)`, … back to back, reading each answer's body to the end, until `next` returns
/// `None` or `until` says so. Every answer must be a 2xx, or the run fails.
pub async fn run_calls<F>(
    addr: SocketAddr,
    clients: usize,
    until: Until,
    next: F,
) -> anyhow::Result<LoadResult>
where
    F: Fn(usize, u64) -> Option<Call> + Send + Sync + 'static,
{
    let next = Arc::new(next);
    let began = Instant::now();
    let (start, end) = match until {
        Until::Elapsed { warmup, duration } => {
            let start = began + warmup;
            (start, Some(start + duration))
        }
        Until::Exhausted => (began, None),
    };
    let mut tasks = Vec::with_capacity(clients);
    for index in 0..clients {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            client(addr, index, next.as_ref(), start, end).await
        }));
    }
    let mut latencies = Vec::new();
    let mut per_client = Vec::with_capacity(clients);
    let mut received_bytes = 0;
    for task in tasks {
        let done = task.await.context("load client panicked")??;
        latencies.extend(done.latencies);
        per_client.push(done.completed);
        received_bytes += done.received_bytes;
    }
    latencies.sort_unstable();
    let elapsed = match until {
        Until::Elapsed { duration, .. } => duration,
        Until::Exhausted => began.elapsed(),
    };
    Ok(LoadResult {
        requests: latencies.len() as u64,
        elapsed,
        latencies,
        per_client,
        received_bytes,
    })
}

struct ClientDone {
    latencies: Vec<Duration>,
    completed: u64,
    received_bytes: u64,
}

async fn client<F>(
    addr: SocketAddr,
    index: usize,
    next: &F,
    start: Instant,
    end: Option<Instant>,
) -> anyhow::Result<ClientDone>
where
    F: Fn(usize, u64) -> Option<Call>,
{
    let stream = TcpStream::connect(addr).await.context("connect")?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let host = addr.to_string();
    let mut done = ClientDone {
        latencies: Vec::new(),
        completed: 0,
        received_bytes: 0,
    };
    for i in 0.. {
        let sent = Instant::now();
        if end.is_some_and(|end| sent >= end) {
            break;
        }
        let Some(call) = next(index, i) else {
            break;
        };
        let mut request = Request::builder()
            .method(call.method.clone())
            .uri(call.path.as_str())
            .header("host", host.as_str());
        for (name, value) in &call.headers {
            request = request.header(*name, value.as_str());
        }
        // The connection may still be finishing the previous exchange.
        sender
            .ready()
            .await
            .with_context(|| format!("connection closed before {} {}", call.method, call.path))?;
        let response = sender
            .send_request(request.body(Full::new(call.body))?)
            .await
            .with_context(|| format!("{} {}", call.method, call.path))?;
        let status = response.status();
        let mut body = response.into_body();
        let mut received = 0u64;
        let mut start_of_body = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                received += data.len() as u64;
                if !status.is_success() && start_of_body.len() < 200 {
                    start_of_body.extend_from_slice(&data[..data.len().min(200)]);
                }
            }
        }
        if !status.is_success() {
            bail!(
                "{} {} answered {status}: {}",
                call.method,
                call.path,
                String::from_utf8_lossy(&start_of_body)
            );
        }
        done.completed += 1;
        done.received_bytes += received;
        if sent >= start {
            done.latencies.push(sent.elapsed());
        }
    }
    Ok(done)
}

/// Fills `buffer` with a deterministic xorshift stream from `seed` (non-zero): bytes that do
/// not repeat, so no two objects made from different seeds share content.
pub fn fill_pseudo_random(buffer: &mut [u8], mut seed: u64) {
    seed |= 1;
    for chunk in buffer.chunks_mut(8) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let bytes = seed.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Milliseconds with two decimals.
pub fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

/// Logs in as `user` (scoped to the project of the same name, as `nefos up` makes it) and
/// returns the token and the object-store account URL from the catalog.
pub async fn login_object_store(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<(String, String)> {
    let body = serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": user, "domain": {"id": "default"}}},
    }});
    let response = http
        .post(format!("{url}/identity/v3/auth/tokens"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    let token = response
        .headers()
        .get("x-subject-token")
        .context("no token")?
        .to_str()?
        .to_owned();
    let answer: serde_json::Value = response.json().await?;
    let account = answer["token"]["catalog"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["type"] == "object-store")
        .and_then(|s| s["endpoints"][0]["url"].as_str())
        .context("no object-store endpoint")?
        .to_owned();
    Ok((token, account))
}

/// Runs `work` in `issuers` concurrent loops for `seconds` (after a half-second warm-up)
/// and returns how many times per second it completed.
pub async fn measure<F, Fut>(issuers: usize, seconds: u64, work: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let work = Arc::new(work);
    let stop = Arc::new(AtomicBool::new(false));
    let counting = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for issuer in 0..issuers {
        let (work, stop, counting, done) =
            (work.clone(), stop.clone(), counting.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                work(issuer).await?;
                if counting.load(Ordering::Relaxed) {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let count = done.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    Ok(count as f64 / elapsed.as_secs_f64())
}

static SCRATCH: AtomicU32 = AtomicU32::new(0);

/// A fresh database on the PostgreSQL server at `server`; its URL.
pub async fn scratch_postgres(server: &str) -> anyhow::Result<String> {
    let server = server.trim_end_matches('/');
    let name = format!(
        "nefos_bench_{}_{}",
        std::process::id(),
        SCRATCH.fetch_add(1, Ordering::Relaxed)
    );
    let admin = Database::connect(&format!("{server}/postgres"), &PoolSettings::default())
        .await
        .context("cannot reach the PostgreSQL server")?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(admin.pool())
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(admin.pool())
        .await?;
    admin.close().await;
    Ok(format!("{server}/{name}"))
}
