//! nefos against OpenStack Swift, both run on this machine and driven by the same client
//! code in the same run (issue #3, benchmark (b)).
//!
//! Starts a single-node Swift ("SAIO": proxy with tempauth, account, container and object
//! servers, memcached; `bench/swift-saio/start`) and a fresh `nefos up`, one after the
//! other, each alone on the machine while it is measured, both with their data under the same
//! directory. Each is logged in to with Swift's v1 auth (`GET /auth/v1.0`), then measured
//! with the keep-alive load generator of `nefos_bench::run_calls`:
//!  - 4 KiB objects, with 1 and with 8 concurrent clients: PUT for `--seconds` (every object
//!    has its own content, so nefos's block store cannot deduplicate them), then GET and HEAD
//!    of those objects for `--seconds` each, then DELETE of all of them;
//!  - one 256 MiB object: PUT once, then GET `--big-gets` times (MB/s).
//!
//! Prints each figure for both, the ratio nefos/Swift, and whether it meets the goal of
//! issue #3: nefos ≥ 2× Swift on each. Small-object PUTs are bound by fsync latency on both
//! sides and the machine may be shared, so `--rounds N` repeats the whole comparison
//! (alternating which system goes first) and reports, for each figure, the round with the
//! median ratio.
//!
//! Run: `cargo build --release -p nefos -p nefos-bench && target/release/swift-compare`
//! (the first run installs Swift into `.venv-swift` and memcached from Debian).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use hyper::Method;
use nefos_bench::{Call, LoadResult, Until, fill_pseudo_random, ms, run_calls};
use nefos_test_utils::{NefosProcess, free_port, read_credentials};

#[derive(Debug, Parser)]
struct Args {
    /// Seconds measured for each of PUT, GET and HEAD of small objects.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Size of the small objects, bytes.
    #[arg(long, default_value_t = 4096)]
    small_bytes: usize,
    /// Concurrent clients of the small-object runs.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    clients: Vec<usize>,
    /// Size of the large object, MiB.
    #[arg(long, default_value_t = 256)]
    big_mib: usize,
    /// GETs of the large object.
    #[arg(long, default_value_t = 3)]
    big_gets: u64,
    /// Rounds of the whole comparison; the final table gives, for each figure, the round
    /// with the median ratio.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Worker processes of each Swift server (SWIFT_WORKERS of the start script).
    #[arg(long, default_value_t = 2)]
    swift_workers: usize,
    /// Directory to keep both systems' data in (default: a temporary directory under
    /// /var/tmp, whose filesystem has the user xattrs Swift needs).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The nefos binary (default: next to this program).
    #[arg(long)]
    nefos: Option<PathBuf>,
    /// The directory of the SAIO `start` and `stop` scripts.
    #[arg(long)]
    saio: Option<PathBuf>,
}

/// One system under test, logged in.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    token: String,
    /// The path of the account, from X-Storage-Url, e.g. `/v1/AUTH_test`.
    account: String,
}

/// Every figure of one system, in the order of [`figure_names`].
type Figures = Vec<Figure>;

#[derive(Debug, Clone)]
struct Figure {
    /// Operations per second, or MB/s for the large GET.
    value: f64,
    p50: Duration,
    p99: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let nefos_binary = match &args.nefos {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("nefos"),
    };
    let saio = args
        .saio
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/swift-saio"));
    let base = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let work = tempfile::tempdir_in(&base).context("cannot make a work directory")?;
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    println!(
        "swift-compare: {} B objects, {} s per phase, clients {:?}, {} MiB large object, \
         Swift workers {} per server, data under {}",
        args.small_bytes,
        args.seconds,
        args.clients,
        args.big_mib,
        args.swift_workers,
        work.path().display()
    );
    let big = big_object(args.big_mib * 1024 * 1024);

    let mut swift_rounds = Vec::new();
    let mut nefos_rounds = Vec::new();
    for round in 0..args.rounds {
        // Each system alone on the machine while measured, on fresh data; which goes first
        // alternates from round to round, so a drift of the machine's load hits both alike.
        if args.rounds > 1 {
            println!("round {} of {}", round + 1, args.rounds);
        }
        for system in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
            let data = work.path().join(format!("round-{round}"));
            if system == 0 {
                swift_rounds.push(measure_swift(&saio, &data, &args, &big).await?);
            } else {
                nefos_rounds.push(measure_nefos(&nefos_binary, &data, &args, &big).await?);
            }
            std::fs::remove_dir_all(&data)?;
        }
        if args.rounds > 1 {
            print_table(
                &args,
                nefos_rounds.last().context("no nefos round")?,
                swift_rounds.last().context("no Swift round")?,
            );
            println!();
        }
    }
    if args.rounds > 1 {
        println!(
            "median ratio of {} rounds (each figure from its median round):",
            args.rounds
        );
    }
    let (nefos, swift) = median(&nefos_rounds, &swift_rounds);
    print_table(&args, &nefos, &swift);
    println!("load average at the end: {}", load_average());
    Ok(())
}

