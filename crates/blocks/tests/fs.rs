//! Tests of the `fs` backend's on-disk behaviour: cleanup at open, and a real crash (kill -9
//! of a writing process).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nefos_blocks::{BlockHash, BlockStore, BlockStoreConfig, GcPass, VerifyOutcome, verify_all};

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn open_removes_temporary_files_of_dead_writers_only() {
    let t = common::fs().await;
    let root = t.dir.as_ref().unwrap().path().join("store");
    let tmp = root.join("tmp");
    let live = names(&tmp);
    assert_eq!(live.len(), 2, "{live:?}"); // ID and ID.lock of the open store

    // What a crashed writer leaves: its lock file (unlocked, since its process is gone),
    // its directory with a half-written block, and a stray file.
    std::fs::write(tmp.join("00000000deadbeef.lock"), b"").unwrap();
    std::fs::create_dir(tmp.join("00000000deadbeef")).unwrap();
    std::fs::write(tmp.join("00000000deadbeef/abcd.0"), b"half a blo").unwrap();
    std::fs::create_dir(tmp.join("orphan")).unwrap();
    std::fs::write(tmp.join("orphan/x"), b"x").unwrap();
    std::fs::write(tmp.join("stray"), b"x").unwrap();

    // The first store is still open: its files survive another open.
    let second = t.reopen().await;
    let after = names(&tmp);
    assert_eq!(after.len(), 4, "{after:?}");
    for name in &live {
        assert!(after.contains(name), "{name} of the live store was removed");
    }
    let hash = second
        .put(Bytes::from_static(b"still works"))
        .await
        .unwrap();
    assert!(t.store.contains(&hash).await.unwrap());

    drop(second);
    assert_eq!(names(&tmp), live);
}

#[tokio::test]
async fn open_restores_blocks_a_crashed_gc_left_in_the_trash() {
    let t = common::fs().await;
    let data = Bytes::from(common::block(1, 1234));
    let hash = t.store.put(data.clone()).await.unwrap();
    let path = t.store.fs_block_path(&hash).unwrap();
    let trash = t
        .dir
        .as_ref()
        .unwrap()
        .path()
        .join("store/trash")
        .join(hash.to_hex());
    std::fs::rename(&path, &trash).unwrap();
    // Readable while in the trash.
    assert_eq!(t.store.get(&hash).await.unwrap().unwrap(), data);

    // Not while a collection holds the lock (it owns the trash)...
    let pass = GcPass::start(&t.store, Duration::from_secs(3600))
        .await
        .unwrap();
    std::fs::rename(&path, &trash).unwrap();
    let other = t.reopen().await;
    assert!(!other.contains(&hash).await.unwrap());
    pass.sweep(|_| true).await;
    // ...but at the next open.
    let other = t.reopen().await;
    assert!(other.contains(&hash).await.unwrap());
    assert_eq!(other.verify(&hash).await.unwrap(), VerifyOutcome::Intact);
}

#[tokio::test]
async fn config_from_toml() {
    let fs: BlockStoreConfig =
        toml::from_str("backend = \"fs\"\npath = \"/srv/blocks\"\n").unwrap();
    assert_eq!(
        fs,
        BlockStoreConfig::Fs {
            path: "/srv/blocks".into()
        }
    );
    let s3: BlockStoreConfig = toml::from_str(
        "backend = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9000\"\n\
         access_key_id = \"id\"\nsecret_access_key = \"hush\"\nallow_http = true\n",
    )
    .unwrap();
    let BlockStoreConfig::S3 {
        region,
        prefix,
        allow_http,
        ..
    } = &s3
    else {
        panic!("{s3:?}");
    };
    assert_eq!(
        (region.as_str(), prefix.as_str(), *allow_http),
        ("us-east-1", "", true)
    );
    assert!(!format!("{s3:?}").contains("hush"));
    assert!(
        toml::from_str::<BlockStoreConfig>("backend = \"fs\"\npath = \"/x\"\npth = 1\n").is_err()
    );
    assert!(toml::from_str::<BlockStoreConfig>("backend = \"nfs\"\npath = \"/x\"\n").is_err());
}

const CHILD_ENV: &str = "NEFOS_BLOCKS_CRASH_CHILD_DIR";

