//! An image's data: uploaded into an object (Glance's upload, and its stage-then-import),
//! an object registered as an image (Plankton), and the data served back.
//!
//! Every path ends the same way: the object version is inspected where it lies, then bound
//! to the image in one transaction that also checks the image still wants it. Data the
//! image service wrote and then refused is deleted again, so a refused upload leaves
//! nothing stored and nothing charged.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::Stream;
use nefos_db::image::{self as q};
use nefos_db::time::now_micros;
use nefos_identity::AuthContext;
use nefos_storage::{
    Accessor, ByteRange, ContainerUpdate, ObjectInfo, StorageError, VersionSelector, WriteOptions,
};

use crate::hashing::{HashTap, OS_HASH_ALGO};
use crate::inspect::{Inspected, inspect_object};
use crate::registry::{image_lock, to_db};
use crate::{Caller, Image, ImageError, ImageStatus, Images, NewImage, Visibility};

/// The container of each account that Glance uploads go to; the object is named by the
/// image's id.
pub const UPLOAD_CONTAINER: &str = "images";

/// The container format of images registered without one (Plankton's `bare`).
pub const REGISTERED_CONTAINER_FORMAT: &str = "bare";

/// An object named by its account (project), container and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub project_id: String,
    pub container: String,
    pub name: String,
}

/// An image's data, ready to stream.
pub struct ImageData {
    pub image: Image,
    /// The whole size, whatever the range.
    pub size: u64,
    /// The range served, when one was asked for.
    pub range: Option<ByteRange>,
    pub body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send>>,
}

impl std::fmt::Debug for ImageData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageData")
            .field("image", &self.image.id)
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// Which way data arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// `PUT /file`: queued → saving → active.
    Upload,
    /// `PUT /stage`: queued → uploading, then an import makes it active.
    Stage,
}

impl Images {
    /// Stores the data of a queued image: an upload (Glance's `PUT …/file`) makes it
    /// active; a stage (`PUT …/stage`) leaves it `uploading` for an import.
    /// `declared_size` is the body's length when the request says it.
    pub async fn receive<S, E>(
        &self,
        caller: Caller<'_>,
        id: &str,
        body: S,
        declared_size: Option<u64>,
        arrival: Arrival,
    ) -> Result<Image, ImageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    {
        let image = self.get(caller, id).await?;
        caller.require_owner(&image, "upload data to")?;
        let (Some(disk_format), Some(_)) = (&image.disk_format, &image.container_format) else {
            return Err(ImageError::invalid(
                "image",
                "Properties disk_format, container_format must be set prior to saving data.",
            ));
        };
        let disk_format = disk_format.clone();
        let receiving = match arrival {
            Arrival::Upload => ImageStatus::Saving,
            Arrival::Stage => ImageStatus::Uploading,
        };
        if !self
            .transition(id, &[ImageStatus::Queued.as_str()], receiving)
            .await?
        {
            return Err(ImageError::conflict(format!(
                "Image status transition from '{}' to '{}' is not allowed",
                image.status.as_str(),
                receiving.as_str()
            )));
        }
        // A client that goes away mid-upload drops this future: the guard then puts the
        // image back to queued and deletes what was stored, as a failure below does.
        let guard = Interrupted::new(self, caller, id, receiving);
        let stored = self
            .store_data(caller, &image, body, declared_size, &disk_format, arrival)
            .await;
        guard.disarm();
        match stored {
            Ok(image) => Ok(image),
            Err(error) => {
                // Back to queued, so the caller can try again (Glance restores a failed
                // upload the same way). A deleted image stays deleted.
                if let Err(restore) = self
                    .transition(id, &[receiving.as_str()], ImageStatus::Queued)
                    .await
                {
                    tracing::warn!(image = %id, error = %restore, "cannot requeue an image after a failed upload");
                }
                Err(error)
            }
        }
    }

