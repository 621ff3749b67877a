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

/// Checks metadata against Swift's limits, with Swift's texts.
pub(crate) fn check(meta: &Metadata) -> Result<(), StorageError> {
    if meta.len() > MetadataLimits::MAX_COUNT {
        return Err(StorageError::invalid(
            SWIFT_CONSTRAINT,
            format!("Too many metadata items; max {}", MetadataLimits::MAX_COUNT),
        ));
    }
    let mut total = 0;
    for (name, value) in meta {
        if name.is_empty() {
            return Err(StorageError::invalid(
                SWIFT_CONSTRAINT,
                "Metadata name cannot be empty",
            ));
        }
        if name.len() > MetadataLimits::MAX_NAME {
            return Err(StorageError::invalid(
                SWIFT_CONSTRAINT,
                format!("Metadata name too long: {name}"),
            ));
        }
        if value.len() > MetadataLimits::MAX_VALUE {
            return Err(StorageError::invalid(
                SWIFT_CONSTRAINT,
                format!(
                    "Metadata value longer than {}: {name}",
                    MetadataLimits::MAX_VALUE
                ),
            ));
        }
        total += name.len() + value.len();
    }
    if total > MetadataLimits::MAX_TOTAL {
        return Err(StorageError::invalid(
            SWIFT_CONSTRAINT,
            format!(
                "Total metadata too large; max {}",
                MetadataLimits::MAX_TOTAL
            ),
        ));
    }
    Ok(())
}

/// The field of the errors whose reasons are Swift's own texts in full (metadata, name
/// lengths): the object-store API answers with the reason alone.
pub const SWIFT_CONSTRAINT: &str = "Swift constraint";

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
