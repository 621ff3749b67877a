//! Thin provisioning: the root disk of a VM as a qcow2 overlay on a cached image, against
//! `cp` of that image.
//!
//! Makes an image of random (incompressible, non-sparse) data, 2 GiB by default, read-only
//! as in the node's image cache, then over `--rounds` rounds times
//! (a) `nefos_node::qcow2::create_overlay` of a new overlay on it (which syncs the
//!     overlay), and
//! (b) `cp --reflink=never` of the image to a new file followed by an fdatasync of the
//!     copy, so that the copy, too, has reached the disk when the clock stops (and is a
//!     real copy on filesystems that could share extents),
//! and prints each round, the medians, the ratio overlay/cp (goal ≤ 0.01) and the space the
//! overlay takes on disk (goal < 1 MiB). Every overlay and copy is deleted after its round;
//! the work directory when the program ends.
//!
//! Run: `cargo build --release -p nefos-bench && target/release/thin-bench`
//! (`--size-mib` changes the image, `--dir` the disk; the default is the target directory
//! the program was built in, i.e. the disk the project's data is on).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use nefos_bench::{fill_pseudo_random, ms};
use nefos_node::qcow2::create_overlay;
use nefos_node_api::DiskFormat;

#[derive(Debug, Parser)]
struct Args {
    /// Size of the image, MiB.
    #[arg(long, default_value_t = 2048)]
    size_mib: u64,
    /// Rounds of each measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Directory on the disk to measure (default: the target directory holding this
    /// program).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Goals of the acceptance.
const GOAL_RATIO: f64 = 0.01;
const GOAL_OVERLAY_BYTES: u64 = 1 << 20;
const GOAL_OVERLAY_TIME: Duration = Duration::from_millis(100);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = match &args.dir {
        Some(dir) => dir.clone(),
        None => default_dir()?,
    };
    std::fs::create_dir_all(&base)
        .with_context(|| format!("cannot make the directory {}", base.display()))?;
    let work = tempfile::Builder::new()
        .prefix("thin-bench-")
        .tempdir_in(&base)
        .with_context(|| format!("cannot make a work directory in {}", base.display()))?;
    let size = args.size_mib * 1024 * 1024;
    let image = work.path().join("image.raw");
    let started = Instant::now();
    write_image(&image, size)?;
    println!(
        "thin-bench: {} MiB image of random data on {} (written in {:.1} s), {} rounds",
        args.size_mib,
        work.path().display(),
        started.elapsed().as_secs_f64(),
        args.rounds.max(1)
    );

    let mut overlays = Vec::new();
    let mut copies = Vec::new();
    let mut overlay_bytes = 0;
    println!(
        "{:>6}  {:>12}  {:>16}  {:>16}",
        "round", "overlay", "cp + fdatasync", "overlay on disk"
    );
    for round in 1..=args.rounds.max(1) {
        let overlay = work.path().join(format!("root-{round}.qcow2"));
        let started = Instant::now();
        create_overlay(&overlay, &image, DiskFormat::Raw, size)
            .with_context(|| format!("cannot create {}", overlay.display()))?;
        let overlay_time = started.elapsed();
        let on_disk = std::fs::metadata(&overlay)?.blocks() * 512;
        overlay_bytes = overlay_bytes.max(on_disk);
        std::fs::remove_file(&overlay)?;

        let copy = work.path().join(format!("copy-{round}.raw"));
        let started = Instant::now();
        cp_synced(&image, &copy)?;
        let cp_time = started.elapsed();
        std::fs::remove_file(&copy)?;
        sync_fs(work.path())?;

        println!(
            "{round:>6}  {:>12}  {:>16}  {:>12} KiB",
            ms(overlay_time),
            ms(cp_time),
            on_disk / 1024
        );
        overlays.push(overlay_time);
        copies.push(cp_time);
    }
    let (overlay, cp) = (median(&mut overlays), median(&mut copies));
    let ratio = overlay.as_secs_f64() / cp.as_secs_f64();
    println!("{:>6}  {:>12}  {:>16}", "median", ms(overlay), ms(cp));
    println!();
    let goals = [
        (
            "ratio overlay/cp",
            format!("{ratio:.5}"),
            format!("<= {GOAL_RATIO}"),
            ratio <= GOAL_RATIO,
        ),
        (
            "overlay time (median)",
            ms(overlay),
            format!("< {} ms", GOAL_OVERLAY_TIME.as_millis()),
            overlay < GOAL_OVERLAY_TIME,
        ),
        (
            "overlay on disk (max)",
            format!("{} KiB", overlay_bytes / 1024),
            format!("< {} KiB", GOAL_OVERLAY_BYTES / 1024),
            overlay_bytes < GOAL_OVERLAY_BYTES,
        ),
    ];
    for (what, value, goal, met) in goals {
        println!("{what:<22} {value:>10}   goal {goal:<10} {}", verdict(met));
    }
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// The target directory this program was built in (`target/release/thin-bench`), so that
/// the image lies on the same disk as the project's data.
fn default_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_owned)
        .context("this program is not in a target directory; pass --dir")
}

/// A non-sparse file of incompressible bytes, synced, then made read-only like a cached
/// image.
fn write_image(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut file =
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut buffer = vec![0u8; 4 * 1024 * 1024];
    let mut left = size;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    while left > 0 {
        let n = usize::try_from(left).map_or(buffer.len(), |l| l.min(buffer.len()));
        fill_pseudo_random(&mut buffer[..n], seed);
        seed = seed.wrapping_add(0x2545_f491_4f6c_dd1d);
        file.write_all(&buffer[..n])
            .with_context(|| format!("cannot write {}", path.display()))?;
        left -= n as u64;
    }
    file.sync_all()
        .with_context(|| format!("cannot sync {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444))?;
    Ok(())
}

/// `cp` of `from` to `to`, then an fdatasync of `to`.
fn cp_synced(from: &Path, to: &Path) -> anyhow::Result<()> {
    let status = Command::new("cp")
        .arg("--reflink=never")
        .arg(from)
        .arg(to)
        .status()
        .context("cannot run cp")?;
    if !status.success() {
        bail!("cp failed: {status}");
    }
    File::open(to)
        .and_then(|copy| copy.sync_data())
        .with_context(|| format!("cannot sync {}", to.display()))
}

/// Syncs the filesystem of `dir` (`sync -f`), so that one round's deletions do not weigh
/// on the next.
fn sync_fs(dir: &Path) -> anyhow::Result<()> {
    let status = Command::new("sync")
        .arg("-f")
        .arg(dir)
        .status()
        .context("cannot run sync")?;
    if !status.success() {
        bail!("sync failed: {status}");
    }
    Ok(())
}

fn median(durations: &mut [Duration]) -> Duration {
    durations.sort_unstable();
    durations[durations.len() / 2]
}
