//! `nefos object download`: one object to a file, a directory or stdout, or every object of
//! a container under a directory. Each is checked against the store's `X-Object-Hash`, and
//! no object, whatever it is called, is written outside the directory it is meant for.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use futures::{StreamExt, stream};
use indicatif::ProgressBar;
use nefos_blocks::StreamHasher;
use reqwest::Method;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::names;
use super::store::{Account, check};

/// The `-o` value that means standard output.
const STDOUT: &str = "-";

pub async fn download(
    account: &Account<'_>,
    container: &str,
    object: Option<String>,
    output: Option<PathBuf>,
    jobs: usize,
) -> anyhow::Result<()> {
    names::container_url(container)?;
    let to_stdout = output.as_deref() == Some(Path::new(STDOUT));
    match object {
        Some(object) if to_stdout => to_standard_output(account, container, &object).await,
        Some(object) => {
            let out = single_target(&object, output).await?;
            let failures = fetch_all(account, container, vec![(object, out)], 1).await;
            failures.into_iter().next().map_or(Ok(()), Err)
        }
        None if to_stdout => bail!("-o - takes one object; name it"),
        None => {
            let root = output.unwrap_or_else(|| PathBuf::from(container));
            whole_container(account, container, &root, jobs).await
        }
    }
}

/// Every object of a container under `root`, except those whose names would leave it.
async fn whole_container(
    account: &Account<'_>,
    container: &str,
    root: &Path,
    jobs: usize,
) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    let mut refused = Vec::new();
    for entry in account.listing(Some(container), None).await? {
        let Some(name) = entry["name"].as_str() else {
            continue;
        };
        match names::local_path_in(root, name) {
            Ok(out) => targets.push((name.to_owned(), out)),
            Err(error) => refused.push(error),
        }
    }
    for error in &refused {
        eprintln!("nefos: skipped: {error:#}");
    }
    let failed = fetch_all(account, container, targets, jobs).await;
    if let Some(first) = refused.first().or(failed.first()) {
        bail!(
            "{} objects were not downloaded; first: {first:#}",
            refused.len() + failed.len()
        );
    }
    Ok(())
}

/// The file one object goes to: `-o FILE` as given, into `-o DIR/` (or an existing
/// directory) under the name's last segment, or by default its name under the current
/// directory.
async fn single_target(object: &str, output: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let Some(output) = output else {
        return names::local_path_in(Path::new("."), object);
    };
    let names_a_directory = output.as_os_str().to_string_lossy().ends_with('/')
        || tokio::fs::metadata(&output)
            .await
            .is_ok_and(|meta| meta.is_dir());
    if names_a_directory {
        Ok(output.join(names::file_name_of(object)?))
    } else {
        Ok(output)
    }
}

/// Downloads every `(object, file)` pair, `jobs` at a time; the failures.
async fn fetch_all(
    account: &Account<'_>,
    container: &str,
    targets: Vec<(String, PathBuf)>,
    jobs: usize,
) -> Vec<anyhow::Error> {
    let overall = ProgressBar::new(0);
    overall.set_style(super::output::bar_style());
    overall.set_message(format!("{} objects", targets.len()));
    let results: Vec<anyhow::Result<()>> = stream::iter(targets)
        .map(|(name, out)| {
            let overall = overall.clone();
            async move {
                to_file(account, container, &name, &out, &overall)
                    .await
                    .with_context(|| format!("{container}/{name} → {}", out.display()))
            }
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    overall.finish_and_clear();
    results.into_iter().filter_map(Result::err).collect()
}

/// An object's answer and the Merkle root its bytes must have, if the store gives one.
async fn get(
    account: &Account<'_>,
    container: &str,
    name: &str,
) -> anyhow::Result<(reqwest::Response, Option<String>)> {
    let path = names::object_path(container, name)?;
    let response = account.request(Method::GET, &path).send().await?;
    let response = check(response, &format!("downloading {container}/{name}")).await?;
    let headers = response.headers();
    // A manifest's bytes are its segments', which the manifest's own hash does not cover.
    let manifest =
        headers.contains_key("x-object-manifest") || headers.contains_key("x-static-large-object");
    let expected = headers
        .get("x-object-hash")
        .and_then(|v| v.to_str().ok())
        .filter(|_| !manifest)
        .map(str::to_owned);
    Ok((response, expected))
}

/// Copies the answer's body to `sink`; the Merkle root of what went through.
async fn copy_body(
    response: reqwest::Response,
    sink: &mut (impl AsyncWrite + Unpin),
    progress: &ProgressBar,
) -> anyhow::Result<String> {
    if let Some(length) = response.content_length() {
        progress.inc_length(length);
    }
    let mut hasher = StreamHasher::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        sink.write_all(&chunk).await?;
        progress.inc(chunk.len() as u64);
    }
    sink.flush().await?;
    Ok(hasher.finish().root().to_hex())
}

/// Streams an object into a temporary file next to `out`, checks it, then renames it into
/// place, so `out` never holds a partial or damaged copy.
async fn to_file(
    account: &Account<'_>,
    container: &str,
    name: &str,
    out: &Path,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    let (response, expected) = get(account, container, name).await?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent)
            .await
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut temp_name = out
        .file_name()
        .with_context(|| format!("{} is not a file name", out.display()))?
        .to_owned();
    temp_name.push(".nefos-part");
    let temp = out.with_file_name(temp_name);
    let mut file = tokio::fs::File::create(&temp)
        .await
        .with_context(|| format!("cannot create {}", temp.display()))?;
    let root = copy_body(response, &mut file, progress).await;
    let synced = file.sync_all().await;
    let kept = match (root, synced) {
        (Ok(root), Ok(())) => match expected {
            Some(expected) if expected != root => Err(anyhow::anyhow!(
                "the download is damaged: its hash {root} is not the object's {expected}"
            )),
            _ => Ok(()),
        },
        (Err(error), _) => Err(error),
        (_, Err(error)) => Err(error.into()),
    };
    if let Err(error) = kept {
        // The partial file is worthless; failing to remove it changes nothing for the user.
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(error);
    }
    tokio::fs::rename(&temp, out)
        .await
        .with_context(|| format!("cannot rename {} to {}", temp.display(), out.display()))?;
    Ok(())
}

/// Streams one object to standard output. A damaged download is reported (and fails)
/// after its bytes went out: a pipe cannot take them back.
async fn to_standard_output(
    account: &Account<'_>,
    container: &str,
    name: &str,
) -> anyhow::Result<()> {
    let (response, expected) = get(account, container, name).await?;
    let root = copy_body(response, &mut tokio::io::stdout(), &ProgressBar::hidden()).await?;
    if let Some(expected) = expected
        && expected != root
    {
        bail!("the output is damaged: its hash {root} is not the object's {expected}");
    }
    Ok(())
}
