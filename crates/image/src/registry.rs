//! Images as records: create, read, change, delete, tags, and (de)activation.

use std::collections::BTreeMap;

use nefos_db::image::{self as q, ImageRow};
use nefos_db::time::now_micros;
use nefos_storage::Accessor;

use crate::fields::{
    MAX_PROPERTIES, MAX_TAGS, check_container_format, check_disk_format, check_property_name,
    check_property_value, check_tag,
};
use crate::{
    Caller, FieldValue, Image, ImageError, ImageField, ImageStatus, Images, MemberStatus,
    ObjectLocation, PatchOp, PatchOperation, Visibility,
};

/// What a caller gives to create an image (Glance's `POST /v2/images`).
#[derive(Debug, Clone, Default)]
pub struct NewImage {
    /// A UUID the caller chose; a new one otherwise.
    pub id: Option<String>,
    /// An administrator may create an image for another project.
    pub owner: Option<String>,
    pub name: Option<String>,
    /// `shared` when not given (Glance's default).
    pub visibility: Option<Visibility>,
    pub protected: bool,
    pub os_hidden: bool,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub min_disk: u64,
    pub min_ram: u64,
    pub tags: Vec<String>,
    pub properties: BTreeMap<String, String>,
}

impl NewImage {
    pub(crate) fn check(&self) -> Result<(), ImageError> {
        if let Some(id) = &self.id {
            // Only the canonical form: another spelling of the same UUID would be another
            // image.
            let canonical = uuid::Uuid::parse_str(id)
                .map(|u| u.hyphenated().to_string())
                .ok();
            if canonical.as_deref() != Some(id.as_str()) {
                return Err(ImageError::invalid(
                    "id",
                    format!("{id:?} is not a UUID in lower-case hyphenated form"),
                ));
            }
        }
        check_name(self.name.as_deref())?;
        if let Some(format) = &self.disk_format {
            check_disk_format(format)?;
        }
        if let Some(format) = &self.container_format {
            check_container_format(format)?;
        }
        check_tags(&self.tags)?;
        check_properties(&self.properties)?;
        Ok(())
    }
}

fn check_name(name: Option<&str>) -> Result<(), ImageError> {
    if name.is_some_and(|n| n.len() > crate::fields::MAX_NAME_LEN) {
        return Err(ImageError::invalid(
            "name",
            "an image name is at most 255 bytes",
        ));
    }
    if let Some(name) = name {
        crate::fields::refuse_nul("name", name)?;
    }
    Ok(())
}

fn check_tags(tags: &[String]) -> Result<(), ImageError> {
    if tags.len() > MAX_TAGS {
        return Err(ImageError::invalid(
            "tags",
            format!("an image has at most {MAX_TAGS} tags"),
        ));
    }
    tags.iter().try_for_each(|t| check_tag(t))
}

fn check_properties(properties: &BTreeMap<String, String>) -> Result<(), ImageError> {
    if properties.len() > MAX_PROPERTIES {
        return Err(ImageError::invalid(
            "properties",
            format!("an image has at most {MAX_PROPERTIES} properties"),
        ));
    }
    for (name, value) in properties {
        check_property_name(name)?;
        check_property_value(name, value)?;
    }
    Ok(())
}

