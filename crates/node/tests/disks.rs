//! The node's disks against the real tools and the real block store: qcow2 overlays
//! written by `nefos_node::qcow2` as QEMU's `qemu-img` and `qemu-io` read them, on raw and
//! qcow2 bases, thin provisioning (an overlay on a 2 GiB image costs milliseconds and
//! kilobytes), and the image cache filled from a `nefos_blocks::BlockStore`, inspecting
//! what it caches.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::collections::HashMap;
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nefos_blocks::{BLOCK_SIZE, BlockHash, BlockStore, BlockStoreConfig, hash_block};
use nefos_disk_format::{ContentFormat, InspectError};
use nefos_node::control_plane::ControlPlaneError;
use nefos_node::image_cache::{BlockSource, CacheError, FillStats, ImageCache, ImageKey};
use nefos_node::qcow2::{OverlayError, create_overlay};
use nefos_node_api::{DiskFormat, ImageContent};
use serde_json::Value;
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

// ---------------------------------------------------------------------------------------
// qcow2 overlays, as QEMU sees them
// ---------------------------------------------------------------------------------------

/// The base image's layout: (offset, length, byte) runs, 4 MiB in all, one of them zero.
const BASE_RUNS: [(u64, u64, u8); 4] = [
    (0, MIB, 0xaa),
    (MIB, MIB, 0x00),
    (2 * MIB, MIB + 192 * 1024, 0x5b),
    (3 * MIB + 192 * 1024, 832 * 1024, 0x11),
];
const BASE_SIZE: u64 = 4 * MIB;

/// A raw base image with [`BASE_RUNS`], read-only as in the image cache.
fn write_base(dir: &Path) -> PathBuf {
    let path = dir.join("base.raw");
    let mut data = Vec::with_capacity(BASE_SIZE as usize);
    for (offset, len, byte) in BASE_RUNS {
        assert_eq!(data.len() as u64, offset);
        data.resize((offset + len) as usize, byte);
    }
    assert_eq!(data.len() as u64, BASE_SIZE);
    std::fs::write(&path, &data).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    path
}

fn sha256_file(path: &Path) -> [u8; 32] {
    Sha256::digest(std::fs::read(path).unwrap()).into()
}

