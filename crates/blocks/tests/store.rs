//! The block-store behaviour suite, run against both backends: `fs` on a temporary
//! directory and `s3` against the real local S3 server `scripts/test` starts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::{TestStore, block};
use nefos_blocks::{
    BLOCK_SIZE, BlockError, BlockHash, GcPass, VerifyOutcome, collect_garbage, hash_block,
    verify_all,
};

/// Runs each behaviour test against both backends.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod fs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::fs().await).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::s3().await).await;
                }
            )*
        }
    };
}

on_both_backends!(
    round_trip,
    dedupe,
    strips_trailing_zeros,
    empty_and_all_zero_blocks,
    full_block_and_too_large,
    missing_in_order_deduplicated,
    touch_reports_missing_and_refreshes,
    delete,
    list,
    verify_detects_damage,
    gc_deletes_only_old_unreferenced,
    gc_keeps_block_reput_after_listing,
    gc_keeps_block_touched_after_listing,
    gc_is_exclusive,
    gc_restores_what_a_crashed_gc_left,
    concurrent_puts_of_one_block,
    survives_reopen,
    get_uncached_reads_what_get_reads,
);

async fn round_trip(t: TestStore) {
    let data = block(1, 1000);
    let hash = t.store.put(Bytes::from(data.clone())).await.unwrap();
    assert_eq!(hash, hash_block(&data), "{}", t.label());
    assert_eq!(t.store.get(&hash).await.unwrap().unwrap(), data);
    assert!(t.store.contains(&hash).await.unwrap());
    let absent = hash_block(b"never stored");
    assert_eq!(t.store.get(&absent).await.unwrap(), None);
    assert!(!t.store.contains(&absent).await.unwrap());
}

async fn dedupe(t: TestStore) {
    let data = Bytes::from(block(2, 5000));
    let first = t.store.put(data.clone()).await.unwrap();
    let second = t.store.put(data.clone()).await.unwrap();
    assert_eq!(first, second);
    let listed = t.store.list().await.unwrap();
    assert_eq!(listed.len(), 1, "{}: {listed:?}", t.label());
    if let Some(path) = t.store.fs_block_path(&first) {
        // One file in the whole blocks tree.
        let root = t.dir.as_ref().unwrap().path().join("store/blocks");
        assert_eq!(count_files(&root), 1);
        assert!(path.starts_with(&root));
        let hex = first.to_hex();
        assert!(path.ends_with(format!("{}/{}/{hex}", &hex[0..2], &hex[2..4])));
        assert!(std::fs::metadata(&path).unwrap().permissions().readonly());
    } else {
        let hex = first.to_hex();
        assert_eq!(
            t.store.s3_block_key(&first).unwrap(),
            format!("blocks/{}/{}/{hex}", &hex[0..2], &hex[2..4])
        );
    }
    assert_eq!(t.store.get(&first).await.unwrap().unwrap(), data);
}

fn count_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            n += count_files(&entry.path());
        } else {
            n += 1;
        }
    }
    n
}

async fn strips_trailing_zeros(t: TestStore) {
    let mut padded = b"abc\0def".to_vec();
    padded.resize(100_000, 0);
    let hash = t.store.put(Bytes::from(padded)).await.unwrap();
    assert_eq!(hash, hash_block(b"abc\0def"));
    // Stored stripped: inner zeros kept, trailing ones gone.
    assert_eq!(&t.store.get(&hash).await.unwrap().unwrap()[..], b"abc\0def");
    let listed = t.store.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, 7, "{}", t.label());
    // The unpadded block is the same block.
    assert_eq!(
        t.store.put(Bytes::from_static(b"abc\0def")).await.unwrap(),
        hash
    );
    assert_eq!(t.store.list().await.unwrap().len(), 1);
    assert_eq!(t.store.verify(&hash).await.unwrap(), VerifyOutcome::Intact);
}

async fn empty_and_all_zero_blocks(t: TestStore) {
    let empty = t.store.put(Bytes::new()).await.unwrap();
    assert_eq!(empty, BlockHash::empty());
    assert_eq!(t.store.get(&empty).await.unwrap().unwrap().len(), 0);
    assert!(t.store.contains(&empty).await.unwrap());
    // A block of zeros is the empty block.
    let zeros = t
        .store
        .put(Bytes::from(vec![0u8; BLOCK_SIZE]))
        .await
        .unwrap();
    assert_eq!(zeros, empty);
    let listed = t.store.list().await.unwrap();
    assert_eq!(listed.len(), 1, "{}", t.label());
    assert_eq!(listed[0].size, 0);
    assert_eq!(t.store.verify(&empty).await.unwrap(), VerifyOutcome::Intact);
}