impl Images {
    /// Creates a `queued` image with no data (Glance's `POST /v2/images`).
    pub async fn create(&self, caller: Caller<'_>, new: NewImage) -> Result<Image, ImageError> {
        new.check()?;
        let owner = caller.owner_for_new(new.owner.as_deref())?;
        let visibility = new.visibility.unwrap_or(Visibility::Shared);
        caller.may_set_visibility(visibility)?;
        let now = now_micros();
        let row = ImageRow {
            id: new
                .id
                .unwrap_or_else(|| uuid::Uuid::new_v4().hyphenated().to_string()),
            owner_id: owner,
            name: new.name,
            status: ImageStatus::Queued.as_str().to_owned(),
            visibility: visibility.as_str().to_owned(),
            protected: new.protected,
            os_hidden: new.os_hidden,
            disk_format: new.disk_format,
            container_format: new.container_format,
            min_disk: to_db(new.min_disk, "min_disk")?,
            min_ram: to_db(new.min_ram, "min_ram")?,
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            container_id: None,
            object_name: None,
            object_serial: None,
            object_owned: false,
            created_at: now,
            updated_at: now,
        };
        let mut tags = new.tags;
        tags.sort();
        tags.dedup();
        let mut tx = self.db.begin().await?;
        q::insert_image(&mut tx, &row)
            .await
            .map_err(|error| match error {
                nefos_db::DbError::Conflict { .. } => ImageError::conflict(format!(
                    "Image with identifier {} already exists!",
                    row.id
                )),
                other => other.into(),
            })?;
        q::set_properties(&mut tx, &row.id, &new.properties).await?;
        q::set_tags(&mut tx, &row.id, &tags).await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit a new image"))?;
        self.get(caller, &row.id).await
    }

    /// An image the caller may see; any other is [`ImageError::TagNotFound`].
    pub async fn get(&self, caller: Caller<'_>, id: &str) -> Result<Image, ImageError> {
        if id.contains('\0') {
            return Err(ImageError::not_found(id));
        }
        let row = q::get_image(self.db.pool(), id)
            .await?
            .ok_or_else(|| ImageError::not_found(id))?;
        if !q::is_visible(self.db.pool(), id, caller.viewer()).await? {
            return Err(ImageError::not_found(id));
        }
        let properties = q::properties(self.db.pool(), id).await?;
        let tags = q::tags(self.db.pool(), id).await?;
        let member_status = match caller.project_id() {
            Some(project) if project != row.owner_id => q::member(self.db.pool(), id, project)
                .await?
                .map(|m| MemberStatus::parse(&m.status))
                .transpose()?,
            _ => None,
        };
        let location = self.location_of(&row).await?;
        image_from_row(row, properties, tags, location, member_status)
    }

    /// Where an image's object is, by the names clients know it by.
    pub(crate) async fn location_of(
        &self,
        row: &ImageRow,
    ) -> Result<Option<ObjectLocation>, ImageError> {
        let (Some(container_id), Some(name), Some(serial)) =
            (&row.container_id, &row.object_name, row.object_serial)
        else {
            return Ok(None);
        };
        let container = nefos_db::storage::get_container_by_id(self.db.pool(), container_id)
            .await?
            .ok_or_else(|| ImageError::not_found(&row.id))?;
        Ok(Some(ObjectLocation {
            project_id: container.project_id,
            container_id: container_id.clone(),
            container: container.name,
            name: name.clone(),
            serial,
            owned: row.object_owned,
        }))
    }

    /// Applies Glance's JSON-patch changes, all or none.
    pub async fn update(
        &self,
        caller: Caller<'_>,
        id: &str,
        changes: Vec<PatchOp>,
    ) -> Result<Image, ImageError> {
        let image = self.get(caller, id).await?;
        caller.require_owner(&image, "modify")?;
        let mut tx = self.db.begin().await?;
        self.db.lock_key(&mut tx, &image_lock(id)).await?;
        let mut row = q::get_image(&mut *tx, id)
            .await?
            .ok_or_else(|| ImageError::not_found(id))?;
        let mut properties = q::properties(&mut *tx, id).await?;
        let mut tags = q::tags(&mut *tx, id).await?;
        for change in changes {
            apply_change(caller, &mut row, &mut properties, &mut tags, change)?;
        }
        check_name(row.name.as_deref())?;
        check_properties(&properties)?;
        tags.sort();
        tags.dedup();
        check_tags(&tags)?;
        row.updated_at = now_micros();
        q::update_image(&mut tx, &row).await?;
        q::set_properties(&mut tx, id, &properties).await?;
        q::set_tags(&mut tx, id, &tags).await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit an image update"))?;
        self.get(caller, id).await
    }

