//! `GET /info`: what this cluster supports, read by the `swift` CLI to choose features
//! (static large objects, bulk delete) and limits.

use axum::Json;
use nefos_storage::MetadataLimits;
use serde_json::{Value, json};

pub(super) async fn handle() -> Json<Value> {
    Json(json!({
        "swift": {
            "version": concat!("nefos-", env!("CARGO_PKG_VERSION")),
            "max_file_size": nefos_storage::MAX_OBJECT_SIZE,
            "max_meta_name_length": MetadataLimits::MAX_NAME,
            "max_meta_value_length": MetadataLimits::MAX_VALUE,
            "max_meta_count": MetadataLimits::MAX_COUNT,
            "max_meta_overall_size": MetadataLimits::MAX_TOTAL,
            "max_object_name_length": 1024,
            "max_container_name_length": 256,
            "container_listing_limit": nefos_storage::MAX_LISTING,
            "account_listing_limit": nefos_storage::MAX_LISTING,
            "max_header_size": 65536,
            "strict_cors_mode": true,
            "policies": [{ "name": "default", "default": true }],
        },
        "slo": {
            "max_manifest_segments": nefos_storage::MAX_SEGMENTS,
            "max_manifest_size": nefos_storage::MAX_MANIFEST_BYTES,
            "min_segment_size": 1,
        },
        "bulk_delete": {
            "max_deletes_per_request": super::bulk::MAX_DELETES,
            "max_failed_deletes": super::bulk::MAX_FAILED_DELETES,
        },
        "tempurl": {
            "methods": super::tempurl::METHODS,
            "incoming_remove_headers": [],
            "incoming_allow_headers": [],
            "outgoing_remove_headers": ["x-object-meta-*"],
            "outgoing_allow_headers": ["x-object-meta-public-*"],
            "allowed_digests": super::tempurl::DIGESTS,
            "deprecated_digests": super::tempurl::DEPRECATED_DIGESTS,
        },
        "account_quotas": {},
        "container_quotas": {},
        "pithos": {
            "block_size": nefos_blocks::BLOCK_SIZE,
            "block_hash": "sha256",
            "versioning": ["auto", "none"],
        },
    }))
}
