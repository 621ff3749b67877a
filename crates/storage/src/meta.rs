//! User metadata (`X-*-Meta-*`) with Swift's limits, stored as a JSON object.

use std::collections::BTreeMap;

use crate::StorageError;

/// Metadata names (lower-case, without the `X-…-Meta-` prefix) and values.
pub type Metadata = BTreeMap<String, String>;

/// Swift's default constraints (`/info` advertises them).
#[derive(Debug, Clone, Copy)]
pub struct MetadataLimits;

impl MetadataLimits {
    pub const MAX_NAME: usize = 128;
    pub const MAX_VALUE: usize = 256;
    pub const MAX_COUNT: usize = 90;
    pub const MAX_TOTAL: usize = 4096;
}

pub(crate) fn check(meta: &Metadata) -> Result<(), StorageError> {
    if meta.len() > MetadataLimits::MAX_COUNT {
        return Err(StorageError::invalid(
            "metadata",
            format!("more than {} items", MetadataLimits::MAX_COUNT),
        ));
    }
    let mut total = 0;
    for (name, value) in meta {
        if name.is_empty() || name.len() > MetadataLimits::MAX_NAME {
            return Err(StorageError::invalid(
                "metadata",
                format!("name {name:?} is empty or too long"),
            ));
        }
        if value.len() > MetadataLimits::MAX_VALUE {
            return Err(StorageError::invalid(
                "metadata",
                format!("value of {name:?} is too long"),
            ));
        }
        total += name.len() + value.len();
    }
    if total > MetadataLimits::MAX_TOTAL {
        return Err(StorageError::invalid(
            "metadata",
            format!("more than {} bytes in all", MetadataLimits::MAX_TOTAL),
        ));
    }
    Ok(())
}

pub(crate) fn to_json(meta: &Metadata) -> String {
    serde_json::to_string(meta).unwrap_or_else(|_| "{}".to_owned())
}

/// Reads stored metadata; a damaged value reads as empty rather than failing the request.
pub(crate) fn from_json(text: &str) -> Metadata {
    serde_json::from_str(text).unwrap_or_default()
}

/// Applies an update: every given item replaces the stored one, and an empty value removes
/// it (Swift's POST semantics).
pub(crate) fn merge(stored: &mut Metadata, update: &Metadata) {
    for (name, value) in update {
        if value.is_empty() {
            stored.remove(name);
        } else {
            stored.insert(name.clone(), value.clone());
        }
    }
}