    /// Streams the body into the owner's upload container, inspects it and binds it.
    async fn store_data<S, E>(
        &self,
        caller: Caller<'_>,
        image: &Image,
        body: S,
        declared_size: Option<u64>,
        disk_format: &str,
        arrival: Arrival,
    ) -> Result<Image, ImageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    {
        let who = Accessor::Token(caller.context());
        self.ensure_upload_container(caller, &image.owner).await?;
        // A declared size is reserved against the quota before the body is read, and the
        // body may not exceed it; a body of unknown length is bounded as Swift bounds one
        // object, so that it cannot store more than that before its commit is refused.
        let size_limit = match declared_size {
            Some(size) if size > self.size_cap => {
                return Err(StorageError::TooLarge {
                    limit: self.size_cap,
                }
                .into());
            }
            Some(size) => size,
            None => nefos_storage::MAX_OBJECT_SIZE.min(self.size_cap),
        };
        let tap = HashTap::new();
        let options = WriteOptions {
            content_type: Some("application/octet-stream".to_owned()),
            size: declared_size,
            size_limit: Some(size_limit),
            // Clients verify images by `os_hash_value`, hashed here as the data arrives;
            // the MD5 (`checksum`) follows from the digest job, off the upload's path.
            defer_md5: true,
            ..WriteOptions::default()
        };
        let object = self
            .storage
            .put_object(
                who,
                &image.owner,
                UPLOAD_CONTAINER,
                &image.id,
                tap.tap(body),
                options,
            )
            .await?;
        let os_hash = tap.finish().await;
        let result = async {
            let inspected = match arrival {
                Arrival::Upload => Some(inspect_object(&self.storage, &object, disk_format).await?),
                // Glance inspects at import: until then the data is only staged.
                Arrival::Stage => None,
            };
            let to = match arrival {
                Arrival::Upload => ImageStatus::Active,
                Arrival::Stage => ImageStatus::Uploading,
            };
            let from = match arrival {
                Arrival::Upload => ImageStatus::Saving,
                Arrival::Stage => ImageStatus::Uploading,
            };
            let binding = Binding {
                from,
                to,
                disk_format,
                inspected: inspected.as_ref(),
                os_hash: os_hash.as_deref(),
            };
            self.bind(&image.id, &object, binding).await
        }
        .await;
        if result.is_err() {
            self.discard(caller, &object).await;
        }
        result?;
        self.get(caller, &image.id).await
    }