/// Runs a QEMU tool; returns its stdout, failing the test (with all output) unless it
/// exits 0.
fn qemu(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{tool} {args:?} exited {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `qemu-img check` exits 0 and finds no errors, corruptions or leaks.
fn assert_check_clean(overlay: &Path) {
    let out = qemu(
        "qemu-img",
        &[
            "check",
            "-f",
            "qcow2",
            "--output=json",
            overlay.to_str().unwrap(),
        ],
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["check-errors"], 0, "{report}");
    for field in [
        "corruptions",
        "leaks",
        "corruptions-fixed",
        "leaks-fixed",
        "compressed-clusters",
    ] {
        let value = report.get(field).and_then(Value::as_u64).unwrap_or(0);
        assert_eq!(value, 0, "{field} in {report}");
    }
}

/// `qemu-io` runs `command` (a `read -P` or `write -P`) on the overlay, which must succeed
/// (a pattern mismatch makes `qemu-io` exit 1 and print that it failed).
fn qemu_io(overlay: &Path, command: &str) {
    let out = qemu(
        "qemu-io",
        &["-f", "qcow2", "-c", command, overlay.to_str().unwrap()],
    );
    assert!(
        !out.contains("failed") && (out.contains("read ") || out.contains("wrote ")),
        "qemu-io {command:?}: {out}"
    );
}

/// The L1 table's entries, as the header gives them (big-endian u32 at offset 36).
fn l1_entries(overlay: &Path) -> u64 {
    let header = std::fs::read(overlay).unwrap();
    u64::from(u32::from_be_bytes(header[36..40].try_into().unwrap()))
}

/// Everything QEMU should say about a fresh overlay of `size` on `base`, and what it reads
/// and writes through it. Returns the fresh overlay's length.
fn check_overlay(dir: &Path, base: &Path, size: u64) -> u64 {
    let overlay = dir.join(format!("overlay-{size}.qcow2"));
    let base_sum = sha256_file(base);
    create_overlay(&overlay, base, DiskFormat::Raw, size).unwrap();
    let fresh = std::fs::metadata(&overlay).unwrap();
    let on_disk = fresh.blocks() * 512;
    assert!(on_disk < MIB, "a {size}-byte overlay takes {on_disk} bytes");

    assert_check_clean(&overlay);
    let info: Value = serde_json::from_str(&qemu(
        "qemu-img",
        &[
            "info",
            "-f",
            "qcow2",
            "--output=json",
            overlay.to_str().unwrap(),
        ],
    ))
    .unwrap();
    assert_eq!(info["format"], "qcow2", "{info}");
    assert_eq!(info["virtual-size"], size, "{info}");
    assert_eq!(info["backing-filename"], base.to_str().unwrap(), "{info}");
    assert_eq!(
        info["full-backing-filename"],
        base.to_str().unwrap(),
        "{info}"
    );
    assert_eq!(info["backing-filename-format"], "raw", "{info}");
    assert_eq!(info["cluster-size"], 65536, "{info}");
    assert_eq!(info["format-specific"]["data"]["compat"], "1.1", "{info}");
    assert_eq!(info["format-specific"]["data"]["corrupt"], false, "{info}");

    // The base shows through, run by run (the zero run included)…
    for (offset, len, byte) in BASE_RUNS {
        qemu_io(&overlay, &format!("read -P {byte:#04x} {offset} {len}"));
    }
    // … and past its end the disk reads zeros, up to the last byte.
    if size > BASE_SIZE {
        qemu_io(&overlay, &format!("read -P 0 {BASE_SIZE} {MIB}"));
        qemu_io(&overlay, &format!("read -P 0 {} 65536", size - 65536));
    }

    // A guest write lands in the overlay, not in the base: part of one run, across the
    // boundary of two, and (for a larger disk) in the last cluster.
    qemu_io(&overlay, "write -P 0xcd 524288 131072");
    qemu_io(
        &overlay,
        &format!("write -P 0xcd {} 262144", 3 * MIB + 64 * 1024),
    );
    if size > BASE_SIZE {
        qemu_io(&overlay, &format!("write -P 0xcd {} 65536", size - 65536));
    }
    qemu_io(&overlay, "read -P 0xaa 0 524288");
    qemu_io(&overlay, "read -P 0xcd 524288 131072");
    qemu_io(&overlay, "read -P 0xaa 655360 393216");
    qemu_io(&overlay, "read -P 0 1048576 1048576");
    qemu_io(&overlay, &format!("read -P 0x5b {} 1114112", 2 * MIB));
    qemu_io(
        &overlay,
        &format!("read -P 0xcd {} 262144", 3 * MIB + 64 * 1024),
    );
    qemu_io(
        &overlay,
        &format!("read -P 0x11 {} 720896", 3 * MIB + 320 * 1024),
    );
    if size > BASE_SIZE {
        qemu_io(&overlay, &format!("read -P 0 {BASE_SIZE} {MIB}"));
        qemu_io(&overlay, &format!("read -P 0xcd {} 65536", size - 65536));
    }
    assert_eq!(
        sha256_file(base),
        base_sum,
        "the base changed under the overlay"
    );
    assert_check_clean(&overlay);
    fresh.len()
}

#[test]
fn overlays_are_qcow2_that_qemu_reads_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_base(dir.path());
    let lengths: Vec<u64> = [BASE_SIZE, 10 * GIB, 2 * TIB, 10 * TIB]
        .into_iter()
        .map(|size| check_overlay(dir.path(), &base, size))
        .collect();
    // One L2 table maps 512 MiB (8192 entries of 64 KiB clusters), so 2 TiB needs 4096
    // L1 entries: one 64 KiB cluster of them, exactly full. 10 TiB needs 20480: three.
    // Each file is the header, the refcount table, one refcount block and its L1 table.
    assert_eq!(
        l1_entries(&dir.path().join(format!("overlay-{}.qcow2", 2 * TIB))),
        4096
    );
    assert_eq!(
        l1_entries(&dir.path().join(format!("overlay-{}.qcow2", 10 * TIB))),
        20480
    );
    assert_eq!(lengths, [4, 4, 4, 6].map(|clusters| clusters * 65536));
}

#[test]
fn an_existing_file_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_base(dir.path());
    let overlay = dir.path().join("disk.qcow2");
    std::fs::write(&overlay, b"a guest's data").unwrap();
    let err = create_overlay(&overlay, &base, DiskFormat::Raw, 10 * GIB).unwrap_err();
    assert!(
        matches!(&err, OverlayError::Io(e) if e.kind() == ErrorKind::AlreadyExists),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&overlay).unwrap(), b"a guest's data");

    // A second overlay at the path of a good one is refused too, and leaves it good.
    let good = dir.path().join("good.qcow2");
    create_overlay(&good, &base, DiskFormat::Raw, 10 * GIB).unwrap();
    let before = sha256_file(&good);
    assert!(create_overlay(&good, &base, DiskFormat::Raw, 20 * GIB).is_err());
    assert_eq!(sha256_file(&good), before);
    assert_check_clean(&good);
}

