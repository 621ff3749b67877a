//! Reading Glance requests: the caller, JSON bodies as Glance validates them (field by
//! field, with its 400s and 403s), JSON patches, and query strings with repeated keys.

use axum::extract::FromRequestParts;
use http::request::Parts;
use nefos_identity::AuthContext;
use nefos_image::{FieldValue, ImageField, NewImage, PatchOp, PatchOperation, Visibility};
use serde_json::{Map, Value};

use super::error::GlanceError;
use crate::ApiState;
use crate::auth::Authenticated;

/// The bearer of a valid token.
#[derive(Debug, Clone)]
pub(crate) struct GlanceUser(pub AuthContext);

impl GlanceUser {
    pub fn caller(&self) -> nefos_image::Caller<'_> {
        nefos_image::Caller::new(&self.0)
    }
}

impl FromRequestParts<ApiState> for GlanceUser {
    type Rejection = GlanceError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, GlanceError> {
        let Authenticated(context) = Authenticated::from_request_parts(parts, state).await?;
        Ok(GlanceUser(context))
    }
}

/// A JSON document from a request body, refused as Glance refuses it.
pub(crate) fn json_document(body: &[u8]) -> Result<Value, GlanceError> {
    let document: Value = serde_json::from_slice(body)
        .map_err(|e| GlanceError::bad_request(format!("Malformed JSON in request body: {e}")))?;
    if !crate::clean_text::json_has_no_nul(&document) {
        return Err(GlanceError::bad_request(
            "The request body holds a NUL character",
        ));
    }
    Ok(document)
}

/// The body of `POST /v2/images`.
pub(crate) fn new_image(document: Value) -> Result<NewImage, GlanceError> {
    let Value::Object(fields) = document else {
        return Err(GlanceError::bad_request(
            "The request body must be a JSON object",
        ));
    };
    let mut new = NewImage::default();
    for (name, value) in fields {
        match name.as_str() {
            "id" => new.id = Some(string(&name, value)?),
            "owner" => new.owner = Some(string(&name, value)?),
            _ => match ImageField::from_name(&name)? {
                ImageField::Name => new.name = optional_string(&name, value)?,
                ImageField::Visibility => new.visibility = Some(visibility(value)?),
                ImageField::Protected => new.protected = boolean(&name, value)?,
                ImageField::OsHidden => new.os_hidden = boolean(&name, value)?,
                ImageField::DiskFormat => new.disk_format = optional_string(&name, value)?,
                ImageField::ContainerFormat => {
                    new.container_format = optional_string(&name, value)?;
                }
                ImageField::MinDisk => new.min_disk = count(&name, value)?,
                ImageField::MinRam => new.min_ram = count(&name, value)?,
                ImageField::Tags => new.tags = strings(&name, value)?,
                ImageField::Property(property) => {
                    let value = string(&property, value)?;
                    new.properties.insert(property, value);
                }
            },
        }
    }
    Ok(new)
}

/// A JSON-patch body (`PATCH /v2/images/{id}`), in the 2.1 dialect
/// (`{"op": "replace", "path": "/name", "value": …}`) or the 2.0 one
/// (`{"replace": "/name", "value": …}`).
pub(crate) fn patch(document: Value) -> Result<Vec<PatchOp>, GlanceError> {
    let Value::Array(operations) = document else {
        return Err(GlanceError::bad_request(
            "Request body must be a JSON array of operation objects.",
        ));
    };
    operations.into_iter().map(patch_op).collect()
}

