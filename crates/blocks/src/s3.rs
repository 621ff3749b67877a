//! The `s3` backend: one object per block in an S3 bucket, through `object_store`.
//!
//! ```text
//! PREFIX/ab/cd/abcd…       a block (stripped of trailing zeros), immutable
//! PREFIX/touched/abcd…     empty marker: its Last-Modified is when the block was last
//!                          put again or touched
//! PREFIX/trash/abcd…       a block a garbage collection is deleting (see crate::gc)
//! PREFIX/probe/RANDOM      written, read and deleted by the start-up check
//!                          ([`crate::BlockStore::probe`]); its name is no block hash
//! ```
//!
//! # Refreshing "last touched" on S3
//!
//! S3 objects have no settable modification time, and copying an object onto itself is
//! refused by AWS unless its metadata changes (and `object_store` cannot ask for that).
//! Writing the block again would refresh its `Last-Modified`, but would send up to 4 MiB per
//! deduplicated block — the traffic deduplication is meant to save — and a `touch` of a block
//! whose bytes we do not have would first have to download it. So a block that is put again
//! or touched gets a zero-byte *marker* object `PREFIX/touched/<hex>` written instead; the
//! block's last-touched time is the later of its own `Last-Modified` and its marker's. A
//! block put once has no marker (its own `Last-Modified` is fresh), so markers exist only
//! for blocks that were deduplicated, and a garbage collection deletes a block's marker
//! with it (and orphaned markers past the grace period).
//!
//! A put of an existing block is: write the marker, then `HEAD` the block; if the block is
//! gone by then (a garbage collection deleted it), write it. The garbage collector's side
//! (crate::gc) moves the block to the trash, deletes it, and reads the marker again
//! afterwards; a marker written before a `HEAD` that still saw the block is therefore seen,
//! and the block is put back. This needs read-after-write consistency, which AWS S3 has
//! had since December 2020 and which MinIO, Ceph RGW and moto also give.
//!
//! Times come from the S3 service's clock (`Last-Modified`, whole seconds) while the
//! garbage collector's cutoff comes from the local clock: clock skew between the two eats
//! into the grace period, which should be hours, not seconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{BlockError, Result};
use crate::hash::BlockHash;
use crate::store::{BlockInfo, Removal};

const TOUCHED: &str = "touched";
const TRASH: &str = "trash";
const PROBE: &str = "probe";

/// Settings of the `s3` backend (see [`crate::BlockStoreConfig::S3`]).
#[derive(Clone)]
pub(crate) struct S3Settings<'a> {
    pub bucket: &'a str,
    pub endpoint: Option<&'a str>,
    pub region: &'a str,
    pub access_key_id: Option<&'a str>,
    pub secret_access_key: Option<&'a str>,
    pub allow_http: bool,
    pub prefix: &'a str,
}

#[derive(Debug)]
pub(crate) struct S3Backend {
    client: Arc<AmazonS3>,
    bucket: String,
    /// Without leading or trailing slashes; may be empty.
    prefix: String,
}

fn not_found(error: &object_store::Error) -> bool {
    matches!(error, object_store::Error::NotFound { .. })
}

impl S3Backend {
    pub(crate) fn open(settings: &S3Settings<'_>) -> Result<S3Backend> {
        // The workspace's TLS stack is rustls with ring; object_store's reqwest client is
        // built without a provider of its own and uses the process default. Installing it
        // fails harmlessly when the process has installed one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // object_store accepts such an endpoint here and refuses every request later ("URL
        // scheme is not allowed"), which would make every upload fail long after start.
        if let Some(endpoint) = settings.endpoint
            && endpoint.to_ascii_lowercase().starts_with("http://")
            && !settings.allow_http
        {
            return Err(BlockError::PlainHttp {
                endpoint: endpoint.to_owned(),
            });
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(settings.bucket)
            .with_region(settings.region)
            .with_allow_http(settings.allow_http);
        if let Some(endpoint) = settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(key) = settings.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = settings.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let client = builder.build().map_err(|source| BlockError::S3Config {
            bucket: settings.bucket.to_owned(),
            source,
        })?;
        Ok(S3Backend {
            client: Arc::new(client),
            bucket: settings.bucket.to_owned(),
            prefix: settings.prefix.trim_matches('/').to_owned(),
        })
    }

    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, parts: &[&str]) -> Path {
        let mut key = String::new();
        if !self.prefix.is_empty() {
            key.push_str(&self.prefix);
            key.push('/');
        }
        key.push_str(&parts.join("/"));
        Path::from(key)
    }

    pub(crate) fn block_key(&self, hash: &BlockHash) -> Path {
        let hex = hash.to_hex();
        self.key(&[&hex[0..2], &hex[2..4], &hex])
    }