async fn full_block_and_too_large(t: TestStore) {
    let data = block(3, BLOCK_SIZE);
    let hash = t.store.put(Bytes::from(data.clone())).await.unwrap();
    assert_eq!(hash, hash_block(&data));
    assert_eq!(t.store.get(&hash).await.unwrap().unwrap(), data);
    let error = t
        .store
        .put(Bytes::from(vec![1u8; BLOCK_SIZE + 1]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, BlockError::TooLarge { len } if len == BLOCK_SIZE + 1),
        "{error}"
    );
}

async fn missing_in_order_deduplicated(t: TestStore) {
    let a = t.store.put(Bytes::from(block(4, 10))).await.unwrap();
    let b = t.store.put(Bytes::from(block(5, 10))).await.unwrap();
    let x = hash_block(b"x");
    let y = hash_block(b"y");
    let z = hash_block(b"z");
    let asked = [z, a, x, z, b, y, x];
    assert_eq!(t.store.missing(&asked).await.unwrap(), [z, x, y]);
    assert_eq!(t.store.missing(&[a, b]).await.unwrap(), []);
    assert_eq!(t.store.missing(&[]).await.unwrap(), []);
}

async fn touch_reports_missing_and_refreshes(t: TestStore) {
    let a = t.store.put(Bytes::from(block(6, 10))).await.unwrap();
    let before = listed_time(&t, &a).await;
    // S3 stamps whole seconds.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let x = hash_block(b"x");
    assert_eq!(t.store.touch(&[x, a, x]).await.unwrap(), [x]);
    let after = listed_time(&t, &a).await;
    assert!(after > before, "{}: {before:?} -> {after:?}", t.label());
    assert_eq!(t.store.list().await.unwrap().len(), 1);
}

async fn listed_time(t: &TestStore, hash: &BlockHash) -> SystemTime {
    t.store
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.hash == *hash)
        .unwrap()
        .last_touched
}

async fn delete(t: TestStore) {
    let a = t.store.put(Bytes::from(block(7, 10))).await.unwrap();
    let b = t.store.put(Bytes::from(block(8, 10))).await.unwrap();
    assert!(t.store.delete(&a).await.unwrap());
    assert!(!t.store.delete(&a).await.unwrap());
    assert_eq!(t.store.get(&a).await.unwrap(), None);
    assert!(!t.store.contains(&a).await.unwrap());
    assert_eq!(t.store.missing(&[a, b]).await.unwrap(), [a]);
    // Deleted blocks can be stored again.
    assert_eq!(t.store.put(Bytes::from(block(7, 10))).await.unwrap(), a);
    assert!(t.store.contains(&a).await.unwrap());
}

async fn list(t: TestStore) {
    assert!(t.store.list().await.unwrap().is_empty());
    let start = SystemTime::now() - Duration::from_secs(2);
    let mut expected = Vec::new();
    for seed in 0..20u8 {
        let data = block(seed, 100 + usize::from(seed));
        expected.push((
            t.store.put(Bytes::from(data)).await.unwrap(),
            100 + u64::from(seed),
        ));
    }
    expected.sort();
    let mut listed: Vec<(BlockHash, u64)> = Vec::new();
    for info in t.store.list().await.unwrap() {
        assert!(info.last_touched >= start, "{}: {info:?}", t.label());
        assert!(info.last_touched <= SystemTime::now() + Duration::from_secs(2));
        listed.push((info.hash, info.size));
    }
    listed.sort();
    assert_eq!(listed, expected);
}

async fn verify_detects_damage(t: TestStore) {
    let good = t.store.put(Bytes::from(block(9, 3000))).await.unwrap();
    let bad = t.store.put(Bytes::from(block(10, 3000))).await.unwrap();
    let absent = hash_block(b"absent");
    assert_eq!(t.store.verify(&good).await.unwrap(), VerifyOutcome::Intact);
    assert_eq!(
        t.store.verify(&absent).await.unwrap(),
        VerifyOutcome::Missing
    );
    assert!(verify_all(&t.store).await.unwrap().is_clean());

    let mut damaged = block(10, 3000);
    damaged[1500] ^= 0x40;
    t.corrupt(&bad, &damaged).await;
    assert_eq!(
        t.store.verify(&bad).await.unwrap(),
        VerifyOutcome::Damaged {
            actual: hash_block(&damaged),
            size: 3000
        },
        "{}",
        t.label()
    );
    let report = verify_all(&t.store).await.unwrap();
    assert_eq!(report.checked, 2);
    assert_eq!(report.intact, 1);
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].hash, bad);
    assert!(!report.is_clean());

    // A truncated block (what a torn write would leave) is damage too.
    t.corrupt(&good, &block(9, 3000)[..100]).await;
    let report = verify_all(&t.store).await.unwrap();
    assert_eq!(report.damaged.len(), 2);
}

