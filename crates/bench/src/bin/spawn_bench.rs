//! Spawn latency of a VM: from the node RPC that asks for it to the guest's ready marker,
//! against booting the same image with a bare `qemu-system-x86_64` command line.
//!
//! Starts a control plane (`nefos up --no-node`), puts the tiny guest image
//! (`target/guest/nefos-tiny.raw`, made by `scripts/build-guest-image`) in the admin's object
//! store, enrols a node and starts it (`nefos node`, TCG) beside it. The VMs are asked for
//! as the control plane asks: through `nefos_compute::NodeRpc`, which grants the node the
//! image's blocks before it calls the node. One VM is spawned and destroyed first to
//! fill the node's image cache; its time is reported on its own, labelled as cold. Then over
//! `--rounds` rounds, taking turns at going first:
//! (a) nefos: `NodeRpc::ensure_vm` (power running, a fresh VM id, 1 vCPU, 128 MiB, a user-mode NIC
//!     forwarding TCP 22 and 80, a config drive naming the host), timed from sending the RPC
//!     until `NEFOS-GUEST-READY` is in the VM's console log; then `destroy_vm`;
//! (b) bare QEMU: the closest command line by hand (same machine, accelerator, CPU model,
//!     RAM and devices: virtio-blk root disk on a fresh qcow2 overlay of the image made
//!     before the clock starts, the same restricted user-mode virtio-net with two port
//!     forwards, virtio-rng, VGA, serial to a file, `-display none`), without a config drive
//!     (the guest then calls itself nefos-tiny), timed from spawning QEMU until the marker
//!     is in its serial file; then QEMU is killed.
//!
//! Prints each round, the medians and the ratio of the medians nefos/bare. Goal: ≤ 1.2.
//! Also shown, to tell the difference from the machine's noise: how long `ensure_vm` itself
//! took, the median of the rounds' own ratios, fastest against fastest, and the CPU time
//! each QEMU had used when its marker appeared.
//!
//! Run: `cargo build --release -p nefos -p nefos-bench && target/release/spawn-bench`
//! (`--rounds`, `--image`, `--node-log`; the `nefos` binary is the one next to this
//! program).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use nefos_bench::cluster::{Cloud, Node, median};
use nefos_compute::NodeRpc;
use nefos_node::DEFAULT_CPU_MODEL;
use nefos_node_api::{
    ConfigDriveLayout, EnsureVm, GuestConfig, ImageContent, NicSpec, PowerState, VmSpec,
};
use nefos_test_utils::free_port;

/// The id the bench's node is enrolled under.
const NODE_ID: &str = "spawn-bench";

#[derive(Debug, Parser)]
struct Args {
    /// Measured rounds (each spawns one VM each way; medians are reported).
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// The guest image (default: `$NEFOS_GUEST_IMAGE`, else the workspace's
    /// `target/guest/nefos-tiny.raw`).
    #[arg(long)]
    image: Option<PathBuf>,
    /// The `nefos` binary (default: the one next to this program).
    #[arg(long)]
    nefos: Option<PathBuf>,
    /// The QEMU of the bare side (the node finds `qemu-system-x86_64` on the PATH).
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu: PathBuf,
    /// How long one boot may take, seconds.
    #[arg(long, default_value_t = 240)]
    timeout: u64,
    /// Write what the node agent logged to this file at the end (with `RUST_LOG=debug`, it
    /// shows where an `ensure_vm` spends its time).
    #[arg(long)]
    node_log: Option<PathBuf>,
}