fn patch_op(operation: Value) -> Result<PatchOp, GlanceError> {
    let Value::Object(mut fields) = operation else {
        return Err(GlanceError::bad_request("Operations must be JSON objects."));
    };
    let (op, path) = match fields.remove("op") {
        Some(Value::String(op)) => {
            let path = match fields.remove("path") {
                Some(Value::String(path)) => path,
                _ => {
                    return Err(GlanceError::bad_request(
                        "Unable to find 'path' in JSON Schema change",
                    ));
                }
            };
            (op, path)
        }
        Some(_) => return Err(GlanceError::bad_request("'op' must be a string")),
        None => dialect_2_0(&mut fields)?,
    };
    let operation = match op.as_str() {
        "add" => PatchOperation::Add,
        "replace" => PatchOperation::Replace,
        "remove" => PatchOperation::Remove,
        other => {
            return Err(GlanceError::bad_request(format!(
                "Invalid operation: `{other}`: expected add, replace or remove"
            )));
        }
    };
    let name = pointer(&path)?;
    let field = ImageField::from_name(&name)?;
    let value = match operation {
        PatchOperation::Remove => None,
        _ => {
            let value = fields.remove("value").ok_or_else(|| {
                GlanceError::bad_request(format!(
                    "Operation \"{op}\" requires a member named \"value\"."
                ))
            })?;
            Some(field_value(&field, value)?)
        }
    };
    Ok(PatchOp {
        operation,
        field,
        value,
    })
}

/// `{"replace": "/name", "value": …}`: the operation is the key.
fn dialect_2_0(fields: &mut Map<String, Value>) -> Result<(String, String), GlanceError> {
    for op in ["add", "replace", "remove"] {
        if let Some(path) = fields.remove(op) {
            let Value::String(path) = path else {
                return Err(GlanceError::bad_request(
                    "The path of a change must be a string",
                ));
            };
            return Ok((op.to_owned(), path));
        }
    }
    Err(GlanceError::bad_request(
        "Unable to find 'op' in JSON Schema change",
    ))
}

/// The attribute a JSON pointer names: one segment, `~1` and `~0` unescaped.
fn pointer(path: &str) -> Result<String, GlanceError> {
    let invalid =
        || GlanceError::bad_request(format!("Invalid JSON pointer for this resource: '{path}'"));
    let segment = path.strip_prefix('/').ok_or_else(invalid)?;
    if segment.is_empty() {
        return Err(invalid());
    }
    if let Some((head, _)) = segment.split_once('/') {
        // Deeper paths exist in Glance only under `locations`, which nefos does not expose.
        if head == "locations" {
            return Err(GlanceError::forbidden(
                "Attribute 'locations' is read-only.",
            ));
        }
        return Err(invalid());
    }
    let bytes = segment.as_bytes();
    let bad_escape = bytes
        .iter()
        .enumerate()
        .any(|(i, b)| *b == b'~' && !matches!(bytes.get(i + 1), Some(b'0' | b'1')));
    if bad_escape {
        return Err(invalid());
    }
    Ok(segment.replace("~1", "/").replace("~0", "~"))
}

/// A JSON value as the type `field` holds.
pub(crate) fn field_value(field: &ImageField, value: Value) -> Result<FieldValue, GlanceError> {
    let name = field.name().to_owned();
    Ok(match field {
        ImageField::Name | ImageField::DiskFormat | ImageField::ContainerFormat => {
            FieldValue::Text(optional_string(&name, value)?)
        }
        ImageField::Visibility => FieldValue::Visibility(visibility(value)?),
        ImageField::Protected | ImageField::OsHidden => FieldValue::Flag(boolean(&name, value)?),
        ImageField::MinDisk | ImageField::MinRam => FieldValue::Number(count(&name, value)?),
        ImageField::Tags => FieldValue::List(strings(&name, value)?),
        ImageField::Property(_) => FieldValue::Text(Some(string(&name, value)?)),
    })
}

fn not_of_type(name: &str, value: &Value, kind: &str) -> GlanceError {
    GlanceError::bad_request(format!(
        "Provided object does not match schema 'image': {value} is not of type '{kind}' (in {name})"
    ))
}

fn string(name: &str, value: Value) -> Result<String, GlanceError> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(not_of_type(name, &other, "string")),
    }
}

