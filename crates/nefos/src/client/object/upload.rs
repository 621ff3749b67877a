//! `nefos object upload`: the Pithos hashmap protocol. The client hashes each file and
//! compares the hashmap's root with the object's `X-Object-Hash`: an unchanged file is
//! skipped, so uploading a tree again makes no new versions. Otherwise it sends the list
//! of block hashes, then only the blocks the cloud does not hold yet.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt, stream};
use indicatif::{MultiProgress, ProgressBar};
use nefos_blocks::{BLOCK_SIZE, BlockHash, Hashmap, StreamHasher};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::names;
use super::store::{Account, check};

/// A local file and the object it becomes.
#[derive(Debug)]
struct Upload {
    file: PathBuf,
    object: String,
    bytes: u64,
}

/// What became of one file.
enum Outcome {
    Sent,
    Unchanged,
}

pub async fn upload(
    account: &Account<'_>,
    container: &str,
    paths: Vec<PathBuf>,
    name: Option<String>,
    jobs: usize,
) -> anyhow::Result<()> {
    let container_path = names::container_url(container)?;
    let uploads = tokio::task::spawn_blocking(move || collect(&paths, name)).await??;
    let response = account.request(Method::PUT, &container_path).send().await?;
    check(response, &format!("creating container {container:?}")).await?;
    let bars = MultiProgress::new();
    let total: u64 = uploads.iter().map(|u| u.bytes).sum();
    let overall = bars.add(ProgressBar::new(total));
    overall.set_style(super::output::bar_style());
    overall.set_message(format!("{} files", uploads.len()));
    let sent = Arc::new(AtomicU64::new(0));
    let results: Vec<(u64, anyhow::Result<Outcome>)> = stream::iter(uploads)
        .map(|upload| {
            let overall = overall.clone();
            let sent = sent.clone();
            async move {
                let result = upload_file(account, container, &upload, &overall, &sent)
                    .await
                    .with_context(|| {
                        format!("{} → {container}/{}", upload.file.display(), upload.object)
                    });
                (upload.bytes, result)
            }
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    overall.finish_and_clear();
    let (mut files, mut bytes, mut unchanged) = (0u64, 0u64, 0u64);
    let mut failures = Vec::new();
    for (size, result) in results {
        match result {
            Ok(Outcome::Sent) => {
                files += 1;
                bytes += size;
            }
            Ok(Outcome::Unchanged) => unchanged += 1,
            Err(error) => failures.push(error),
        }
    }
    let sent = sent.load(Ordering::Relaxed);
    let percent = if bytes == 0 {
        0.0
    } else {
        sent as f64 * 100.0 / bytes as f64
    };
    println!(
        "uploaded {files} files, {bytes} bytes; skipped {unchanged} unchanged; \
         sent {sent} bytes ({percent:.3} %): hashmaps and the blocks the cloud lacked"
    );
    if let Some(first) = failures.first() {
        bail!("{} uploads failed; first: {first:#}", failures.len());
    }
    Ok(())
}

/// The files under `paths` (directories recursively) with their object names: `name` for
/// a single file, else each file's path as given with `.` and `..` resolved (see
/// [`names::object_name_of`]). Two files that would become one object are refused.
fn collect(paths: &[PathBuf], name: Option<String>) -> anyhow::Result<Vec<Upload>> {
    let mut files = Vec::new();
    for path in paths {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if !meta.is_dir() {
            files.push((path.clone(), meta.len()));
            continue;
        }
        let mut stack = vec![path.clone()];
        while let Some(dir) = stack.pop() {
            for entry in
                std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
            {
                let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    files.push((entry.path(), entry.metadata()?.len()));
                }
            }
        }
    }
    if name.is_some() && files.len() != 1 {
        bail!(
            "--name names one file, and these paths hold {}",
            files.len()
        );
    }
    let mut seen = BTreeSet::new();
    files
        .into_iter()
        .map(|(file, bytes)| {
            let object = match &name {
                Some(name) => name.clone(),
                None => names::object_name_of(&file)?,
            };
            if !seen.insert(object.clone()) {
                bail!(
                    "two files would both be object {object:?} (the second is {})",
                    file.display()
                );
            }
            Ok(Upload {
                file,
                object,
                bytes,
            })
        })
        .collect()
}

/// The hashmap of a file, computed off the reactor.
async fn hash_file(path: &Path) -> anyhow::Result<Hashmap> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Hashmap> {
        use std::io::Read;
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = StreamHasher::new();
        let mut buffer = vec![0u8; BLOCK_SIZE];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        Ok(hasher.finish())
    })
    .await?
}

