//! `nefos object …`: files in the object store. Uploads use the Pithos hashmap protocol:
//! the client hashes the file, sends the list of block hashes, and then only the blocks the
//! cloud does not hold yet, so a file (or a part of one) stored before never travels again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use clap::Subcommand;
use futures::{StreamExt, TryStreamExt, stream};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use nefos_blocks::{BLOCK_SIZE, BlockHash, StreamHasher};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::session::{Session, encode_path};

#[derive(Debug, Subcommand)]
pub enum ObjectCommand {
    /// Lists containers, or the objects of a container.
    List {
        container: Option<String>,
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Uploads files and directories (recursively) into a container.
    Upload {
        container: String,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Object name for a single file (default: its path as given).
        #[arg(long)]
        name: Option<String>,
        /// Files sent at once.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
    },
    /// Downloads an object, or every object of a container into a directory.
    Download {
        container: String,
        object: Option<String>,
        /// File (one object) or directory (a container); default: the object's name.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[arg(long, default_value_t = 4)]
        jobs: usize,
    },
    /// Deletes objects, or a container with everything in it (--all).
    Delete {
        container: String,
        objects: Vec<String>,
        #[arg(long)]
        all: bool,
    },
    /// Shares an object with users (by name), `*` (everyone), or PROJECT:GROUP.
    Share {
        container: String,
        object: String,
        #[arg(long, value_delimiter = ',')]
        read: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        write: Vec<String>,
    },
    /// Makes an object public and prints its URL (or stops it being public).
    Publish {
        container: String,
        object: String,
        #[arg(long)]
        revoke: bool,
    },
}

pub async fn run(session: &Session, command: ObjectCommand) -> anyhow::Result<()> {
    match command {
        ObjectCommand::List {
            container: None,
            prefix,
        } => list_containers(session, prefix).await,
        ObjectCommand::List {
            container: Some(c),
            prefix,
        } => list_objects(session, &c, prefix).await,
        ObjectCommand::Upload {
            container,
            paths,
            name,
            jobs,
        } => upload(session, &container, &paths, name, jobs).await,
        ObjectCommand::Download {
            container,
            object,
            output,
            jobs,
        } => download(session, &container, object, output, jobs).await,
        ObjectCommand::Delete {
            container,
            objects,
            all,
        } => delete(session, &container, &objects, all).await,
        ObjectCommand::Share {
            container,
            object,
            read,
            write,
        } => {
            let mut parts = Vec::new();
            if !read.is_empty() {
                parts.push(format!("read={}", read.join(",")));
            }
            if !write.is_empty() {
                parts.push(format!("write={}", write.join(",")));
            }
            let path = format!("{}/{}", encode_path(&container), encode_path(&object));
            let response = session
                .object(Method::POST, &path)
                .header("X-Object-Sharing", parts.join(";"))
                .send()
                .await?;
            check(response, "share").await?;
            println!("{container}/{object}: shared as {:?}", parts.join(";"));
            Ok(())
        }
        ObjectCommand::Publish {
            container,
            object,
            revoke,
        } => {
            let path = format!("{}/{}", encode_path(&container), encode_path(&object));
            let value = if revoke { "false" } else { "true" };
            let response = session
                .object(Method::POST, &path)
                .header("X-Object-Public", value)
                .send()
                .await?;
            let response = check(response, "publish").await?;
            match response
                .headers()
                .get("x-object-public")
                .and_then(|v| v.to_str().ok())
            {
                Some(url) if !revoke => println!("{url}"),
                _ => println!("{container}/{object} is not public"),
            }
            Ok(())
        }
    }
}

/// Fails with the server's message unless the answer is a success.
async fn check(response: reqwest::Response, what: &str) -> anyhow::Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let text = text
        .trim_start_matches("<html><h1>")
        .replace("</h1><p>", ": ")
        .replace("</p></html>", "");
    bail!("{what} failed: {status}: {text}")
}

/// Pages through a JSON listing.
async fn listing(
    session: &Session,
    path: &str,
    prefix: Option<&str>,
) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut marker = String::new();
    loop {
        let mut request = session
            .object(Method::GET, path)
            .query(&[("format", "json"), ("marker", marker.as_str())]);
        if let Some(prefix) = prefix {
            request = request.query(&[("prefix", prefix)]);
        }
        let response = check(request.send().await?, "listing").await?;
        if response.status() == StatusCode::NO_CONTENT {
            break;
        }
        let page: Vec<Value> = response
            .json()
            .await
            .context("a listing that is not JSON")?;
        let Some(last) = page
            .last()
            .and_then(|v| v["name"].as_str().or(v["subdir"].as_str()))
        else {
            break;
        };
        marker = last.to_owned();
        all.extend(page);
    }
    Ok(all)
}

