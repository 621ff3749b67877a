//! Plankton's images: list (bare JSON arrays, as kamaki 0.16 reads them), register, the
//! header view, update and unregister.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use nefos_image::{
    FieldValue, Image, ImageField, ListQuery, MemberStatusFilter, NewImage, ObjectRef, PatchOp,
    PatchOperation, SortDirection, SortKey, Visibility, VisibilityFilter,
};
use nefos_image_api::plankton::{self as p, ImageSummary};

use super::error::PlanktonError;
use super::headers::{image_response, meta_params, summary};
use crate::ApiState;
use crate::image::request::{GlanceUser, query_pairs};

/// The disk format a Plankton name stands for: Synnefo's `diskdump` is a raw disk.
fn disk_format(name: &str) -> Result<String, PlanktonError> {
    match name {
        p::DISKDUMP | "raw" => Ok("raw".to_owned()),
        "qcow2" => Ok("qcow2".to_owned()),
        other => Err(PlanktonError::bad_request(format!(
            "Invalid disk format '{other}': nefos boots raw (diskdump) and qcow2 images"
        ))),
    }
}

/// Everything the caller may use, as Synnefo lists it: its own images, public and
/// community ones, and those shared with it (whatever it answered in Glance).
fn plankton_query(pairs: &[(String, String)]) -> Result<ListQuery, PlanktonError> {
    let mut sort_key = SortKey::CreatedAt;
    let mut direction = SortDirection::Desc;
    for (key, value) in pairs {
        match key.as_str() {
            "sort_key" => {
                sort_key = match value.as_str() {
                    "id" | "name" | "status" | "size" | "disk_format" | "container_format"
                    | "created_at" | "updated_at" => SortKey::parse(value)
                        .ok_or_else(|| PlanktonError::bad_request("Invalid 'sort_key'"))?,
                    _ => return Err(PlanktonError::bad_request("Invalid 'sort_key'")),
                };
            }
            "sort_dir" => {
                direction = match value.as_str() {
                    "asc" => SortDirection::Asc,
                    "desc" => SortDirection::Desc,
                    _ => return Err(PlanktonError::bad_request("Invalid 'sort_dir'")),
                };
            }
            _ => {}
        }
    }
    let mut query = ListQuery {
        visibility: VisibilityFilter::All,
        member_status: MemberStatusFilter::All,
        sort: vec![(sort_key, direction)],
        limit: Some(nefos_image::MAX_LIMIT),
        ..ListQuery::default()
    };
    // Synnefo parses these filters; nefos also applies them.
    for (key, value) in pairs {
        match key.as_str() {
            "name" => query.names = vec![value.clone()],
            "disk_format" => query.disk_formats = vec![disk_format(value)?],
            "container_format" => query.container_formats = vec![value.clone()],
            "size_min" | "size_max" => {
                let size = value
                    .parse()
                    .map_err(|_| PlanktonError::bad_request("Malformed request."))?;
                if key == "size_min" {
                    query.size_min = Some(size);
                } else {
                    query.size_max = Some(size);
                }
            }
            _ => {}
        }
    }
    Ok(query)
}

