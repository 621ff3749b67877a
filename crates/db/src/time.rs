//! Timestamps are stored as microseconds since the Unix epoch (`BIGINT`), the one time
//! representation SQLite and PostgreSQL share without conversion rules.

use chrono::{DateTime, Utc};

/// The current time in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// A stored timestamp as a UTC date-time; out-of-range values clamp to the epoch.
pub fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::UNIX_EPOCH)
}
