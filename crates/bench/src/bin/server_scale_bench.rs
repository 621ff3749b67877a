//! The control plane at scale: 10,000 servers created through the compute API on 100
//! **simulated** nodes (`nefos_bench::simulated_node`: real enrolment, RPC and heartbeats,
//! VMs in memory), then a full reconcile pass over them.
//!
//! Starts a control plane (`nefos up --no-node`, SQLite) with the tiny guest registered,
//! raises the demo user's `cyclades.*` quota, enrols the simulated nodes, and measures:
//! - baseline: `GET /compute/v2.1/flavors/6` (authenticated, one database read) with the
//!   same number of concurrent clients, for a few seconds;
//! - creates: `POST /servers` by those clients until `--servers` were accepted, and the time
//!   until every server is ACTIVE (goal: ≥ 50 servers per second);
//! - reconcile: one pass of the reconciler over every node and server, in this process
//!   (goal: < 1 s), against reading every server row once as its baseline.
//!
//! Run: `cargo build --release -p nefos -p nefos-bench && target/release/server-scale-bench`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use nefos_bench::cluster::{Cloud, median};
use nefos_bench::simulated_node::SimulatedNode;
use nefos_compute::{ReconcileMode, Reconciler};
use nefos_db::compute::{self as q, ServerScope};
use nefos_quota::Quotas;
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    #[arg(long, default_value_t = 10_000)]
    servers: usize,
    /// Concurrent API clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// The `nefos` binary (default: the one next to this program).
    #[arg(long)]
    nefos: Option<PathBuf>,
}

const CREATE_GOAL: f64 = 50.0;
const RECONCILE_GOAL: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.servers == 0 || args.nodes == 0 || args.clients == 0 {
        bail!("--servers, --nodes and --clients must be at least 1");
    }
    let binary = match &args.nefos {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("nefos"),
    };
    if !binary.exists() {
        bail!("no nefos binary at {}", binary.display());
    }
    let image = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/guest/nefos-tiny.raw")
        .canonicalize()
        .context("no guest image: run scripts/build-guest-image")?;
    let cloud = Cloud::start(&binary, &image, true).await?;
    let limit = (args.servers * 2).to_string();
    let big = (1u64 << 50).to_string();
    for (resource, value) in [
        ("cyclades.vm", limit.as_str()),
        ("cyclades.total_cpu", limit.as_str()),
        ("cyclades.cpu", limit.as_str()),
        ("cyclades.total_ram", big.as_str()),
        ("cyclades.ram", big.as_str()),
        ("cyclades.disk", big.as_str()),
    ] {
        cloud.admin(&["quota", "set", "--user", "demo", resource, value])?;
    }
    let mut nodes = Vec::new();
    for index in 0..args.nodes {
        nodes.push(SimulatedNode::start(&cloud, &format!("sim-{index:03}")).await?);
    }
    let token = Arc::new(cloud.token("demo").await?);
    let image_id = Arc::new(cloud.public_image(&token).await?);
    let url = Arc::new(format!("{}/compute/v2.1", cloud.process.url));
    println!(
        "server-scale-bench: {} simulated nodes, {} servers, {} clients, SQLite",
        args.nodes, args.servers, args.clients
    );

    // Baseline: an authenticated read, for as long as a few seconds.
    let http = reqwest::Client::new();
    let reads = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(3);
    let mut workers = Vec::new();
    for _ in 0..args.clients {
        let (http, url, token, reads) = (http.clone(), url.clone(), token.clone(), reads.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < until {
                let answer = http
                    .get(format!("{url}/flavors/6"))
                    .header("x-auth-token", token.as_str())
                    .send()
                    .await;
                if answer.is_ok_and(|a| a.status().is_success()) {
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for worker in workers {
        worker.await?;
    }
    let baseline = reads.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!("baseline  GET /flavors/6: {baseline:.0} req/s");

    // Creates, as fast as the clients can have them accepted.
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.clients {
        let (http, url, token, image_id, next) = (
            http.clone(),
            url.clone(),
            token.clone(),
            image_id.clone(),
            next.clone(),
        );
        let total = args.servers;
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let body = json!({"server": {"name": format!("s{index}"), "imageRef": *image_id,
                                             "flavorRef": "6", "networks": "none"}});
                let sent = Instant::now();
                let answer = http
                    .post(format!("{url}/servers"))
                    .header("x-auth-token", token.as_str())
                    .header("openstack-api-version", "compute 2.96")
                    .json(&body)
                    .send()
                    .await?;
                if answer.status() != reqwest::StatusCode::ACCEPTED {
                    bail!(
                        "create {index}: {} {}",
                        answer.status(),
                        answer.text().await?
                    );
                }
                latencies.push(sent.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let accepted = started.elapsed();
    let db = &cloud.db;
    let scope = ServerScope::default();
    loop {
        let counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT vm_state, COUNT(*) FROM servers GROUP BY vm_state")
                .fetch_all(db.pool())
                .await?;
        let count = |state: &str| {
            counts
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n)
        };
        if count("error") > 0 {
            bail!("{} servers failed", count("error"));
        }
        if usize::try_from(count("active")).unwrap_or(0) >= args.servers {
            break;
        }
        if started.elapsed() > accepted + Duration::from_secs(600) {
            bail!("servers still building 10 minutes after the last was accepted: {counts:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_active = started.elapsed();
    let rate = args.servers as f64 / all_active.as_secs_f64();
    println!(
        "creates   {} accepted in {:.1} s ({:.0}/s, median POST {:.0} ms), all ACTIVE after \
         {:.1} s: {rate:.0} servers/s ({:.3} of baseline): goal ≥ {CREATE_GOAL:.0}/s {}",
        args.servers,
        accepted.as_secs_f64(),
        args.servers as f64 / accepted.as_secs_f64(),
        median(latencies).as_secs_f64() * 1000.0,
        all_active.as_secs_f64(),
        rate / baseline,
        if rate >= CREATE_GOAL {
            "met"
        } else {
            "NOT met"
        }
    );
    let held: usize = nodes.iter().map(SimulatedNode::vm_count).sum();
    println!("          the simulated nodes hold {held} VMs");

    // A reconcile pass, against one read of every server row.
    let read_started = Instant::now();
    let rows = q::list_servers(db.pool(), &scope).await?.len();
    let read = read_started.elapsed();
    let reconciler = Reconciler::new(db.clone(), cloud.nodes.clone(), Quotas::new(db.clone()));
    let mode = ReconcileMode {
        dry_run: true,
        destroy_unknown: false,
    };
    let pass_started = Instant::now();
    let report = reconciler.reconcile_all(mode).await?;
    let pass = pass_started.elapsed();
    println!(
        "reconcile {} nodes, {rows} servers: {:.0} ms ({:.1}× reading every row, {:.0} ms), \
         {} repairs: goal < {} ms {}",
        report.nodes_checked.len(),
        pass.as_secs_f64() * 1000.0,
        pass.as_secs_f64() / read.as_secs_f64(),
        read.as_secs_f64() * 1000.0,
        report.repairs.len(),
        RECONCILE_GOAL.as_millis(),
        if pass < RECONCILE_GOAL {
            "met"
        } else {
            "NOT met"
        }
    );
    drop(nodes);
    drop(cloud);
    Ok(())
}
