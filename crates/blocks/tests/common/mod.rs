//! Block stores on both backends for the behavioural suite.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use nefos_blocks::{BlockHash, BlockStore, BlockStoreConfig};
use object_store::ObjectStoreExt;
use tempfile::TempDir;

/// A fresh, empty store for one test, and what keeps it alive.
#[derive(Debug)]
pub struct TestStore {
    pub store: BlockStore,
    pub config: BlockStoreConfig,
    pub dir: Option<TempDir>,
    /// For `s3`: the endpoint and bucket.
    pub s3: Option<(String, String)>,
}

impl TestStore {
    pub fn label(&self) -> &'static str {
        self.store.backend_name()
    }

    /// Opens the same store again (a restart).
    pub async fn reopen(&self) -> BlockStore {
        BlockStore::open(&self.config)
            .await
            .expect("reopen the store")
    }

    /// Replaces the stored bytes of a block behind the store's back.
    pub async fn corrupt(&self, hash: &BlockHash, bytes: &[u8]) {
        if let Some(path) = self.store.fs_block_path(hash) {
            let mut perms = std::fs::metadata(&path).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&path, perms).unwrap();
            std::fs::write(&path, bytes).unwrap();
        } else {
            let key = self.store.s3_block_key(hash).unwrap();
            self.s3_client()
                .put(&key.as_str().into(), bytes.to_vec().into())
                .await
                .unwrap();
        }
    }
}

impl TestStore {
    /// Drops the pages `range` of a block's file from the page cache (`fs`; nothing for
    /// `s3`), so that the next read of them goes to the disk.
    pub fn evict(&self, hash: &BlockHash, range: std::ops::Range<u64>) {
        if let Some(path) = self.store.fs_block_path(hash) {
            let file = std::fs::File::open(path).unwrap();
            rustix::fs::fadvise(
                &file,
                range.start,
                std::num::NonZeroU64::new(range.end - range.start),
                rustix::fs::Advice::DontNeed,
            )
            .unwrap();
        }
    }

    /// Leaves a block as a garbage collection that crashed mid-deletion would: moved to
    /// the trash.
    pub async fn move_to_trash(&self, hash: &BlockHash) {
        if let Some(path) = self.store.fs_block_path(hash) {
            let trash = self
                .dir
                .as_ref()
                .unwrap()
                .path()
                .join("store/trash")
                .join(hash.to_hex());
            std::fs::rename(path, trash).unwrap();
        } else {
            let key = self.store.s3_block_key(hash).unwrap();
            let trash = format!("blocks/trash/{hash}");
            let client = self.s3_client();
            client
                .copy(&key.as_str().into(), &trash.as_str().into())
                .await
                .unwrap();
            client.delete(&key.as_str().into()).await.unwrap();
        }
    }

    /// Every key in the test bucket (`s3` only).
    pub async fn s3_keys(&self) -> Vec<String> {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        let client = self.s3_client();
        let listed: Vec<object_store::ObjectMeta> = client.list(None).try_collect().await.unwrap();
        listed.into_iter().map(|m| m.location.to_string()).collect()
    }

    /// A plain client of the test bucket, to act behind the store's back.
    fn s3_client(&self) -> object_store::aws::AmazonS3 {
        let (endpoint, bucket) = self.s3.as_ref().unwrap();
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_endpoint(endpoint)
            .with_region("us-east-1")
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .with_allow_http(true)
            .build()
            .unwrap()
    }
}

pub async fn fs() -> TestStore {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = BlockStoreConfig::Fs {
        path: dir.path().join("store"),
    };
    let store = BlockStore::open(&config).await.expect("open fs store");
    TestStore {
        store,
        config,
        dir: Some(dir),
        s3: None,
    }
}

/// A store in a new bucket of the S3 server named by `NEFOS_TEST_S3`.
///
/// Panics when the variable is unset: the S3 half of the suite must not pass by being
/// skipped.
pub async fn s3() -> TestStore {
    let (endpoint, bucket) = nefos_test_utils::s3_bucket().await;
    let config = BlockStoreConfig::S3 {
        bucket: bucket.clone(),
        endpoint: Some(endpoint.clone()),
        region: "us-east-1".to_owned(),
        access_key_id: Some("testing".to_owned()),
        secret_access_key: Some("testing".to_owned()),
        allow_http: true,
        prefix: "blocks".to_owned(),
    };
    let store = BlockStore::open(&config).await.expect("open s3 store");
    TestStore {
        store,
        config,
        dir: None,
        s3: Some((endpoint, bucket)),
    }
}

/// Deterministic, non-zero-ended bytes of a given length, different per `seed`.
pub fn block(seed: u8, len: usize) -> Vec<u8> {
    let mut data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    if let Some(last) = data.last_mut() {
        *last = seed | 1;
    }
    data
}

/// `len` pseudo-random bytes (no period), ending in a non-zero byte: a misplaced page shows.
pub fn random_block(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut data: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    if let Some(last) = data.last_mut() {
        *last |= 1;
    }
    data
}
