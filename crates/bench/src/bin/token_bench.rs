//! Token validation throughput and latency of a real `nefos up`.
//!
//! Starts the release binary on a fresh data directory, issues a token, then drives N
//! concurrent keep-alive clients at two endpoints in turn for the same time:
//!  - baseline: `GET /identity/v3`, the version document (HTTP, routing, JSON; no token,
//!    no database), the floor any authenticated request stands on;
//!  - validation: `GET /identity/v3/auth/tokens` with `X-Auth-Token` and `X-Subject-Token`,
//!    which is what a service does to check a user's token (both tokens are validated).
//!
//! Prints both rates, their ratio, and latency quantiles. Goals (issue #2): at least 20,000
//! validations per second and p99 under 5 ms on this machine.
//!
//! Run: `cargo build --release -p nefos -p nefos-bench && target/release/token-bench`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use nefos_bench::{LoadResult, Probe, ms, run_load};
use nefos_test_utils::{NefosProcess, read_credentials};

#[derive(Debug, Parser)]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds measured per endpoint.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// The nefos binary (default: next to this program).
    #[arg(long)]
    nefos: Option<PathBuf>,
    /// Database URL for the server instead of its SQLite file (e.g. postgres://…/db).
    #[arg(long)]
    database: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = match args.nefos {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("nefos"),
    };
    let data = tempfile::tempdir()?;
    let mut extra = vec!["--public-url".to_owned(), "http://127.0.0.1".to_owned()];
    if let Some(url) = &args.database {
        extra.extend(["--database".to_owned(), url.clone()]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let server = NefosProcess::up(&binary, data.path(), &extra);
    let addr: SocketAddr = server.url.trim_start_matches("http://").parse()?;
    let password = read_credentials(data.path())
        .remove("demo")
        .context("no demo password")?;
    let token = issue_token(&server.url, &password).await?;

    let warmup = Duration::from_secs(1);
    let duration = Duration::from_secs(args.seconds);
    let baseline_probe = Probe {
        path: "/identity/v3".into(),
        headers: vec![],
    };
    let validate_probe = Probe {
        path: "/identity/v3/auth/tokens".into(),
        headers: vec![("x-auth-token", token.clone()), ("x-subject-token", token)],
    };
    println!(
        "token-bench: {} clients, {} s per endpoint, server pid {}",
        args.clients,
        args.seconds,
        server.pid()
    );
    let baseline = run_load(addr, &baseline_probe, args.clients, warmup, duration).await?;
    report("baseline  GET /identity/v3 (no auth)", &baseline);
    let validation = run_load(addr, &validate_probe, args.clients, warmup, duration).await?;
    report("validate  GET /identity/v3/auth/tokens", &validation);
    let rate = validation.per_second();
    let p99 = validation.quantile(990);
    println!(
        "ratio validation/baseline: {:.3}",
        rate / baseline.per_second()
    );
    println!(
        "goal >= 20000 validations/s: {} ({rate:.0}/s)",
        if rate >= 20_000.0 { "met" } else { "NOT met" }
    );
    println!(
        "goal p99 < 5 ms: {} ({})",
        if p99 < Duration::from_millis(5) {
            "met"
        } else {
            "NOT met"
        },
        ms(p99)
    );
    Ok(())
}

fn report(label: &str, result: &LoadResult) {
    println!(
        "{label}: {:>9.0} req/s  p50 {}  p99 {}  max {}",
        result.per_second(),
        ms(result.quantile(500)),
        ms(result.quantile(990)),
        ms(result.quantile(1000)),
    );
}

/// A project-scoped token for the demo user, over a plain HTTP/1.1 request.
async fn issue_token(base: &str, password: &str) -> anyhow::Result<String> {
    let body = serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "demo", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "demo", "domain": {"id": "default"}}},
    }});
    let output = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-H",
            "content-type: application/json",
            "-d",
        ])
        .arg(body.to_string())
        .arg(format!("{base}/identity/v3/auth/tokens"))
        .output()
        .await
        .context("run curl")?;
    let headers = String::from_utf8(output.stdout)?;
    headers
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-subject-token")
                .then(|| value.trim().to_owned())
        })
        .context("no X-Subject-Token in the answer")
}
