//! Object storage throughput of a real `nefos up`, against `dd` on the same disk.
//!
//! (a) One 1 GiB object: PUT (streamed over HTTP, stored as blocks with fdatasync) against
//!     `dd bs=4M conv=fdatasync` writing the same bytes next to it; GET against `dd` reading
//!     that file back. Both sides read from and write to the same filesystem in the same
//!     run; the page cache is dropped before each read (as root), so both read the disk,
//!     and the reads alternate over `--read-rounds` rounds, reporting medians (and the
//!     median of each round's own ratio, which the disk's drift from one round to the next
//!     disturbs less). Goal: ratio ≥ 0.8 for both. Also reported: the server's CPU time per
//!     GET, and a GET with the object's blocks in the page cache against `dd` reading its
//!     cached copy (no goal: it shows that a warm GET is no slower).
//! (c) Peak server RSS (VmHWM) during a 4 GiB upload. Goal: < 200 MiB.
//!
//! Run: `cargo build --release -p nefos -p nefos-bench && target/release/object-bench`
//! (`--size-mib` and `--big-mib` change the sizes; `--dir` the disk to use).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use nefos_test_utils::{NefosProcess, read_credentials};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Parser)]
struct Args {
    /// Size of the object of (a), MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Size of the upload of (c), MiB (0 skips it).
    #[arg(long, default_value_t = 4096)]
    big_mib: u64,
    /// Rounds of the read comparison (the median is reported).
    #[arg(long, default_value_t = 5)]
    read_rounds: u32,
    /// Directory on the disk to measure (default: a temporary directory under /var/tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long)]
    nefos: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = match &args.nefos {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("nefos"),
    };
    let base = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let work = tempfile::tempdir_in(&base).context("cannot make a work directory")?;
    let source = work.path().join("source");
    let size = args.size_mib * 1024 * 1024;
    write_source(&source, size).await?;

    let data = work.path().join("nefos-data");
    std::fs::create_dir_all(&data)?;
    let server = NefosProcess::up(&binary, &data, &[]);
    let client = Client::login(&server.url, &data).await?;
    client
        .request(reqwest::Method::PUT, "bench")
        .send()
        .await?
        .error_for_status()?;

    println!(
        "object-bench: {} MiB object on {}",
        args.size_mib,
        base.display()
    );
    // (a) writes: dd first, then the PUT, each from the cached source file.
    let dd_copy = work.path().join("dd-copy");
    let dd_write = time(|| dd(&source, &dd_copy, true))?;
    let put = time_async(client.put_file("bench", "object", &source)).await?;
    // (a) reads, each from a cold page cache, so both read the disk. The disk's speed
    // drifts from one second to the next (it is virtual, and shared), so the two take
    // turns going first over several rounds and each figure is the median of its rounds.
    let mut cold = true;
    let reads = compare_reads(&args, &client, &server, &dd_copy, size, || {
        cold &= drop_caches();
        Ok(())
    })
    .await?;
    if !cold {
        println!("(cannot drop the page cache without root: reads below are from memory)");
    }
    let mb = |d: Duration| size as f64 / 1e6 / d.as_secs_f64();
    println!(
        "PUT  {:>8.1} MB/s   dd write+fdatasync {:>8.1} MB/s   ratio {:.2}  (goal >= 0.8)",
        mb(put),
        mb(dd_write),
        dd_write.as_secs_f64() / put.as_secs_f64()
    );
    println!(
        "GET  {:>8.1} MB/s   dd read            {:>8.1} MB/s   ratio {:.2}  (goal >= 0.8; median of rounds' ratios {:.2}; server CPU {} ms per GET)",
        mb(reads.get),
        mb(reads.dd),
        reads.dd.as_secs_f64() / reads.get.as_secs_f64(),
        reads.round_ratio,
        reads.server_cpu.as_millis(),
    );
    // The same with the blocks of the object and the copy of dd in the page cache.
    let blocks = data.join("blocks");
    let warm = compare_reads(&args, &client, &server, &dd_copy, size, || {
        read_tree(&blocks)?;
        std::fs::read(&dd_copy)?;
        Ok(())
    })
    .await?;
    println!(
        "GET  {:>8.1} MB/s   dd read            {:>8.1} MB/s   ratio {:.2}  (from the page cache; server CPU {} ms per GET)",
        mb(warm.get),
        mb(warm.dd),
        warm.dd.as_secs_f64() / warm.get.as_secs_f64(),
        warm.server_cpu.as_millis(),
    );
    std::fs::remove_file(&dd_copy)?;

    // (c) peak RSS of a fresh server during a big upload, streamed from memory.
    if args.big_mib > 0 {
        drop(server);
        let data = work.path().join("nefos-data-big");
        std::fs::create_dir_all(&data)?;
        let server = NefosProcess::up(&binary, &data, &[]);
        let client = Client::login(&server.url, &data).await?;
        client
            .request(reqwest::Method::PUT, "big")
            .send()
            .await?
            .error_for_status()?;
        let before = peak_rss_kib(server.pid())?;
        let started = Instant::now();
        client
            .put_generated("big", "object", args.big_mib * 1024 * 1024)
            .await?;
        let elapsed = started.elapsed();
        let peak = peak_rss_kib(server.pid())?;
        println!(
            "peak server RSS during a {} MiB upload: {} MiB (at start {} MiB; {:.1} MB/s)  goal < 200 MiB: {}",
            args.big_mib,
            peak / 1024,
            before / 1024,
            (args.big_mib * 1024 * 1024) as f64 / 1e6 / elapsed.as_secs_f64(),
            if peak < 200 * 1024 { "met" } else { "NOT met" }
        );
    }
    Ok(())
}

