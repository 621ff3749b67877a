//! Swift's bulk delete (`POST /v1/AUTH_<project>?bulk-delete`): a text body of
//! URL-encoded `/container/object` or `/container` paths, one a line, deleted in order;
//! the answer counts what was deleted and lists what failed, in the format asked for.
//! The tally also answers `DELETE ?multipart-manifest=delete` of static large objects.

use std::collections::HashMap;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Buf, BytesMut};
use futures::StreamExt;
use http::{HeaderMap, StatusCode, header};
use nefos_storage::{Accessor, Storage, StorageError};
use serde_json::json;

use super::error::SwiftError;
use super::listing::{self, Format};

/// Swift's default limits, advertised by `/info`.
pub(super) const MAX_DELETES: usize = 10_000;
pub(super) const MAX_FAILED_DELETES: usize = 1000;
/// The longest line: a container and an object name, every byte URL-encoded.
const MAX_LINE: usize = 3 * (256 + 1024) + 2;

/// What a run of deletions did.
#[derive(Debug, Default)]
pub(super) struct Tally {
    deleted: u64,
    not_found: u64,
    errors: Vec<(String, StatusCode)>,
    /// Set when the request itself was refused part-way (too many paths, a bad line).
    refused: Option<(StatusCode, String)>,
}

impl Tally {
    /// Counts the outcome of deleting `path`.
    pub(super) fn record(&mut self, path: &str, outcome: Result<(), StorageError>) {
        match outcome {
            Ok(()) => self.deleted += 1,
            Err(StorageError::NotFound { .. }) => self.not_found += 1,
            Err(error) => {
                if matches!(error, StorageError::Blocks(_) | StorageError::Database(_)) {
                    tracing::warn!(path, error = %crate::error_chain(&error), "a deletion failed");
                }
                self.errors
                    .push((path.to_owned(), SwiftError::from(error).status));
            }
        }
    }

    fn status_line(&self) -> (String, String) {
        let line = |s: StatusCode| {
            format!(
                "{} {}",
                s.as_u16(),
                s.canonical_reason().unwrap_or_default()
            )
        };
        if let Some((status, body)) = &self.refused {
            (line(*status), body.clone())
        } else if !self.errors.is_empty() {
            (line(StatusCode::BAD_REQUEST), String::new())
        } else if self.deleted == 0 && self.not_found == 0 {
            (
                line(StatusCode::BAD_REQUEST),
                "Invalid bulk delete.".to_owned(),
            )
        } else {
            (line(StatusCode::OK), String::new())
        }
    }

