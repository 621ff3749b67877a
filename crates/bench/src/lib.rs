//! Shared parts of the nefos benchmark programs: a lean HTTP load generator that keeps one
//! connection per client, and latency statistics.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub requests: u64,
    pub elapsed: Duration,
    /// Sorted request latencies.
    pub latencies: Vec<Duration>,
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
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let probe = probe.clone();
        tasks.push(tokio::spawn(async move {
            client(addr, probe, start, end).await
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.context("load client panicked")??);
    }
    latencies.sort_unstable();
    Ok(LoadResult {
        requests: latencies.len() as u64,
        elapsed: duration,
        latencies,
    })
}

async fn client(
    addr: SocketAddr,
    probe: Probe,
    start: Instant,
    end: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let stream = TcpStream::connect(addr).await.context("connect")?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut latencies = Vec::new();
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let mut request = Request::get(probe.path.as_str()).header("host", addr.to_string());
        for (name, value) in &probe.headers {
            request = request.header(*name, value.as_str());
        }
        let response = sender
            .send_request(request.body(Empty::<Bytes>::new())?)
            .await?;
        let status = response.status();
        response.into_body().collect().await?;
        if !status.is_success() {
            bail!("GET {} answered {status}", probe.path);
        }
        if sent >= start {
            latencies.push(sent.elapsed());
        }
    }
    Ok(latencies)
}

/// Milliseconds with two decimals.
pub fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}
