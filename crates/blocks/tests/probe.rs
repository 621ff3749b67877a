//! The start-up check of a block store: a probe written, read back and deleted, and an S3
//! configuration that cannot work refused before any upload meets it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use nefos_blocks::{BlockError, BlockStore, BlockStoreConfig};

#[tokio::test]
async fn the_probe_passes_and_leaves_nothing_behind() {
    for t in [common::fs().await, common::s3().await] {
        let keys_before = match &t.s3 {
            Some(_) => t.s3_keys().await,
            None => Vec::new(),
        };
        t.store.probe().await.unwrap();
        t.store.probe().await.unwrap();
        assert!(t.store.list().await.unwrap().is_empty(), "{}", t.label());
        if t.s3.is_some() {
            assert_eq!(t.s3_keys().await, keys_before, "the probe object was left");
        } else {
            let root = t.dir.as_ref().unwrap().path().join("store/tmp");
            for entry in std::fs::read_dir(&root).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    let left: Vec<_> = std::fs::read_dir(&path).unwrap().collect();
                    assert!(left.is_empty(), "probe file left in {}", path.display());
                }
            }
        }
    }
}

fn s3_config(endpoint: &str, bucket: &str, allow_http: bool) -> BlockStoreConfig {
    BlockStoreConfig::S3 {
        bucket: bucket.to_owned(),
        endpoint: Some(endpoint.to_owned()),
        region: "us-east-1".to_owned(),
        access_key_id: Some("testing".to_owned()),
        secret_access_key: Some("testing".to_owned()),
        allow_http,
        prefix: "blocks".to_owned(),
    }
}

#[tokio::test]
async fn a_plain_http_endpoint_without_allow_http_is_refused_at_open() {
    let t = common::s3().await;
    let (endpoint, bucket) = t.s3.clone().unwrap();
    let err = BlockStore::open(&s3_config(&endpoint, &bucket, false))
        .await
        .unwrap_err();
    assert!(matches!(err, BlockError::PlainHttp { .. }), "{err:?}");
    assert!(err.to_string().contains("allow_http = true"), "{err}");
}

#[tokio::test]
async fn a_missing_bucket_fails_the_probe() {
    let t = common::s3().await;
    let (endpoint, _) = t.s3.clone().unwrap();
    let store = BlockStore::open(&s3_config(&endpoint, "nefos-no-such-bucket", true))
        .await
        .unwrap();
    let err = store.probe().await.unwrap_err();
    assert!(
        matches!(err, BlockError::S3 { action: "PUT", .. }),
        "{err:?}"
    );
}
