//! Astakos's error bodies: `{"<name>": {"code", "message", "details"?, "data"?}}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::commissions::Provision;

/// What went wrong, under its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub code: u16,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// What astakosclient reads of an `overLimit` ([`OverLimitData`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// An error answer: one [`Fault`] keyed by its name ([`fault_name`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErrorBody(pub BTreeMap<String, Fault>);

impl ErrorBody {
    pub fn new(fault: Fault) -> Self {
        let name = fault_name(fault.code).to_owned();
        ErrorBody(BTreeMap::from([(name, fault)]))
    }

    /// The one fault of the body.
    pub fn fault(&self) -> Option<(&str, &Fault)> {
        self.0
            .iter()
            .next()
            .map(|(name, fault)| (name.as_str(), fault))
    }
}

/// The name Astakos gives an error of this status.
pub fn fault_name(status: u16) -> &'static str {
    match status {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "notAllowed",
        409 => "conflict",
        413 => "overLimit",
        415 => "badMediaType",
        429 => "tooManyRequests",
        503 => "serviceUnavailable",
        _ => "internalServerError",
    }
}

/// The `data` of an `overLimit` answer to a commission: which provision did not fit, and
/// the holding's limit and usage before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverLimitData {
    /// `NoCapacityError` (an increase beyond the limit) or `NoQuantityError` (a release of
    /// more than is used).
    pub name: String,
    pub provision: Provision,
    pub limit: i64,
    pub usage: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_is_keyed_by_its_name() {
        let body = ErrorBody::new(Fault {
            code: 404,
            message: "no such project".into(),
            details: None,
            data: None,
        });
        let json = serde_json::to_value(&body).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"itemNotFound": {"code": 404, "message": "no such project"}})
        );
        assert_eq!(body.fault().map(|f| f.0), Some("itemNotFound"));
    }
}
