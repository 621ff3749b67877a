//! Synnefo's Plankton (its Glance v1.0 dialect), under [`crate::PREFIX`]`/v1.0`, as kamaki
//! 0.16 speaks it: an image is registered from an object already in the store, and its
//! metadata travels in `x-image-meta-*` headers; listings are bare JSON arrays.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where Plankton is served, under [`crate::PREFIX`]. kamaki appends it to an image
/// endpoint that names no version.
pub const VERSION_PREFIX: &str = "/v1.0";

/// `GET`: a short listing; `POST`: register an object as an image (headers only).
pub const IMAGES: &str = "/images";
/// The same, as kamaki writes it.
pub const IMAGES_SLASH: &str = "/images/";
/// `GET`: the detailed listing.
pub const IMAGES_DETAIL: &str = "/images/detail";
/// `HEAD`: the image's headers; `PUT`: update them; `DELETE`: unregister.
pub const IMAGE: &str = "/images/{image_id}";
/// `GET`: the projects an image is shared with; `PUT`: replace them.
pub const IMAGE_MEMBERS: &str = "/images/{image_id}/members";
/// `PUT`: share with a project; `DELETE`: stop sharing.
pub const IMAGE_MEMBER: &str = "/images/{image_id}/members/{member_id}";
/// `GET`: the images a project shares with the caller.
pub const SHARED_IMAGES: &str = "/shared-images/{member_id}";

/// Prefix of every image header.
pub const META_PREFIX: &str = "x-image-meta-";
/// Prefix of a property header: `x-image-meta-property-<name>`.
pub const PROPERTY_PREFIX: &str = "x-image-meta-property-";

/// Header names, lower case, as Plankton sends them.
pub const META_ID: &str = "x-image-meta-id";
pub const META_NAME: &str = "x-image-meta-name";
pub const META_LOCATION: &str = "x-image-meta-location";
pub const META_DISK_FORMAT: &str = "x-image-meta-disk-format";
pub const META_CONTAINER_FORMAT: &str = "x-image-meta-container-format";
pub const META_SIZE: &str = "x-image-meta-size";
pub const META_CHECKSUM: &str = "x-image-meta-checksum";
pub const META_STATUS: &str = "x-image-meta-status";
pub const META_IS_PUBLIC: &str = "x-image-meta-is-public";
pub const META_OWNER: &str = "x-image-meta-owner";
pub const META_CREATED_AT: &str = "x-image-meta-created-at";
pub const META_UPDATED_AT: &str = "x-image-meta-updated-at";
pub const META_DELETED_AT: &str = "x-image-meta-deleted-at";
pub const META_IS_SNAPSHOT: &str = "x-image-meta-is-snapshot";
pub const META_DESCRIPTION: &str = "x-image-meta-description";

/// Synnefo's name for a raw disk dump, accepted as `raw`.
pub const DISKDUMP: &str = "diskdump";

/// Plankton's image statuses (listings; headers map `UNAVAILABLE` to `SAVING`).
pub const STATUS_AVAILABLE: &str = "AVAILABLE";
pub const STATUS_UNAVAILABLE: &str = "UNAVAILABLE";
pub const STATUS_SAVING: &str = "SAVING";
pub const STATUS_ERROR: &str = "ERROR";

/// One image of a listing: the short form has `id`, `name`, `status`, `disk_format`,
/// `container_format` and `size`; the detailed form everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSummary {
    pub id: String,
    pub name: String,
    pub status: String,
    pub disk_format: String,
    pub container_format: String,
    pub size: u64,
    #[serde(flatten)]
    pub detail: Option<ImageDetail>,
}

/// What the detailed listing adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDetail {
    pub checksum: String,
    pub location: String,
    /// `YYYY-MM-DD HH:MM:SS`, UTC.
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: String,
    pub is_public: bool,
    pub owner: String,
    pub is_snapshot: bool,
    pub properties: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `GET /images/{id}/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberList {
    pub members: Vec<MemberEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEntry {
    pub member_id: String,
    pub can_share: bool,
}

/// `PUT /images/{id}/members`: the whole list of members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetMembers {
    pub memberships: Vec<MemberId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberId {
    pub member_id: String,
}

/// `GET /shared-images/{member}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedImages {
    pub shared_images: Vec<SharedImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedImage {
    pub image_id: String,
    pub can_share: bool,
}

/// A property name as Plankton keeps it: lower case, punctuation as `_` (kamaki sends
/// `x-image-meta-property-OS_FAMILY`; Synnefo stores `os_family`).
pub fn property_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_punctuation() {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_keys_are_normalised() {
        assert_eq!(property_key("OS-Family"), "os_family");
        assert_eq!(property_key("ROOT_PARTITION"), "root_partition");
    }
}
