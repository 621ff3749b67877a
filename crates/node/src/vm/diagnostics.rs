//! What a running VM uses (Nova's server diagnostics): its vCPU threads' CPU time and
//! QEMU's resident memory from the node's `/proc`, its disks' I/O counters from QEMU.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nefos_node_api::{DiskUsage, NicSpec, NicUsage, VcpuUsage, VmDiagnostics};
use nefos_qmp::Qmp;
use nefos_qmp::commands::{QueryBlockstats, QueryCpusFast};

use super::{QMP_TIMEOUT, VmError, VmManager};
use crate::qemu;

impl VmManager {
    pub async fn diagnostics(&self, id: &str) -> Result<VmDiagnostics, VmError> {
        let (paths, record) = self.existing(id)?;
        let pid = qemu::running_pid(&paths).ok_or(VmError::NotRunning)?;
        let qmp = Qmp::connect(&paths.qmp(), QMP_TIMEOUT)
            .await
            .map_err(VmError::Qmp)?;
        let threads = qmp.execute(&QueryCpusFast {}).await.map_err(VmError::Qmp)?;
        let blockstats = qmp
            .execute(&QueryBlockstats {})
            .await
            .map_err(VmError::Qmp)?;
        drop(qmp);
        let mut vcpus = Vec::new();
        for thread in threads {
            let stat = PathBuf::from(format!("/proc/{pid}/task/{}/stat", thread.thread_id));
            vcpus.push(VcpuUsage {
                id: thread.cpu_index,
                time_ns: cpu_time_ns(&read(&stat).await?),
            });
        }
        let status = read(Path::new(&format!("/proc/{pid}/status"))).await?;
        let disks = blockstats
            .into_iter()
            .filter_map(|device| {
                let stats = device.stats;
                Some(DiskUsage {
                    name: device.node_name?,
                    read_bytes: stats.rd_bytes,
                    read_requests: stats.rd_operations,
                    write_bytes: stats.wr_bytes,
                    write_requests: stats.wr_operations,
                    errors: stats.failed_rd_operations + stats.failed_wr_operations,
                })
            })
            .collect();
        let mut nics = Vec::new();
        for nic in &record.spec.nics {
            nics.push(match nic {
                // User-mode NICs keep no counters the node can read.
                NicSpec::UserForward { mac, .. } => NicUsage {
                    mac: mac.clone(),
                    rx_bytes: None,
                    rx_packets: None,
                    tx_bytes: None,
                    tx_packets: None,
                },
                NicSpec::Port { port_id, mac, .. } => tap_usage(port_id, mac).await,
            });
        }
        let launched = tokio::fs::metadata(paths.launched())
            .await
            .and_then(|m| m.modified())
            .ok();
        let uptime_seconds = launched
            .and_then(|at| SystemTime::now().duration_since(at).ok())
            .map_or(0, |age| age.as_secs());
        Ok(VmDiagnostics {
            uptime_seconds,
            vcpus,
            memory_mib: record.spec.ram_mib,
            resident_mib: resident_kib(&status) / 1024,
            disks,
            nics,
        })
    }
}

async fn read(path: &Path) -> Result<String, VmError> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|source| match source.kind() {
            // The thread or process ended between QEMU's answer and this read.
            std::io::ErrorKind::NotFound => VmError::NotRunning,
            _ => VmError::Io {
                path: path.to_owned(),
                source,
            },
        })
}

/// User plus system time of a thread, from its `/proc/…/stat` line: fields 14 and 15,
/// counted after the command name, which is in parentheses and may hold spaces.
fn cpu_time_ns(stat: &str) -> u64 {
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `after_name` starts at field 3 (the state).
    let ticks = |field: usize| {
        fields
            .get(field - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let per_second = rustix::param::clock_ticks_per_second().max(1);
    (ticks(14) + ticks(15)).saturating_mul(1_000_000_000 / per_second)
}

/// `VmRSS` of a `/proc/PID/status`, in KiB.
fn resident_kib(status: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// A tap's counters, from the guest's side: what the tap sends, the guest receives.
async fn tap_usage(port_id: &str, mac: &str) -> NicUsage {
    let statistics = Path::new("/sys/class/net")
        .join(nefos_node_api::tap_name(port_id))
        .join("statistics");
    let counter = |name: &'static str| {
        let path = statistics.join(name);
        async move {
            tokio::fs::read_to_string(path)
                .await
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
        }
    };
    NicUsage {
        mac: mac.to_owned(),
        rx_bytes: counter("tx_bytes").await,
        rx_packets: counter("tx_packets").await,
        tx_bytes: counter("rx_bytes").await,
        tx_packets: counter("rx_packets").await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_past_a_name_with_spaces() {
        let stat = "4242 (CPU 0/TCG) S 1 4240 4240 0 -1 4194368 0 0 0 0 250 50 0 0 20 0 3 0";
        let per_second = rustix::param::clock_ticks_per_second();
        assert_eq!(cpu_time_ns(stat), 300 * (1_000_000_000 / per_second));
    }

    #[test]
    fn resident_memory_is_read_from_status() {
        let status = "Name:\tqemu\nVmPeak:\t 9999 kB\nVmRSS:\t  204800 kB\nThreads:\t5\n";
        assert_eq!(resident_kib(status), 204_800);
    }
}
