//! Facts about the host a node reports when it registers.

use std::path::Path;

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
