//! The times an object may be set to expire at (`X-Delete-At`, `X-Delete-After`).
//!
//! Swift stores expiry times as ten-digit seconds and clamps anything later to the last of
//! them; nefos does the same, with checked arithmetic, so that a huge `X-Delete-After`
//! means "practically never" instead of overflowing into the past.

use crate::StorageError;

/// The latest expiry Swift can represent: 9999999999 seconds (2286-11-20). Later times
/// are clamped to it.
pub const MAX_DELETE_AT: i64 = 9_999_999_999;

/// `X-Delete-At`: a time in seconds since the epoch, which must be in the future.
pub fn delete_at(at: i64, now: i64) -> Result<i64, StorageError> {
    if at <= now {
        return Err(StorageError::invalid(
            "X-Delete-At",
            "the time is in the past",
        ));
    }
    Ok(at.min(MAX_DELETE_AT))
}

/// `X-Delete-After`: seconds from `now`, at least one (as in Swift, 0 is a time in the
/// past by the time the object is stored).
pub fn delete_after(after: i64, now: i64) -> Result<i64, StorageError> {
    if after <= 0 {
        return Err(StorageError::invalid(
            "X-Delete-After",
            "the time is in the past",
        ));
    }
    Ok(now
        .checked_add(after)
        .map_or(MAX_DELETE_AT, |at| at.min(MAX_DELETE_AT)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_futures_clamp_instead_of_overflowing() {
        let now = 1_800_000_000;
        assert_eq!(delete_after(i64::MAX, now).unwrap(), MAX_DELETE_AT);
        assert_eq!(delete_after(60, now).unwrap(), now + 60);
        assert!(delete_after(0, now).is_err());
        assert!(delete_after(-1, now).is_err());
        assert_eq!(delete_at(i64::MAX, now).unwrap(), MAX_DELETE_AT);
        assert_eq!(delete_at(now + 1, now).unwrap(), now + 1);
        assert!(delete_at(now, now).is_err());
        assert!(delete_at(i64::MIN, now).is_err());
    }
}
