//! Image upload through Glance against an object upload of the same size, on one `nefos up`.
//!
//! Over `--rounds` rounds, each with two fresh files of pseudo-random (incompressible)
//! data, 1 GiB by default, times (a) `swift upload` of one into a container and (b)
//! `openstack image create --file` of the other (POST, streamed PUT of the data, which also
//! computes the image's SHA-512 and inspects it, then GET), taking turns going first. Prints
//! each round, the medians and the ratio swift/image (goal ≥ 0.9: an image upload costs
//! little more than the object it becomes). The two clients differ in what they cost
//! whatever the size (the `openstack` CLI starts slower, and discovers the image service
//! and fetches the image after the upload), so the same run also times each with a 1 KiB
//! file and prints the ratio of the two without those fixed costs: what the server's two
//! upload paths cost per byte. An image's MD5 (`checksum`) is the object store's digest
//! job's, after the upload returns: each round waits (untimed) until it is there, so that
//! it does not run into the next measurement, and prints how long after the upload it
//! came. Then uploads the last image's file again as a second image and prints how many
//! blocks that stored (goal: 0, the blocks are shared).
//!
//! Run: `cargo build --release -p nefos -p nefos-bench && target/release/image-bench`
//! (the real clients come from the repo's `.venv`, which `scripts/setup` makes; `--dir`
//! picks the disk, `--size-mib` the size).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use nefos_bench::{fill_pseudo_random, ms};
use nefos_test_utils::{NefosProcess, read_credentials};

#[derive(Debug, Parser)]
struct Args {
    /// Size of each file, MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Rounds of each measurement (the median is reported). Even, so that each client goes
    /// first as often as the other.
    #[arg(long, default_value_t = 4)]
    rounds: u32,
    /// Directory on the disk to measure (default: /var/tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The `nefos` binary (default: beside this program).
    #[arg(long)]
    nefos: Option<PathBuf>,
    /// The Python venv holding `openstack` and `swift` (default: the repo's `.venv`).
    #[arg(long)]
    venv: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = match &args.nefos {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("nefos"),
    };
    let venv = args
        .venv
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let openstack = venv.join("bin/openstack");
    let swift = venv.join("bin/swift");
    for tool in [&openstack, &swift] {
        if !tool.exists() {
            bail!("{} is missing: run scripts/setup first", tool.display());
        }
    }
    let base = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let work = tempfile::tempdir_in(&base).context("cannot make a work directory")?;
    let data = work.path().join("nefos-data");
    std::fs::create_dir_all(&data)?;
    let server = NefosProcess::up(&binary, &data, &[]);
    let password = read_credentials(&data)
        .get("demo")
        .cloned()
        .context("no demo password in the credentials")?;
    let clouds = data.join("clouds.yaml");
    let auth_url = format!("{}/identity/v3", server.url);
    let size = args.size_mib * 1024 * 1024;
    println!(
        "image-bench: {} MiB files on {}, {} rounds",
        args.size_mib,
        base.display(),
        args.rounds
    );

    let swift_upload = |file: &Path, name: &str| -> anyhow::Result<Duration> {
        let mut command = Command::new(&swift);
        command
            .args(["--auth-version", "3", "--os-auth-url", &auth_url])
            .args(["--os-username", "demo", "--os-password", &password])
            .args([
                "--os-project-name",
                "demo",
                "--os-user-domain-name",
                "Default",
            ])
            .args(["--os-project-domain-name", "Default"])
            .args(["upload", "bench", "--object-name", name])
            .arg(file);
        timed(command)
    };
    let image_create = |file: &Path, name: &str| -> anyhow::Result<Duration> {
        let mut command = Command::new(&openstack);
        command
            .env("OS_CLIENT_CONFIG_FILE", &clouds)
            .args(["--os-cloud", "nefos-demo", "image", "create", name])
            .args([
                "--disk-format",
                "raw",
                "--container-format",
                "bare",
                "--file",
            ])
            .arg(file);
        timed(command)
    };

    // What each client costs whatever the size, measured the same way.
    let small = work.path().join("small");
    write_random(&small, 1024, 0)?;
    let mut swift_fixed = Vec::new();
    let mut image_fixed = Vec::new();
    for round in 0..3 {
        swift_fixed.push(swift_upload(&small, &format!("small-{round}"))?);
        image_fixed.push(image_create(&small, &format!("small-{round}"))?);
    }
    let swift_fixed = median(&mut swift_fixed);
    let image_fixed = median(&mut image_fixed);
    println!(
        "fixed cost (1 KiB): swift upload {}   openstack image create {}",
        ms(swift_fixed),
        ms(image_fixed)
    );

    let runtime = tokio::runtime::Runtime::new()?;
    let checksums = runtime.block_on(ChecksumWatch::login(&server.url, &password))?;

