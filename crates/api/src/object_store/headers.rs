//! Reading and writing Swift headers: metadata, times, numbers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};
use nefos_db::time::from_micros;
use nefos_storage::Metadata;

use super::error::SwiftError;

/// A header as text, if present and valid. Swift's header values are UTF-8 (metadata in
/// any language), which HTTP carries as raw bytes.
pub fn text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, SwiftError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => utf8(value)
            .map(Some)
            .ok_or_else(|| SwiftError::bad_request(format!("the {name} header is not valid text"))),
    }
}

/// A header value as UTF-8 text.
pub fn utf8(value: &HeaderValue) -> Option<&str> {
    std::str::from_utf8(value.as_bytes()).ok()
}

/// The user metadata in headers starting with `prefix` (e.g. `x-object-meta-`), and the
/// names given in `X-Remove-…-Meta-*` as removals (empty values).
pub fn metadata(headers: &HeaderMap, kind: &str) -> Result<Metadata, SwiftError> {
    let set = format!("x-{kind}-meta-");
    let remove = format!("x-remove-{kind}-meta-");
    let mut meta = Metadata::new();
    for (name, value) in headers {
        let name = name.as_str();
        if let Some(key) = name.strip_prefix(&set) {
            let value = utf8(value).ok_or_else(|| {
                SwiftError::bad_request(format!("metadata {key:?} is not valid text"))
            })?;
            meta.insert(key.to_owned(), value.trim().to_owned());
        } else if let Some(key) = name.strip_prefix(&remove) {
            meta.insert(key.to_owned(), String::new());
        }
    }
    Ok(meta)
}

/// The metadata names in `X-Remove-…-Meta-*` headers.
pub fn metadata_removals(headers: &HeaderMap, kind: &str) -> Vec<String> {
    let remove = format!("x-remove-{kind}-meta-");
    headers
        .keys()
        .filter_map(|name| name.as_str().strip_prefix(&remove))
        .map(str::to_owned)
        .collect()
}

/// Pithos groups from `X-Account-Group-NAME: a,b` headers.
pub fn groups(headers: &HeaderMap) -> Result<BTreeMap<String, Vec<String>>, SwiftError> {
    let mut groups = BTreeMap::new();
    for (name, value) in headers {
        if let Some(group) = name.as_str().strip_prefix("x-account-group-") {
            let value = utf8(value)
                .ok_or_else(|| SwiftError::bad_request("a group header is not valid text"))?;
            let members = value
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect();
            groups.insert(group.to_owned(), members);
        }
    }
    Ok(groups)
}

/// Adds `prefix` + name headers for each metadata item.
pub fn put_metadata(out: &mut HeaderMap, prefix: &str, meta: &Metadata) {
    for (key, value) in meta {
        insert(out, &format!("{prefix}{key}"), value);
    }
}

/// Inserts a header, UTF-8 as raw bytes (as Swift sends metadata), skipping values that
/// are not valid in HTTP (control characters: never produced by nefos itself; a stored
/// value from an older client could have them).
pub fn insert(out: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::try_from(name),
        HeaderValue::from_bytes(value.as_bytes()),
    ) {
        out.insert(name, value);
    }
}

/// `Last-Modified` form: `Wed, 25 Nov 2026 09:28:15 GMT`.
pub fn http_date(micros: i64) -> String {
    from_micros(micros)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// Swift's `X-Timestamp`: seconds with five decimals.
pub fn timestamp(micros: i64) -> String {
    format!(
        "{}.{:05}",
        micros.div_euclid(1_000_000),
        micros.rem_euclid(1_000_000) / 10
    )
}

/// Listing form: `2026-11-25T09:28:15.123456`.
pub fn listing_date(micros: i64) -> String {
    from_micros(micros)
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

/// Seconds since the epoch from an HTTP date; `None` if it does not parse.
pub fn parse_http_date(value: &str) -> Option<i64> {
    DateTime::parse_from_rfc2822(value)
        .ok()
        .map(|d| d.with_timezone(&Utc).timestamp())
}

/// A whole number as Python's `int()` reads it, as Swift reads its times (`X-Delete-At`,
/// `temp_url_expires`): surrounding space, a sign, and single underscores between digits.
/// A number beyond `i64` is its nearest end (any clock's first or last second).
pub fn python_int(text: &str) -> Option<i64> {
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let well_formed = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !well_formed {
        return None;
    }
    let digits = digits.replace('_', "");
    let signed = if negative {
        format!("-{digits}")
    } else {
        digits
    };
    Some(
        signed
            .parse::<i64>()
            .unwrap_or(if negative { i64::MIN } else { i64::MAX }),
    )
}

/// A whole number header.
pub fn number(headers: &HeaderMap, name: &str) -> Result<Option<i64>, SwiftError> {
    match text(headers, name)? {
        None => Ok(None),
        Some(v) => v
            .trim()
            .split('.')
            .next()
            .and_then(|v| v.parse::<i64>().ok())
            .map(Some)
            .ok_or_else(|| SwiftError::bad_request(format!("{name} must be a number"))),
    }
}

/// A comma-separated list of entity tags.
pub fn etag_list(headers: &HeaderMap, name: &str) -> Result<Option<Vec<String>>, SwiftError> {
    Ok(text(headers, name)?.map(|v| {
        v.split(',')
            .map(|t| {
                t.trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .to_owned()
            })
            .collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_like_swift() {
        assert_eq!(timestamp(1_700_000_000_123_456), "1700000000.12345");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(listing_date(1_500_000), "1970-01-01T00:00:01.500000");
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:10 GMT"), Some(10));
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn whole_numbers_read_as_python_reads_them() {
        assert_eq!(python_int(" +1_000 "), Some(1000));
        assert_eq!(python_int("-7"), Some(-7));
        assert_eq!(python_int(&"1".repeat(100)), Some(i64::MAX));
        assert_eq!(python_int(&format!("-{}", "9".repeat(30))), Some(i64::MIN));
        for bad in ["", "1.5", "1__0", "_1", "0x10", "+"] {
            assert_eq!(python_int(bad), None, "{bad}");
        }
    }
}
