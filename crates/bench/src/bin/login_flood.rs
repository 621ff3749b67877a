//! A flood of failed logins against a real `nefos up`, beside one user logging in.
//!
//! Starts the release binary on a fresh data directory, then:
//!  - baseline: one client logs in as `demo` with the right password, one login after the
//!    other, on an idle server, for `--seconds`;
//!  - flood: the same client again, while `--attackers` concurrent clients post wrong
//!    passwords for user names that do not exist, from other loopback addresses
//!    (127.0.0.2 and up: `--attacker-addresses` of them), for the same time.
//!
//! From one address (the default), what is measured is the per-address throttle: after
//! its budget the flood is answered 429 without hashing. From as many addresses as there
//! are attackers, every attempt is hashed, and what is measured is the bounded hashing:
//! memory stays put, and valid logins wait their turn in the queue with the flood.
//!
//! Prints the server's resident memory at the start, its peak (`VmHWM`) and at the end
//! (after a quiet second), the valid logins' p50/p99 in both phases and their ratio, and
//! what the attackers were answered. Goals (hardening issue): peak < 300 MiB, end within
//! 50 MiB of the start, valid-login p99 under the flood < 500 ms.
//!
//! Run: `cargo build --release -p nefos -p nefos-bench && target/release/login-flood`

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use nefos_bench::ms;
use nefos_test_utils::{NefosProcess, read_credentials};
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    /// Concurrent clients posting wrong passwords.
    #[arg(long, default_value_t = 64)]
    attackers: usize,
    /// Loopback addresses the attackers come from (127.0.0.2 and up).
    #[arg(long, default_value_t = 1)]
    attacker_addresses: u8,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The nefos binary (default: next to this program).
    #[arg(long)]
    nefos: Option<PathBuf>,
}

fn body(user: &str, password: &str) -> serde_json::Value {
    json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}}}})
}

/// Resident memory of a process, and its peak, in KiB (`/proc/PID/status`).
fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

/// Valid logins one after the other until `stop`; their latencies, sorted.
async fn valid_logins(url: &str, password: &str, stop: Instant) -> anyhow::Result<Vec<Duration>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut latencies = Vec::new();
    let mut refused = 0;
    while Instant::now() < stop {
        let started = Instant::now();
        let answer = client
            .post(format!("{url}/identity/v3/auth/tokens"))
            .json(&body("demo", password))
            .send()
            .await?;
        let took = started.elapsed();
        if answer.status() == 201 {
            latencies.push(took);
        } else {
            refused += 1;
        }
    }
    if refused > 0 {
        println!("  valid logins refused: {refused}");
    }
    latencies.sort();
    Ok(latencies)
}

fn quantile(sorted: &[Duration], per_mille: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * per_mille / 1000).min(sorted.len() - 1)]
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
    let password = read_credentials(data.path())
        .remove("demo")
        .context("no demo password")?;
    let phase = Duration::from_secs(args.seconds);

    let (start_rss, _) = memory_kib(server.pid())?;
    let baseline = valid_logins(&server.url, &password, Instant::now() + phase).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let addresses = args.attacker_addresses.clamp(1, 250);
    let mut attackers = Vec::new();
    for n in 0..args.attackers {
        let (url, stop) = (server.url.clone(), Arc::clone(&stop));
        let host = 2 + u8::try_from(n % usize::from(addresses)).unwrap_or(0);
        let attacker_address: IpAddr = [127, 0, 0, host].into();
        let client = reqwest::Client::builder()
            .local_address(attacker_address)
            .timeout(Duration::from_secs(30))
            .build()?;
        attackers.push(tokio::spawn(async move {
            let mut answers: BTreeMap<u16, u64> = BTreeMap::new();
            let mut attempt = 0u64;
            while !stop.load(Ordering::Relaxed) {
                attempt += 1;
                let user = format!("nobody-{n}-{attempt}");
                let status = match client
                    .post(format!("{url}/identity/v3/auth/tokens"))
                    .json(&body(&user, "wrong"))
                    .send()
                    .await
                {
                    Ok(answer) => answer.status().as_u16(),
                    Err(_) => 0,
                };
                *answers.entry(status).or_default() += 1;
            }
            answers
        }));
    }
    let flooded = valid_logins(&server.url, &password, Instant::now() + phase).await?;
    stop.store(true, Ordering::Relaxed);
    let mut answers: BTreeMap<u16, u64> = BTreeMap::new();
    for attacker in attackers {
        for (status, count) in attacker.await? {
            *answers.entry(status).or_default() += count;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (end_rss, peak) = memory_kib(server.pid())?;

    println!(
        "memory: start {}, peak {}, end {} (end - start {:+.0} MiB)",
        mib(start_rss),
        mib(peak),
        mib(end_rss),
        (end_rss as f64 - start_rss as f64) / 1024.0
    );
    let (p50, p99) = (quantile(&baseline, 500), quantile(&baseline, 990));
    let (f50, f99) = (quantile(&flooded, 500), quantile(&flooded, 990));
    println!(
        "valid logins, idle server:   {} in {}s, p50 {}, p99 {}",
        baseline.len(),
        args.seconds,
        ms(p50),
        ms(p99)
    );
    println!(
        "valid logins, under flood:   {} in {}s, p50 {}, p99 {}",
        flooded.len(),
        args.seconds,
        ms(f50),
        ms(f99)
    );
    println!(
        "p99 under flood / idle p99:  {:.2}",
        f99.as_secs_f64() / p99.as_secs_f64().max(1e-9)
    );
    let answered: Vec<String> = answers
        .iter()
        .map(|(status, count)| match status {
            0 => format!("{count} failed to connect"),
            status => format!("{count} × {status}"),
        })
        .collect();
    println!(
        "attackers ({} clients from {addresses} address(es)): {}",
        args.attackers,
        answered.join(", ")
    );
    Ok(())
}
