//! Facts about the host a node reports when it registers.

use std::path::Path;

use nefos_node_api::Accelerator;
use nefos_qmp::Qmp;
use nefos_qmp::commands::{CpuModelName, QueryCpuModelExpansion};

/// Logical CPUs.
pub fn cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
}

/// Total RAM in MiB, from /proc/meminfo.
pub fn ram_mib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib / 1024)
}

/// The host CPU's model name, from /proc/cpuinfo.
pub fn cpu_model() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or_else(|| "unknown".to_owned(), |(_, name)| name.trim().to_owned())
}

/// Free and total bytes of the filesystem holding `path`.
pub fn disk_space(path: &Path) -> (u64, u64) {
    match rustix::fs::statvfs(path) {
        Ok(stat) => (
            stat.f_bavail.saturating_mul(stat.f_frsize),
            stat.f_blocks.saturating_mul(stat.f_frsize),
        ),
        Err(_) => (0, 0),
    }
}

/// The QEMU binary's version line, e.g. `10.0.2`.
pub async fn qemu_version(qemu: &Path) -> String {
    let output = tokio::process::Command::new(qemu)
        .arg("--version")
        .output()
        .await;
    match output {
        Ok(output) => String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .and_then(|line| line.split_whitespace().nth(3))
            .unwrap_or("unknown")
            .to_owned(),
        Err(_) => "unknown".to_owned(),
    }
}

/// The CPU features `accelerator` can give guests on this host: the properties QEMU's
/// `max` model expands to, asked of a QEMU started with no machine (as libvirt probes a
/// host). Empty, and logged, if QEMU cannot say: the node then runs no model that needs
/// a feature.
pub async fn cpu_features(qemu: &Path, accelerator: Accelerator, dir: &Path) -> Vec<String> {
    match probe_cpu_features(qemu, accelerator, dir).await {
        Ok(features) => features,
        Err(error) => {
            tracing::error!(%error, "cannot learn the CPU features QEMU offers guests; no CPU model that needs any will be placed here");
            Vec::new()
        }
    }
}

async fn probe_cpu_features(
    qemu: &Path,
    accelerator: Accelerator,
    dir: &Path,
) -> Result<Vec<String>, String> {
    let socket = dir.join("cpu-probe.sock");
    let _ = std::fs::remove_file(&socket);
    let mut child = tokio::process::Command::new(qemu)
        .args(["-machine", "none", "-accel", accelerator.as_str()])
        .args(["-nodefaults", "-display", "none", "-S", "-qmp"])
        .arg(format!("unix:{},server=on,wait=off", socket.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot run {}: {error}", qemu.display()))?;
    let started = std::time::Instant::now();
    let qmp = loop {
        match Qmp::connect(&socket, PROBE_TIMEOUT).await {
            Ok(qmp) => break qmp,
            Err(_) if started.elapsed() < PROBE_TIMEOUT => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("QEMU ended at once ({status})"));
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(error) => return Err(format!("no QMP from the probing QEMU: {error}")),
        }
    };
    let expansion = qmp
        .execute(&QueryCpuModelExpansion {
            expansion: "full",
            model: CpuModelName {
                name: "max".to_owned(),
            },
        })
        .await
        .map_err(|error| format!("query-cpu-model-expansion failed: {error}"));
    drop(qmp);
    let _ = child.kill().await;
    let _ = std::fs::remove_file(&socket);
    let mut features: Vec<String> = expansion?
        .model
        .props
        .into_iter()
        .filter(|(_, value)| value.as_bool() == Some(true))
        .map(|(name, _)| name)
        .collect();
    features.sort();
    Ok(features)
}

const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