const MARKER: &[u8] = b"NEFOS-GUEST-READY";
const GOAL_RATIO: f64 = 1.2;
/// How often the console files are read while waiting for the marker.
const POLL: Duration = Duration::from_millis(20);
const RAM_MIB: u64 = 128;
const DISK_BYTES: u64 = 1 << 30;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = match &args.nefos {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("nefos"),
    };
    if !binary.exists() {
        bail!(
            "no nefos binary at {}: build it with `cargo build --release -p nefos`",
            binary.display()
        );
    }
    let image = match (&args.image, std::env::var_os("NEFOS_GUEST_IMAGE")) {
        (Some(path), _) => path.clone(),
        (None, Some(path)) => PathBuf::from(path),
        (None, None) => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guest/nefos-tiny.raw")
        }
    };
    if !image.exists() {
        bail!(
            "no guest image at {}: run scripts/build-guest-image",
            image.display()
        );
    }
    let image = image.canonicalize()?;
    let timeout = Duration::from_secs(args.timeout);
    let load_before = load_average();

    let cloud = Cloud::start(&binary, &image, false).await?;
    let node = Node::start(&binary, &cloud, NODE_ID).await?;
    let mut bench = Bench {
        node: &node,
        nodes: &cloud.nodes,
        image_content: cloud.image.clone(),
        image: image.clone(),
        qemu: args.qemu.clone(),
        timeout,
        live: Vec::new(),
    };
    let result = bench.run(args.rounds.max(1), load_before).await;
    // Whatever happened, the node's QEMUs go through the node (destroy_vm), before the node
    // process and its directory go.
    for id in std::mem::take(&mut bench.live) {
        if let Err(error) = node.rpc.destroy_vm(&id, u64::MAX).await {
            eprintln!("spawn-bench: cannot destroy VM {id}: {error}");
        }
    }
    if let Some(path) = &args.node_log {
        std::fs::write(path, node.process.output())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    drop(node);
    drop(cloud);
    result
}

/// One boot: when the marker appeared and the CPU time its QEMU had used by then.
#[derive(Debug, Clone, Copy)]
struct Boot {
    ready: Duration,
    cpu: Duration,
}

/// One nefos spawn: the boot, and when `ensure_vm` returned.
#[derive(Debug, Clone, Copy)]
struct Spawn {
    rpc: Duration,
    boot: Boot,
}

struct Bench<'a> {
    node: &'a Node,
    /// The control plane's side: grants and the node's RPC key.
    nodes: &'a NodeRpc,
    image_content: ImageContent,
    image: PathBuf,
    qemu: PathBuf,
    timeout: Duration,
    /// VMs the node runs that still need a `destroy_vm`.
    live: Vec<String>,
}

