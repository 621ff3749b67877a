//! Server listing with 5,000 servers in the database, on a real `nefos up`.
//!
//! Starts the release binary (control plane only) on a fresh data directory, writes 5,000
//! servers of the demo project straight into its database (as the compute service writes
//! them, metadata and tags included), then drives N concurrent keep-alive clients at:
//!  - baseline: `GET /compute/v2.1/`, the version document (HTTP, routing, microversion
//!    negotiation, JSON; no database);
//!  - brief: `GET /compute/v2.1/servers`, the first page (1,000 servers) as `openstack
//!    server list --no-name-lookup` asks for it;
//!  - detail: `GET /compute/v2.1/servers/detail`, the first page in full at 2.96.
//!
//! Prints rates, ratios to the baseline and latency quantiles. Goal (issue 11): p99 of a
//! listing under 50 ms.
//!
//! Run: `cargo build --release -p nefos -p nefos-bench && target/release/server-list-bench`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use nefos_bench::{LoadResult, Probe, ms, run_load};
use nefos_db::compute as q;
use nefos_db::{Database, PoolSettings};
use nefos_test_utils::{NefosProcess, read_credentials, server_row};

#[derive(Debug, Parser)]
struct Args {
    /// Servers in the database.
    #[arg(long, default_value_t = 5000)]
    servers: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Seconds measured per endpoint.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// The nefos binary (default: next to this program).
    #[arg(long)]
    nefos: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = match args.nefos {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("nefos"),
    };
    let data = tempfile::tempdir()?;
    let server = NefosProcess::up(&binary, data.path(), &[]);
    let addr: SocketAddr = server.url.trim_start_matches("http://").parse()?;
    let password = read_credentials(data.path())
        .remove("demo")
        .context("no demo password")?;
    let (token, project, user) = issue_token(&server.url, &password).await?;

    let db = Database::connect(
        &Database::sqlite_url(&data.path().join("nefos.db")),
        &PoolSettings::default(),
    )
    .await?;
    write_servers(&db, &project, &user, args.servers).await?;

    let warmup = Duration::from_secs(1);
    let duration = Duration::from_secs(args.seconds);
    let authed = |path: &str| Probe {
        path: path.to_owned(),
        headers: vec![
            ("x-auth-token", token.clone()),
            ("openstack-api-version", "compute 2.96".to_owned()),
        ],
    };
    println!(
        "server-list-bench: {} servers, {} clients, {} s per endpoint, server pid {}",
        args.servers,
        args.clients,
        args.seconds,
        server.pid()
    );
    let baseline = run_load(
        addr,
        &authed("/compute/v2.1/"),
        args.clients,
        warmup,
        duration,
    )
    .await?;
    report("baseline  GET /compute/v2.1/", &baseline, &baseline);
    let brief = run_load(
        addr,
        &authed("/compute/v2.1/servers"),
        args.clients,
        warmup,
        duration,
    )
    .await?;
    report("brief     GET /compute/v2.1/servers", &brief, &baseline);
    let detail = run_load(
        addr,
        &authed("/compute/v2.1/servers/detail"),
        args.clients,
        warmup,
        duration,
    )
    .await?;
    report(
        "detail    GET /compute/v2.1/servers/detail",
        &detail,
        &baseline,
    );
    for (name, result) in [("brief", &brief), ("detail", &detail)] {
        let p99 = result.quantile(990);
        println!(
            "goal {name} p99 < 50 ms: {} ({})",
            if p99 < Duration::from_millis(50) {
                "met"
            } else {
                "NOT met"
            },
            ms(p99)
        );
    }
    Ok(())
}

/// Writes `count` servers of `project`, each with a little metadata and a tag.
async fn write_servers(
    db: &Database,
    project: &str,
    user: &str,
    count: usize,
) -> anyhow::Result<()> {
    let now = nefos_db::time::now_micros();
    let mut tx = db.begin().await?;
    for index in 0..count {
        let id = format!("00000000-0000-4000-8000-{index:012}");
        let offset = i64::try_from(index).unwrap_or(0);
        let serial = q::take_serials(&mut tx, 1).await?;
        let mut row = server_row(
            &id,
            project,
            &format!("bench-{index}"),
            now + offset,
            serial,
        );
        row.user_id = user.to_owned();
        q::insert_server(&mut tx, &row).await?;
        let metadata = std::collections::BTreeMap::from([("index".to_owned(), index.to_string())]);
        q::put_metadata(&mut tx, &id, &metadata, false).await?;
        q::add_tag(&mut *tx, &id, "bench").await?;
    }
    tx.commit().await.context("commit the servers")?;
    Ok(())
}

fn report(label: &str, result: &LoadResult, baseline: &LoadResult) {
    println!(
        "{label}: {:>8.0} req/s ({:.3} of baseline)  p50 {}  p99 {}  max {}",
        result.per_second(),
        result.per_second() / baseline.per_second(),
        ms(result.quantile(500)),
        ms(result.quantile(990)),
        ms(result.quantile(1000)),
    );
}

/// The demo user's project-scoped token, its project and its user id.
async fn issue_token(base: &str, password: &str) -> anyhow::Result<(String, String, String)> {
    let body = serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "demo", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "demo", "domain": {"id": "default"}}},
    }});
    let response = reqwest::Client::new()
        .post(format!("{base}/identity/v3/auth/tokens"))
        .json(&body)
        .send()
        .await?;
    let token = response
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .context("no X-Subject-Token in the answer")?
        .to_owned();
    let answer: serde_json::Value = response.json().await?;
    let project = answer["token"]["project"]["id"]
        .as_str()
        .context("no project")?;
    let user = answer["token"]["user"]["id"].as_str().context("no user")?;
    Ok((token, project.to_owned(), user.to_owned()))
}