    /// Deletes an image. Data the image service wrote goes with it; an object a user
    /// registered stays, as the user's file it was.
    pub async fn delete(&self, caller: Caller<'_>, id: &str) -> Result<(), ImageError> {
        let image = self.get(caller, id).await?;
        caller.require_owner(&image, "delete")?;
        if image.protected {
            return Err(ImageError::forbidden(format!(
                "Image {id} is protected and cannot be deleted."
            )));
        }
        if image.location.is_none() {
            // An upload cut short may have left its object behind before it was bound.
            self.purge_upload(caller, &image).await?;
        }
        if let Some(location) = image.location.as_ref().filter(|l| l.owned) {
            // Deleting the object first unregisters the image at once (reads check that its
            // object is current), so no one can start using it in between.
            match self
                .storage
                .purge_object(
                    Accessor::Token(caller.context()),
                    &location.project_id,
                    &location.container,
                    &location.name,
                )
                .await
            {
                Ok(()) | Err(nefos_storage::StorageError::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        q::delete_image(self.db.pool(), id).await?;
        Ok(())
    }

    /// Unregisters an image (Plankton): the record goes, the object stays, whoever wrote it,
    /// as the file it is.
    pub async fn unregister(&self, caller: Caller<'_>, id: &str) -> Result<(), ImageError> {
        let image = self.get(caller, id).await?;
        caller.require_owner(&image, "unregister")?;
        if image.protected {
            return Err(ImageError::forbidden(format!(
                "Image {id} is protected and cannot be unregistered."
            )));
        }
        q::delete_image(self.db.pool(), id).await?;
        Ok(())
    }

    /// Adds a tag (idempotent).
    pub async fn add_tag(&self, caller: Caller<'_>, id: &str, tag: &str) -> Result<(), ImageError> {
        check_tag(tag)?;
        let image = self.get(caller, id).await?;
        caller.require_owner(&image, "modify")?;
        let mut tags = image.tags;
        if tags.iter().any(|t| t == tag) {
            return Ok(());
        }
        tags.push(tag.to_owned());
        check_tags(&tags)?;
        let mut tx = self.db.begin().await?;
        self.db.lock_key(&mut tx, &image_lock(id)).await?;
        let mut tags = q::tags(&mut *tx, id).await?;
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
            check_tags(&tags)?;
            q::set_tags(&mut tx, id, &tags).await?;
            q::touch_image(&mut *tx, id).await?;
        }
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit a new tag"))?;
        Ok(())
    }

    /// Removes a tag; a tag the image lacks is [`ImageError::TagNotFound`] (and an image the
    /// caller cannot see [`ImageError::NotFound`]).
    pub async fn remove_tag(
        &self,
        caller: Caller<'_>,
        id: &str,
        tag: &str,
    ) -> Result<(), ImageError> {
        let image = self.get(caller, id).await?;
        caller.require_owner(&image, "modify")?;
        if !image.tags.iter().any(|t| t == tag) {
            return Err(ImageError::TagNotFound {
                image: id.to_owned(),
                tag: tag.to_owned(),
            });
        }
        let mut tx = self.db.begin().await?;
        self.db.lock_key(&mut tx, &image_lock(id)).await?;
        let tags: Vec<String> = q::tags(&mut *tx, id)
            .await?
            .into_iter()
            .filter(|t| t != tag)
            .collect();
        q::set_tags(&mut tx, id, &tags).await?;
        q::touch_image(&mut *tx, id).await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit a tag removal"))?;
        Ok(())
    }

    /// Refuses downloads of an active image (Glance's deactivate; owner or administrator).
    pub async fn deactivate(&self, caller: Caller<'_>, id: &str) -> Result<(), ImageError> {
        self.set_activation(caller, id, ImageStatus::Deactivated)
            .await
    }

    pub async fn reactivate(&self, caller: Caller<'_>, id: &str) -> Result<(), ImageError> {
        self.set_activation(caller, id, ImageStatus::Active).await
    }

    async fn set_activation(
        &self,
        caller: Caller<'_>,
        id: &str,
        to: ImageStatus,
    ) -> Result<(), ImageError> {
        let image = self.get(caller, id).await?;
        let verb = if to == ImageStatus::Active {
            "reactivate"
        } else {
            "deactivate"
        };
        caller.require_owner(&image, verb)?;
        if !image.status.has_data() {
            return Err(ImageError::forbidden(format!(
                "Not allowed to {verb} image in status '{}'",
                image.status.as_str()
            )));
        }
        let from = [
            ImageStatus::Active.as_str(),
            ImageStatus::Deactivated.as_str(),
        ];
        if !self.transition(id, &from, to).await? {
            return Err(ImageError::conflict(format!(
                "Image {id} changed status while it was being {verb}d"
            )));
        }
        Ok(())
    }

    /// Moves an image from one of `from` to `to`, under the image's lock so that no other
    /// change to the image interleaves; `false` if it was in none of them.
    pub(crate) async fn transition(
        &self,
        id: &str,
        from: &[&str],
        to: ImageStatus,
    ) -> Result<bool, ImageError> {
        // Receiving data: this process answers for it until the data is in.
        let receiving = matches!(
            to,
            ImageStatus::Saving | ImageStatus::Uploading | ImageStatus::Importing
        )
        .then(|| self.storage.quotas().instance());
        let mut tx = self.db.begin().await?;
        self.db.lock_key(&mut tx, &image_lock(id)).await?;
        let moved = q::transition_status(&mut *tx, id, from, to.as_str(), receiving).await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit an image status"))?;
        Ok(moved)
    }

    /// Every image row to images, with their properties and tags and the asking
    /// project's member answers (listings).
    pub(crate) async fn visible_images(
        &self,
        caller: Caller<'_>,
    ) -> Result<Vec<Image>, ImageError> {
        let pool = self.db.pool();
        let viewer = caller.viewer();
        let rows = q::list_visible(pool, viewer).await?;
        let mut properties = q::visible_properties(pool, viewer).await?;
        let mut tags = q::visible_tags(pool, viewer).await?;
        let answers = match caller.project_id() {
            Some(project) => q::memberships_of(pool, project).await?,
            None => BTreeMap::new(),
        };
        let containers = self.container_names(&rows).await?;
        let mut images = Vec::with_capacity(rows.len());
        for row in rows {
            let member_status = answers
                .get(&row.id)
                .filter(|_| caller.project_id() != Some(row.owner_id.as_str()))
                .map(|m| MemberStatus::parse(&m.status))
                .transpose()?;
            let location =
                match (&row.container_id, &row.object_name, row.object_serial) {
                    (Some(container_id), Some(name), Some(serial)) => containers
                        .get(container_id)
                        .map(|(project, container)| ObjectLocation {
                            project_id: project.clone(),
                            container_id: container_id.clone(),
                            container: container.clone(),
                            name: name.clone(),
                            serial,
                            owned: row.object_owned,
                        }),
                    _ => None,
                };
            let id = row.id.clone();
            images.push(image_from_row(
                row,
                properties.remove(&id).unwrap_or_default(),
                tags.remove(&id).unwrap_or_default(),
                location,
                member_status,
            )?);
        }
        Ok(images)
    }

    /// (project, name) of the containers `rows` name.
    async fn container_names(
        &self,
        rows: &[ImageRow],
    ) -> Result<BTreeMap<String, (String, String)>, ImageError> {
        let mut names = BTreeMap::new();
        for id in rows.iter().filter_map(|r| r.container_id.as_ref()) {
            if names.contains_key(id) {
                continue;
            }
            if let Some(container) =
                nefos_db::storage::get_container_by_id(self.db.pool(), id).await?
            {
                names.insert(id.clone(), (container.project_id, container.name));
            }
        }
        Ok(names)
    }
}

/// The advisory lock that orders changes to one image.
pub(crate) fn image_lock(id: &str) -> String {
    format!("image:{id}")
}

pub(crate) fn to_db(value: u64, field: &'static str) -> Result<i64, ImageError> {
    i64::try_from(value).map_err(|_| ImageError::invalid(field, "the number is too large"))
}

fn from_db(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(crate) fn image_from_row(
    row: ImageRow,
    properties: BTreeMap<String, String>,
    tags: Vec<String>,
    location: Option<ObjectLocation>,
    member_status: Option<MemberStatus>,
) -> Result<Image, ImageError> {
    let status = ImageStatus::parse(&row.status).ok_or_else(|| {
        ImageError::invalid(
            "status",
            format!("stored status {:?} is unknown", row.status),
        )
    })?;
    Ok(Image {
        id: row.id,
        owner: row.owner_id,
        name: row.name,
        status,
        visibility: Visibility::parse(&row.visibility)?,
        protected: row.protected,
        os_hidden: row.os_hidden,
        disk_format: row.disk_format,
        container_format: row.container_format,
        min_disk: from_db(row.min_disk),
        min_ram: from_db(row.min_ram),
        size: row.size.map(from_db),
        virtual_size: row.virtual_size.map(from_db),
        checksum: row.checksum,
        os_hash_algo: row.os_hash_algo,
        os_hash_value: row.os_hash_value,
        properties,
        tags,
        created_at: row.created_at,
        updated_at: row.updated_at,
        location,
        member_status,
    })
}

/// Applies one change to the row, its properties and its tags.
fn apply_change(
    caller: Caller<'_>,
    row: &mut ImageRow,
    properties: &mut BTreeMap<String, String>,
    tags: &mut Vec<String>,
    change: PatchOp,
) -> Result<(), ImageError> {
    let PatchOp {
        operation,
        field,
        value,
    } = change;
    if operation == PatchOperation::Remove {
        return match field {
            ImageField::Property(name) => {
                if properties.remove(&name).is_none() {
                    return Err(ImageError::conflict(format!(
                        "Property {name} does not exist."
                    )));
                }
                Ok(())
            }
            ImageField::Tags => {
                tags.clear();
                Ok(())
            }
            other => Err(ImageError::forbidden(format!(
                "Cannot remove the base attribute '{}'.",
                other.name()
            ))),
        };
    }
    let value = value
        .ok_or_else(|| ImageError::invalid("patch", format!("{} needs a value", field.name())))?;
    let mismatch = |field: &ImageField| {
        ImageError::invalid(
            "patch",
            format!("the value of {} has the wrong type", field.name()),
        )
    };
    let data_in = ImageStatus::parse(&row.status).is_some_and(|s| s != ImageStatus::Queued);
    match (&field, value) {
        (ImageField::Name, FieldValue::Text(name)) => row.name = name,
        (ImageField::Visibility, FieldValue::Visibility(visibility)) => {
            caller.may_set_visibility(visibility)?;
            row.visibility = visibility.as_str().to_owned();
        }
        (ImageField::Protected, FieldValue::Flag(flag)) => row.protected = flag,
        (ImageField::OsHidden, FieldValue::Flag(flag)) => row.os_hidden = flag,
        (ImageField::DiskFormat | ImageField::ContainerFormat, FieldValue::Text(format)) => {
            // The format says how to read the data: changing it under data already in
            // would make the inspection that accepted the data meaningless.
            if data_in {
                return Err(ImageError::forbidden(format!(
                    "Attribute {} can be only replaced for a queued image.",
                    field.name()
                )));
            }
            if let Some(format) = &format {
                if field == ImageField::DiskFormat {
                    check_disk_format(format)?;
                } else {
                    check_container_format(format)?;
                }
            }
            if field == ImageField::DiskFormat {
                row.disk_format = format;
            } else {
                row.container_format = format;
            }
        }
        (ImageField::MinDisk, FieldValue::Number(n)) => row.min_disk = to_db(n, "min_disk")?,
        (ImageField::MinRam, FieldValue::Number(n)) => row.min_ram = to_db(n, "min_ram")?,
        // RFC 6902: adding a member that exists replaces it, so both set the whole list.
        (ImageField::Tags, FieldValue::List(list)) => *tags = list,
        (ImageField::Property(name), FieldValue::Text(Some(text))) => {
            if operation == PatchOperation::Replace && !properties.contains_key(name) {
                return Err(ImageError::conflict(format!(
                    "Property {name} does not exist."
                )));
            }
            properties.insert(name.clone(), text);
        }
        (field, _) => return Err(mismatch(field)),
    }
    Ok(())
}