impl Bench<'_> {
    async fn run(&mut self, rounds: u32, load_before: String) -> anyhow::Result<()> {
        println!(
            "spawn-bench: {} ({} MiB), TCG, 1 vCPU, {RAM_MIB} MiB, {rounds} rounds",
            self.image.display(),
            std::fs::metadata(&self.image)?.len() >> 20
        );
        // The first spawn fills the node's image cache from the object store: not what the
        // goal is about, so it is reported apart and not counted.
        let cold = self.nefos_spawn("cold").await?;
        println!(
            "first spawn, cold image cache (not counted): {} to the marker (ensure_vm returned after {})",
            secs(cold.boot.ready),
            secs(cold.rpc)
        );
        println!();
        let row = |cells: [&str; 7]| {
            println!(
                "{:>5}  {:>5}  {:>9}  {:>11}  {:>9}  {:>9}  {:>9}",
                cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]
            );
        };
        row([
            "round",
            "first",
            "nefos",
            "(ensure_vm)",
            "bare",
            "nefos cpu",
            "bare cpu",
        ]);
        let mut nefos = Vec::new();
        let mut bare = Vec::new();
        for round in 0..rounds {
            // The machine is shared and its speed drifts: the sides take turns going first.
            let nefos_first = round % 2 == 0;
            let (spawn, plain) = if nefos_first {
                let spawn = self.nefos_spawn(&round.to_string()).await?;
                (spawn, self.bare_spawn(round).await?)
            } else {
                let plain = self.bare_spawn(round).await?;
                (self.nefos_spawn(&round.to_string()).await?, plain)
            };
            row([
                &(round + 1).to_string(),
                if nefos_first { "nefos" } else { "bare" },
                &secs(spawn.boot.ready),
                &secs(spawn.rpc),
                &secs(plain.ready),
                &secs(spawn.boot.cpu),
                &secs(plain.cpu),
            ]);
            nefos.push(spawn);
            bare.push(plain);
        }
        let median_of = |f: &dyn Fn(usize) -> Duration| median((0..nefos.len()).map(f).collect());
        let ready = median_of(&|i| nefos[i].boot.ready);
        let plain = median_of(&|i| bare[i].ready);
        let nefos_cpu = median_of(&|i| nefos[i].boot.cpu);
        let bare_cpu = median_of(&|i| bare[i].cpu);
        row([
            "med",
            "",
            &secs(ready),
            &secs(median_of(&|i| nefos[i].rpc)),
            &secs(plain),
            &secs(nefos_cpu),
            &secs(bare_cpu),
        ]);
        let ratio = ready.as_secs_f64() / plain.as_secs_f64();
        let mut round_ratios: Vec<f64> = nefos
            .iter()
            .zip(&bare)
            .map(|(n, b)| n.boot.ready.as_secs_f64() / b.ready.as_secs_f64())
            .collect();
        round_ratios.sort_unstable_by(f64::total_cmp);
        let fastest = |times: &mut dyn Iterator<Item = Duration>| times.min().unwrap_or_default();
        let best = fastest(&mut nefos.iter().map(|s| s.boot.ready)).as_secs_f64()
            / fastest(&mut bare.iter().map(|b| b.ready)).as_secs_f64();
        println!();
        println!(
            "spawn → marker, nefos/bare: {ratio:.2}  (goal <= {GOAL_RATIO}: {})",
            if ratio <= GOAL_RATIO {
                "met"
            } else {
                "NOT met"
            }
        );
        println!(
            "  median of the rounds' own ratios {:.2}, fastest/fastest {best:.2}",
            round_ratios[round_ratios.len() / 2]
        );
        println!(
            "QEMU CPU time to the marker, nefos/bare: {:.2}",
            nefos_cpu.as_secs_f64() / bare_cpu.as_secs_f64()
        );
        println!(
            "(ensure_vm: the RPC's own time — image cache lookup, overlay, config drive, QEMU \
             start and daemonize; the rest is the guest booting. cpu: user+system time of the \
             VM's QEMU when the marker appeared, which other work on the machine skews less)"
        );
        println!(
            "note: {} CPUs shared with other work; load average {} at start, {} at end; the \
             rounds alternate which side goes first and the figures compared are medians",
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            load_before,
            load_average()
        );
        Ok(())
    }

    /// Spawns VM `spawn-<tag>` through the node, waits for its marker and destroys it.
    async fn nefos_spawn(&mut self, tag: &str) -> anyhow::Result<Spawn> {
        let id = format!("spawn-{tag}");
        let name = format!("bench-{tag}");
        let request = EnsureVm {
            generation: 1,
            spec: VmSpec {
                name: name.clone(),
                vcpus: 1,
                ram_mib: RAM_MIB,
                disk_bytes: DISK_BYTES,
                image: self.image_content.clone(),
                guest: GuestConfig {
                    hostname: name.clone(),
                    layout: ConfigDriveLayout::OpenStack,
                    ..GuestConfig::default()
                },
                nics: vec![NicSpec::UserForward {
                    mac: "52:54:00:12:34:01".to_owned(),
                    forward_tcp: vec![22, 80],
                }],
                cpu_model: None,
            },
            power: PowerState::Running,
        };
        let console = self
            .node
            .dir
            .path()
            .join("vms")
            .join(&id)
            .join("console.log");
        self.live.push(id.clone());
        let started = Instant::now();
        let status = self
            .nodes
            .ensure_vm(NODE_ID, &id, &request)
            .await
            .with_context(|| format!("ensure_vm {id}"))?;
        let rpc = started.elapsed();
        let pid = status
            .pid
            .with_context(|| format!("VM {id} has no QEMU: {status:?}"))?;
        // The console log is read straight from the node's directory rather than over the
        // console RPC, so that polling costs next to nothing and does not skew the figure.
        let boot = wait_for_marker(&console, pid, started, self.timeout, || Ok(()))
            .await
            .with_context(|| format!("VM {id} did not boot"))?;
        let output = std::fs::read_to_string(&console)?;
        if !output.contains(&format!("hostname={name}")) {
            bail!("VM {id} booted without its config drive's hostname:\n{output}");
        }
        self.node
            .rpc
            .destroy_vm(&id, 2)
            .await
            .with_context(|| format!("destroy_vm {id}"))?;
        self.live.retain(|live| *live != id);
        Ok(Spawn { rpc, boot })
    }

    /// Boots the image under a bare QEMU, waits for its marker and kills it.
    async fn bare_spawn(&self, round: u32) -> anyhow::Result<Boot> {
        let dir = tempfile::Builder::new()
            .prefix("spawn-bench-")
            .tempdir_in("/tmp")?;
        let overlay = dir.path().join("root.qcow2");
        let status = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&self.image)
            .arg(&overlay)
            .arg(DISK_BYTES.to_string())
            .status()
            .context("cannot run qemu-img")?;
        if !status.success() {
            bail!("qemu-img create failed: {status}");
        }
        let console = dir.path().join("console.log");
        let log = dir.path().join("qemu.log");
        let (ssh, http) = (free_port(), free_port());
        let mut command = Command::new(&self.qemu);
        command
            .args(["-name", &format!("guest=bare-{round},debug-threads=on")])
            .args(["-machine", "q35,accel=tcg", "-cpu", DEFAULT_CPU_MODEL])
            .args(["-smp", "1", "-m", &format!("{RAM_MIB}M")])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-device", "VGA"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .args(["-device", "virtio-rng-pci", "-blockdev"])
            .arg(format!(
                "driver=qcow2,node-name=root,discard=unmap,file.driver=file,file.filename={}",
                overlay.display()
            ))
            .args(["-device", "virtio-blk-pci,drive=root,bootindex=1"])
            .args([
                "-netdev",
                &format!(
                    "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh}-:22,\
                     hostfwd=tcp:127.0.0.1:{http}-:80"
                ),
                "-device",
                "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:02",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        let started = Instant::now();
        let mut qemu = Killed(
            command
                .spawn()
                .with_context(|| format!("cannot run {}", self.qemu.display()))?,
        );
        let pid = qemu.0.id();
        let boot = wait_for_marker(&console, pid, started, self.timeout, || {
            match qemu.0.try_wait()? {
                None => Ok(()),
                Some(status) => bail!(
                    "QEMU exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default().trim()
                ),
            }
        })
        .await
        .context("the bare QEMU did not boot")?;
        let output = std::fs::read_to_string(&console)?;
        if !output.contains("hostname=nefos-tiny") {
            bail!("the bare QEMU's guest did not call itself nefos-tiny:\n{output}");
        }
        drop(qemu);
        Ok(boot)
    }
}