    /// Creates the owner's upload container if it is missing. It keeps no history
    /// (versioning `none`): an image's data is deleted with it.
    async fn ensure_upload_container(
        &self,
        caller: Caller<'_>,
        owner: &str,
    ) -> Result<(), ImageError> {
        let who = Accessor::Token(caller.context());
        match self.storage.container(who, owner, UPLOAD_CONTAINER).await {
            Ok(_) => Ok(()),
            Err(StorageError::NotFound { .. }) => {
                let update = ContainerUpdate {
                    versioning: Some(nefos_storage::Versioning::None),
                    ..ContainerUpdate::default()
                };
                self.storage
                    .put_container(who, owner, UPLOAD_CONTAINER, &update)
                    .await?;
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes an object the image service wrote and will not use.
    async fn discard(&self, caller: Caller<'_>, object: &ObjectInfo) {
        let deleted = self
            .storage
            .purge_object(
                Accessor::Token(caller.context()),
                &object.project_id,
                &object.container,
                &object.name,
            )
            .await;
        if let Err(error) = deleted {
            tracing::warn!(
                object = %object.name, container = %object.container,
                error = %error, "could not delete the data of a refused image"
            );
        }
    }

    /// Binds `object` (written by the image service) to image `id` if the image is still
    /// what it was when the data started: in `binding.from`, with the disk format the data
    /// was inspected as.
    async fn bind(
        &self,
        id: &str,
        object: &ObjectInfo,
        binding: Binding<'_>,
    ) -> Result<(), ImageError> {
        let mut tx = self.db.begin().await?;
        self.db.lock_key(&mut tx, &image_lock(id)).await?;
        let mut row = q::get_image_row(&mut *tx, id)
            .await?
            .ok_or_else(|| ImageError::not_found(id))?;
        if row.status != binding.from.as_str() {
            return Err(ImageError::conflict(format!(
                "Image {id} changed status to '{}' while its data was stored",
                row.status
            )));
        }
        if row.disk_format.as_deref() != Some(binding.disk_format) {
            return Err(ImageError::conflict(format!(
                "The disk format of image {id} changed while its data was stored"
            )));
        }
        row.status = binding.to.as_str().to_owned();
        row.size = Some(to_db(object.size, "size")?);
        if let Some(inspected) = binding.inspected {
            row.virtual_size = Some(to_db(inspected.virtual_size, "virtual_size")?);
        }
        row.checksum = object.etag.clone().filter(|e| !e.is_empty());
        row.os_hash_algo = binding.os_hash.map(|_| OS_HASH_ALGO.to_owned());
        row.os_hash_value = binding.os_hash.map(str::to_owned);
        row.container_id = Some(object.container_id.clone());
        row.object_name = Some(object.name.clone());
        row.object_serial = Some(object.serial);
        row.object_owned = true;
        row.updated_at = now_micros();
        q::update_image(&mut tx, &row).await?;
        if let Some(why) = binding.inspected.and_then(|i| i.unbootable.as_ref()) {
            let mut properties = q::properties(&mut *tx, id).await?;
            properties.insert(UNBOOTABLE_PROPERTY.to_owned(), why.clone());
            q::set_properties(&mut tx, id, &properties).await?;
        }
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit an image's data"))?;
        Ok(())
    }

    /// Deletes what an upload into image `image` may have stored under its name in the
    /// owner's upload container (nothing, often).
    pub(crate) async fn purge_upload(
        &self,
        caller: Caller<'_>,
        image: &Image,
    ) -> Result<(), ImageError> {
        match self
            .storage
            .purge_object(
                Accessor::Token(caller.context()),
                &image.owner,
                UPLOAD_CONTAINER,
                &image.id,
            )
            .await
        {
            Ok(()) | Err(StorageError::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Makes a staged image active (Glance's `glance-direct` import): inspects the staged
    /// data and binds it, or refuses it and deletes it.
    pub async fn import(&self, caller: Caller<'_>, id: &str) -> Result<Image, ImageError> {
        let image = self.get(caller, id).await?;
        caller.require_owner(&image, "import")?;
        let (ImageStatus::Uploading, Some(location)) = (image.status, &image.location) else {
            return Err(ImageError::conflict(
                "Image needs to be staged before 'glance-direct' method can be used",
            ));
        };
        let disk_format = image.disk_format.clone().unwrap_or_default();
        if !self
            .transition(
                id,
                &[ImageStatus::Uploading.as_str()],
                ImageStatus::Importing,
            )
            .await?
        {
            return Err(ImageError::conflict(format!(
                "Image {id} is already being imported"
            )));
        }
        // Interrupted, the import leaves the staged data staged.
        let guard = Interrupted::new(self, caller, id, ImageStatus::Importing)
            .restoring(ImageStatus::Uploading)
            .keeping_data();
        let result = async {
            let object = self
                .storage
                .version_for_service(&location.container_id, &location.name, location.serial)
                .await?
                .ok_or_else(|| ImageError::not_found(id))?;
            let inspected = inspect_object(&self.storage, &object, &disk_format).await?;
            let binding = Binding {
                from: ImageStatus::Importing,
                to: ImageStatus::Active,
                disk_format: &disk_format,
                inspected: Some(&inspected),
                os_hash: image.os_hash_value.as_deref(),
            };
            self.bind(id, &object, binding).await
        }
        .await;
        guard.disarm();
        if let Err(error) = result {
            self.requeue_failed_import(caller, &image).await?;
            return Err(error);
        }
        self.get(caller, id).await
    }

    /// A failed import: the image is queued again with no data, and the staged data is
    /// deleted (in that order, so that the image never names data that is gone).
    async fn requeue_failed_import(
        &self,
        caller: Caller<'_>,
        image: &Image,
    ) -> Result<(), ImageError> {
        let mut tx = self.db.begin().await?;
        self.db.lock_key(&mut tx, &image_lock(&image.id)).await?;
        if let Some(mut row) = q::get_image_row(&mut *tx, &image.id).await? {
            row.status = ImageStatus::Queued.as_str().to_owned();
            row.size = None;
            row.virtual_size = None;
            row.checksum = None;
            row.os_hash_algo = None;
            row.os_hash_value = None;
            row.container_id = None;
            row.object_name = None;
            row.object_serial = None;
            row.object_owned = false;
            row.updated_at = now_micros();
            q::update_image(&mut tx, &row).await?;
        }
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit a failed import"))?;
        self.purge_upload(caller, image).await
    }

    /// Registers an object as an image (Plankton): the image *is* that object version, no
    /// byte is copied. Registering an object that already is an image updates that image
    /// with what this registration names (a new image is private unless told otherwise).
    /// The caller must be able to write the object's account, which owns the image.
    pub async fn register(
        &self,
        caller: Caller<'_>,
        object: &ObjectRef,
        mut new: NewImage,
    ) -> Result<Image, ImageError> {
        new.check()?;
        if !caller.writes_for(&object.project_id) {
            return Err(ImageError::forbidden(
                "Only the owner of an object may register it as an image.",
            ));
        }
        let info = self
            .storage
            .object(
                Accessor::Token(caller.context()),
                &object.project_id,
                &object.container,
                &object.name,
                VersionSelector::Current,
            )
            .await?;
        let disk_format = new.disk_format.clone().unwrap_or_else(|| "raw".to_owned());
        let inspected = inspect_object(&self.storage, &info, &disk_format).await?;
        if let Some(visibility) = new.visibility {
            caller.may_set_visibility(visibility)?;
        }
        let existing = q::image_of_object(self.db.pool(), info.serial).await?;
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        let id = match existing {
            // Registering again changes only what this registration names.
            Some(row) => {
                self.db.lock_key(&mut tx, &image_lock(&row.id)).await?;
                let mut row = q::get_image_row(&mut *tx, &row.id)
                    .await?
                    .ok_or_else(|| ImageError::not_found(&row.id))?;
                if new.name.is_some() {
                    row.name = new.name.take();
                }
                if let Some(visibility) = new.visibility {
                    row.visibility = visibility.as_str().to_owned();
                }
                row.disk_format = Some(disk_format);
                row.virtual_size = Some(to_db(inspected.virtual_size, "virtual_size")?);
                if new.min_disk > 0 {
                    row.min_disk = to_db(new.min_disk, "min_disk")?;
                }
                if new.min_ram > 0 {
                    row.min_ram = to_db(new.min_ram, "min_ram")?;
                }
                row.updated_at = now;
                q::update_image(&mut tx, &row).await?;
                row.id
            }
            None => {
                let row = nefos_db::image::ImageRow {
                    id: new
                        .id
                        .take()
                        .unwrap_or_else(|| uuid::Uuid::new_v4().hyphenated().to_string()),
                    owner_id: object.project_id.clone(),
                    name: new.name.take(),
                    status: ImageStatus::Active.as_str().to_owned(),
                    visibility: new
                        .visibility
                        .unwrap_or(Visibility::Private)
                        .as_str()
                        .to_owned(),
                    protected: new.protected,
                    os_hidden: new.os_hidden,
                    disk_format: Some(disk_format),
                    container_format: Some(
                        new.container_format
                            .take()
                            .unwrap_or_else(|| REGISTERED_CONTAINER_FORMAT.to_owned()),
                    ),
                    min_disk: to_db(new.min_disk, "min_disk")?,
                    min_ram: to_db(new.min_ram, "min_ram")?,
                    size: Some(to_db(info.size, "size")?),
                    virtual_size: Some(to_db(inspected.virtual_size, "virtual_size")?),
                    checksum: info.etag.clone().filter(|e| !e.is_empty()),
                    os_hash_algo: None,
                    os_hash_value: None,
                    container_id: Some(info.container_id.clone()),
                    object_name: Some(info.name.clone()),
                    object_serial: Some(info.serial),
                    object_owned: false,
                    created_at: now,
                    updated_at: now,
                };
                q::insert_image(&mut tx, &row)
                    .await
                    .map_err(|error| match error {
                        nefos_db::DbError::Conflict { .. } => ImageError::conflict(format!(
                            "Image with identifier {} already exists!",
                            row.id
                        )),
                        other => other.into(),
                    })?;
                row.id
            }
        };
        let mut properties: BTreeMap<String, String> = q::properties(&mut *tx, &id).await?;
        properties.extend(new.properties);
        match &inspected.unbootable {
            Some(why) => properties.insert(UNBOOTABLE_PROPERTY.to_owned(), why.clone()),
            None => properties.remove(UNBOOTABLE_PROPERTY),
        };
        q::set_properties(&mut tx, &id, &properties).await?;
        if !new.tags.is_empty() {
            q::set_tags(&mut tx, &id, &new.tags).await?;
        }
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit an image registration"))?;
        self.get(caller, &id).await
    }

    /// The data of an image, or `range` of it. Deactivated images serve their data only to
    /// administrators, as in Glance.
    pub async fn download(
        &self,
        caller: Caller<'_>,
        id: &str,
        range: Option<ByteRangeRequest>,
    ) -> Result<ImageData, ImageError> {
        let image = self.get(caller, id).await?;
        match image.status {
            ImageStatus::Active => {}
            ImageStatus::Deactivated if caller.is_admin() => {}
            ImageStatus::Deactivated => {
                return Err(ImageError::forbidden(
                    "The requested image has been deactivated. Image data download is forbidden.",
                ));
            }
            _ => return Err(ImageError::NoData { id: id.to_owned() }),
        }
        let object = self.object_of(&image).await?;
        let range = range.map(|r| r.resolve(object.size)).transpose()?;
        let body = self.storage.read(&object, range).await?;
        Ok(ImageData {
            size: object.size,
            range,
            image,
            body: Box::pin(body),
        })
    }

    /// The object version an image with data is.
    pub(crate) async fn object_of(&self, image: &Image) -> Result<ObjectInfo, ImageError> {
        let location = image.location.as_ref().ok_or_else(|| ImageError::NoData {
            id: image.id.clone(),
        })?;
        self.storage
            .version_for_service(&location.container_id, &location.name, location.serial)
            .await?
            .ok_or_else(|| ImageError::not_found(&image.id))
    }
}

/// The property that records why an image cannot boot, set by inspection.
pub const UNBOOTABLE_PROPERTY: &str = "nefos_unbootable";

/// A `Range` request before it is resolved against the image's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRangeRequest {
    /// `bytes=first-last` (`last` omitted: to the end).
    From { first: u64, last: Option<u64> },
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRangeRequest {
    fn resolve(self, size: u64) -> Result<ByteRange, ImageError> {
        let unsatisfiable = || ImageError::RangeNotSatisfiable { size };
        match self {
            ByteRangeRequest::From { first, last } => {
                if first >= size {
                    return Err(unsatisfiable());
                }
                let last = last.map_or(size - 1, |l| l.min(size - 1));
                if last < first {
                    return Err(unsatisfiable());
                }
                Ok(ByteRange { first, last })
            }
            ByteRangeRequest::Suffix(n) => {
                if n == 0 || size == 0 {
                    return Err(unsatisfiable());
                }
                Ok(ByteRange {
                    first: size.saturating_sub(n),
                    last: size - 1,
                })
            }
        }
    }
}

/// What data being bound to an image was, and what the image must still be.
struct Binding<'a> {
    from: ImageStatus,
    to: ImageStatus,
    /// The format the data was inspected as (or will be, when imported).
    disk_format: &'a str,
    inspected: Option<&'a Inspected>,
    os_hash: Option<&'a str>,
}

/// Undoes a status transition whose work was dropped before it finished (the client went
/// away, or the server is shutting down): the image goes back to where it was, and
/// unless told to keep it, what an upload stored under the image's name is deleted. The
/// work's own failures are handled where they happen; this is only for cancellation.
struct Interrupted {
    images: Images,
    context: AuthContext,
    id: String,
    from: ImageStatus,
    restore_to: ImageStatus,
    keep_data: bool,
    armed: bool,
}

impl Interrupted {
    fn new(images: &Images, caller: Caller<'_>, id: &str, from: ImageStatus) -> Self {
        Interrupted {
            images: images.clone(),
            context: caller.context().clone(),
            id: id.to_owned(),
            from,
            restore_to: ImageStatus::Queued,
            keep_data: false,
            armed: true,
        }
    }

    fn restoring(mut self, status: ImageStatus) -> Self {
        self.restore_to = status;
        self
    }

    fn keeping_data(mut self) -> Self {
        self.keep_data = true;
        self
    }

    /// The work finished (well or not): nothing to undo here.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Interrupted {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let images = self.images.clone();
        let context = self.context.clone();
        let (id, from, to, keep_data) =
            (self.id.clone(), self.from, self.restore_to, self.keep_data);
        runtime.spawn(async move {
            if !keep_data
                && let Ok(Some(row)) = q::get_image_row(images.db.pool(), &id).await
            {
                let purged = images
                    .storage
                    .purge_object(Accessor::Token(&context), &row.owner_id, UPLOAD_CONTAINER, &id)
                    .await;
                if let Err(error) = purged
                    && !matches!(error, StorageError::NotFound { .. })
                {
                    tracing::warn!(image = %id, %error, "cannot delete the data of an interrupted upload");
                }
            }
            if let Err(error) = images.transition(&id, &[from.as_str()], to).await {
                tracing::warn!(image = %id, %error, "cannot restore an interrupted image");
            }
        });
    }
}