async fn measure_swift(
    saio: &Path,
    data: &Path,
    args: &Args,
    big: &Bytes,
) -> anyhow::Result<Figures> {
    let swift = Saio::start(saio, &data.join("swift"), args.swift_workers)?;
    let target = login(
        "Swift",
        swift.addr,
        &[("x-auth-user", "test:tester"), ("x-auth-key", "testing")],
    )
    .await?;
    let figures = measure(&target, args, big).await?;
    swift.stop()?;
    Ok(figures)
}

async fn measure_nefos(
    binary: &Path,
    data: &Path,
    args: &Args,
    big: &Bytes,
) -> anyhow::Result<Figures> {
    let data = data.join("nefos");
    std::fs::create_dir_all(&data)?;
    let server = NefosProcess::up(binary, &data, &[]);
    let addr: SocketAddr = server.url.trim_start_matches("http://").parse()?;
    let password = read_credentials(&data)
        .remove("demo")
        .context("no demo password in the credentials file")?;
    let target = login(
        "nefos",
        addr,
        &[("x-auth-user", "demo"), ("x-auth-key", &password)],
    )
    .await?;
    measure(&target, args, big).await
}

/// For each figure, both systems' figures from the round whose ratio nefos/Swift is the
/// median (the upper one of an even count): the two sides of a ratio are always measured in
/// the same round, minutes apart at most.
fn median(nefos: &[Figures], swift: &[Figures]) -> (Figures, Figures) {
    let figures = nefos.first().map_or(0, Vec::len);
    (0..figures)
        .map(|i| {
            let mut rounds: Vec<usize> = (0..nefos.len().min(swift.len())).collect();
            let ratio = |r: usize| nefos[r][i].value / swift[r][i].value;
            rounds.sort_by(|a, b| ratio(*a).total_cmp(&ratio(*b)));
            let r = rounds[rounds.len() / 2];
            (nefos[r][i].clone(), swift[r][i].clone())
        })
        .unzip()
}

/// The names of the figures, in the order [`measure`] produces them.
fn figure_names(args: &Args) -> Vec<String> {
    let kib = args.small_bytes as f64 / 1024.0;
    let mut names = Vec::new();
    for clients in &args.clients {
        for op in ["PUT", "GET", "HEAD", "DELETE"] {
            let who = if *clients == 1 { "client" } else { "clients" };
            names.push(format!("{op:<6} {kib} KiB, {clients} {who} (/s)"));
        }
    }
    names.push(format!("GET {} MiB (MB/s)", args.big_mib));
    names
}

fn print_table(args: &Args, nefos: &Figures, swift: &Figures) {
    println!();
    println!(
        "{:<30} {:>10} {:>10} {:>7}  {:<8} {:>17} {:>17}",
        "figure", "nefos", "Swift", "ratio", "goal 2x", "nefos p50/p99", "Swift p50/p99"
    );
    let mut met = 0;
    let names = figure_names(args);
    for ((name, n), s) in names.iter().zip(nefos).zip(swift) {
        let ratio = n.value / s.value;
        if ratio >= 2.0 {
            met += 1;
        }
        println!(
            "{:<30} {:>10.1} {:>10.1} {:>7.2}  {:<8} {:>17} {:>17}",
            name,
            n.value,
            s.value,
            ratio,
            if ratio >= 2.0 { "met" } else { "NOT met" },
            format!("{}/{}", short_ms(n.p50), short_ms(n.p99)),
            format!("{}/{}", short_ms(s.p50), short_ms(s.p99)),
        );
    }
    println!(
        "goal nefos >= 2x Swift on each figure: {} ({met} of {} met)",
        if met == names.len() { "met" } else { "NOT met" },
        names.len()
    );
}

fn short_ms(duration: Duration) -> String {
    ms(duration).trim_end_matches(" ms").to_owned()
}