fn optional_string(name: &str, value: Value) -> Result<Option<String>, GlanceError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text)),
        other => Err(not_of_type(name, &other, "string")),
    }
}

fn boolean(name: &str, value: Value) -> Result<bool, GlanceError> {
    match value {
        Value::Bool(flag) => Ok(flag),
        other => Err(not_of_type(name, &other, "boolean")),
    }
}

fn count(name: &str, value: Value) -> Result<u64, GlanceError> {
    match &value {
        Value::Number(n) => n.as_u64().ok_or_else(|| {
            GlanceError::bad_request(format!(
                "Provided object does not match schema 'image': {value} is less than the minimum of 0 (in {name})"
            ))
        }),
        _ => Err(not_of_type(name, &value, "integer")),
    }
}

fn strings(name: &str, value: Value) -> Result<Vec<String>, GlanceError> {
    match value {
        Value::Array(items) => items.into_iter().map(|item| string(name, item)).collect(),
        other => Err(not_of_type(name, &other, "array")),
    }
}

fn visibility(value: Value) -> Result<Visibility, GlanceError> {
    let text = string("visibility", value)?;
    Visibility::parse(&text).map_err(|_| {
        GlanceError::bad_request(format!(
            "Provided object does not match schema 'image': '{text}' is not one of ['community', 'public', 'private', 'shared'] (in visibility)"
        ))
    })
}

/// `key=value` pairs of a query string, decoded, in order (keys may repeat).
pub(crate) fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, GlanceError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(&text.replace('+', " "))
            .decode_utf8()
            .map(|t| t.into_owned())
            .map_err(|_| GlanceError::bad_request("The query string is not UTF-8"))
    };
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(key)?, decode(value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_name_one_attribute() {
        assert_eq!(pointer("/name").ok(), Some("name".to_owned()));
        assert_eq!(pointer("/a~1b~0c").ok(), Some("a/b~c".to_owned()));
        assert!(pointer("name").is_err());
        assert!(pointer("/").is_err());
        assert!(pointer("/a/b").is_err());
        assert_eq!(
            pointer("/locations/0").err().map(|e| e.status),
            Some(http::StatusCode::FORBIDDEN)
        );
    }

    #[test]
    fn both_patch_dialects_read_the_same() {
        let new = patch(json!([{"op": "replace", "path": "/name", "value": "x"}])).ok();
        let old = patch(json!([{"replace": "/name", "value": "x"}])).ok();
        assert!(new.is_some());
        assert_eq!(new, old);
    }

    #[test]
    fn read_only_and_reserved_attributes_are_forbidden() {
        for body in [
            json!({"status": "active"}),
            json!({"location": "x"}),
            json!({"os_glance_x": "y"}),
        ] {
            let status = new_image(body).err().map(|e| e.status);
            assert_eq!(status, Some(http::StatusCode::FORBIDDEN));
        }
    }

    #[test]
    fn properties_must_be_strings() {
        let status = new_image(json!({"os_distro": 1})).err().map(|e| e.status);
        assert_eq!(status, Some(http::StatusCode::BAD_REQUEST));
        let new = new_image(json!({"os_distro": "debian", "min_ram": 64})).ok();
        assert_eq!(
            new.as_ref()
                .and_then(|n| n.properties.get("os_distro"))
                .map(String::as_str),
            Some("debian")
        );
        assert_eq!(new.map(|n| n.min_ram), Some(64));
    }

    #[test]
    fn query_pairs_keep_repeated_keys() {
        let pairs = query_pairs(Some("tag=a&tag=b%20c&name=x+y")).unwrap_or_default();
        assert_eq!(
            pairs,
            vec![
                ("tag".to_owned(), "a".to_owned()),
                ("tag".to_owned(), "b c".to_owned()),
                ("name".to_owned(), "x y".to_owned()),
            ]
        );
    }
}