/// A qcow2 base (the raw base converted by `qemu-img`) shows through an overlay as the
/// raw one does, and the overlay's header names its format, so that QEMU's tools do not
/// read the base's metadata as disk.
#[test]
fn overlays_on_a_qcow2_base_read_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let raw = write_base(dir.path());
    let base = dir.path().join("base.qcow2");
    qemu(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            raw.to_str().unwrap(),
            base.to_str().unwrap(),
        ],
    );
    let overlay = dir.path().join("root.qcow2");
    create_overlay(&overlay, &base, DiskFormat::Qcow2, 10 * GIB).unwrap();
    assert_check_clean(&overlay);
    let info: Value = serde_json::from_str(&qemu(
        "qemu-img",
        &[
            "info",
            "-f",
            "qcow2",
            "--output=json",
            overlay.to_str().unwrap(),
        ],
    ))
    .unwrap();
    assert_eq!(info["backing-filename-format"], "qcow2", "{info}");
    assert_eq!(info["backing-filename"], base.to_str().unwrap(), "{info}");
    assert_eq!(info["virtual-size"], 10 * GIB, "{info}");
    for (offset, len, byte) in BASE_RUNS {
        qemu_io(&overlay, &format!("read -P {byte:#04x} {offset} {len}"));
    }
    qemu_io(&overlay, &format!("read -P 0 {BASE_SIZE} {MIB}"));
    qemu_io(&overlay, "write -P 0xcd 524288 131072");
    qemu_io(&overlay, "read -P 0xcd 524288 131072");
    qemu_io(&overlay, "read -P 0xaa 0 524288");
    assert_check_clean(&overlay);
}

