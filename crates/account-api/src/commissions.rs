//! `/commissions`: two-phase quota changes issued by administrators (Astakos's services).

use serde::{Deserialize, Serialize};

/// One change of usage. Astakos's `holder` is the member (`user:<uuid>`, or the bare id)
/// and `source` the project (`project:<uuid>`, or the bare id). A provision whose holder
/// is `project:<uuid>` and whose source is `null` is Astakos's project-level twin of the
/// member provisions (astakosclient always sends one): nefos counts a project's usage
/// from its members', so such a provision must equal the sum of the commission's member
/// provisions of that project and resource, and adds nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provision {
    pub holder: String,
    pub source: Option<String>,
    pub resource: String,
    /// Positive to use more, negative to release.
    pub quantity: i64,
}

/// `POST /commissions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueCommission {
    pub provisions: Vec<Provision>,
    /// Skip the limit checks of increases (releases are always checked).
    #[serde(default)]
    pub force: bool,
    /// Accept the commission as soon as it is issued.
    #[serde(default)]
    pub auto_accept: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The answer to `POST /commissions` (201).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCommission {
    pub serial: i64,
}

/// `GET /commissions/{serial}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommissionInfo {
    pub serial: i64,
    /// ISO 8601 with microseconds and `+00:00`.
    pub issue_time: String,
    pub name: String,
    pub provisions: Vec<Provision>,
}

/// `POST /commissions/{serial}/action`: `{"accept": ""}` or `{"reject": ""}` (the key
/// matters, not its value).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommissionAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject: Option<serde_json::Value>,
}

/// `POST /commissions/action`: serials to accept and to reject.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveCommissions {
    #[serde(default)]
    pub accept: Vec<i64>,
    #[serde(default)]
    pub reject: Vec<i64>,
}

/// The answer to `POST /commissions/action`: what was done, and each failure with its
/// error body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResolvedCommissions {
    pub accepted: Vec<i64>,
    pub rejected: Vec<i64>,
    pub failed: Vec<(i64, crate::ErrorBody)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn astakosclient_bodies_parse() {
        let body = serde_json::json!({
            "force": false, "auto_accept": false, "name": "",
            "provisions": [
                {"holder": "user:u", "source": "project:p", "resource": "cyclades.vm", "quantity": 1},
                {"holder": "project:p", "source": null, "resource": "cyclades.vm", "quantity": 1}
            ]
        });
        let issue: IssueCommission = serde_json::from_value(body).unwrap();
        assert_eq!(issue.provisions.len(), 2);
        assert_eq!(issue.provisions[1].source, None);
        let action: CommissionAction = serde_json::from_str(r#"{"accept": ""}"#).unwrap();
        assert!(action.accept.is_some() && action.reject.is_none());
    }
}