/// Long enough for S3's whole-second `Last-Modified`.
const GRACE: Duration = Duration::from_millis(1500);
const AGE: Duration = Duration::from_millis(2600);

async fn gc_deletes_only_old_unreferenced(t: TestStore) {
    let old_garbage = t.store.put(Bytes::from(block(11, 500))).await.unwrap();
    let old_kept = t.store.put(Bytes::from(block(12, 500))).await.unwrap();
    let reput = t.store.put(Bytes::from(block(13, 500))).await.unwrap();
    let touched = t.store.put(Bytes::from(block(14, 500))).await.unwrap();
    tokio::time::sleep(AGE).await;
    // Blocks of uploads in flight: new, re-put, or touched by the hashmap protocol.
    let fresh = t.store.put(Bytes::from(block(15, 500))).await.unwrap();
    assert_eq!(
        t.store.put(Bytes::from(block(13, 500))).await.unwrap(),
        reput
    );
    assert_eq!(t.store.touch(&[touched]).await.unwrap(), []);

    let referenced: HashSet<BlockHash> = [old_kept].into();
    let report = collect_garbage(&t.store, GRACE, |h| referenced.contains(h))
        .await
        .unwrap();
    assert_eq!(report.listed, 5, "{}: {report:?}", t.label());
    assert_eq!(report.referenced, 1);
    assert_eq!(report.deleted, 1, "{}: {report:?}", t.label());
    assert_eq!(report.deleted_bytes, 500);
    assert_eq!(report.recent, 3);
    assert!(report.failed.is_empty());
    assert_eq!(
        t.store
            .missing(&[old_garbage, old_kept, reput, touched, fresh])
            .await
            .unwrap(),
        [old_garbage]
    );
    assert_eq!(t.store.get(&reput).await.unwrap().unwrap(), block(13, 500));

    // Nothing else goes once the grace period is over, if everything is referenced.
    tokio::time::sleep(AGE).await;
    let all: HashSet<BlockHash> = [old_kept, reput, touched, fresh].into();
    let report = collect_garbage(&t.store, GRACE, |h| all.contains(h))
        .await
        .unwrap();
    assert_eq!((report.listed, report.deleted), (4, 0));
    // And everything unreferenced does.
    let report = collect_garbage(&t.store, GRACE, |_| false).await.unwrap();
    assert_eq!(report.deleted, 4, "{}: {report:?}", t.label());
    assert!(t.store.list().await.unwrap().is_empty());
    assert!(verify_all(&t.store).await.unwrap().is_clean());
}

/// The race the protocol exists for: an upload puts an old, unreferenced block again
/// after the collection listed it (so the listing shows it old), and will commit a
/// reference the collection's referenced set does not have.
async fn gc_keeps_block_reput_after_listing(t: TestStore) {
    let data = Bytes::from(block(16, 700));
    let hash = t.store.put(data.clone()).await.unwrap();
    let garbage = t.store.put(Bytes::from(block(17, 700))).await.unwrap();
    tokio::time::sleep(AGE).await;
    let pass = GcPass::start(&t.store, GRACE).await.unwrap();
    assert!(pass.blocks().iter().all(|b| b.last_touched < pass.cutoff()));
    assert_eq!(t.store.put(data.clone()).await.unwrap(), hash);
    let report = pass.sweep(|_| false).await;
    assert_eq!(report.deleted, 1, "{}: {report:?}", t.label());
    assert_eq!(report.recent, 1);
    assert_eq!(t.store.get(&hash).await.unwrap().unwrap(), data);
    assert_eq!(t.store.missing(&[hash, garbage]).await.unwrap(), [garbage]);
    assert_eq!(t.store.verify(&hash).await.unwrap(), VerifyOutcome::Intact);
    // Nothing is left in the trash to be put back.
    let report = collect_garbage(&t.store, Duration::from_secs(3600), |_| false)
        .await
        .unwrap();
    assert_eq!(report.restored, 0);
}

async fn gc_keeps_block_touched_after_listing(t: TestStore) {
    let hash = t.store.put(Bytes::from(block(18, 700))).await.unwrap();
    tokio::time::sleep(AGE).await;
    let pass = GcPass::start(&t.store, GRACE).await.unwrap();
    assert_eq!(t.store.touch(&[hash]).await.unwrap(), []);
    let report = pass.sweep(|_| false).await;
    assert_eq!((report.deleted, report.recent), (0, 1), "{}", t.label());
    assert!(t.store.contains(&hash).await.unwrap());
}