/// Medians of reads of the object by `dd` (its copy `dd_copy`) and by GET.
struct Reads {
    dd: Duration,
    get: Duration,
    /// The median over rounds of dd's time over GET's in the same round.
    round_ratio: f64,
    /// The server's CPU time (user and system) of a GET.
    server_cpu: Duration,
}

/// `--read-rounds` rounds of one read by dd and one by GET, taking turns going first (the
/// disk's speed drifts), each after `prepare`.
async fn compare_reads(
    args: &Args,
    client: &Client,
    server: &NefosProcess,
    dd_copy: &Path,
    size: u64,
    mut prepare: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Reads> {
    let mut dd_reads = Vec::new();
    let mut gets = Vec::new();
    let mut ratios = Vec::new();
    let mut cpu = Vec::new();
    for round in 0..args.read_rounds.max(1) {
        let (mut dd_read, mut get) = (Duration::ZERO, Duration::ZERO);
        for side in [round % 2, 1 - round % 2] {
            prepare()?;
            if side == 0 {
                dd_read = time(|| dd(dd_copy, Path::new("/dev/null"), false))?;
            } else {
                let before = cpu_time(server.pid())?;
                get = time_async(client.get_to_null("bench", "object", size)).await?;
                cpu.push(cpu_time(server.pid())?.saturating_sub(before));
            }
        }
        dd_reads.push(dd_read);
        gets.push(get);
        ratios.push(dd_read.as_secs_f64() / get.as_secs_f64());
    }
    ratios.sort_unstable_by(f64::total_cmp);
    Ok(Reads {
        dd: median(&mut dd_reads),
        get: median(&mut gets),
        round_ratio: ratios[ratios.len() / 2],
        server_cpu: median(&mut cpu),
    })
}

/// Reads every file under `dir` (into the page cache).
fn read_tree(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            read_tree(&entry.path())?;
        } else {
            std::fs::read(entry.path())?;
        }
    }
    Ok(())
}

/// User and system CPU time of a process so far (`/proc/PID/stat`, in ticks of 1/100 s,
/// Linux's fixed USER_HZ).
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15, the 12th and 13th after the name.
    let tick = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i)
            .context("short /proc/PID/stat")?
            .parse::<u64>()?)
    };
    Ok(Duration::from_millis((tick(11)? + tick(12)?) * 10))
}

/// Deterministic, incompressible-enough bytes (a xorshift stream), so blocks all differ.
fn fill(buffer: &mut [u8], seed: &mut u64) {
    for chunk in buffer.chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let bytes = seed.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

async fn write_source(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut file = tokio::fs::File::create(path).await?;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut buffer = vec![0u8; 4 * 1024 * 1024];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left).map_or(buffer.len(), |l| l.min(buffer.len()));
        fill(&mut buffer[..n], &mut seed);
        file.write_all(&buffer[..n]).await?;
        left -= n as u64;
    }
    file.sync_all().await?;
    Ok(())
}

fn dd(from: &Path, to: &Path, sync: bool) -> anyhow::Result<()> {
    let mut command = Command::new("dd");
    command
        .arg(format!("if={}", from.display()))
        .arg(format!("of={}", to.display()))
        .arg("bs=4M")
        .arg("status=none");
    if sync {
        command.arg("conv=fdatasync");
    }
    let status = command.status().context("cannot run dd")?;
    if !status.success() {
        bail!("dd failed: {status}");
    }
    Ok(())
}

fn median(durations: &mut [Duration]) -> Duration {
    durations.sort_unstable();
    durations[durations.len() / 2]
}

fn time(f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed())
}

async fn time_async(f: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    f.await?;
    Ok(started.elapsed())
}

/// Flushes and drops the page cache; false when not permitted (not root).
fn drop_caches() -> bool {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// Peak resident set of a process (VmHWM), KiB.
fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/PID/status")
}

struct Client {
    http: reqwest::Client,
    token: String,
    account: String,
}

impl Client {
    async fn login(url: &str, data: &Path) -> anyhow::Result<Client> {
        let password = read_credentials(data)
            .remove("demo")
            .context("no demo password")?;
        let http = reqwest::Client::new();
        let (token, account) =
            nefos_bench::login_object_store(&http, url, "demo", &password).await?;
        Ok(Client {
            http,
            token,
            account,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/{path}", self.account))
            .header("X-Auth-Token", &self.token)
    }

    async fn put_file(&self, container: &str, name: &str, file: &Path) -> anyhow::Result<()> {
        let file = tokio::fs::File::open(file).await?;
        let length = file.metadata().await?.len();
        let body =
            reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20));
        self.request(reqwest::Method::PUT, &format!("{container}/{name}"))
            .header("content-length", length)
            .body(body)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    async fn put_generated(&self, container: &str, name: &str, size: u64) -> anyhow::Result<()> {
        let chunk = 1u64 << 20;
        let chunks = size.div_ceil(chunk);
        let stream = futures::stream::iter(0..chunks).map(move |i| {
            let mut buffer = vec![0u8; usize::try_from(chunk.min(size - i * chunk)).unwrap_or(0)];
            let mut seed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            fill(&mut buffer, &mut seed);
            Ok::<_, std::io::Error>(bytes::Bytes::from(buffer))
        });
        self.request(reqwest::Method::PUT, &format!("{container}/{name}"))
            .header("content-length", size)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    async fn get_to_null(&self, container: &str, name: &str, size: u64) -> anyhow::Result<()> {
        let response = self
            .request(reqwest::Method::GET, &format!("{container}/{name}"))
            .send()
            .await?
            .error_for_status()?;
        let mut body = response.bytes_stream();
        let mut received = 0u64;
        while let Some(chunk) = body.next().await {
            received += chunk?.len() as u64;
        }
        if received != size {
            bail!("GET returned {received} bytes, expected {size}");
        }
        Ok(())
    }
}