/// The object's `X-Object-Hash`, or `None` when there is no such object.
async fn stored_hash(account: &Account<'_>, path: &str) -> anyhow::Result<Option<String>> {
    let response = account.request(Method::HEAD, path).send().await?;
    if response.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let response = check(response, "reading the stored object").await?;
    Ok(response
        .headers()
        .get("x-object-hash")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned))
}

async fn upload_file(
    account: &Account<'_>,
    container: &str,
    upload: &Upload,
    progress: &ProgressBar,
    sent: &AtomicU64,
) -> anyhow::Result<Outcome> {
    let hashmap = hash_file(&upload.file).await?;
    let path = names::object_path(container, &upload.object)?;
    if stored_hash(account, &path).await? == Some(hashmap.root().to_hex()) {
        progress.suspend(|| println!("unchanged, skipped: {container}/{}", upload.object));
        progress.inc(hashmap.bytes);
        return Ok(Outcome::Unchanged);
    }
    let body = json!({
        "block_size": BLOCK_SIZE,
        "block_hash": "sha256",
        "bytes": hashmap.bytes,
        "hashes": hashmap.hashes.iter().map(BlockHash::to_hex).collect::<Vec<_>>(),
    });
    let body = serde_json::to_vec(&body)?;
    let content_type = nefos_storage::guess_content_type(&upload.object);
    for attempt in 0..3 {
        let response = account
            .request(Method::PUT, &path)
            .query(&[("hashmap", ""), ("format", "json")])
            .header("Content-Type", content_type)
            .body(body.clone())
            .send()
            .await?;
        sent.fetch_add(body.len() as u64, Ordering::Relaxed);
        if response.status() != StatusCode::CONFLICT {
            check(response, "storing the hashmap").await?;
            progress.inc(hashmap.bytes);
            return Ok(Outcome::Sent);
        }
        if attempt == 2 {
            bail!("blocks kept going missing while uploading");
        }
        let missing: Vec<String> = response
            .json()
            .await
            .context("the list of missing blocks is not JSON")?;
        send_blocks(
            account,
            container,
            &upload.file,
            &hashmap.hashes,
            &missing,
            sent,
        )
        .await?;
    }
    bail!("blocks kept going missing while uploading")
}

/// Sends the blocks the cloud lacks, each read from its place in the file.
async fn send_blocks(
    account: &Account<'_>,
    container: &str,
    file: &Path,
    hashes: &[BlockHash],
    missing: &[String],
    sent: &AtomicU64,
) -> anyhow::Result<()> {
    let container_path = names::container_url(container)?;
    let wanted: BTreeSet<&str> = missing.iter().map(String::as_str).collect();
    let mut indices = Vec::new();
    let mut seen = BTreeSet::new();
    for (index, hash) in hashes.iter().enumerate() {
        let hex = hash.to_hex();
        if wanted.contains(hex.as_str()) && seen.insert(hex) {
            indices.push(index);
        }
    }
    let container_path = &container_path;
    stream::iter(indices)
        .map(|index| async move {
            let mut handle = tokio::fs::File::open(file).await?;
            handle
                .seek(std::io::SeekFrom::Start((index * BLOCK_SIZE) as u64))
                .await?;
            let mut block = Vec::with_capacity(BLOCK_SIZE);
            handle
                .take(BLOCK_SIZE as u64)
                .read_to_end(&mut block)
                .await?;
            let length = block.len() as u64;
            let response = account
                .request(Method::POST, container_path)
                .header("Content-Type", "application/octet-stream")
                .body(block)
                .send()
                .await?;
            check(response, "sending a block").await?;
            sent.fetch_add(length, Ordering::Relaxed);
            anyhow::Ok(())
        })
        .buffer_unordered(4)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}