async fn list_containers(session: &Session, prefix: Option<String>) -> anyhow::Result<()> {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(vec!["container", "objects", "bytes"]);
    for c in listing(session, "", prefix.as_deref()).await? {
        table.add_row(vec![
            c["name"].as_str().unwrap_or("").to_owned(),
            c["count"].to_string(),
            c["bytes"].to_string(),
        ]);
    }
    println!("{table}");
    Ok(())
}

async fn list_objects(
    session: &Session,
    container: &str,
    prefix: Option<String>,
) -> anyhow::Result<()> {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(vec!["name", "bytes", "modified"]);
    for o in listing(session, &encode_path(container), prefix.as_deref()).await? {
        table.add_row(vec![
            o["name"].as_str().unwrap_or("").to_owned(),
            o["bytes"].to_string(),
            o["last_modified"].as_str().unwrap_or("").to_owned(),
        ]);
    }
    println!("{table}");
    Ok(())
}

/// Files to upload with their object names: a directory contributes every file under it,
/// named by its path as given.
fn collect_files(
    paths: &[PathBuf],
    name: Option<String>,
) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    for path in paths {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            let mut stack = vec![path.clone()];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir)
                    .with_context(|| format!("cannot list {}", dir.display()))?
                {
                    let entry = entry?;
                    let kind = entry.file_type()?;
                    if kind.is_dir() {
                        stack.push(entry.path());
                    } else if kind.is_file() {
                        files.push(entry.path());
                    }
                }
            }
        } else {
            files.push(path.clone());
        }
    }
    let single = files.len() == 1;
    Ok(files
        .into_iter()
        .map(|f| {
            let object = match (&name, single) {
                (Some(n), true) => n.clone(),
                _ => f
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .trim_start_matches('/')
                    .to_owned(),
            };
            (f, object)
        })
        .collect())
}

