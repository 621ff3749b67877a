//! What the tiny test guest prints on its serial console.

/// The numbers of the guest's `nefos-tick N` lines, in order: it prints one a second once
/// booted, counting from 1 at each boot.
pub fn ticks(console: &str) -> Vec<u64> {
    console
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nefos-tick ")?.parse().ok())
        .collect()
}

/// A shell loop for a guest's user data that prints a line to the serial console every
/// 10 ms, for [`console_gap`] to watch.
pub const CONSOLE_PULSE: &str =
    "(n=0; while :; do n=$((n + 1)); echo \"pulse $n\"; usleep 10000; done) > /dev/ttyS0 &";

/// The longest the host saw no new output on a moving guest's serial console: from the
/// last growth of the source's console file to the first growth of the destination's
/// (each QEMU writes its own file), watching every 2 ms until the destination's grows or
/// `within` has passed. With a guest printing [`CONSOLE_PULSE`], that is the time the
/// guest made no progress as the host sees it: the switch's pause and the destination's
/// warm-up (under TCG, translating the guest's code again), which QEMU's downtime omits.
pub async fn console_gap(
    source: std::path::PathBuf,
    destination: std::path::PathBuf,
    within: std::time::Duration,
) -> Option<std::time::Duration> {
    use std::time::{Duration, Instant};
    let size = |path: &std::path::Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let started = Instant::now();
    let mut source_size = size(&source);
    let mut last_growth = started;
    loop {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let now = Instant::now();
        let grown = size(&source);
        if grown > source_size {
            source_size = grown;
            last_growth = now;
        }
        if size(&destination) > 0 {
            return Some(now - last_growth);
        }
        if now - started > within {
            return None;
        }
    }
}