/// Swift v1 auth: the token and the account path of X-Storage-Url.
async fn login(
    name: &'static str,
    addr: SocketAddr,
    credentials: &[(&'static str, &str)],
) -> anyhow::Result<Target> {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/auth/v1.0"))
        .header(credentials[0].0, credentials[0].1)
        .header(credentials[1].0, credentials[1].1)
        .send()
        .await?
        .error_for_status()
        .with_context(|| format!("{name}: GET /auth/v1.0"))?;
    let header = |h: &str| -> anyhow::Result<String> {
        Ok(response
            .headers()
            .get(h)
            .with_context(|| format!("{name}: no {h} in the auth answer"))?
            .to_str()?
            .to_owned())
    };
    let token = header("x-auth-token")?;
    let url = header("x-storage-url")?;
    // The path only: the requests go to the address we know, whatever host the URL names.
    let account = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
        .with_context(|| format!("{name}: odd X-Storage-Url {url}"))?;
    Ok(Target {
        name,
        addr,
        token,
        account,
    })
}

/// Every figure of one system, in the order of [`figure_names`].
async fn measure(target: &Target, args: &Args, big: &Bytes) -> anyhow::Result<Figures> {
    println!(
        "{}: measuring (load average {}; other work on the machine skews both sides)",
        target.name,
        load_average()
    );
    let mut figures = Vec::new();
    let seconds = Duration::from_secs(args.seconds);
    for &clients in &args.clients {
        let container = format!("small-{clients}");
        put_container(target, &container).await?;
        let path = Arc::new(format!("{}/{container}", target.account));
        let token = Arc::new(target.token.clone());
        let size = args.small_bytes;

        let put = {
            let (path, token) = (path.clone(), token.clone());
            run_calls(
                target.addr,
                clients,
                Until::Elapsed {
                    warmup: Duration::ZERO,
                    duration: seconds,
                },
                move |c, i| {
                    let mut body = vec![0u8; size];
                    fill_pseudo_random(&mut body, seed(c, i));
                    Some(Call {
                        method: Method::PUT,
                        path: format!("{path}/o-{c}-{i}"),
                        headers: vec![
                            ("x-auth-token", token.to_string()),
                            ("content-type", "application/octet-stream".to_owned()),
                        ],
                        body: Bytes::from(body),
                    })
                },
            )
            .await
            .with_context(|| format!("{}: PUT", target.name))?
        };
        let counts = Arc::new(put.per_client.clone());
        report(target, &format!("PUT    {clients} clients"), &put);
        figures.push(figure(&put));

        for method in [Method::GET, Method::HEAD] {
            let (path, token, counts) = (path.clone(), token.clone(), counts.clone());
            let result = run_calls(
                target.addr,
                clients,
                Until::Elapsed {
                    warmup: Duration::from_secs(1),
                    duration: seconds,
                },
                {
                    let method = method.clone();
                    move |c, i| {
                        let n = counts[c];
                        (n > 0).then(|| Call {
                            method: method.clone(),
                            path: format!("{path}/o-{c}-{}", i % n),
                            headers: vec![("x-auth-token", token.to_string())],
                            body: Bytes::new(),
                        })
                    }
                },
            )
            .await
            .with_context(|| format!("{}: {method}", target.name))?;
            if method == Method::GET {
                let expected = size as u64 * result.per_client.iter().sum::<u64>();
                if result.received_bytes != expected {
                    bail!(
                        "{}: GETs returned {} bytes, expected {expected}",
                        target.name,
                        result.received_bytes
                    );
                }
            }
            report(
                target,
                &format!("{:<6} {clients} clients", method.as_str()),
                &result,
            );
            figures.push(figure(&result));
        }

        let delete = {
            let (path, token, counts) = (path.clone(), token.clone(), counts.clone());
            run_calls(target.addr, clients, Until::Exhausted, move |c, i| {
                (i < counts[c]).then(|| Call {
                    method: Method::DELETE,
                    path: format!("{path}/o-{c}-{i}"),
                    headers: vec![("x-auth-token", token.to_string())],
                    body: Bytes::new(),
                })
            })
            .await
            .with_context(|| format!("{}: DELETE", target.name))?
        };
        report(target, &format!("DELETE {clients} clients"), &delete);
        figures.push(figure(&delete));
    }

    // The large object: one PUT (reported, not a goal: disk-bound for both), then GETs.
    put_container(target, "large").await?;
    let path = format!("{}/large/object", target.account);
    let token = target.token.clone();
    let body = big.clone();
    let put = run_calls(target.addr, 1, Until::Exhausted, {
        let path = path.clone();
        let token = token.clone();
        move |_, i| {
            (i == 0).then(|| Call {
                method: Method::PUT,
                path: path.clone(),
                headers: vec![
                    ("x-auth-token", token.clone()),
                    ("content-type", "application/octet-stream".to_owned()),
                ],
                body: body.clone(),
            })
        }
    })
    .await
    .with_context(|| format!("{}: large PUT", target.name))?;
    println!(
        "  {:<6} PUT    {} MiB once: {:.1} MB/s",
        target.name,
        args.big_mib,
        big.len() as f64 / 1e6 / put.elapsed.as_secs_f64()
    );
    let gets = args.big_gets;
    let get = run_calls(target.addr, 1, Until::Exhausted, move |_, i| {
        (i < gets).then(|| Call {
            method: Method::GET,
            path: path.clone(),
            headers: vec![("x-auth-token", token.clone())],
            body: Bytes::new(),
        })
    })
    .await
    .with_context(|| format!("{}: large GET", target.name))?;
    if get.received_bytes != big.len() as u64 * gets {
        bail!(
            "{}: large GETs returned {} bytes, expected {}",
            target.name,
            get.received_bytes,
            big.len() as u64 * gets
        );
    }
    let rate = get.received_bytes as f64 / 1e6 / get.elapsed.as_secs_f64();
    println!(
        "  {:<6} GET    {} MiB x{gets}: {rate:.1} MB/s",
        target.name, args.big_mib
    );
    figures.push(Figure {
        value: rate,
        p50: get.quantile(500),
        p99: get.quantile(990),
    });
    Ok(figures)
}

/// The 1, 5 and 15 minute load averages of the machine.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn figure(result: &LoadResult) -> Figure {
    Figure {
        value: result.per_second(),
        p50: result.quantile(500),
        p99: result.quantile(990),
    }
}

fn report(target: &Target, label: &str, result: &LoadResult) {
    println!(
        "  {:<6} {label}: {:>8.0}/s ({} requests)  p50 {}  p99 {}",
        target.name,
        result.per_second(),
        result.requests,
        ms(result.quantile(500)),
        ms(result.quantile(990)),
    );
}

/// A different seed for each object of each client.
fn seed(client: usize, index: u64) -> u64 {
    ((client as u64) << 40 ^ index).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn big_object(size: usize) -> Bytes {
    let mut body = vec![0u8; size];
    for (i, chunk) in body.chunks_mut(1 << 20).enumerate() {
        fill_pseudo_random(chunk, seed(usize::MAX >> 24, i as u64));
    }
    Bytes::from(body)
}

async fn put_container(target: &Target, container: &str) -> anyhow::Result<()> {
    let path = format!("{}/{container}", target.account);
    let token = target.token.clone();
    run_calls(target.addr, 1, Until::Exhausted, move |_, i| {
        (i == 0).then(|| Call {
            method: Method::PUT,
            path: path.clone(),
            headers: vec![("x-auth-token", token.clone())],
            body: Bytes::new(),
        })
    })
    .await
    .with_context(|| format!("{}: PUT container {container}", target.name))?;
    Ok(())
}

/// A running SAIO, stopped (by the PIDs its start script recorded) when dropped.
struct Saio {
    script_dir: PathBuf,
    dir: PathBuf,
    addr: SocketAddr,
    stopped: bool,
}

impl Saio {
    fn start(script_dir: &Path, dir: &Path, workers: usize) -> anyhow::Result<Saio> {
        let port = free_port();
        let status = Command::new(script_dir.join("start"))
            .arg(dir)
            .arg(port.to_string())
            .env("SWIFT_WORKERS", workers.to_string())
            .stdout(std::process::Stdio::null())
            .status()
            .context("cannot run bench/swift-saio/start")?;
        if !status.success() {
            bail!("bench/swift-saio/start failed: {status}");
        }
        Ok(Saio {
            script_dir: script_dir.to_owned(),
            dir: dir.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            stopped: false,
        })
    }

    fn stop(mut self) -> anyhow::Result<()> {
        self.stopped = true;
        let status = Command::new(self.script_dir.join("stop"))
            .arg(&self.dir)
            .status()
            .context("cannot run bench/swift-saio/stop")?;
        if !status.success() {
            bail!("bench/swift-saio/stop failed: {status}");
        }
        Ok(())
    }
}

impl Drop for Saio {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = Command::new(self.script_dir.join("stop"))
                .arg(&self.dir)
                .status();
        }
    }
}