async fn upload(
    session: &Session,
    container: &str,
    paths: &[PathBuf],
    name: Option<String>,
    jobs: usize,
) -> anyhow::Result<()> {
    let files = collect_files(paths, name)?;
    let response = session
        .object(Method::PUT, &encode_path(container))
        .send()
        .await?;
    check(response, "creating the container").await?;
    let bars = MultiProgress::new();
    let total: u64 = files
        .iter()
        .filter_map(|(f, _)| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let overall = bars.add(ProgressBar::new(total));
    overall.set_style(bar_style());
    overall.set_message(format!("{} files", files.len()));
    let sent = Arc::new(AtomicU64::new(0));
    let results: Vec<anyhow::Result<()>> = stream::iter(files)
        .map(|(file, object)| {
            let overall = overall.clone();
            let sent = sent.clone();
            async move {
                upload_file(session, container, &file, &object, &overall, &sent)
                    .await
                    .with_context(|| format!("{} → {container}/{object}", file.display()))
            }
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    overall.finish_and_clear();
    let failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    let sent = sent.load(Ordering::Relaxed);
    let percent = if total == 0 {
        0.0
    } else {
        sent as f64 * 100.0 / total as f64
    };
    println!(
        "uploaded {total} bytes; sent {sent} bytes ({percent:.3} %): hashmaps and the blocks the cloud lacked"
    );
    if let Some(first) = failures.first() {
        bail!("{} uploads failed; first: {first:#}", failures.len());
    }
    Ok(())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// The hashmap of a file, computed off the reactor.
async fn hash_file(path: &Path) -> anyhow::Result<nefos_blocks::Hashmap> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<nefos_blocks::Hashmap> {
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

async fn upload_file(
    session: &Session,
    container: &str,
    file: &Path,
    object: &str,
    progress: &ProgressBar,
    sent: &AtomicU64,
) -> anyhow::Result<()> {
    let hashmap = hash_file(file).await?;
    let path = format!("{}/{}", encode_path(container), encode_path(object));
    let body = json!({
        "block_size": BLOCK_SIZE,
        "block_hash": "sha256",
        "bytes": hashmap.bytes,
        "hashes": hashmap.hashes.iter().map(BlockHash::to_hex).collect::<Vec<_>>(),
    });
    let body = serde_json::to_vec(&body)?;
    let content_type = nefos_storage::guess_content_type(object);
    for attempt in 0..3 {
        let response = session
            .object(Method::PUT, &path)
            .query(&[("hashmap", ""), ("format", "json")])
            .header("Content-Type", content_type)
            .body(body.clone())
            .send()
            .await?;
        sent.fetch_add(body.len() as u64, Ordering::Relaxed);
        if response.status() != StatusCode::CONFLICT {
            check(response, "storing the hashmap").await?;
            progress.inc(hashmap.bytes);
            return Ok(());
        }
        if attempt == 2 {
            bail!("blocks kept going missing while uploading");
        }
        let missing: Vec<String> = response
            .json()
            .await
            .context("the list of missing blocks is not JSON")?;
        send_blocks(session, container, file, &hashmap.hashes, &missing, sent).await?;
    }
    Ok(())
}

/// Sends the blocks the cloud lacks, each read from its place in the file.
async fn send_blocks(
    session: &Session,
    container: &str,
    file: &Path,
    hashes: &[BlockHash],
    missing: &[String],
    sent: &AtomicU64,
) -> anyhow::Result<()> {
    let wanted: std::collections::BTreeSet<&str> = missing.iter().map(String::as_str).collect();
    let mut indices = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (index, hash) in hashes.iter().enumerate() {
        let hex = hash.to_hex();
        if wanted.contains(hex.as_str()) && seen.insert(hex) {
            indices.push(index);
        }
    }
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
            let response = session
                .object(Method::POST, &encode_path(container))
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

async fn download(
    session: &Session,
    container: &str,
    object: Option<String>,
    output: Option<PathBuf>,
    jobs: usize,
) -> anyhow::Result<()> {
    let targets: Vec<(String, PathBuf)> = match object {
        Some(object) => {
            let out = output.unwrap_or_else(|| PathBuf::from(&object));
            vec![(object, out)]
        }
        None => {
            let root = output.unwrap_or_else(|| PathBuf::from(container));
            listing(session, &encode_path(container), None)
                .await?
                .into_iter()
                .filter_map(|o| o["name"].as_str().map(str::to_owned))
                .map(|name| {
                    let out = root.join(name.trim_start_matches('/'));
                    (name, out)
                })
                .collect()
        }
    };
    let overall = ProgressBar::new(0);
    overall.set_style(bar_style());
    overall.set_message(format!("{} objects", targets.len()));
    let results: Vec<anyhow::Result<()>> = stream::iter(targets)
        .map(|(name, out)| {
            let overall = overall.clone();
            async move {
                download_object(session, container, &name, &out, &overall)
                    .await
                    .with_context(|| format!("{container}/{name} → {}", out.display()))
            }
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    overall.finish_and_clear();
    let failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    if let Some(first) = failures.first() {
        bail!("{} downloads failed; first: {first:#}", failures.len());
    }
    Ok(())
}

/// Streams an object into a temporary file, checks its hashmap against the cloud's
/// `X-Object-Hash`, then renames it into place.
async fn download_object(
    session: &Session,
    container: &str,
    name: &str,
    out: &Path,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    let path = format!("{}/{}", encode_path(container), encode_path(name));
    let response = check(session.object(Method::GET, &path).send().await?, "download").await?;
    let expected = response
        .headers()
        .get("x-object-hash")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let manifest = response.headers().contains_key("x-object-manifest")
        || response.headers().contains_key("x-static-large-object");
    if let Some(length) = response.content_length() {
        progress.inc_length(length);
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent).await?;
    }
    let temp = out.with_extension("nefos-part");
    let mut file = tokio::fs::File::create(&temp).await?;
    let mut hasher = StreamHasher::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        file.write_all(&chunk).await?;
        progress.inc(chunk.len() as u64);
    }
    file.sync_all().await?;
    let root = hasher.finish().root().to_hex();
    if let Some(expected) = expected.filter(|_| !manifest)
        && expected != root
    {
        let _ = tokio::fs::remove_file(&temp).await;
        bail!("the download is damaged: its hash {root} is not the object's {expected}");
    }
    tokio::fs::rename(&temp, out).await?;
    Ok(())
}

async fn delete(
    session: &Session,
    container: &str,
    objects: &[String],
    all: bool,
) -> anyhow::Result<()> {
    let names: Vec<String> = if all {
        listing(session, &encode_path(container), None)
            .await?
            .into_iter()
            .filter_map(|o| o["name"].as_str().map(str::to_owned))
            .collect()
    } else {
        objects.to_vec()
    };
    for name in &names {
        let path = format!("{}/{}", encode_path(container), encode_path(name));
        check(
            session.object(Method::DELETE, &path).send().await?,
            "delete",
        )
        .await?;
    }
    if all {
        check(
            session
                .object(Method::DELETE, &encode_path(container))
                .send()
                .await?,
            "deleting the container",
        )
        .await?;
    }
    println!(
        "deleted {} objects{}",
        names.len(),
        if all { " and the container" } else { "" }
    );
    Ok(())
}