/// Not a test of its own: the writer process [`kill_9_during_writes_loses_nothing`] starts
/// and kills. Prints the hash of each block once `put` returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by kill_9_during_writes_loses_nothing as a child process"]
async fn crash_child_writer() {
    let dir = std::env::var(CHILD_ENV).expect("run by kill_9_during_writes_loses_nothing");
    let store = BlockStore::open(&BlockStoreConfig::Fs { path: dir.into() })
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<BlockHash>();
    // One pseudo-random buffer, sliced and stamped per block: the writers spend their time
    // hashing and writing, not making data.
    let pool: Bytes = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
        .collect::<Vec<u8>>()
        .into();
    for writer in 0..8u64 {
        let store = store.clone();
        let tx = tx.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            for n in 0u64.. {
                let seed = writer << 32 | n;
                let len = usize::try_from((seed * 7919) % (4 << 20)).unwrap().max(8);
                let mut data = pool.slice(..len).to_vec();
                data[..8].copy_from_slice(&seed.to_le_bytes());
                let hash = store.put(Bytes::from(data)).await.unwrap();
                tx.send(hash).unwrap();
            }
        });
    }
    let mut stdout = std::io::stdout();
    while let Some(hash) = rx.recv().await {
        writeln!(stdout, "acked {hash}").unwrap();
        stdout.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_writes_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child_writer", "--ignored", "--nocapture"])
        .env(CHILD_ENV, &root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked: Vec<BlockHash> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.len() < 40 {
        assert!(
            Instant::now() < deadline,
            "the writer acknowledged only {}",
            acked.len()
        );
        let line = lines.next().expect("writer output").unwrap();
        if let Some(hash) = line.strip_prefix("acked ") {
            acked.push(hash.parse().unwrap());
        }
    }
    child.kill().unwrap(); // SIGKILL, mid-write
    child.wait().unwrap();
    // Acknowledgements already written before the kill count too.
    for line in lines {
        if let Some(hash) = line.unwrap().strip_prefix("acked ") {
            acked.push(hash.parse().unwrap());
        }
    }

    let leftovers: usize = names(&root.join("tmp"))
        .iter()
        .filter(|n| !n.ends_with(".lock"))
        .map(|n| names(&root.join("tmp").join(n)).len())
        .sum();
    eprintln!(
        "{} blocks acknowledged, {leftovers} temporary files left by the kill",
        acked.len()
    );
    let store = BlockStore::open(&BlockStoreConfig::Fs { path: root.clone() })
        .await
        .unwrap();
    // The dead writer's temporary files are gone; only the new instance's are there.
    assert_eq!(names(&root.join("tmp")).len(), 2);
    for hash in &acked {
        assert_eq!(
            store.verify(hash).await.unwrap(),
            VerifyOutcome::Intact,
            "acknowledged block {hash}"
        );
    }
    // Every block file that exists, acknowledged or not, is complete and right.
    let report = verify_all(&store).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(report.checked >= acked.len());
}

/// Downloads read blocks the page cache holds only in part: what it holds from it, the rest
/// from the disk.
#[tokio::test]
async fn uncached_reads_of_partly_cached_blocks() {
    let t = common::fs().await;
    let data = common::random_block(7, nefos_blocks::BLOCK_SIZE - 1000);
    let hash = t.store.put(Bytes::from(data.clone())).await.unwrap();
    let len = data.len() as u64;
    let last_page = (len - 1) / 4096 * 4096;
    // Page ranges (first, end) dropped from the cache before a read.
    let evictions: [&[(u64, u64)]; 8] = [
        &[],
        &[(0, len)],
        &[(0, len / 2)],
        &[(len / 2, len)],
        &[(last_page, len)],
        &[(0, last_page)],
        &[(8192, 16384), (1_000_000, 1_200_000)],
        &[(0, 4096), (last_page, len)],
    ];
    for evict in evictions {
        // All of it cached, then the pages of `evict` dropped.
        std::fs::read(t.store.fs_block_path(&hash).unwrap()).unwrap();
        for (first, end) in evict {
            t.evict(&hash, *first..*end);
        }
        let read = t.store.get_uncached(&hash).await.unwrap().unwrap();
        assert!(read == data, "wrong bytes with {evict:?} evicted");
    }
}

/// A damaged block file longer than a block is read whole, as `get` reads it.
#[tokio::test]
async fn uncached_read_of_an_oversized_block_file() {
    let t = common::fs().await;
    let hash = t
        .store
        .put(Bytes::from(common::block(8, 1000)))
        .await
        .unwrap();
    let long = common::random_block(9, nefos_blocks::BLOCK_SIZE + 10);
    t.corrupt(&hash, &long).await;
    assert_eq!(t.store.get_uncached(&hash).await.unwrap().unwrap(), long);
    assert_eq!(t.store.get(&hash).await.unwrap().unwrap(), long);
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Blocks are tenants' data: only the owner may list or read them.
#[tokio::test]
async fn directories_and_files_are_private() {
    let t = common::fs().await;
    let root = t.dir.as_ref().unwrap().path().join("store");
    let hash = t
        .store
        .put(Bytes::from(common::block(3, 5000)))
        .await
        .unwrap();
    let block = t.store.fs_block_path(&hash).unwrap();
    assert_eq!(mode(&block), 0o400, "block {}", block.display());
    let shard = block.parent().unwrap();
    for dir in [
        root.clone(),
        root.join("blocks"),
        root.join("tmp"),
        root.join("trash"),
        shard.to_path_buf(),
        shard.parent().unwrap().to_path_buf(),
    ] {
        assert_eq!(mode(&dir), 0o700, "directory {}", dir.display());
    }
    for entry in std::fs::read_dir(root.join("tmp")).unwrap() {
        let path = entry.unwrap().path();
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
    assert_eq!(mode(&root.join("open.lock")), 0o600);
}

/// A store an older release left readable by everyone is made private when opened.
#[tokio::test]
async fn open_tightens_an_existing_open_store() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    for sub in ["", "blocks", "tmp", "trash"] {
        let path = root.join(sub);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let config = BlockStoreConfig::Fs { path: root.clone() };
    let _store = BlockStore::open(&config).await.unwrap();
    for sub in ["", "blocks", "tmp", "trash"] {
        assert_eq!(mode(&root.join(sub)), 0o700, "{sub:?}");
    }
}