    fn marker_key(&self, hash: &BlockHash) -> Path {
        self.key(&[TOUCHED, &hash.to_hex()])
    }

    fn trash_key(&self, hash: &BlockHash) -> Path {
        self.key(&[TRASH, &hash.to_hex()])
    }

    /// `Last-Modified` of `key`, or `None` if absent.
    async fn head_time(&self, key: &Path) -> Result<Option<(SystemTime, u64)>> {
        match self.client.head(key).await {
            Ok(meta) => Ok(Some((meta.last_modified.into(), meta.size))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(BlockError::s3("HEAD", key)(e)),
        }
    }

    async fn exists(&self, key: &Path) -> Result<bool> {
        Ok(self.head_time(key).await?.is_some())
    }

    async fn put_object(&self, key: &Path, data: Bytes) -> Result<()> {
        self.client
            .put(key, PutPayload::from(data))
            .await
            .map(|_| ())
            .map_err(BlockError::s3("PUT", key))
    }

    async fn delete_object(&self, key: &Path) -> Result<bool> {
        match self.client.delete(key).await {
            Ok(()) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(BlockError::s3("DELETE", key)(e)),
        }
    }

    /// Stores `data` (already stripped, hashing to `hash`) unless present; refreshes the
    /// last-touched time of a present block. Returns whether it wrote the block.
    pub(crate) async fn put(&self, hash: &BlockHash, data: Bytes) -> Result<bool> {
        let key = self.block_key(hash);
        if self.exists(&key).await? && self.touch_present(hash, &key).await? {
            return Ok(false);
        }
        self.put_object(&key, data).await?;
        Ok(true)
    }

    /// Refreshes the last-touched time of the block if present; returns whether it is.
    pub(crate) async fn touch(&self, hash: &BlockHash) -> Result<bool> {
        let key = self.block_key(hash);
        Ok(self.exists(&key).await? && self.touch_present(hash, &key).await?)
    }

    /// Writes the marker, then checks the block is still there (module doc).
    async fn touch_present(&self, hash: &BlockHash, key: &Path) -> Result<bool> {
        self.put_object(&self.marker_key(hash), Bytes::new())
            .await?;
        self.exists(key).await
    }

    /// The stored bytes of a block, also looking in the trash so that a block a garbage
    /// collection is about to put back stays readable.
    pub(crate) async fn get(&self, hash: &BlockHash) -> Result<Option<Bytes>> {
        for key in [self.block_key(hash), self.trash_key(hash)] {
            let result = match self.client.get(&key).await {
                Ok(result) => result,
                Err(e) if not_found(&e) => continue,
                Err(e) => return Err(BlockError::s3("GET", &key)(e)),
            };
            return match result.bytes().await {
                Ok(data) => Ok(Some(data)),
                Err(e) => Err(BlockError::s3("GET", &key)(e)),
            };
        }
        Ok(None)
    }

    /// Writes `data` under a probe key named `name`, reads it back and deletes it; returns
    /// the bytes read.
    pub(crate) async fn probe(&self, name: &str, data: Bytes) -> Result<Bytes> {
        let key = self.key(&[PROBE, name]);
        self.put_object(&key, data).await?;
        let read = match self.client.get(&key).await {
            Ok(result) => result.bytes().await.map_err(BlockError::s3("GET", &key)),
            Err(e) => Err(BlockError::s3("GET", &key)(e)),
        };
        // Deleted even when the read failed, so that a failed check leaves nothing behind.
        let deleted = self.delete_object(&key).await;
        let read = read?;
        deleted?;
        Ok(read)
    }

    pub(crate) async fn contains(&self, hash: &BlockHash) -> Result<bool> {
        self.exists(&self.block_key(hash)).await
    }

    pub(crate) async fn delete(&self, hash: &BlockHash) -> Result<bool> {
        let existed = self.exists(&self.block_key(hash)).await?;
        self.delete_object(&self.block_key(hash)).await?;
        self.delete_object(&self.marker_key(hash)).await?;
        Ok(existed)
    }

    /// Lists everything under the prefix, sorted out into blocks, markers and trash.
    async fn scan(&self) -> Result<Scan> {
        let prefix = if self.prefix.is_empty() {
            None
        } else {
            Some(Path::from(self.prefix.as_str()))
        };
        let listing_key = prefix.clone().unwrap_or_default();
        let mut stream = self.client.list(prefix.as_ref());
        let mut scan = Scan::default();
        let skip = prefix.as_ref().map_or(0, |p| p.parts().count());
        while let Some(meta) = stream
            .try_next()
            .await
            .map_err(BlockError::s3("LIST", &listing_key))?
        {
            let parts: Vec<String> = meta
                .location
                .parts()
                .skip(skip)
                .map(|p| p.as_ref().to_owned())
                .collect();
            let time: SystemTime = meta.last_modified.into();
            match parts.as_slice() {
                [a, b, name] => match name.parse::<BlockHash>() {
                    Ok(hash)
                        if name.get(0..2) == Some(a.as_str())
                            && name.get(2..4) == Some(b.as_str()) =>
                    {
                        scan.blocks.push((hash, meta.size, time));
                    }
                    _ => tracing::warn!(key = %meta.location, "not a block; skipped"),
                },
                // A probe a crashed start-up check left behind; nothing to report.
                [kind, _] if kind == PROBE => {}
                [kind, name] if kind == TOUCHED || kind == TRASH => match name.parse() {
                    Ok(hash) if kind == TOUCHED => {
                        scan.markers.insert(hash, time);
                    }
                    Ok(hash) => scan.trash.push(hash),
                    Err(_) => tracing::warn!(key = %meta.location, "not a block; skipped"),
                },
                _ => tracing::warn!(key = %meta.location, "not a block; skipped"),
            }
        }
        Ok(scan)
    }

    pub(crate) async fn list(&self) -> Result<Vec<BlockInfo>> {
        let scan = self.scan().await?;
        Ok(scan.infos())
    }

    /// Puts back what a crashed garbage collection left in the trash, and deletes markers
    /// older than `cutoff` whose block is gone. Only under the gc lock.
    pub(crate) async fn recover(&self, cutoff: SystemTime) -> Result<(usize, Vec<BlockInfo>)> {
        let scan = self.scan().await?;
        let mut restored = 0;
        for hash in &scan.trash {
            let (trash, key) = (self.trash_key(hash), self.block_key(hash));
            match self.client.copy(&trash, &key).await {
                Ok(()) => restored += 1,
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(BlockError::s3("COPY to", &key)(e)),
            }
            self.delete_object(&trash).await?;
        }
        let blocks: std::collections::HashSet<BlockHash> = scan
            .blocks
            .iter()
            .map(|b| b.0)
            .chain(scan.trash.iter().copied())
            .collect();
        for (hash, time) in &scan.markers {
            if !blocks.contains(hash) && *time < cutoff {
                self.delete_object(&self.marker_key(hash)).await?;
            }
        }
        let mut infos = scan.infos();
        if restored > 0 {
            // Restored blocks were copied, so they look fresh; list them as they are now.
            infos = self.list().await?;
        }
        Ok((restored, infos))
    }

    /// The deletion step of a garbage collection (crate::gc): deletes the block unless it
    /// was touched at or after `cutoff`, safely against a concurrent `put`/`touch`.
    pub(crate) async fn remove_if_untouched(
        &self,
        hash: &BlockHash,
        cutoff: SystemTime,
    ) -> Result<Removal> {
        let (key, marker, trash) = (
            self.block_key(hash),
            self.marker_key(hash),
            self.trash_key(hash),
        );
        let Some((block_time, size)) = self.head_time(&key).await? else {
            return Ok(Removal::Absent);
        };
        let marker_time = self.head_time(&marker).await?.map(|(t, _)| t);
        if block_time >= cutoff || marker_time.is_some_and(|t| t >= cutoff) {
            return Ok(Removal::Touched);
        }
        match self.client.copy(&key, &trash).await {
            Ok(()) => {}
            Err(e) if not_found(&e) => return Ok(Removal::Absent),
            Err(e) => return Err(BlockError::s3("COPY to", &trash)(e)),
        }
        self.delete_object(&key).await?;
        // A touch whose HEAD still saw the block wrote its marker before our DELETE.
        let marker_time = self.head_time(&marker).await?.map(|(t, _)| t);
        if marker_time.is_some_and(|t| t >= cutoff) {
            self.client
                .copy(&trash, &key)
                .await
                .map_err(BlockError::s3("COPY to", &key))?;
            self.delete_object(&trash).await?;
            return Ok(Removal::Touched);
        }
        self.delete_object(&trash).await?;
        self.delete_object(&marker).await?;
        Ok(Removal::Removed { size })
    }
}

#[derive(Debug, Default)]
struct Scan {
    blocks: Vec<(BlockHash, u64, SystemTime)>,
    markers: HashMap<BlockHash, SystemTime>,
    trash: Vec<BlockHash>,
}

impl Scan {
    fn infos(&self) -> Vec<BlockInfo> {
        self.blocks
            .iter()
            .map(|&(hash, size, time)| BlockInfo {
                hash,
                size,
                last_touched: match self.markers.get(&hash) {
                    Some(&marker) if marker > time => marker,
                    _ => time,
                },
            })
            .collect()
    }
}
