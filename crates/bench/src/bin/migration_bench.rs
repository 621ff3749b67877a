//! Live migration of a busy guest between two nodes, as the control plane's saga drives
//! it (issue: live migration's benchmark).
//!
//! Starts a control plane (`nefos up --no-node`) with the tiny guest in its object store
//! and two `nefos node` processes (TCG) on this machine. One VM (1 vCPU, `--ram-mib`,
//! default 512) writes `--overlay-mib` (default 1024) of random data to its disk (its
//! overlay), then, until the end, dirties 64 MiB of its memory without pause and prints a
//! line to its serial console every 10 ms. It is then moved from node to node `--rounds`
//! times (default 10) with the node RPC calls the saga makes (definition, incoming,
//! migration, finish, destroy), the cloud's default limits (300 ms downtime, no bandwidth
//! limit, auto-converge).
//!
//! For each move it reports:
//! - QEMU's downtime: how long the guest was paused for the switch (goal ≤ 100 ms);
//! - the guest-observed gap: the longest the host saw no console line from the guest,
//!   from the last line at the source to the first at the destination. It includes the
//!   time the destination's TCG takes to translate the guest's code again (0.1–0.4 s
//!   here), which QEMU's downtime does not count;
//! - the total time, from the destination's definition to the source's removal;
//! - bytes sent (memory as QEMU counts it, plus the mirrored disk) against what the guest
//!   had to send: its QEMU's resident memory plus its overlay's allocated bytes, both
//!   measured at the source just before the move (goal ≤ 1.2×).
//!
//! Prints each move, then medians and worst.
//!
//! Run: `cargo build --release -p nefos -p nefos-bench && target/release/migration-bench`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use clap::Parser;
use nefos_bench::cluster::{Cloud, Node};
use nefos_node_api::{
    ConfigDriveLayout, EnsureVm, FinishIncoming, GuestConfig, IncomingVm, MigrateVm,
    MigrationLimits, MigrationState, MigrationStatus, NicSpec, PowerState, Secret, VmSpec,
};

#[derive(Debug, Parser)]
struct Args {
    /// Moves measured.
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    #[arg(long, default_value_t = 512)]
    ram_mib: u64,
    /// Data the guest writes to its disk before the first move.
    #[arg(long, default_value_t = 1024)]
    overlay_mib: u64,
    /// The guest image (default: `$NEFOS_GUEST_IMAGE`, else the workspace's
    /// `target/guest/nefos-tiny.raw`).
    #[arg(long)]
    image: Option<PathBuf>,
    /// The `nefos` binary (default: the one next to this program).
    #[arg(long)]
    nefos: Option<PathBuf>,
}

const VM: &str = "b0b0b0b0-0000-4000-8000-00000000b0b0";
const DOWNTIME_GOAL_MS: f64 = 100.0;
const BYTES_GOAL: f64 = 1.2;
const READY: &str = "BENCH-OVERLAY-WRITTEN";

/// The guest's work: the overlay written (64 MiB of random data copied over and over),
/// then memory dirtied and a console line every 10 ms, without end.
fn workload(overlay_mib: u64) -> String {
    let copies = overlay_mib.div_ceil(64);
    format!(
        "#!/bin/sh
dd if=/dev/urandom of=/dev/shm/chunk bs=1M count=64 2>/dev/null
i=0
while [ $i -lt {copies} ]; do
  dd if=/dev/shm/chunk of=/dev/vda bs=1M seek=$((64 + i * 64)) conv=fsync 2>/dev/null
  i=$((i + 1))
done
rm /dev/shm/chunk
echo {READY} > /dev/ttyS0
(while :; do dd if=/dev/urandom of=/dev/shm/dirty bs=1M count=64 2>/dev/null; done) &
{}
",
        nefos_test_utils::CONSOLE_PULSE
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let nefos = match &args.nefos {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory of this program")?
            .join("nefos"),
    };
    let image = match &args.image {
        Some(path) => path.clone(),
        None => std::env::var_os("NEFOS_GUEST_IMAGE").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guest/nefos-tiny.raw"),
            PathBuf::from,
        ),
    };
    let cloud = Cloud::start(&nefos, &image, false).await?;
    let nodes = [
        Node::start(&nefos, &cloud, "bench-a").await?,
        Node::start(&nefos, &cloud, "bench-b").await?,
    ];
    let ids = ["bench-a", "bench-b"];
    let spec = VmSpec {
        name: "traveller".to_owned(),
        vcpus: 1,
        ram_mib: args.ram_mib,
        disk_bytes: (args.overlay_mib + 256) << 20,
        image: cloud.image.clone(),
        guest: GuestConfig {
            hostname: "traveller".to_owned(),
            layout: ConfigDriveLayout::OpenStack,
            user_data: Some(
                base64::engine::general_purpose::STANDARD.encode(workload(args.overlay_mib)),
            ),
            ..GuestConfig::default()
        },
        nics: vec![NicSpec::UserForward {
            mac: "52:54:00:be:0c:01".to_owned(),
            forward_tcp: Vec::new(),
        }],
        cpu_model: None,
    };
    cloud
        .nodes
        .ensure_vm(
            ids[0],
            VM,
            &EnsureVm {
                generation: 1,
                spec: spec.clone(),
                power: PowerState::Running,
            },
        )
        .await?;
    eprintln!(
        "writing {} MiB to the guest's disk (TCG: this takes a while)…",
        args.overlay_mib
    );
    if let Err(error) = wait_console(&nodes[0], READY, Duration::from_secs(1800)).await {
        destroy_everywhere(&nodes, 2).await;
        return Err(error);
    }
    // The dirtying and the ticks under way.
    tokio::time::sleep(Duration::from_secs(3)).await;

    println!(
        "{:>5} {:>11} {:>10} {:>10} {:>12} {:>12} {:>8}",
        "move", "downtime ms", "gap ms", "total ms", "sent MiB", "needed MiB", "ratio"
    );
    let mut downtimes = Vec::new();
    let mut gaps = Vec::new();
    let mut totals = Vec::new();
    let mut ratios = Vec::new();
    let mut generation = 10;
    for round in 0..args.rounds {
        let (from, to) = if round % 2 == 0 { (0, 1) } else { (1, 0) };
        let measured = match migrate(&cloud, &nodes[from], &nodes[to], ids[to], generation).await {
            Ok(measured) => measured,
            Err(error) => {
                destroy_everywhere(&nodes, generation + 100).await;
                return Err(error);
            }
        };
        generation += 10;
        let ratio = measured.sent as f64 / measured.needed as f64;
        println!(
            "{:>5} {:>11} {:>10.0} {:>10.0} {:>12} {:>12} {:>8.2}",
            round + 1,
            measured.downtime_ms,
            measured.gap.as_secs_f64() * 1000.0,
            measured.total.as_secs_f64() * 1000.0,
            measured.sent >> 20,
            measured.needed >> 20,
            ratio
        );
        downtimes.push(measured.downtime_ms as f64);
        gaps.push(measured.gap.as_secs_f64() * 1000.0);
        totals.push(measured.total.as_secs_f64() * 1000.0);
        ratios.push(ratio);
    }
    // QEMU outlives the agents: the guest goes before they do.
    destroy_everywhere(&nodes, generation).await;
    let summary = |name: &str, values: &[f64], unit: &str| {
        println!(
            "{name:<24} median {:>8.1}{unit}  worst {:>8.1}{unit}",
            median(values),
            values.iter().copied().fold(f64::MIN, f64::max)
        );
    };
    println!();
    summary("QEMU's downtime", &downtimes, " ms");
    summary("guest-observed gap", &gaps, " ms");
    summary("total time", &totals, " ms");
    summary("bytes sent / needed", &ratios, "×");
    println!(
        "downtime against its goal (≤ {DOWNTIME_GOAL_MS} ms): median {:.2}, worst {:.2}",
        median(&downtimes) / DOWNTIME_GOAL_MS,
        downtimes.iter().copied().fold(f64::MIN, f64::max) / DOWNTIME_GOAL_MS
    );
    println!(
        "bytes sent against what the guest had (goal ≤ {BYTES_GOAL}×): median {:.2}×, worst {:.2}×",
        median(&ratios),
        ratios.iter().copied().fold(f64::MIN, f64::max)
    );
    Ok(())
}

