//! `nefos image download`: an image's data to a file or standard output, streamed and
//! checked against the image's SHA-256 or SHA-512 (`os_hash_value`) or, for images that have none,
//! its MD5 (`checksum`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use futures::StreamExt;
use indicatif::ProgressBar;
use md5::Md5;
use nefos_image_api::glance::{self, ImageView};
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256, Sha512};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::glance::{Glance, check, send};
use crate::client::output::bar_style;

/// The `--file` value that means standard output.
const STDOUT: &str = "-";

/// What the downloaded bytes must hash to.
enum Expected {
    Sha512 { hasher: Box<Sha512>, hex: String },
    Sha256 { hasher: Sha256, hex: String },
    Md5 { hasher: Md5, hex: String },
    Nothing,
}

impl Expected {
    /// The strongest digest the image states: Glance's multihash, else its MD5.
    fn of(image: &ImageView) -> Expected {
        match (&image.os_hash_algo, &image.os_hash_value, &image.checksum) {
            (Some(algo), Some(value), _) if algo == "sha512" => Expected::Sha512 {
                hasher: Box::default(),
                hex: value.to_ascii_lowercase(),
            },
            (Some(algo), Some(value), _) if algo == "sha256" => Expected::Sha256 {
                hasher: Sha256::new(),
                hex: value.to_ascii_lowercase(),
            },
            (_, _, Some(md5)) => Expected::Md5 {
                hasher: Md5::new(),
                hex: md5.to_ascii_lowercase(),
            },
            _ => Expected::Nothing,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Expected::Sha512 { hasher, .. } => hasher.update(bytes),
            Expected::Sha256 { hasher, .. } => hasher.update(bytes),
            Expected::Md5 { hasher, .. } => hasher.update(bytes),
            Expected::Nothing => {}
        }
    }

    /// Whether the bytes seen match; an error names both digests.
    fn verify(self) -> anyhow::Result<()> {
        let (name, got, expected) = match self {
            Expected::Sha512 { hasher, hex } => ("SHA-512", hex::encode(hasher.finalize()), hex),
            Expected::Sha256 { hasher, hex } => ("SHA-256", hex::encode(hasher.finalize()), hex),
            Expected::Md5 { hasher, hex } => ("MD5", hex::encode(hasher.finalize()), hex),
            Expected::Nothing => return Ok(()),
        };
        if got != expected {
            bail!("the download is damaged: its {name} is {got}, the image's is {expected}");
        }
        Ok(())
    }
}

/// Downloads `image` to `file` (default: a file named after the image in the current
/// directory), or to standard output for `-`.
pub async fn download(
    glance: &Glance<'_>,
    image: &ImageView,
    file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut expected = Expected::of(image);
    if matches!(expected, Expected::Nothing) {
        eprintln!(
            "nefos: image {} states no checksum: the download cannot be verified",
            image.id
        );
    }
    let what = format!("downloading image {}", image.id);
    let path = nefos_image_api::fill(glance::IMAGE_FILE, &[&image.id]);
    let response = check(
        send(glance.request(Method::GET, &path), &what).await?,
        &what,
    )
    .await?;
    if response.status() == StatusCode::NO_CONTENT {
        bail!("image {} has no data (it is {})", image.id, image.status);
    }
    match file {
        Some(file) if file.as_os_str() == STDOUT => {
            let mut out = tokio::io::stdout();
            copy(response, &mut out, &mut expected, &ProgressBar::hidden()).await?;
            // The bytes went out already: a pipe cannot take them back.
            expected.verify()
        }
        file => {
            let file = match file {
                Some(file) => file,
                None => PathBuf::from(default_file_name(image)),
            };
            let progress = ProgressBar::new(response.content_length().unwrap_or(0));
            progress.set_style(bar_style());
            progress.set_message(image.name.clone().unwrap_or_else(|| image.id.clone()));
            let result = to_file(response, &file, expected, &progress).await;
            progress.finish_and_clear();
            result?;
            println!("{}", file.display());
            Ok(())
        }
    }
}

/// The image's name when it is a plain file name, else its id.
fn default_file_name(image: &ImageView) -> String {
    match image.name.as_deref() {
        Some(name)
            if !name.is_empty()
                && name != "."
                && name != ".."
                && !name.contains(['/', '\0'])
                && !name.starts_with('-') =>
        {
            name.to_owned()
        }
        _ => image.id.clone(),
    }
}

/// Copies the answer's body to `sink`, hashing it.
async fn copy(
    response: reqwest::Response,
    sink: &mut (impl AsyncWrite + Unpin),
    expected: &mut Expected,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("the download was cut off")?;
        expected.update(&chunk);
        sink.write_all(&chunk).await?;
        progress.inc(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
    }
    sink.flush().await?;
    Ok(())
}

/// Streams into a temporary file beside `out`, verifies, then renames it into place, so
/// `out` never holds a partial or damaged image.
async fn to_file(
    response: reqwest::Response,
    out: &Path,
    mut expected: Expected,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    let mut temp_name = out
        .file_name()
        .with_context(|| format!("{} is not a file name", out.display()))?
        .to_owned();
    temp_name.push(".nefos-part");
    let temp = out.with_file_name(temp_name);
    let mut file = tokio::fs::File::create(&temp)
        .await
        .with_context(|| format!("cannot create {}", temp.display()))?;
    let written = async {
        copy(response, &mut file, &mut expected, progress).await?;
        file.sync_all()
            .await
            .with_context(|| format!("cannot write {}", temp.display()))?;
        expected.verify()
    }
    .await;
    if let Err(error) = written {
        // The partial file is worthless; failing to remove it changes nothing for the user.
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(error);
    }
    tokio::fs::rename(&temp, out)
        .await
        .with_context(|| format!("cannot rename {} to {}", temp.display(), out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked_strongest_first() {
        let data = b"image bytes";
        let sha = hex::encode(Sha512::digest(data));
        let md5 = hex::encode(Md5::digest(data));
        let mut view: ImageView = serde_json::from_value(serde_json::json!({
            "id": "i", "name": "../x", "status": "active", "visibility": "private",
            "protected": false, "os_hidden": false, "checksum": md5,
            "os_hash_algo": "sha512", "os_hash_value": sha.to_uppercase(), "owner": "p",
            "size": 11, "virtual_size": null, "min_ram": 0, "min_disk": 0,
            "disk_format": "raw", "container_format": "bare", "created_at": "",
            "updated_at": "", "tags": [], "self": "", "file": "", "schema": ""
        }))
        .unwrap();
        let mut expected = Expected::of(&view);
        assert!(matches!(expected, Expected::Sha512 { .. }));
        expected.update(data);
        expected.verify().unwrap();
        view.os_hash_value = None;
        let mut expected = Expected::of(&view);
        expected.update(b"other bytes");
        let error = expected.verify().unwrap_err().to_string();
        assert!(error.contains("MD5") && error.contains(&md5), "{error}");
        assert_eq!(default_file_name(&view), "i");
    }
}