    /// The answer (always 200: the outcome is in the body, as Swift does).
    pub(super) fn response(&self, format: Format) -> Response {
        let (status, body) = self.status_line();
        let errors: Vec<(String, String)> = self
            .errors
            .iter()
            .map(|(path, s)| {
                let reason = s.canonical_reason().unwrap_or_default();
                (path.clone(), format!("{} {reason}", s.as_u16()))
            })
            .collect();
        let (content_type, text) = match format {
            Format::Json => (
                "application/json; charset=utf-8",
                json!({
                    "Number Deleted": self.deleted,
                    "Number Not Found": self.not_found,
                    "Response Body": body,
                    "Response Status": status,
                    "Errors": errors,
                })
                .to_string(),
            ),
            Format::Xml => {
                let mut xml = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<delete>\n\
                     <number_deleted>{}</number_deleted>\n\
                     <number_not_found>{}</number_not_found>\n\
                     <response_body>{}</response_body>\n\
                     <response_status>{}</response_status>\n<errors>\n",
                    self.deleted,
                    self.not_found,
                    xml_escape(&body),
                    xml_escape(&status)
                );
                for (path, s) in &errors {
                    xml.push_str(&format!(
                        "<object><name>{}</name><status>{}</status></object>\n",
                        xml_escape(path),
                        xml_escape(s)
                    ));
                }
                xml.push_str("</errors>\n</delete>\n");
                ("application/xml; charset=utf-8", xml)
            }
            Format::Plain => {
                let mut text = format!(
                    "Number Deleted: {}\nNumber Not Found: {}\nResponse Body: {body}\n\
                     Response Status: {status}\nErrors:\n",
                    self.deleted, self.not_found
                );
                for (path, s) in &errors {
                    text.push_str(&format!("{path}, {s}\n"));
                }
                ("text/plain; charset=utf-8", text)
            }
        };
        (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], text).into_response()
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Deletes the paths of a bulk-delete body in order, reading it as it arrives.
pub(super) async fn delete(
    storage: &Storage,
    who: Accessor<'_>,
    project: &str,
    params: &HashMap<String, String>,
    request: &HeaderMap,
    body: Body,
) -> Result<Response, SwiftError> {
    if matches!(who, Accessor::Anonymous { .. }) {
        return Err(SwiftError::unauthorized());
    }
    let format = listing::format(params, request);
    let mut tally = Tally::default();
    let mut lines = 0usize;
    let mut pending = BytesMut::new();
    let mut body = body.into_data_stream();
    let mut ended = false;
    while !ended {
        match body.next().await {
            Some(chunk) => {
                let chunk = chunk.map_err(|e| {
                    SwiftError::bad_request(format!("reading the request body failed: {e}"))
                })?;
                pending.extend_from_slice(&chunk);
            }
            None => ended = true,
        }
        loop {
            let line = match pending.iter().position(|b| *b == b'\n') {
                Some(at) => {
                    let line = pending.split_to(at);
                    pending.advance(1);
                    line
                }
                None if ended && !pending.is_empty() => pending.split(),
                None => {
                    if pending.len() > MAX_LINE {
                        tally.refused = Some((
                            StatusCode::BAD_REQUEST,
                            format!("a path is longer than {MAX_LINE} bytes"),
                        ));
                        return Ok(tally.response(format));
                    }
                    break;
                }
            };
            let Ok(line) = std::str::from_utf8(&line) else {
                tally.refused = Some((
                    StatusCode::BAD_REQUEST,
                    "the body must be UTF-8 text".to_owned(),
                ));
                return Ok(tally.response(format));
            };
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            lines += 1;
            if lines > MAX_DELETES {
                tally.refused = Some((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("Maximum Bulk Deletes: {MAX_DELETES} per request"),
                ));
                return Ok(tally.response(format));
            }
            let outcome = delete_path(storage, who, project, line).await;
            tally.record(line, outcome);
            if tally.errors.len() >= MAX_FAILED_DELETES {
                tally.refused = Some((
                    StatusCode::BAD_REQUEST,
                    "Max delete failures exceeded".to_owned(),
                ));
                return Ok(tally.response(format));
            }
        }
    }
    Ok(tally.response(format))
}

/// Deletes one `/container/object` or `/container` (which must be empty).
async fn delete_path(
    storage: &Storage,
    who: Accessor<'_>,
    project: &str,
    line: &str,
) -> Result<(), StorageError> {
    let path = super::object::percent_decode(line);
    let (container, object) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path.trim_start_matches('/'), ""));
    if container.is_empty() {
        return Err(StorageError::NotFound { what: "container" });
    }
    if object.is_empty() {
        storage.delete_container(who, project, container).await
    } else {
        storage.delete_object(who, project, container, object).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tallies_render_like_swift() {
        let mut tally = Tally::default();
        tally.record("/c/a", Ok(()));
        tally.record("/c/b", Err(StorageError::NotFound { what: "object" }));
        let plain = tally.response(Format::Plain);
        let text = axum::body::to_bytes(plain.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&text).unwrap(),
            "Number Deleted: 1\nNumber Not Found: 1\nResponse Body: \n\
             Response Status: 200 OK\nErrors:\n"
        );
        tally.record(
            "/c",
            Err(StorageError::Conflict {
                reason: "the container is not empty",
            }),
        );
        let json = tally.response(Format::Json);
        let body = axum::body::to_bytes(json.into_body(), 1 << 20)
            .await
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["Response Status"], "400 Bad Request");
        assert_eq!(value["Errors"], json!([["/c", "409 Conflict"]]));
        assert_eq!(
            Tally::default().status_line(),
            (
                "400 Bad Request".to_owned(),
                "Invalid bulk delete.".to_owned()
            )
        );
    }
}
