//! Choosing the accelerator: KVM only when a probe guest really runs under it (nested
//! KVM can be present and still hang guests), else TCG.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nefos_node_api::Accelerator;

/// A boot sector that writes "OK" to the first serial port and then leaves QEMU through
/// the `isa-debug-exit` device with code 0x10, which QEMU reports as exit status 33:
/// `mov dx,0x3f8; mov al,'O'; out dx,al; mov al,'K'; out dx,al; mov dx,0xf4;
/// mov al,0x10; out dx,al; hlt; jmp $-1`.
const PROBE_CODE: [u8; 18] = [
    0xba, 0xf8, 0x03, 0xb0, b'O', 0xee, 0xb0, b'K', 0xee, 0xba, 0xf4, 0x00, 0xb0, 0x10, 0xee, 0xf4,
    0xeb, 0xfd,
];
const PROBE_EXIT_STATUS: i32 = (0x10 << 1) | 1;
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The probe takes well under a second where KVM works; nested KVM that passes it in
/// seconds is the kind that later hangs real guests, so it does not count as working.
const KVM_PROBE_BUDGET: Duration = Duration::from_secs(2);

fn probe_disk() -> [u8; 512] {
    let mut sector = [0u8; 512];
    sector[..PROBE_CODE.len()].copy_from_slice(&PROBE_CODE);
    sector[510] = 0x55;
    sector[511] = 0xaa;
    sector
}

/// Whether a guest boots and runs under `accelerator` with this QEMU.
pub async fn probe(qemu: &Path, accelerator: Accelerator) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a scratch directory: {e}"))?;
    let disk = dir.path().join("probe.img");
    let serial = dir.path().join("serial.log");
    std::fs::write(&disk, probe_disk()).map_err(|e| format!("cannot write the probe disk: {e}"))?;
    let started = std::time::Instant::now();
    let mut child = tokio::process::Command::new(qemu)
        .args(["-machine", &format!("pc,accel={}", accelerator.as_str())])
        .args([
            "-m",
            "16",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
        ])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=ide,readonly=on",
            disk.display()
        ))
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", qemu.display()))?;
    let stderr = child.stderr.take();
    let status = match tokio::time::timeout(PROBE_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(format!("waiting for the probe failed: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            return Err(format!("the probe guest hung for {PROBE_TIMEOUT:?}"));
        }
    };
    let output = std::fs::read(&serial).unwrap_or_default();
    if status.code() == Some(PROBE_EXIT_STATUS) && output.starts_with(b"OK") {
        let took = started.elapsed();
        if accelerator == Accelerator::Kvm && took > KVM_PROBE_BUDGET {
            return Err(format!(
                "the probe guest took {took:?} (over {KVM_PROBE_BUDGET:?}): KVM is nested or starved here"
            ));
        }
        return Ok(());
    }
    let mut message = String::new();
    if let Some(mut stderr) = stderr {
        use tokio::io::AsyncReadExt;
        let _ = stderr.read_to_string(&mut message).await;
    }
    Err(format!(
        "the probe guest ended with {status} and printed {:?}: {}",
        String::from_utf8_lossy(&output),
        message.trim()
    ))
}

/// KVM if it works here, else TCG.
pub async fn choose(qemu: &Path) -> Accelerator {
    if !Path::new("/dev/kvm").exists() {
        return Accelerator::Tcg;
    }
    match probe(qemu, Accelerator::Kvm).await {
        Ok(()) => Accelerator::Kvm,
        Err(reason) => {
            tracing::warn!(%reason, "KVM does not run guests here; using TCG");
            Accelerator::Tcg
        }
    }
}