struct Measured {
    downtime_ms: u64,
    gap: Duration,
    total: Duration,
    sent: u64,
    needed: u64,
}

/// One move, with the calls the saga makes, timed and watched.
async fn migrate(
    cloud: &Cloud,
    from: &Node,
    to: &Node,
    to_id: &str,
    generation: u64,
) -> anyhow::Result<Measured> {
    let status = from.rpc.vm_status(VM).await?;
    let diagnostics = from.rpc.vm_diagnostics(VM).await?;
    let needed = (diagnostics.resident_mib << 20) + status.disk.allocated_bytes;
    let source_console = from.dir.path().join("vms").join(VM).join("console.log");
    let target_console = to.dir.path().join("vms").join(VM).join("console.log");
    let watcher = tokio::spawn(nefos_test_utils::console_gap(
        source_console,
        target_console,
        Duration::from_secs(600),
    ));
    let started = Instant::now();
    let definition = from.rpc.vm_definition(VM).await?;
    let secret = Secret::generate();
    let incoming = IncomingVm {
        generation,
        spec: definition.spec,
        launch: definition.launch,
        power: definition.power,
        secret: secret.expose().to_owned(),
    };
    cloud.nodes.prepare_incoming(to_id, VM, &incoming).await?;
    let request = MigrateVm {
        generation: generation + 1,
        destination: to.url.clone(),
        secret: secret.expose().to_owned(),
        limits: MigrationLimits::default(),
    };
    let mut sent: MigrationStatus = from.rpc.migrate_vm(VM, &request).await?;
    while !sent.state.is_over() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        sent = from.rpc.migration_status(VM).await?;
    }
    if sent.state != MigrationState::Completed {
        bail!("the move failed: {sent:?}");
    }
    to.rpc
        .finish_incoming(
            VM,
            &FinishIncoming {
                generation: generation + 2,
            },
        )
        .await?;
    from.rpc.destroy_vm(VM, generation + 3).await?;
    let total = started.elapsed();
    let gap = watcher
        .await?
        .context("the destination's console never grew")?;
    Ok(Measured {
        downtime_ms: sent.downtime_ms.unwrap_or_default(),
        gap,
        total,
        sent: sent.memory.processed_bytes + sent.disk.processed_bytes,
        needed,
    })
}

/// Destroys the bench's VM on every node (a node without it has nothing to do).
async fn destroy_everywhere(nodes: &[Node], generation: u64) {
    for node in nodes {
        if let Err(error) = node.rpc.destroy_vm(VM, generation).await {
            eprintln!("cannot destroy the bench's VM on a node: {error}");
        }
    }
}

async fn wait_console(node: &Node, needle: &str, within: Duration) -> anyhow::Result<()> {
    let path = node.dir.path().join("vms").join(VM).join("console.log");
    let started = Instant::now();
    loop {
        if tokio::fs::read_to_string(&path)
            .await
            .is_ok_and(|text| text.contains(needle))
        {
            return Ok(());
        }
        if started.elapsed() > within {
            bail!("the guest never printed {needle}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
