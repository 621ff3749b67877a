//! The caller of a Neutron request, and request bodies read as Neutron reads them: one
//! resource object under its singular name, each attribute of the type Neutron gives
//! it, and any attribute it does not know refused by name.

use std::net::IpAddr;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use http::request::Parts;
use nefos_identity::AuthContext;
use serde_json::{Map, Value};

use super::NeutronError;
use crate::ApiState;
use crate::auth::Authenticated;

/// An authenticated Neutron caller.
pub(crate) struct Neutron {
    pub caller: AuthContext,
}

impl FromRequestParts<ApiState> for Neutron {
    type Rejection = NeutronError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, NeutronError> {
        let Authenticated(caller) = Authenticated::from_request_parts(parts, state).await?;
        Ok(Neutron { caller })
    }
}

/// The attributes of the one `resource` object of a body.
pub(crate) fn resource_body(body: &[u8], resource: &str) -> Result<Attributes, NeutronError> {
    let document: Value = serde_json::from_slice(body)
        .map_err(|_| NeutronError::bad_request("Body contains invalid data"))?;
    if !crate::clean_text::json_has_no_nul(&document) {
        return Err(NeutronError::bad_request(
            "Body contains invalid data: a string holds a NUL character",
        ));
    }
    let Value::Object(mut outer) = document else {
        return Err(NeutronError::bad_request("Body contains invalid data"));
    };
    if outer.contains_key(&format!("{resource}s")) {
        return Err(NeutronError::bad_request(
            "Bulk operation is not supported: send one resource per request",
        ));
    }
    match outer.remove(resource) {
        Some(Value::Object(map)) if outer.is_empty() => Ok(Attributes { map }),
        Some(_) if !outer.is_empty() => Err(NeutronError::bad_request(format!(
            "Unrecognized attribute(s) '{}'",
            outer.keys().cloned().collect::<Vec<_>>().join(", ")
        ))),
        Some(_) => Err(NeutronError::bad_request("Body contains invalid data")),
        None => Err(NeutronError::bad_request("Resource body required")),
    }
}

fn invalid(name: &str, reason: String) -> NeutronError {
    NeutronError::new(
        http::StatusCode::BAD_REQUEST,
        "HTTPBadRequest",
        format!("Invalid input for {name}. Reason: {reason}."),
    )
}

/// Shows a JSON value as Neutron's messages quote Python values.
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A resource's attributes, taken one by one; [`Attributes::finish`] refuses the rest.
pub(crate) struct Attributes {
    map: Map<String, Value>,
}

impl Attributes {
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name)
    }

    pub fn string(&mut self, name: &str) -> Result<Option<String>, NeutronError> {
        match self.map.remove(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(invalid(
                name,
                format!("'{}' is not a valid string", shown(&other)),
            )),
        }
    }

    /// A string that may be `null` (`Some(None)`).
    pub fn nullable_string(&mut self, name: &str) -> Result<Option<Option<String>>, NeutronError> {
        match self.map.remove(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(text)) => Ok(Some(Some(text))),
            Some(other) => Err(invalid(
                name,
                format!("'{}' is not a valid string", shown(&other)),
            )),
        }
    }

    /// Neutron's booleans: JSON booleans, `"true"`/`"false"` in any case, and 0 or 1.
    pub fn boolean(&mut self, name: &str) -> Result<Option<bool>, NeutronError> {
        let Some(value) = self.map.remove(name) else {
            return Ok(None);
        };
        let parsed = match &value {
            Value::Bool(b) => Some(*b),
            Value::String(text) => match text.to_ascii_lowercase().as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
            Value::Number(n) => match n.as_i64() {
                Some(1) => Some(true),
                Some(0) => Some(false),
                _ => None,
            },
            _ => None,
        };
        parsed.map(Some).ok_or_else(|| {
            invalid(
                name,
                format!("'{}' cannot be converted to boolean", shown(&value)),
            )
        })
    }

    pub fn integer(&mut self, name: &str) -> Result<Option<i64>, NeutronError> {
        let Some(value) = self.map.remove(name) else {
            return Ok(None);
        };
        let parsed = match &value {
            Value::Number(n) => n.as_i64(),
            Value::String(text) => text.parse().ok(),
            _ => None,
        };
        parsed
            .map(Some)
            .ok_or_else(|| invalid(name, format!("'{}' is not an integer", shown(&value))))
    }

    /// An IP address, or `null` (`Some(None)`).
    pub fn nullable_address(&mut self, name: &str) -> Result<Option<Option<IpAddr>>, NeutronError> {
        match self.nullable_string(name)? {
            None => Ok(None),
            Some(None) => Ok(Some(None)),
            Some(Some(text)) => address(name, &text).map(|a| Some(Some(a))),
        }
    }

    pub fn list(&mut self, name: &str) -> Result<Option<Vec<Value>>, NeutronError> {
        match self.map.remove(name) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(invalid(name, format!("'{}' is not a list", shown(&other)))),
        }
    }

    pub fn string_list(&mut self, name: &str) -> Result<Option<Vec<String>>, NeutronError> {
        let Some(items) = self.list(name)? else {
            return Ok(None);
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text),
                other => Err(invalid(
                    name,
                    format!("'{}' is not a valid string", shown(&other)),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Attributes Neutron has that nefos does not serve: accepted only with the value
    /// that asks for nothing (an empty list, `null`, …), refused otherwise.
    pub fn only_default(&mut self, name: &str, default: &[Value]) -> Result<(), NeutronError> {
        match self.map.remove(name) {
            Some(value) if !default.contains(&value) => Err(NeutronError::bad_request(format!(
                "Attribute '{name}' is not supported here: nefos serves no {name}"
            ))),
            _ => Ok(()),
        }
    }

    /// The project a create names, as `project_id` or as the older `tenant_id`.
    pub fn project(&mut self) -> Result<Option<String>, NeutronError> {
        let project = match self.string("project_id")? {
            Some(project) => Some(project),
            None => self.string("tenant_id")?,
        };
        self.take("tenant_id");
        Ok(project)
    }

    /// Refuses what is left.
    pub fn finish(self) -> Result<(), NeutronError> {
        if self.map.is_empty() {
            return Ok(());
        }
        Err(NeutronError::bad_request(format!(
            "Unrecognized attribute(s) '{}'",
            self.map.keys().cloned().collect::<Vec<_>>().join(", ")
        )))
    }
}

pub(crate) fn address(name: &str, text: &str) -> Result<IpAddr, NeutronError> {
    IpAddr::from_str(text).map_err(|_| invalid(name, format!("'{text}' is not a valid IP address")))
}

/// A body that is one bare object (the router interface actions'), as attributes.
pub(crate) fn bare_body(body: &[u8]) -> Result<Attributes, NeutronError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map))
            if crate::clean_text::json_has_no_nul(&Value::Object(map.clone())) =>
        {
            Ok(Attributes { map })
        }
        _ => Err(NeutronError::bad_request("Body contains invalid data")),
    }
}

/// The object items of a list attribute.
pub(crate) fn objects(name: &str, items: Vec<Value>) -> Result<Vec<Attributes>, NeutronError> {
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(map) => Ok(Attributes { map }),
            other => Err(invalid(
                name,
                format!("'{}' is not a dictionary", shown(&other)),
            )),
        })
        .collect()
}
