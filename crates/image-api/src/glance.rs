//! Glance v2, under [`crate::PREFIX`]: routes in axum's template syntax, the media types
//! and headers Glance defines, and the JSON bodies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET`: the version document (also at [`VERSIONS`]).
pub const ROOT: &str = "/";
pub const VERSIONS: &str = "/versions";
/// `GET`: the version document, as `GET /v2/` answers it.
pub const V2_ROOT: &str = "/v2/";
/// `GET`: list (filters, sorting, paging); `POST`: create a queued image.
pub const IMAGES: &str = "/v2/images";
/// `GET`: show; `PATCH`: JSON-patch update; `DELETE`: delete.
pub const IMAGE: &str = "/v2/images/{image_id}";
/// `PUT`: upload the data; `GET`: download it (ranges allowed).
pub const IMAGE_FILE: &str = "/v2/images/{image_id}/file";
/// `PUT`: stage the data for an interoperable import.
pub const IMAGE_STAGE: &str = "/v2/images/{image_id}/stage";
/// `POST`: import staged data (`glance-direct`).
pub const IMAGE_IMPORT: &str = "/v2/images/{image_id}/import";
/// `POST`: refuse downloads; `POST`: allow them again.
pub const IMAGE_DEACTIVATE: &str = "/v2/images/{image_id}/actions/deactivate";
pub const IMAGE_REACTIVATE: &str = "/v2/images/{image_id}/actions/reactivate";
/// `PUT`: add a tag; `DELETE`: remove it.
pub const IMAGE_TAG: &str = "/v2/images/{image_id}/tags/{tag}";
/// `GET`: list members; `POST`: add one.
pub const IMAGE_MEMBERS: &str = "/v2/images/{image_id}/members";
/// `GET`: show; `PUT`: the member's answer; `DELETE`: remove the member.
pub const IMAGE_MEMBER: &str = "/v2/images/{image_id}/members/{member_id}";
/// `GET`: the import methods this cloud offers.
pub const INFO_IMPORT: &str = "/v2/info/import";
/// `GET`: the stores images go to (one: the object store).
pub const INFO_STORES: &str = "/v2/info/stores";
/// `GET`: JSON schemas of the bodies.
pub const SCHEMA_IMAGE: &str = "/v2/schemas/image";
pub const SCHEMA_IMAGES: &str = "/v2/schemas/images";
pub const SCHEMA_MEMBER: &str = "/v2/schemas/member";
pub const SCHEMA_MEMBERS: &str = "/v2/schemas/members";

/// The JSON-patch media types Glance accepts on `PATCH` (2.1 is current; 2.0 is the
/// older dialect that the CLI no longer sends but Glance still takes).
pub const PATCH_MEDIA_TYPE: &str = "application/openstack-images-v2.1-json-patch";
pub const PATCH_MEDIA_TYPE_2_0: &str = "application/openstack-images-v2.0-json-patch";

/// Headers of an image create answer naming what an import may use.
pub const HEADER_IMPORT_METHODS: &str = "OpenStack-image-import-methods";
pub const HEADER_STORE_IDS: &str = "OpenStack-image-store-ids";
/// The only import method nefos offers: data staged through the API.
pub const IMPORT_GLANCE_DIRECT: &str = "glance-direct";
/// The one store: images are objects of the storage service.
pub const STORE_ID: &str = "object-store";

/// An image as Glance shows it. Additional properties are top-level string fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageView {
    pub id: String,
    pub name: Option<String>,
    pub status: String,
    pub visibility: String,
    pub protected: bool,
    pub os_hidden: bool,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub owner: String,
    pub size: Option<u64>,
    pub virtual_size: Option<u64>,
    pub min_ram: u64,
    pub min_disk: u64,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    /// ISO 8601, seconds, `Z`.
    pub created_at: String,
    pub updated_at: String,
    pub tags: Vec<String>,
    #[serde(rename = "self")]
    pub self_link: String,
    pub file: String,
    pub schema: String,
    /// Additional properties (strings on the wire; any JSON a client may meet is kept).
    #[serde(flatten)]
    pub properties: BTreeMap<String, serde_json::Value>,
}

/// One page of `GET /v2/images`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageList {
    pub images: Vec<ImageView>,
    pub first: String,
    pub schema: String,
    /// The next page (path and query, under the image endpoint), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One operation of a JSON-patch body (`PATCH /v2/images/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchOperation {
    pub op: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// A member of a shared image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub image_id: String,
    pub member_id: String,
    /// pending, accepted or rejected.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    pub schema: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberList {
    pub members: Vec<MemberView>,
    pub schema: String,
}

/// `POST /v2/images/{id}/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddMember {
    pub member: String,
}

/// `PUT /v2/images/{id}/members/{member}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAnswer {
    pub status: String,
}

/// `POST /v2/images/{id}/import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRequest {
    pub method: ImportMethod,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportMethod {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// The version document at the endpoint's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    pub versions: Vec<VersionView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionView {
    pub id: String,
    /// `CURRENT` or `SUPPORTED`.
    pub status: String,
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub rel: String,
    pub href: String,
}

/// An error answer, as Glance's WSGI stack writes it for clients that accept JSON:
/// `{"code": "404 Not Found", "title": "Not Found", "message": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The status line.
    pub code: String,
    pub title: String,
    pub message: String,
}
