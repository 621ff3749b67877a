//! `nefos image upload` (Glance: create a queued image, then stream its data) and
//! `nefos image register` (Plankton: make an object already in the store an image).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use clap::ValueEnum;
use futures::TryStreamExt;
use indicatif::ProgressBar;
use nefos_image_api::glance::{self, ImageView};
use nefos_image_api::plankton;
use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, RANGE};
use serde_json::{Map, Value};
use tokio::io::AsyncReadExt;

use super::glance::{Glance, check, send};
use crate::client::object::names;
use crate::client::output::bar_style;

/// The disk formats nefos boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

impl DiskFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }

    /// The format whose data starts with `head`: qcow2 by its magic, anything else raw
    /// (the cloud inspects the data and refuses a disk that is not what it is called).
    pub fn of_header(head: &[u8]) -> DiskFormat {
        if head.starts_with(b"QFI\xfb") {
            DiskFormat::Qcow2
        } else {
            DiskFormat::Raw
        }
    }
}

/// Who may see an image (Glance's visibilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Visibility {
    /// Everyone (administrators only).
    Public,
    /// Your project only.
    Private,
    /// Your project and those you share it with (`nefos image share`).
    Shared,
    /// Everyone who asks for it by id or with `list --community`.
    Community,
}

impl Visibility {
    fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
            Visibility::Shared => "shared",
            Visibility::Community => "community",
        }
    }
}

/// What a new image is to be, besides its data.
#[derive(Debug)]
pub struct Metadata {
    pub name: String,
    pub disk_format: Option<DiskFormat>,
    /// `key=value` as the user wrote them.
    pub properties: Vec<String>,
    pub min_disk: Option<u64>,
    pub min_ram: Option<u64>,
    pub visibility: Option<Visibility>,
    pub tags: Vec<String>,
}

/// Glance's own attributes: a property may not take their names.
const ATTRIBUTES: &[&str] = &[
    "id",
    "name",
    "owner",
    "status",
    "visibility",
    "protected",
    "os_hidden",
    "disk_format",
    "container_format",
    "min_disk",
    "min_ram",
    "tags",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "created_at",
    "updated_at",
    "locations",
    "self",
    "file",
    "schema",
];