async fn gc_is_exclusive(t: TestStore) {
    let pass = GcPass::start(&t.store, GRACE).await.unwrap();
    let error = GcPass::start(&t.store, GRACE).await.unwrap_err();
    assert!(matches!(error, BlockError::Busy { .. }), "{error}");
    if t.store.backend_name() == "fs" {
        // Another instance (another process, say) is refused too.
        let other = t.reopen().await;
        let error = GcPass::start(&other, GRACE).await.unwrap_err();
        assert!(matches!(error, BlockError::Busy { .. }), "{error}");
    }
    pass.sweep(|_| true).await;
    GcPass::start(&t.store, GRACE).await.unwrap();
}

async fn gc_restores_what_a_crashed_gc_left(t: TestStore) {
    let data = Bytes::from(block(20, 900));
    let hash = t.store.put(data.clone()).await.unwrap();
    t.move_to_trash(&hash).await;
    // Not in place, but still readable while a collection would be deciding its fate.
    assert!(!t.store.contains(&hash).await.unwrap());
    assert_eq!(t.store.get(&hash).await.unwrap().unwrap(), data);
    let pass = GcPass::start(&t.store, GRACE).await.unwrap();
    assert_eq!(pass.blocks().len(), 1, "{}", t.label());
    let report = pass.sweep(|_| true).await;
    assert_eq!(report.restored, 1);
    assert!(t.store.contains(&hash).await.unwrap());
    assert_eq!(t.store.verify(&hash).await.unwrap(), VerifyOutcome::Intact);
}

async fn concurrent_puts_of_one_block(t: TestStore) {
    let data = Bytes::from(block(19, 1 << 20));
    let puts: Vec<_> = (0..16)
        .map(|_| {
            let store = t.store.clone();
            let data = data.clone();
            tokio::spawn(async move { store.put(data).await })
        })
        .collect();
    let mut hashes = HashSet::new();
    for put in puts {
        hashes.insert(put.await.unwrap().unwrap());
    }
    assert_eq!(hashes.len(), 1);
    let hash = *hashes.iter().next().unwrap();
    assert_eq!(t.store.list().await.unwrap().len(), 1, "{}", t.label());
    assert_eq!(t.store.verify(&hash).await.unwrap(), VerifyOutcome::Intact);
}

/// Blocks written, then read back through a store opened again, are intact.
async fn survives_reopen(t: TestStore) {
    let mut written = Vec::new();
    let puts: Vec<_> = (0..24u8)
        .map(|seed| {
            let store = t.store.clone();
            let data = Bytes::from(block(seed, 1000 + usize::from(seed) * 40_000));
            tokio::spawn(async move { (store.put(data.clone()).await.unwrap(), data) })
        })
        .collect();
    for put in puts {
        written.push(put.await.unwrap());
    }
    let reopened = t.reopen().await;
    for (hash, data) in &written {
        assert_eq!(&reopened.get(hash).await.unwrap().unwrap(), data);
        assert_eq!(reopened.verify(hash).await.unwrap(), VerifyOutcome::Intact);
    }
    let report = verify_all(&reopened).await.unwrap();
    assert_eq!((report.checked, report.intact), (24, 24), "{report:?}");
}

/// The read of downloads returns the stored bytes whether or not they are cached, at every
/// length around the alignment of direct reads.
async fn get_uncached_reads_what_get_reads(t: TestStore) {
    let empty = t.store.put(Bytes::new()).await.unwrap();
    assert_eq!(
        t.store.get_uncached(&empty).await.unwrap().unwrap().len(),
        0
    );
    let absent = hash_block(b"never stored");
    assert_eq!(t.store.get_uncached(&absent).await.unwrap(), None);
    for (seed, len) in [
        (1u8, 1usize),
        (2, 511),
        (3, 4095),
        (4, 4096),
        (5, 4097),
        (6, 100_000),
        (7, BLOCK_SIZE - 1),
        (8, BLOCK_SIZE),
    ] {
        let data = common::random_block(seed.into(), len);
        let hash = t.store.put(Bytes::from(data.clone())).await.unwrap();
        // Cached (just written), then from the disk, twice (the second read must not take
        // what the first left for cached), then cached again by a plain read.
        assert_eq!(t.store.get_uncached(&hash).await.unwrap().unwrap(), data);
        for _ in 0..2 {
            t.evict(&hash, 0..len as u64);
            let read = t.store.get_uncached(&hash).await.unwrap().unwrap();
            assert!(read == data, "{}: {len} bytes read back wrong", t.label());
        }
        assert_eq!(t.store.get(&hash).await.unwrap().unwrap(), data);
        assert_eq!(t.store.get_uncached(&hash).await.unwrap().unwrap(), data);
    }
    // Bytes outlive the store that read them.
    let data = common::random_block(9, 300_000);
    let hash = t.store.put(Bytes::from(data.clone())).await.unwrap();
    let reopened = t.reopen().await;
    let read = reopened.get_uncached(&hash).await.unwrap().unwrap();
    drop(reopened);
    assert_eq!(read, data);
}