async fn listing(
    state: &ApiState,
    user: &GlanceUser,
    raw: Option<&str>,
    detail: bool,
) -> Result<Json<Vec<ImageSummary>>, PlanktonError> {
    let pairs = query_pairs(raw)?;
    let query = plankton_query(&pairs)?;
    let mut images = Vec::new();
    let mut query = query;
    loop {
        let page = state.images.list(user.caller(), &query).await?;
        images.extend(
            page.images
                .iter()
                .filter(|i| i.member_status != Some(nefos_image::MemberStatus::Rejected))
                .map(|image| summary(image, detail)),
        );
        match page.next_marker {
            Some(marker) => query.marker = Some(marker),
            None => break,
        }
    }
    Ok(Json(images))
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    user: GlanceUser,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<ImageSummary>>, PlanktonError> {
    listing(&state, &user, raw.as_deref(), false).await
}

pub(crate) async fn detail(
    State(state): State<ApiState>,
    user: GlanceUser,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<ImageSummary>>, PlanktonError> {
    listing(&state, &user, raw.as_deref(), true).await
}

/// Parses `pithos://<account>/<container>/<object>`; the account is `AUTH_<project>` or
/// (as kamaki writes it) a user's id, meaning that user's personal project.
async fn object_of_location(state: &ApiState, location: &str) -> Result<ObjectRef, PlanktonError> {
    let invalid = || PlanktonError::bad_request(format!("Invalid location '{location}'"));
    let rest = location.strip_prefix("pithos://").ok_or_else(invalid)?;
    let mut parts = rest.splitn(3, '/');
    let (Some(account), Some(container), Some(object)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    if container.is_empty() || object.is_empty() {
        return Err(invalid());
    }
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .map(|t| t.into_owned())
            .map_err(|_| invalid())
    };
    let account = decode(account)?;
    let project_id = state
        .storage
        .resolve_account(&account)
        .await?
        .ok_or_else(|| PlanktonError::not_found(format!("No account {account}")))?;
    Ok(ObjectRef {
        project_id,
        container: decode(container)?,
        name: decode(object)?,
    })
}

pub(crate) async fn register(
    State(state): State<ApiState>,
    user: GlanceUser,
    headers: HeaderMap,
) -> Result<Response, PlanktonError> {
    let params = meta_params(&headers)?;
    let fields = &params.fields;
    for key in fields.keys() {
        let allowed = matches!(
            key.as_str(),
            "name"
                | "id"
                | "store"
                | "disk_format"
                | "container_format"
                | "size"
                | "checksum"
                | "is_public"
                | "owner"
                | "properties"
                | "location"
                | "description"
        );
        let known = matches!(
            key.as_str(),
            "status" | "created_at" | "updated_at" | "deleted_at" | "is_snapshot"
        );
        if known && !allowed {
            return Err(PlanktonError::bad_request("Invalid parameters"));
        }
    }
    let name = fields
        .get("name")
        .ok_or_else(|| PlanktonError::bad_request("Image 'name' parameter is required"))?;
    if name.is_empty() {
        return Err(PlanktonError::bad_request("Invalid image name"));
    }
    let location = fields
        .get("location")
        .ok_or_else(|| PlanktonError::bad_request("'location' parameter is required"))?;
    if fields.contains_key("id") {
        return Err(PlanktonError::bad_request(
            "Setting the image ID is not supported",
        ));
    }
    if fields.get("store").is_some_and(|s| s != "pithos") {
        return Err(PlanktonError::bad_request(
            "Invalid image store: only pithos",
        ));
    }
    let object = object_of_location(&state, location).await?;
    let caller = user.caller();
    let visibility = match fields.get("is_public") {
        Some(flag) if flag.eq_ignore_ascii_case("true") => Some(public_visibility(&user)),
        Some(_) => Some(Visibility::Private),
        None => None,
    };
    if let Some(size) = fields.get("size") {
        // A size the client expects otherwise says it names another object: refused
        // before anything is written.
        let info = state
            .storage
            .object(
                nefos_storage::Accessor::Token(&user.0),
                &object.project_id,
                &object.container,
                &object.name,
                nefos_storage::VersionSelector::Current,
            )
            .await?;
        if size.parse::<u64>().ok() != Some(info.size) {
            return Err(PlanktonError::bad_request("Invalid 'size' field"));
        }
    }
    let mut properties = params.properties.clone();
    if let Some(description) = fields.get("description") {
        properties.insert("description".to_owned(), description.clone());
    }
    let new = NewImage {
        name: Some(name.clone()),
        visibility,
        disk_format: Some(disk_format(
            fields
                .get("disk_format")
                .map_or(p::DISKDUMP, String::as_str),
        )?),
        container_format: Some(
            fields
                .get("container_format")
                .cloned()
                .unwrap_or_else(|| nefos_image::REGISTERED_CONTAINER_FORMAT.to_owned()),
        ),
        properties,
        ..NewImage::default()
    };
    let image = state.images.register(caller, &object, new).await?;
    Ok(image_response(&image))
}

/// What "public" means for the caller: Glance publishes only for administrators, so a
/// user's public image is a community one (listed by Plankton as public all the same).
fn public_visibility(user: &GlanceUser) -> Visibility {
    if user.0.is_cloud_admin() {
        Visibility::Public
    } else {
        Visibility::Community
    }
}

pub(crate) async fn head(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
) -> Result<Response, PlanktonError> {
    let image = state.images.get(user.caller(), &id).await?;
    Ok(image_response(&image))
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, PlanktonError> {
    let params = meta_params(&headers)?;
    let current = state.images.get(user.caller(), &id).await?;
    let changes = changes(&user, &current, params)?;
    let image = state.images.update(user.caller(), &id, changes).await?;
    Ok(image_response(&image))
}

/// Plankton's update as Glance patch operations: properties merge, and an empty value
/// removes one.
fn changes(
    user: &GlanceUser,
    current: &Image,
    params: super::headers::MetaParams,
) -> Result<Vec<PatchOp>, PlanktonError> {
    let add = |field: ImageField, value: FieldValue| PatchOp {
        operation: PatchOperation::Add,
        field,
        value: Some(value),
    };
    let mut changes = Vec::new();
    for (key, value) in params.fields {
        match key.as_str() {
            "name" => changes.push(add(ImageField::Name, FieldValue::Text(Some(value)))),
            "disk_format" => {
                let format = disk_format(&value)?;
                if current.disk_format.as_deref() != Some(format.as_str()) {
                    changes.push(add(ImageField::DiskFormat, FieldValue::Text(Some(format))));
                }
            }
            "container_format" => {
                if current.container_format.as_deref() != Some(value.as_str()) {
                    changes.push(add(
                        ImageField::ContainerFormat,
                        FieldValue::Text(Some(value)),
                    ));
                }
            }
            "is_public" => {
                let visibility = if value.eq_ignore_ascii_case("true") {
                    public_visibility(user)
                } else if current.visibility == Visibility::Shared {
                    Visibility::Shared
                } else {
                    Visibility::Private
                };
                changes.push(add(
                    ImageField::Visibility,
                    FieldValue::Visibility(visibility),
                ));
            }
            "description" => {
                changes.push(add(
                    ImageField::Property("description".to_owned()),
                    FieldValue::Text(Some(value)),
                ));
            }
            "status" | "owner" => {
                return Err(PlanktonError::bad_request(format!(
                    "Invalid metadata: nefos keeps an image's {key} itself"
                )));
            }
            _ => return Err(PlanktonError::bad_request("Invalid metadata")),
        }
    }
    for (key, value) in params.properties {
        if value.is_empty() {
            if current.properties.contains_key(&key) {
                changes.push(PatchOp {
                    operation: PatchOperation::Remove,
                    field: ImageField::Property(key),
                    value: None,
                });
            }
        } else {
            let field = ImageField::from_name(&key)?;
            changes.push(add(field, FieldValue::Text(Some(value))));
        }
    }
    Ok(changes)
}

pub(crate) async fn unregister(
    State(state): State<ApiState>,
    user: GlanceUser,
    Path(id): Path<String>,
) -> Result<StatusCode, PlanktonError> {
    state.images.unregister(user.caller(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
