//! The fields of an image a caller may change, and the changes (Glance's JSON patch).

use crate::{ImageError, Visibility};

/// Attributes the image service computes: never set by callers (Glance: 403 read-only).
const READ_ONLY: &[&str] = &[
    "id",
    "owner",
    "status",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "size",
    "virtual_size",
    "created_at",
    "updated_at",
    "file",
    "self",
    "schema",
    "direct_url",
    "locations",
    "stores",
    "member_status",
];

/// Names Glance keeps for itself (403 reserved).
const RESERVED: &[&str] = &["location", "deleted", "deleted_at"];

/// Property names Glance reserves for its own bookkeeping, and those nefos keeps for its
/// verdicts (`nefos_unbootable`).
const RESERVED_PREFIXES: &[&str] = &["os_glance", "nefos_"];

/// The attributes of an image that are fields, never properties: a property of one of
/// these names would stand beside the field in Glance's JSON and shadow it.
const BASE_FIELDS: &[&str] = &[
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "disk_format",
    "container_format",
    "min_disk",
    "min_ram",
    "tags",
];

fn reserved_prefix(name: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Longest property name, value and tag Glance stores.
pub(crate) const MAX_NAME_LEN: usize = 255;
pub(crate) const MAX_PROPERTY_VALUE_LEN: usize = 65_535;
/// Glance's `image_property_quota` and `image_tag_quota` defaults.
pub(crate) const MAX_PROPERTIES: usize = 128;
pub(crate) const MAX_TAGS: usize = 128;

/// A field of an image that callers change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageField {
    Name,
    Visibility,
    Protected,
    OsHidden,
    DiskFormat,
    ContainerFormat,
    MinDisk,
    MinRam,
    Tags,
    /// An additional property.
    Property(String),
}

impl ImageField {
    /// The field a top-level attribute name stands for; read-only and reserved names are
    /// refused as Glance refuses them.
    pub fn from_name(name: &str) -> Result<ImageField, ImageError> {
        let field = match name {
            "name" => ImageField::Name,
            "visibility" => ImageField::Visibility,
            "protected" => ImageField::Protected,
            "os_hidden" => ImageField::OsHidden,
            "disk_format" => ImageField::DiskFormat,
            "container_format" => ImageField::ContainerFormat,
            "min_disk" => ImageField::MinDisk,
            "min_ram" => ImageField::MinRam,
            "tags" => ImageField::Tags,
            _ if READ_ONLY.contains(&name) => {
                return Err(ImageError::ReservedAttribute {
                    attribute: name.to_owned(),
                    kind: "read-only",
                });
            }
            _ if RESERVED.contains(&name) || reserved_prefix(name) => {
                return Err(ImageError::ReservedAttribute {
                    attribute: name.to_owned(),
                    kind: "reserved",
                });
            }
            property => {
                check_property_name(property)?;
                ImageField::Property(property.to_owned())
            }
        };
        Ok(field)
    }

    pub fn name(&self) -> &str {
        match self {
            ImageField::Name => "name",
            ImageField::Visibility => "visibility",
            ImageField::Protected => "protected",
            ImageField::OsHidden => "os_hidden",
            ImageField::DiskFormat => "disk_format",
            ImageField::ContainerFormat => "container_format",
            ImageField::MinDisk => "min_disk",
            ImageField::MinRam => "min_ram",
            ImageField::Tags => "tags",
            ImageField::Property(name) => name,
        }
    }
}

/// A value for a field, already of the field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    Text(Option<String>),
    Flag(bool),
    Number(u64),
    Visibility(Visibility),
    List(Vec<String>),
}

/// What a change does (RFC 6902's operations that Glance accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOperation {
    /// Sets the field; on a property that exists, replaces it.
    Add,
    /// Sets a field that exists (a missing property is a conflict).
    Replace,
    /// Removes a property (base fields cannot be removed).
    Remove,
}

/// One change to an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchOp {
    pub operation: PatchOperation,
    pub field: ImageField,
    /// `None` for [`PatchOperation::Remove`].
    pub value: Option<FieldValue>,
}

pub(crate) fn check_property_name(name: &str) -> Result<(), ImageError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(ImageError::invalid(
            "property",
            format!("a property name must be 1 to {MAX_NAME_LEN} bytes"),
        ));
    }
    refuse_nul("property", name)?;
    if BASE_FIELDS.contains(&name) {
        return Err(ImageError::invalid(
            "property",
            format!("{name} is an attribute of every image, not a property"),
        ));
    }
    if reserved_prefix(name) || RESERVED.contains(&name) {
        return Err(ImageError::ReservedAttribute {
            attribute: name.to_owned(),
            kind: "reserved",
        });
    }
    if READ_ONLY.contains(&name) {
        return Err(ImageError::ReservedAttribute {
            attribute: name.to_owned(),
            kind: "read-only",
        });
    }
    Ok(())
}

/// Refuses text holding NUL, which no stored text can (PostgreSQL cannot store it).
pub(crate) fn refuse_nul(field: &'static str, text: &str) -> Result<(), ImageError> {
    if text.contains('\0') {
        return Err(ImageError::invalid(field, "holds a NUL character"));
    }
    Ok(())
}

pub(crate) fn check_property_value(name: &str, value: &str) -> Result<(), ImageError> {
    refuse_nul("property", value)?;
    if value.len() > MAX_PROPERTY_VALUE_LEN {
        return Err(ImageError::invalid(
            "property",
            format!("the value of {name} is longer than {MAX_PROPERTY_VALUE_LEN} bytes"),
        ));
    }
    Ok(())
}

pub(crate) fn check_tag(tag: &str) -> Result<(), ImageError> {
    refuse_nul("tag", tag)?;
    if tag.is_empty() || tag.len() > MAX_NAME_LEN {
        return Err(ImageError::invalid(
            "tag",
            format!("a tag must be 1 to {MAX_NAME_LEN} bytes"),
        ));
    }
    Ok(())
}

pub(crate) fn check_disk_format(format: &str) -> Result<(), ImageError> {
    if crate::DISK_FORMATS.contains(&format) {
        Ok(())
    } else {
        Err(ImageError::invalid(
            "disk_format",
            format!("{format:?} is not supported: nefos boots raw and qcow2 images"),
        ))
    }
}

pub(crate) fn check_container_format(format: &str) -> Result<(), ImageError> {
    if crate::CONTAINER_FORMATS.contains(&format) {
        Ok(())
    } else {
        Err(ImageError::invalid(
            "container_format",
            format!("{format:?} is not supported: nefos images are bare disks"),
        ))
    }
}