/// Reads `console` every [`POLL`] until it holds the marker: the time since `started`, and
/// the CPU time QEMU `pid` had used then. `alive` is asked on every poll and ends the wait
/// with its error.
async fn wait_for_marker(
    console: &Path,
    pid: u32,
    started: Instant,
    timeout: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Boot> {
    loop {
        match std::fs::read(console) {
            Ok(bytes) if bytes.windows(MARKER.len()).any(|w| w == MARKER) => {
                let ready = started.elapsed();
                return Ok(Boot {
                    ready,
                    cpu: cpu_time(pid)?,
                });
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", console.display()));
            }
        }
        alive()?;
        if started.elapsed() > timeout {
            bail!(
                "no {} within {timeout:?}; console:\n{}",
                String::from_utf8_lossy(MARKER),
                std::fs::read_to_string(console).unwrap_or_default()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// User plus system CPU time of process `pid` so far.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("no process {pid}"))?;
    // The fields after the command name (in parentheses, maybe with spaces) start at the
    // state, field 3; utime and stime are fields 14 and 15, in USER_HZ (100 on Linux) ticks.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let tick = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("unreadable /proc/{pid}/stat: {stat}"))
    };
    Ok(Duration::from_millis((tick(11)? + tick(12)?) * 10))
}

/// A child process that is killed (SIGKILL) and reaped when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// The 1-minute load average, or `?`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}