    let mut swift_times = Vec::new();
    let mut image_times = Vec::new();
    let mut ratios = Vec::new();
    let mut last_image_file = None;
    for round in 0..args.rounds {
        let swift_file = work.path().join(format!("swift-{round}"));
        let image_file = work.path().join(format!("image-{round}"));
        write_random(&swift_file, size, u64::from(round) * 2 + 1)?;
        write_random(&image_file, size, u64::from(round) * 2 + 2)?;
        settle();
        let image_name = format!("image-{round}");
        let create = || -> anyhow::Result<(Duration, Duration)> {
            let time = image_create(&image_file, &image_name)?;
            let md5 = runtime.block_on(checksums.wait(&image_name))?;
            Ok((time, md5))
        };
        let (swift_time, (image_time, md5_after)) = if round % 2 == 0 {
            let s = swift_upload(&swift_file, &format!("object-{round}"))?;
            (s, create()?)
        } else {
            let i = create()?;
            (swift_upload(&swift_file, &format!("object-{round}"))?, i)
        };
        println!(
            "round {round}: swift upload {}   openstack image create {}   ratio {:.2}   (image MD5 {} later)",
            ms(swift_time),
            ms(image_time),
            swift_time.as_secs_f64() / image_time.as_secs_f64(),
            ms(md5_after)
        );
        swift_times.push(swift_time);
        image_times.push(image_time);
        ratios.push(swift_time.as_secs_f64() / image_time.as_secs_f64());
        std::fs::remove_file(&swift_file)?;
        if let Some(previous) = last_image_file.replace(image_file) {
            std::fs::remove_file(previous)?;
        }
    }
    let swift_median = median(&mut swift_times);
    let image_median = median(&mut image_times);
    let mb = |d: Duration| size as f64 / 1e6 / d.as_secs_f64();
    println!(
        "median: swift upload {} ({:.0} MB/s)   openstack image create {} ({:.0} MB/s)   ratio swift/image {:.2}  (goal >= 0.9)",
        ms(swift_median),
        mb(swift_median),
        ms(image_median),
        mb(image_median),
        swift_median.as_secs_f64() / image_median.as_secs_f64()
    );
    ratios.sort_by(f64::total_cmp);
    println!(
        "median of the rounds' ratios: {:.2}",
        ratios[ratios.len() / 2]
    );
    let net = |total: Duration, fixed: Duration| total.saturating_sub(fixed).as_secs_f64();
    println!(
        "without each client's fixed cost: swift upload {:.0} MB/s   image upload {:.0} MB/s   ratio {:.2}",
        size as f64 / 1e6 / net(swift_median, swift_fixed),
        size as f64 / 1e6 / net(image_median, image_fixed),
        net(swift_median, swift_fixed) / net(image_median, image_fixed)
    );

    let Some(file) = last_image_file else {
        bail!("no rounds were run");
    };
    let before = blocks_in(&data.join("blocks"));
    let again = image_create(&file, "image-again")?;
    let stored = blocks_in(&data.join("blocks")).saturating_sub(before);
    println!(
        "second upload of the same bytes: {} , {stored} new blocks stored  (goal: 0)",
        ms(again)
    );
    drop(server);
    Ok(())
}

/// Waits for images' MD5s through Glance's API, as the demo user.
struct ChecksumWatch {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl ChecksumWatch {
    async fn login(url: &str, password: &str) -> anyhow::Result<ChecksumWatch> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "demo", "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}
        }});
        let response = client
            .post(format!("{url}/identity/v3/auth/tokens"))
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        let token = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .context("no token in the login answer")?
            .to_owned();
        Ok(ChecksumWatch {
            client,
            url: url.to_owned(),
            token,
        })
    }

    /// How long until the image named `name` shows its MD5.
    async fn wait(&self, name: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let list: serde_json::Value = self
                .client
                .get(format!("{}/image/v2/images?name={name}", self.url))
                .header("X-Auth-Token", &self.token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            if list["images"][0]["checksum"].is_string() {
                return Ok(started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("image {name} has no MD5 after two minutes");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Lets the disk finish writing the files just made, so that their write-back does not
/// slow whichever upload goes first.
fn settle() {
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_secs(3));
}

/// Runs `command`, which must succeed, and times it.
fn timed(mut command: Command) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = command.output().context("cannot run a client")?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!(
            "{:?} failed: {}{}",
            command,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(elapsed)
}

fn write_random(path: &Path, size: u64, seed: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    let mut buffer = vec![0u8; 8 << 20];
    let mut left = size;
    let mut seed = seed;
    while left > 0 {
        fill_pseudo_random(&mut buffer, seed);
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let n = usize::try_from(left.min(buffer.len() as u64))?;
        file.write_all(&buffer[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    Ok(())
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn blocks_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() { blocks_in(&path) } else { 1 }
                })
                .sum()
        })
        .unwrap_or(0)
}
