//! Listing bodies in Swift's three formats: plain (names), JSON and XML.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use nefos_db::storage::ContainerListing;
use nefos_storage::{ListEntry, ListQuery};
use serde_json::json;

use super::error::SwiftError;
use super::headers::listing_date;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Json,
    Xml,
}

/// The format from `?format=` or, failing that, the `Accept` header.
pub fn format(query: &std::collections::HashMap<String, String>, headers: &HeaderMap) -> Format {
    let wanted = query
        .get("format")
        .cloned()
        .or_else(|| {
            headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default()
        .to_ascii_lowercase();
    if wanted.contains("json") {
        Format::Json
    } else if wanted.contains("xml") {
        Format::Xml
    } else {
        Format::Plain
    }
}

/// Listing parameters from the query string.
pub fn query(params: &std::collections::HashMap<String, String>) -> Result<ListQuery, SwiftError> {
    let limit = match params.get("limit") {
        None => None,
        Some(v) => Some(v.parse::<i64>().ok().filter(|l| *l >= 0).ok_or_else(|| {
            SwiftError::new(StatusCode::PRECONDITION_FAILED, "limit must be a number")
        })?),
    };
    if limit.is_some_and(|l| l > nefos_storage::MAX_LISTING) {
        return Err(SwiftError::new(
            StatusCode::PRECONDITION_FAILED,
            format!("limit is at most {}", nefos_storage::MAX_LISTING),
        ));
    }
    let delimiter = match params.get("delimiter").map(String::as_str) {
        None | Some("") => None,
        Some(d) => {
            let mut chars = d.chars();
            let first = chars.next();
            if chars.next().is_some() {
                return Err(SwiftError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "the delimiter must be one character",
                ));
            }
            first
        }
    };
    let reverse = params
        .get("reverse")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on"));
    // Pithos's `path=p` lists one level under a "directory": prefix `p/`, delimiter `/`.
    let (prefix, delimiter) = match params.get("path") {
        Some(path) => (
            Some(format!("{}/", path.trim_end_matches('/'))).filter(|p| p != "/"),
            Some('/'),
        ),
        None => (params.get("prefix").cloned(), delimiter),
    };
    Ok(ListQuery {
        prefix,
        delimiter,
        marker: params.get("marker").cloned(),
        end_marker: params.get("end_marker").cloned(),
        limit,
        reverse,
        until: None,
    })
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The type of a listing body in `format`: also what a HEAD of an account or container
/// answers, as Swift does.
pub fn content_type(format: Format) -> &'static str {
    match format {
        Format::Plain => "text/plain; charset=utf-8",
        Format::Json => "application/json; charset=utf-8",
        Format::Xml => "application/xml; charset=utf-8",
    }
}

fn respond(format: Format, body: String, empty: bool, mut headers: HeaderMap) -> Response {
    super::headers::insert(&mut headers, "content-type", content_type(format));
    if empty && format == Format::Plain {
        return (StatusCode::NO_CONTENT, headers).into_response();
    }
    (StatusCode::OK, headers, body).into_response()
}

/// An object listing.
pub fn objects(
    format: Format,
    container: &str,
    entries: &[ListEntry],
    headers: HeaderMap,
) -> Response {
    let body = match format {
        Format::Plain => entries.iter().map(|e| format!("{}\n", e.name())).collect(),
        Format::Json => {
            let items: Vec<_> = entries
                .iter()
                .map(|e| match e {
                    ListEntry::Subdir(s) => json!({ "subdir": s }),
                    ListEntry::Object(o) => {
                        let mut item = json!({
                            "name": o.name,
                            "hash": o.etag.as_deref().unwrap_or(""),
                            "bytes": o.size,
                            "content_type": o.content_type,
                            "last_modified": listing_date(o.modified_at),
                            "x_object_hash": o.hash.map(|h| h.to_hex()),
                            "x_object_version": o.serial,
                        });
                        if let Some((hash, slo_etag)) = super::manifest::listing_etags(o) {
                            item["hash"] = json!(hash);
                            item["slo_etag"] = json!(slo_etag);
                        }
                        item
                    }
                })
                .collect();
            serde_json::Value::Array(items).to_string()
        }
        Format::Xml => {
            let mut xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container name=\"{}\">",
                xml_escape(container)
            );
            for e in entries {
                match e {
                    ListEntry::Subdir(s) => {
                        let s = xml_escape(s);
                        xml.push_str(&format!("<subdir name=\"{s}\"><name>{s}</name></subdir>"));
                    }
                    ListEntry::Object(o) => xml.push_str(&format!(
                        "<object><name>{}</name><hash>{}</hash><bytes>{}</bytes><content_type>{}</content_type><last_modified>{}</last_modified></object>",
                        xml_escape(&o.name),
                        super::manifest::listing_etags(o)
                            .map_or(o.etag.clone().unwrap_or_default(), |(hash, _)| hash),
                        o.size,
                        xml_escape(&o.content_type),
                        listing_date(o.modified_at)
                    )),
                }
            }
            xml.push_str("</container>");
            xml
        }
    };
    respond(format, body, entries.is_empty(), headers)
}

/// A container listing.
pub fn containers(
    format: Format,
    account: &str,
    entries: &[ContainerListing],
    headers: HeaderMap,
) -> Response {
    let body = match format {
        Format::Plain => entries.iter().map(|c| format!("{}\n", c.name)).collect(),
        Format::Json => {
            let items: Vec<_> = entries
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name,
                        "count": c.objects,
                        "bytes": c.bytes,
                        "last_modified": listing_date(c.updated_at),
                    })
                })
                .collect();
            serde_json::Value::Array(items).to_string()
        }
        Format::Xml => {
            let mut xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<account name=\"{}\">",
                xml_escape(account)
            );
            for c in entries {
                xml.push_str(&format!(
                    "<container><name>{}</name><count>{}</count><bytes>{}</bytes><last_modified>{}</last_modified></container>",
                    xml_escape(&c.name),
                    c.objects,
                    c.bytes,
                    listing_date(c.updated_at)
                ));
            }
            xml.push_str("</account>");
            xml
        }
    };
    respond(format, body, entries.is_empty(), headers)
}
