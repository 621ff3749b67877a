//! Reading booleans.
//!
//! sqlx's `Any` driver cannot decode SQLite `BOOLEAN` columns, so queries select them as
//! `CAST(column AS INTEGER)` (0/1 on both engines) and rows read them through these helpers.
//! Writes bind plain `bool`s, which both engines store in their `BOOLEAN` columns.

use sqlx::Row;
use sqlx::any::AnyRow;

/// A boolean selected as `CAST(… AS INTEGER)`.
pub(crate) fn get_bool(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

/// A nullable boolean selected as `CAST(… AS INTEGER)` (NULL stays `None`).
pub(crate) fn get_optional_bool(row: &AnyRow, column: &str) -> Result<Option<bool>, sqlx::Error> {
    Ok(row.try_get::<Option<i64>, _>(column)?.map(|v| v != 0))
}
