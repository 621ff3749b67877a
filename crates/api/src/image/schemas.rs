//! The version document, `/v2/info/*`, and the JSON schemas Glance publishes for its
//! bodies (`/v2/schemas/*`), which python-glanceclient reads to validate and print.

use axum::Json;
use axum::extract::State;
use nefos_image::{CONTAINER_FORMATS, DISK_FORMATS};
use nefos_image_api::glance::{self, Link, VersionView, Versions};
use serde_json::{Value, json};

use crate::ApiState;

/// The Glance API versions nefos serves: 2.0 to 2.16 are one and the same API to a client
/// of Glance v2 (the minor versions add calls nefos either has or refuses by route).
const VERSIONS: &[(&str, &str)] = &[
    ("v2.16", "CURRENT"),
    ("v2.15", "SUPPORTED"),
    ("v2.9", "SUPPORTED"),
    ("v2.7", "SUPPORTED"),
    ("v2.6", "SUPPORTED"),
    ("v2.5", "SUPPORTED"),
    ("v2.4", "SUPPORTED"),
    ("v2.3", "SUPPORTED"),
    ("v2.2", "SUPPORTED"),
    ("v2.1", "SUPPORTED"),
    ("v2.0", "SUPPORTED"),
];

pub(crate) async fn versions(State(state): State<ApiState>) -> (http::StatusCode, Json<Versions>) {
    let href = format!("{}{}/v2/", state.public_url(), nefos_image_api::PREFIX);
    let versions = VERSIONS
        .iter()
        .map(|(id, status)| VersionView {
            id: (*id).to_owned(),
            status: (*status).to_owned(),
            links: vec![Link {
                rel: "self".to_owned(),
                href: href.clone(),
            }],
        })
        .collect();
    // Glance answers its version document with 300 Multiple Choices at the root.
    (
        http::StatusCode::MULTIPLE_CHOICES,
        Json(Versions { versions }),
    )
}

/// The version document with 200: `/versions`, and `/v2/`.
pub(crate) async fn v2_versions(State(state): State<ApiState>) -> Json<Versions> {
    let (_, document) = versions(State(state)).await;
    document
}

pub(crate) async fn import_info() -> Json<Value> {
    Json(json!({
        "import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": [glance::IMPORT_GLANCE_DIRECT],
        }
    }))
}

pub(crate) async fn stores_info() -> Json<Value> {
    Json(json!({
        "stores": [{
            "id": glance::STORE_ID,
            "description": "The object store: an image is an object of its owner's account",
            "default": true,
        }]
    }))
}

/// An enum of `values` that also allows null.
fn nullable_enum(values: &[&str]) -> Value {
    std::iter::once(Value::Null)
        .chain(values.iter().map(|v| json!(v)))
        .collect()
}

fn image_properties() -> Value {
    let nullable_string =
        |description: &str| json!({"type": ["null", "string"], "description": description});
    json!({
        "id": {"type": "string", "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$", "description": "An identifier for the image"},
        "name": {"type": ["null", "string"], "maxLength": 255, "description": "Descriptive name for the image"},
        "status": {"type": "string", "readOnly": true, "enum": ["queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete", "deactivated"], "description": "Status of the image"},
        "visibility": {"type": "string", "enum": ["community", "public", "private", "shared"], "description": "Scope of image accessibility"},
        "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
        "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list response."},
        "checksum": {"type": ["null", "string"], "readOnly": true, "maxLength": 32, "description": "md5 hash of image contents."},
        "os_hash_algo": {"type": ["null", "string"], "readOnly": true, "maxLength": 64, "description": "Algorithm to calculate the os_hash_value"},
        "os_hash_value": {"type": ["null", "string"], "readOnly": true, "maxLength": 128, "description": "Hexdigest of the image contents using the algorithm specified by the os_hash_algo"},
        "owner": {"type": ["null", "string"], "maxLength": 255, "description": "Owner of the image"},
        "size": {"type": ["null", "integer"], "readOnly": true, "description": "Size of image file in bytes"},
        "virtual_size": {"type": ["null", "integer"], "readOnly": true, "description": "Virtual size of image in bytes"},
        "container_format": {"type": ["null", "string"], "enum": nullable_enum(CONTAINER_FORMATS), "description": "Format of the container"},
        "disk_format": {"type": ["null", "string"], "enum": nullable_enum(DISK_FORMATS), "description": "Format of the disk"},
        "created_at": {"type": "string", "readOnly": true, "description": "Date and time of image registration"},
        "updated_at": {"type": "string", "readOnly": true, "description": "Date and time of the last image modification"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}, "description": "List of strings related to the image"},
        "direct_url": nullable_string("URL to access the image file kept in external store"),
        "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
        "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
        "self": {"type": "string", "readOnly": true, "description": "An image self url"},
        "file": {"type": "string", "readOnly": true, "description": "An image file url"},
        "stores": {"type": "string", "readOnly": true, "description": "Store in which image data resides."},
        "schema": {"type": "string", "readOnly": true, "description": "An image schema url"},
        "locations": {"type": "array", "items": {"type": "object"}, "description": "A set of URLs to access the image file kept in external store"},
        "os_distro": {"type": "string", "description": "Common name of operating system distribution as specified in https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html"},
        "os_version": {"type": "string", "description": "Operating system version as specified by the distributor"},
    })
}

fn image_schema() -> Value {
    json!({
        "name": "image",
        "properties": image_properties(),
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

pub(crate) async fn image() -> Json<Value> {
    Json(image_schema())
}

pub(crate) async fn images() -> Json<Value> {
    Json(json!({
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": image_schema()},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }))
}

fn member_schema() -> Value {
    json!({
        "name": "member",
        "properties": {
            "member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
            "image_id": {"type": "string", "description": "An identifier for the image"},
            "created_at": {"type": "string", "description": "Date and time of image member creation"},
            "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
            "status": {"type": "string", "enum": ["pending", "accepted", "rejected"], "description": "The status of this image member"},
            "schema": {"type": "string", "readOnly": true},
        },
    })
}

pub(crate) async fn member() -> Json<Value> {
    Json(member_schema())
}

pub(crate) async fn members() -> Json<Value> {
    Json(json!({
        "name": "members",
        "properties": {
            "members": {"type": "array", "items": member_schema()},
            "schema": {"type": "string"},
        },
        "links": [{"rel": "describedby", "href": "{schema}"}],
    }))
}