/// Acceptance (thin provisioning): the root disk of a VM on a cached 2 GiB image takes
/// under 100 ms and under 1 MiB of new disk.
#[test]
fn an_overlay_on_a_2_gib_image_is_fast_and_small() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("image.raw");
    // Sparse here: creating an overlay never reads its base (`thin-bench` uses real data).
    File::create(&base).unwrap().set_len(2 * GIB).unwrap();
    let mut best = Duration::MAX;
    for round in 0..5 {
        let overlay = dir.path().join(format!("root-{round}.qcow2"));
        let started = Instant::now();
        create_overlay(&overlay, &base, DiskFormat::Raw, 2 * GIB).unwrap();
        best = best.min(started.elapsed());
        let on_disk = std::fs::metadata(&overlay).unwrap().blocks() * 512;
        assert!(on_disk < MIB, "the overlay takes {on_disk} bytes on disk");
    }
    assert!(best < Duration::from_millis(100), "best of 5: {best:?}");
    let overlay = dir.path().join("root-0.qcow2");
    assert_check_clean(&overlay);
    let info: Value = serde_json::from_str(&qemu(
        "qemu-img",
        &["info", "--output=json", overlay.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(info["virtual-size"], 2 * GIB);
}

// ---------------------------------------------------------------------------------------
// The image cache, filled from a real block store
// ---------------------------------------------------------------------------------------

/// A block store as the image cache's source, counting what is fetched.
#[derive(Debug)]
struct CountingStore {
    store: BlockStore,
    fetches: Mutex<HashMap<BlockHash, usize>>,
    /// Slows every fetch, so that concurrent fills overlap.
    delay: Duration,
}

impl CountingStore {
    async fn open(dir: &Path) -> CountingStore {
        let store = BlockStore::open(&BlockStoreConfig::Fs {
            path: dir.to_owned(),
        })
        .await
        .unwrap();
        CountingStore {
            store,
            fetches: Mutex::new(HashMap::new()),
            delay: Duration::ZERO,
        }
    }

    fn total(&self) -> usize {
        self.fetches.lock().unwrap().values().sum()
    }

    fn of(&self, hash: &BlockHash) -> usize {
        self.fetches.lock().unwrap().get(hash).copied().unwrap_or(0)
    }

    async fn put_all(&self, blocks: &[Vec<u8>]) {
        for block in blocks {
            let hash = self.store.put(Bytes::copy_from_slice(block)).await.unwrap();
            assert_eq!(hash, hash_block(block));
        }
    }
}

impl BlockSource for CountingStore {
    async fn fetch(&self, hash: &BlockHash) -> Result<Bytes, ControlPlaneError> {
        *self.fetches.lock().unwrap().entry(*hash).or_default() += 1;
        tokio::time::sleep(self.delay).await;
        match self.store.get(hash).await {
            Ok(Some(data)) => Ok(data),
            Ok(None) => Err(ControlPlaneError::MissingBlock { hash: *hash }),
            Err(e) => panic!("block store: {e}"),
        }
    }
}

/// Deterministic incompressible bytes (xorshift from `seed`; different seeds below 2^63
/// give different bytes).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut seed = (seed << 1) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An image: its blocks (each as stored in the image: full length but the last).
#[derive(Debug, Clone)]
struct Image {
    blocks: Vec<Vec<u8>>,
}

impl Image {
    fn bytes(&self) -> Vec<u8> {
        self.blocks.concat()
    }

    fn size(&self) -> u64 {
        self.blocks.iter().map(|b| b.len() as u64).sum()
    }

    fn hashes(&self) -> Vec<BlockHash> {
        self.blocks.iter().map(|b| hash_block(b)).collect()
    }

    fn content(&self) -> ImageContent {
        ImageContent {
            size: self.size(),
            block_size: BLOCK_SIZE as u64,
            hashes: self.hashes().iter().map(BlockHash::to_hex).collect(),
            format: DiskFormat::Raw,
        }
    }

    fn key(&self) -> ImageKey {
        ImageKey::new(&self.content()).unwrap()
    }
}

/// Image A: five blocks, one all zero, one ending in zeros, and a short last one.
fn image_a() -> Image {
    let mut trailing = random_bytes(BLOCK_SIZE / 2, 3);
    trailing.resize(BLOCK_SIZE, 0);
    Image {
        blocks: vec![
            random_bytes(BLOCK_SIZE, 1),
            vec![0; BLOCK_SIZE],
            trailing,
            random_bytes(BLOCK_SIZE, 4),
            random_bytes(MIB as usize + 123, 5),
        ],
    }
}

/// The files of `dir` whose names start with `id`.
fn files_of(dir: &Path, id: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_fills_images_from_the_block_store_once_per_block() {
    let dir = tempfile::tempdir().unwrap();
    let source = CountingStore::open(&dir.path().join("blocks")).await;
    let cache_dir = dir.path().join("cache");
    let cache = ImageCache::open(&cache_dir).unwrap();

    // A: every block but the zero one is fetched, once; the cached file is A, read-only.
    let a = image_a();
    source.put_all(&a.blocks).await;
    let key_a = a.key();
    let (cached, stats) = cache.ensure(&key_a, &source).await.unwrap();
    assert_eq!(
        stats,
        FillStats {
            fetched: 4,
            reused: 0,
            zero: 1
        }
    );
    assert_eq!(source.total(), 4);
    for (index, hash) in a.hashes().iter().enumerate() {
        assert_eq!(source.of(hash), usize::from(index != 1), "block {index}");
    }
    assert_eq!(cached.path, cache.path_of(&key_a.id, DiskFormat::Raw));
    assert_eq!(cached.size, a.size());
    assert!(std::fs::read(&cached.path).unwrap() == a.bytes());
    let meta = std::fs::metadata(&cached.path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o444);
    // The zero block is a hole.
    assert!(meta.blocks() * 512 <= a.size() - BLOCK_SIZE as u64);
    assert_eq!(
        files_of(&cache_dir, &key_a.id).len(),
        2,
        "{:?}",
        files_of(&cache_dir, &key_a.id)
    );

    // Again: nothing to do.
    let (again, stats) = cache.ensure(&key_a, &source).await.unwrap();
    assert_eq!(stats, FillStats::default());
    assert_eq!(again.path, cached.path);
    assert_eq!(source.total(), 4);

    // B shares all of A's blocks but one, which alone is fetched; the others are copied
    // from A's cached file.
    let mut b = a.clone();
    b.blocks[3] = random_bytes(BLOCK_SIZE, 6);
    source.put_all(&b.blocks[3..4]).await;
    let key_b = b.key();
    assert_ne!(key_b.id, key_a.id);
    let (cached_b, stats) = cache.ensure(&key_b, &source).await.unwrap();
    assert_eq!(
        stats,
        FillStats {
            fetched: 1,
            reused: 3,
            zero: 1
        }
    );
    assert_eq!(source.total(), 5);
    assert_eq!(source.of(&hash_block(&b.blocks[3])), 1);
    assert!(std::fs::read(&cached_b.path).unwrap() == b.bytes());
    assert!(std::fs::read(&cached.path).unwrap() == a.bytes());

    // A cache opened again over the same directory still has both.
    drop(cache);
    let cache = ImageCache::open(&cache_dir).unwrap();
    let (_, stats) = cache.ensure(&key_b, &source).await.unwrap();
    assert_eq!(stats, FillStats::default());
    assert_eq!(source.total(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_missing_blocks_fail_the_fill_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = CountingStore::open(&dir.path().join("blocks")).await;
    let cache_dir = dir.path().join("cache");
    let cache = ImageCache::open(&cache_dir).unwrap();

    // C: a good block, then one whose stored bytes are damaged on disk.
    let good = random_bytes(BLOCK_SIZE, 10);
    let damaged = random_bytes(BLOCK_SIZE, 11);
    let c = Image {
        blocks: vec![good, damaged.clone()],
    };
    source.put_all(&c.blocks).await;
    let damaged_hash = hash_block(&damaged);
    let stored = source.store.fs_block_path(&damaged_hash).unwrap();
    std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&stored, random_bytes(BLOCK_SIZE, 12)).unwrap();
    let key_c = c.key();
    let err = cache.ensure(&key_c, &source).await.unwrap_err();
    match &err {
        CacheError::Corrupt {
            index, expected, ..
        } => {
            assert_eq!(*index, 1);
            assert_eq!(*expected, damaged_hash);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(
        files_of(&cache_dir, &key_c.id).is_empty(),
        "{:?}",
        files_of(&cache_dir, &key_c.id)
    );

    // Repaired in the store, the image fills.
    std::fs::write(&stored, &damaged).unwrap();
    let (cached, _) = cache.ensure(&key_c, &source).await.unwrap();
    assert!(std::fs::read(&cached.path).unwrap() == c.bytes());

    // D: a block the store does not have.
    let absent = random_bytes(1000, 13);
    let d = Image {
        blocks: vec![random_bytes(BLOCK_SIZE, 10), absent.clone()],
    };
    let key_d = d.key();
    let err = cache.ensure(&key_d, &source).await.unwrap_err();
    match &err {
        CacheError::Fetch {
            index,
            source: ControlPlaneError::MissingBlock { hash },
        } => {
            assert_eq!(*index, 1);
            assert_eq!(*hash, hash_block(&absent));
        }
        other => panic!("expected Fetch of a missing block, got {other:?}"),
    }
    assert!(files_of(&cache_dir, &key_d.id).is_empty());
}

#[test]
fn hashmaps_that_do_not_fit_their_size_are_refused() {
    let hash = hash_block(b"x").to_hex();
    let content = |size: u64, block_size: u64, count: usize| ImageContent {
        size,
        block_size,
        hashes: vec![hash.clone(); count],
        format: DiskFormat::Raw,
    };
    let block = BLOCK_SIZE as u64;
    for (size, count) in [
        (2 * block, 1),
        (2 * block, 3),
        (2 * block + 1, 2),
        (block, 0),
    ] {
        assert!(
            matches!(
                ImageKey::new(&content(size, block, count)),
                Err(CacheError::BlockCount { .. })
            ),
            "{size} bytes in {count} blocks"
        );
    }
    for block_size in [0, MIB, 2 * block, block + 1] {
        assert!(matches!(
            ImageKey::new(&content(block, block_size, 1)),
            Err(CacheError::BlockSize { got }) if got == block_size
        ));
    }
    let mut bad = content(block, block, 1);
    bad.hashes[0] = "not hex".to_owned();
    assert!(matches!(
        ImageKey::new(&bad),
        Err(CacheError::BadHash { .. })
    ));

    // What fits is accepted, and the id depends on the content alone.
    let key = ImageKey::new(&content(2 * block + 1, block, 3)).unwrap();
    assert_eq!(key.hashes.len(), 3);
    assert_eq!(
        key.id,
        ImageKey::new(&content(2 * block + 1, block, 3)).unwrap().id
    );
    assert_ne!(
        key.id,
        ImageKey::new(&content(2 * block + 2, block, 3)).unwrap().id
    );
    assert!(ImageKey::new(&content(0, block, 1)).is_ok());
    assert!(ImageKey::new(&content(0, block, 0)).is_ok());
}

#[test]
fn opening_the_cache_removes_unfinished_fills() {
    let dir = tempfile::tempdir().unwrap();
    let id = format!("{}-123", hash_block(b"y"));
    std::fs::write(dir.path().join(format!("{id}.partial")), b"half").unwrap();
    std::fs::write(dir.path().join("other-1.raw"), b"done").unwrap();
    std::fs::write(dir.path().join("other-1.hashmap"), b"").unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    assert!(!dir.path().join(format!("{id}.partial")).exists());
    assert!(!cache.path_of(&id, DiskFormat::Raw).exists());
    assert_eq!(
        std::fs::read(dir.path().join("other-1.raw")).unwrap(),
        b"done"
    );
    assert!(dir.path().join("other-1.hashmap").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fills_of_one_image_fetch_each_block_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut source = CountingStore::open(&dir.path().join("blocks")).await;
    source.delay = Duration::from_millis(50);
    let source = Arc::new(source);
    let a = image_a();
    source.put_all(&a.blocks).await;
    let cache = Arc::new(ImageCache::open(&dir.path().join("cache")).unwrap());
    let key = a.key();
    let fills: Vec<_> = (0..2)
        .map(|_| {
            let (cache, source, key) = (cache.clone(), source.clone(), key.clone());
            tokio::spawn(async move { cache.ensure(&key, source.as_ref()).await })
        })
        .collect();
    let mut stats = Vec::new();
    for fill in fills {
        let (cached, one) = fill.await.unwrap().unwrap();
        assert!(std::fs::read(&cached.path).unwrap() == a.bytes());
        stats.push(one);
    }
    stats.sort_by_key(|s| s.fetched);
    assert_eq!(
        stats,
        [
            FillStats::default(),
            FillStats {
                fetched: 4,
                reused: 0,
                zero: 1
            }
        ]
    );
    assert_eq!(source.total(), 4);
    for hash in a.hashes() {
        assert!(source.of(&hash) <= 1);
    }
}

/// A source whose first fetch fails, every fetch slow, recording how many fetches of one
/// block ran at once.
#[derive(Debug)]
struct FailingOnce {
    inner: CountingStore,
    failed: std::sync::atomic::AtomicBool,
    running: Mutex<HashMap<BlockHash, usize>>,
    most_at_once: std::sync::atomic::AtomicUsize,
}

impl BlockSource for FailingOnce {
    async fn fetch(&self, hash: &BlockHash) -> Result<Bytes, ControlPlaneError> {
        use std::sync::atomic::Ordering;
        {
            let mut running = self.running.lock().unwrap();
            let now = running.entry(*hash).or_default();
            *now += 1;
            self.most_at_once.fetch_max(*now, Ordering::SeqCst);
        }
        let result = self.inner.fetch(hash).await;
        *self.running.lock().unwrap().entry(*hash).or_default() -= 1;
        if !self.failed.swap(true, Ordering::SeqCst) {
            return Err(ControlPlaneError::MissingBlock { hash: *hash });
        }
        result
    }
}

/// After a failed fill, the caller that waited for it fills the image alone: one arriving
/// later waits for that fill rather than starting a second one on the same `.partial`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_fill_waiting_callers_still_fill_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut inner = CountingStore::open(&dir.path().join("blocks")).await;
    inner.delay = Duration::from_millis(300);
    let image = Image {
        blocks: vec![random_bytes(BLOCK_SIZE, 20)],
    };
    inner.put_all(&image.blocks).await;
    let source = Arc::new(FailingOnce {
        inner,
        failed: Default::default(),
        running: Mutex::new(HashMap::new()),
        most_at_once: Default::default(),
    });
    let cache = Arc::new(ImageCache::open(&dir.path().join("cache")).unwrap());
    let key = image.key();
    let spawn_fill = || {
        let (cache, source, key) = (cache.clone(), source.clone(), key.clone());
        tokio::spawn(async move { cache.ensure(&key, source.as_ref()).await })
    };
    // 0 ms: the first fill fetches (and fails at 300 ms); 100 ms: a second caller waits
    // for it, then fills (300–600 ms); 400 ms: a third caller arrives during that fill.
    let first = spawn_fill();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = spawn_fill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = spawn_fill();
    assert!(matches!(
        first.await.unwrap(),
        Err(CacheError::Fetch { .. })
    ));
    let (cached, _) = second.await.unwrap().unwrap();
    let (again, _) = third.await.unwrap().unwrap();
    assert_eq!(cached.path, again.path);
    assert!(std::fs::read(&cached.path).unwrap() == image.bytes());
    assert_eq!(
        source
            .most_at_once
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert_eq!(source.inner.total(), 2);
}

/// An image as stored: the bytes of `path` in blocks.
fn image_of_file(path: &Path) -> Image {
    let bytes = std::fs::read(path).unwrap();
    Image {
        blocks: bytes.chunks(BLOCK_SIZE).map(<[u8]>::to_vec).collect(),
    }
}

fn content_as(image: &Image, format: DiskFormat) -> ImageContent {
    ImageContent {
        format,
        ..image.content()
    }
}

/// Every image is inspected against its declared format before it is used: a qcow2 image
/// is cached as the qcow2 bytes it is; the same bytes declared raw, a qcow2 with a backing
/// file, or an unsafe image an older agent cached are refused, and a refused fill leaves
/// nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_inspects_what_it_caches() {
    let dir = tempfile::tempdir().unwrap();
    let source = CountingStore::open(&dir.path().join("blocks")).await;
    let cache_dir = dir.path().join("cache");
    let cache = ImageCache::open(&cache_dir).unwrap();

    // A 6 MiB disk of random bytes as qcow2: two blocks of file.
    let raw = dir.path().join("disk.raw");
    std::fs::write(&raw, random_bytes(6 * MIB as usize, 30)).unwrap();
    let qcow2 = dir.path().join("disk.qcow2");
    qemu(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            raw.to_str().unwrap(),
            qcow2.to_str().unwrap(),
        ],
    );
    let image = image_of_file(&qcow2);
    assert_eq!(image.blocks.len(), 2);
    source.put_all(&image.blocks).await;
    let key = ImageKey::new(&content_as(&image, DiskFormat::Qcow2)).unwrap();
    let (cached, stats) = cache.ensure(&key, &source).await.unwrap();
    assert_eq!(stats.fetched, 2);
    assert_eq!(cached.path, cache_dir.join(format!("{}.qcow2", key.id)));
    assert_eq!(cached.inspection.format, DiskFormat::Qcow2);
    assert_eq!(cached.inspection.virtual_size, 6 * MIB);
    assert_eq!(cached.size, image.size());
    assert!(std::fs::read(&cached.path).unwrap() == image.bytes());
    // Inspected again when found cached.
    let (again, stats) = cache.ensure(&key, &source).await.unwrap();
    assert_eq!(stats, FillStats::default());
    assert_eq!(again.inspection, cached.inspection);

    // The same bytes declared raw: the classic attack. Its blocks are at hand, but the
    // fill is refused and leaves only what the qcow2 image had.
    let as_raw = ImageKey::new(&content_as(&image, DiskFormat::Raw)).unwrap();
    assert_eq!(as_raw.id, key.id);
    let err = cache.ensure(&as_raw, &source).await.unwrap_err();
    assert!(
        matches!(
            &err,
            CacheError::Refused(InspectError::Mismatch {
                declared: DiskFormat::Raw,
                found: ContentFormat::Qcow2
            })
        ),
        "{err:?}"
    );
    let mut files = files_of(&cache_dir, &key.id);
    files.sort();
    assert_eq!(
        files,
        [format!("{}.hashmap", key.id), format!("{}.qcow2", key.id)]
    );
    assert_eq!(source.total(), 2);

    // A qcow2 image that names a backing file on the host.
    let backed = dir.path().join("backed.qcow2");
    qemu(
        "qemu-img",
        &[
            "create",
            "-f",
            "qcow2",
            "-b",
            "/etc/passwd",
            "-F",
            "raw",
            backed.to_str().unwrap(),
        ],
    );
    let backed = image_of_file(&backed);
    source.put_all(&backed.blocks).await;
    let backed_key = ImageKey::new(&content_as(&backed, DiskFormat::Qcow2)).unwrap();
    let err = cache.ensure(&backed_key, &source).await.unwrap_err();
    assert!(
        matches!(&err, CacheError::Refused(InspectError::BackingFile { name: Some(name) }) if name == "/etc/passwd"),
        "{err:?}"
    );
    assert!(files_of(&cache_dir, &backed_key.id).is_empty());

    // An image cached (by an agent from before inspection) under the wrong format is
    // refused too, without a fetch.
    let old = image_a();
    let old_key = old.key();
    std::fs::write(cache.path_of(&old_key.id, DiskFormat::Raw), image.bytes()).unwrap();
    let fetched = source.total();
    let err = cache.ensure(&old_key, &source).await.unwrap_err();
    assert!(
        matches!(err, CacheError::Refused(InspectError::Mismatch { .. })),
        "{err:?}"
    );
    assert_eq!(source.total(), fetched);
}
