//! What the tiny test guest prints on its serial console.

/// The numbers of the guest's `nefos-tick N` lines, in order: it prints one a second once
/// booted, counting from 1 at each boot.
pub fn ticks(console: &str) -> Vec<u64> {
    console
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nefos-tick ")?.parse().ok())
        .collect()
}
