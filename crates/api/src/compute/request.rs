//! What every compute handler starts from: the caller (a valid token), the microversion
//! and the request's id; and Nova's rules for request bodies and links.

use axum::extract::FromRequestParts;
use http::request::Parts;
use nefos_compute_api::Microversion;
use nefos_identity::AuthContext;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::NovaError;
use crate::ApiState;
use crate::auth::Authenticated;
use crate::middleware::RequestId;

/// A compute request: who asks, at which microversion.
#[derive(Debug, Clone)]
pub(crate) struct Nova {
    pub caller: AuthContext,
    pub version: Microversion,
    pub request_id: String,
    /// Where links point: the public URL and compute's prefix.
    pub base: String,
}

impl FromRequestParts<ApiState> for Nova {
    type Rejection = NovaError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, NovaError> {
        let Authenticated(caller) = Authenticated::from_request_parts(parts, state).await?;
        let version = parts
            .extensions
            .get::<Microversion>()
            .copied()
            .unwrap_or(nefos_compute_api::microversion::MIN);
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4()));
        Ok(Nova {
            caller,
            version,
            request_id,
            base: format!("{}{}", state.public_url(), nefos_compute_api::PREFIX),
        })
    }
}

impl Nova {
    /// `self` and `bookmark` links to `path` (e.g. `/servers/ID`).
    pub fn links(&self, path: &str) -> Vec<nefos_compute_api::types::Link> {
        use nefos_compute_api::types::Link;
        vec![
            Link::new("self", format!("{}/v2.1{path}", self.base)),
            Link::new("bookmark", format!("{}{path}", self.base)),
        ]
    }

    pub fn is_admin(&self) -> bool {
        self.caller.is_cloud_admin()
    }
}

/// A JSON body, `{"<key>": {…}}`, as `T`; Nova's messages for what does not parse.
pub(crate) fn body<T: DeserializeOwned>(bytes: &[u8], key: &str) -> Result<T, NovaError> {
    let document: Value = serde_json::from_slice(bytes).map_err(|_| NovaError::malformed())?;
    let Value::Object(mut document) = document else {
        return Err(NovaError::malformed());
    };
    let inner = document
        .remove(key)
        .ok_or_else(|| NovaError::bad_request(format!("'{key}' is a required property")))?;
    if let Some(extra) = document.keys().next() {
        return Err(NovaError::bad_request(format!(
            "Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    serde_json::from_value(inner).map_err(|error| {
        NovaError::bad_request(format!("Invalid input for field/attribute {key}. {error}"))
    })
}

/// A whole JSON document as a value.
pub(crate) fn document(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, NovaError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(NovaError::malformed()),
    }
}

/// Query parameters as pairs, decoded.
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|raw| {
        raw.split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let decode = |text: &str| {
                    percent_encoding::percent_decode_str(&text.replace('+', " "))
                        .decode_utf8_lossy()
                        .into_owned()
                };
                (decode(key), decode(value))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The `next` link of a full page of `path`: the request's query, sorted, with `marker`
/// set to the page's last item; none when the page was not full.
pub(crate) fn next_links(
    nova: &Nova,
    path: &str,
    raw: Option<&str>,
    marker: Option<String>,
) -> Vec<nefos_compute_api::types::Link> {
    let Some(marker) = marker else {
        return Vec::new();
    };
    let mut pairs: Vec<(String, String)> = query_pairs(raw)
        .into_iter()
        .filter(|(k, _)| k != "marker")
        .collect();
    pairs.push(("marker".to_owned(), marker));
    pairs.sort();
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let v = percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC);
            format!("{k}={v}")
        })
        .collect();
    vec![nefos_compute_api::types::Link::new(
        "next",
        format!("{}/v2.1{path}?{}", nova.base, query.join("&")),
    )]
}

/// Nova's time format for `created`/`updated`: seconds, `Z`. Written field by field: a
/// listing formats thousands, and parsing a format string each time showed in profiles.
pub(crate) fn iso_seconds(micros: i64) -> String {
    let time = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    format!("{}Z", date_time(&time))
}

/// Nova's time format for `launched_at` and keypairs' `created_at`: microseconds, no zone.
pub(crate) fn iso_micros(micros: i64) -> String {
    let time = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    format!("{}.{:06}", date_time(&time), time.timestamp_subsec_micros())
}

fn date_time(time: &chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

/// Parses an ISO 8601 time (with or without zone; UTC assumed) into microseconds.
pub(crate) fn parse_time(text: &str) -> Option<i64> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp_micros());
    }
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    Some(naive.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_in_novas_formats() {
        assert_eq!(iso_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_seconds(1_765_000_000_123_456), "2025-12-06T05:46:40Z");
        assert_eq!(iso_micros(1_500_000), "1970-01-01T00:00:01.500000");
        assert_eq!(parse_time("1970-01-01T00:00:01.5"), Some(1_500_000));
    }
}
