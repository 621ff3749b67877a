//! `nefos object`: the hashmap protocol means a file the cloud already holds does not
//! travel again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;

use common::*;

const MIB: usize = 1024 * 1024;

/// Writes `mib` MiB whose 4 MiB blocks all differ.
fn write_file(path: &std::path::Path, mib: usize) {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut block: Vec<u8> = (0..4 * MIB)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed.to_le_bytes()[0]
        })
        .collect();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..mib / 4 {
        block[..8].copy_from_slice(&(i as u64).to_le_bytes());
        file.write_all(&block).unwrap();
    }
    file.flush().unwrap();
}

/// The bytes an upload reports sending.
fn sent(output: &str) -> u64 {
    output
        .split("sent ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {output:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploading_a_stored_gib_again_sends_under_one_percent_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = up(&data);
    let password = read_credentials(&data)["demo"].clone();
    let file = dir.path().join("big.bin");
    let size = 1024 * MIB;
    write_file(&file, 1024);
    let path = file.to_str().unwrap();

    let first = object_cli(
        &server.url,
        &password,
        &["upload", "big", path, "--name", "one"],
    )
    .await;
    assert!(
        sent(&first) >= size as u64,
        "the first upload sends the file: {first}"
    );
    let again = object_cli(
        &server.url,
        &password,
        &["upload", "big", path, "--name", "two"],
    )
    .await;
    let sent_again = sent(&again);
    assert!(
        (sent_again as f64) < size as f64 * 0.01,
        "the second upload sent {sent_again} bytes of {size}: {again}"
    );

    // Both names read back as the file.
    let out = dir.path().join("two.out");
    object_cli(
        &server.url,
        &password,
        &["download", "big", "two", "--output", out.to_str().unwrap()],
    )
    .await;
    let (a, b) = (std::fs::read(&file).unwrap(), std::fs::read(&out).unwrap());
    assert!(a == b, "the second name does not read back as the file");
}