/// `key=value` options, in order, a later key replacing an earlier one.
pub fn parse_properties(texts: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    texts
        .iter()
        .map(|text| {
            let (key, value) = text
                .split_once('=')
                .with_context(|| format!("--property {text:?} is not KEY=VALUE"))?;
            let key = key.trim();
            if key.is_empty() {
                bail!("--property {text:?} has no key");
            }
            if ATTRIBUTES.contains(&key) {
                bail!("--property {key}=… names an image attribute, not a property");
            }
            Ok((key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// The body of `POST /v2/images`.
fn create_body(metadata: &Metadata, disk_format: DiskFormat) -> anyhow::Result<Value> {
    let mut body = Map::new();
    for (key, value) in parse_properties(&metadata.properties)? {
        body.insert(key, Value::String(value));
    }
    body.insert("name".into(), Value::from(metadata.name.as_str()));
    body.insert("disk_format".into(), Value::from(disk_format.as_str()));
    body.insert("container_format".into(), Value::from("bare"));
    if let Some(visibility) = metadata.visibility {
        body.insert("visibility".into(), Value::from(visibility.as_str()));
    }
    if let Some(min_disk) = metadata.min_disk {
        body.insert("min_disk".into(), Value::from(min_disk));
    }
    if let Some(min_ram) = metadata.min_ram {
        body.insert("min_ram".into(), Value::from(min_ram));
    }
    if !metadata.tags.is_empty() {
        body.insert("tags".into(), Value::from(metadata.tags.clone()));
    }
    Ok(Value::Object(body))
}

/// The first bytes of a file (fewer if it is shorter).
async fn file_head(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut head = Vec::with_capacity(4);
    file.take(4)
        .read_to_end(&mut head)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(head)
}

/// Creates the image, sends the file, and returns the image as it is then. An image
/// whose data did not arrive is deleted again, as the openstack CLI does, so a failed
/// upload leaves no queued image behind.
pub async fn upload(
    glance: &Glance<'_>,
    file: &Path,
    metadata: &Metadata,
) -> anyhow::Result<ImageView> {
    let meta = tokio::fs::metadata(file)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file", file.display());
    }
    let disk_format = match metadata.disk_format {
        Some(format) => format,
        None => DiskFormat::of_header(&file_head(file).await?),
    };
    let body = create_body(metadata, disk_format)?;
    let created: ImageView = glance
        .json(
            glance.request(Method::POST, glance::IMAGES).json(&body),
            "creating the image",
        )
        .await?;
    if let Err(error) = send_data(glance, &created.id, file, meta.len(), &metadata.name).await {
        let what = format!("deleting the queued image {}", created.id);
        let path = nefos_image_api::fill(glance::IMAGE, &[&created.id]);
        let deleted = match send(glance.request(Method::DELETE, &path), &what).await {
            Ok(response) => check(response, &what).await.map(drop),
            Err(error) => Err(error),
        };
        return Err(match deleted {
            Ok(()) => error.context(format!(
                "the upload failed; image {} was deleted again",
                created.id
            )),
            Err(also) => error.context(format!(
                "the upload failed, and so did {what} ({also:#}): delete it yourself"
            )),
        });
    }
    glance
        .image(&created.id)
        .await?
        .with_context(|| format!("image {} vanished after its upload", created.id))
}

/// `PUT /v2/images/{id}/file`, the file streamed from disk with its length declared.
async fn send_data(
    glance: &Glance<'_>,
    id: &str,
    file: &Path,
    size: u64,
    name: &str,
) -> anyhow::Result<()> {
    let handle = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let progress = ProgressBar::new(size);
    progress.set_style(bar_style());
    progress.set_message(name.to_owned());
    let bar = progress.clone();
    let chunks =
        tokio_util::io::ReaderStream::with_capacity(handle, 1 << 20).inspect_ok(move |chunk| {
            bar.inc(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
        });
    let what = format!("uploading {} into image {id}", file.display());
    let path = nefos_image_api::fill(glance::IMAGE_FILE, &[id]);
    let request = glance
        .request(Method::PUT, &path)
        .header(CONTENT_TYPE, "application/octet-stream")
        // Declared, so the cloud can refuse an image over its cap or the quota before
        // reading it, and knows a cut-off upload when it sees one.
        .header(CONTENT_LENGTH, size)
        .body(reqwest::Body::wrap_stream(chunks));
    let result = match send(request, &what).await {
        Ok(response) => check(response, &what).await.map(drop),
        Err(error) => Err(error),
    };
    progress.finish_and_clear();
    result
}

/// The disk format of an object of the caller's account, by its first bytes (a ranged
/// read). When they cannot be read, the format is left to the cloud's default, raw, and
/// the registration itself says what is wrong with the object.
async fn object_format(
    glance: &Glance<'_>,
    container: &str,
    object: &str,
) -> anyhow::Result<DiskFormat> {
    let url = format!(
        "{}/{}",
        glance.session().object_url,
        names::object_path(container, object)?
    );
    let response = glance
        .session()
        .request(Method::GET, &url)
        .header(RANGE, "bytes=0-3")
        .send()
        .await
        .with_context(|| format!("reading {container}/{object}: cannot reach the object store"))?;
    if !response.status().is_success() {
        return Ok(DiskFormat::Raw);
    }
    let head = response
        .bytes()
        .await
        .with_context(|| format!("cannot read the start of {container}/{object}"))?;
    Ok(DiskFormat::of_header(&head))
}

/// Registers `CONTAINER/OBJECT` of the caller's account as an image through Plankton,
/// and returns the image as Glance shows it.
pub async fn register(
    glance: &Glance<'_>,
    object: &str,
    name: &str,
    disk_format: Option<DiskFormat>,
    properties: &[String],
    public: bool,
) -> anyhow::Result<ImageView> {
    let (container, object_name) = object
        .split_once('/')
        .filter(|(c, o)| !c.is_empty() && !o.is_empty())
        .with_context(|| format!("{object:?} is not CONTAINER/OBJECT"))?;
    let project = glance.session().project_id.as_deref().context(
        "the login named no project, whose account holds the object: give --os-project-name",
    )?;
    let disk_format = match disk_format {
        Some(format) => format,
        None => object_format(glance, container, object_name).await?,
    };
    let disk_format = disk_format.as_str();
    let mut headers = vec![
        (plankton::META_NAME.to_owned(), name.to_owned()),
        (
            plankton::META_LOCATION.to_owned(),
            format!("pithos://AUTH_{project}/{container}/{object_name}"),
        ),
        (
            plankton::META_DISK_FORMAT.to_owned(),
            disk_format.to_owned(),
        ),
        (
            plankton::META_CONTAINER_FORMAT.to_owned(),
            "bare".to_owned(),
        ),
    ];
    if public {
        headers.push((plankton::META_IS_PUBLIC.to_owned(), "true".to_owned()));
    }
    for (key, value) in parse_properties(properties)? {
        headers.push((format!("{}{key}", plankton::PROPERTY_PREFIX), value));
    }
    let path = format!("{}{}", plankton::VERSION_PREFIX, plankton::IMAGES_SLASH);
    let mut request = glance.request(Method::POST, &path);
    for (header, value) in headers {
        let header_name = HeaderName::from_bytes(header.to_ascii_lowercase().as_bytes())
            .with_context(|| format!("{header:?} cannot be a header name"))?;
        // Plankton reads its headers as UTF-8, as kamaki sends them.
        let header_value = HeaderValue::from_bytes(value.as_bytes())
            .with_context(|| format!("{value:?} cannot travel in a header"))?;
        request = request.header(header_name, header_value);
    }
    let what = format!("registering {object} as an image");
    let response = check(send(request, &what).await?, &what).await?;
    let id = response
        .headers()
        .get(plankton::META_ID)
        .and_then(|v| v.to_str().ok())
        .with_context(|| format!("{what}: the answer named no image id"))?
        .to_owned();
    glance
        .image(&id)
        .await?
        .with_context(|| format!("the registered image {id} cannot be read"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qcow2_is_told_by_its_magic() {
        assert_eq!(DiskFormat::of_header(b"QFI\xfb\0\0"), DiskFormat::Qcow2);
        assert_eq!(DiskFormat::of_header(b"QFI"), DiskFormat::Raw);
        assert_eq!(DiskFormat::of_header(b"\0\0\0\0"), DiskFormat::Raw);
    }

    #[test]
    fn properties_are_key_value_and_not_attributes() {
        let parsed = parse_properties(&["os=debian".into(), "note=a=b".into()]).unwrap();
        assert_eq!(parsed["os"], "debian");
        assert_eq!(parsed["note"], "a=b");
        assert!(parse_properties(&["os".into()]).is_err());
        assert!(parse_properties(&["=x".into()]).is_err());
        assert!(parse_properties(&["name=x".into()]).is_err());
    }

    #[test]
    fn create_bodies_carry_properties_beside_attributes() {
        let metadata = Metadata {
            name: "n".into(),
            disk_format: None,
            properties: vec!["os=debian".into()],
            min_disk: Some(1),
            min_ram: None,
            visibility: Some(Visibility::Community),
            tags: vec!["t".into()],
        };
        let body = create_body(&metadata, DiskFormat::Qcow2).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"name": "n", "disk_format": "qcow2", "container_format": "bare",
                "visibility": "community", "min_disk": 1, "tags": ["t"], "os": "debian"})
        );
    }
}
