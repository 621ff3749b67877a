//! `/projects/memberships`: joining and leaving projects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::IdText;

/// A membership (`GET /projects/memberships[/{id}]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipView {
    pub id: i64,
    pub user: String,
    pub project: String,
    /// `requested`, `accepted`, `leave_requested`, `rejected`, `cancelled` or `removed`
    /// (Astakos's name for having left, too).
    pub state: String,
    /// When it entered its current state, under that state's name, as Astakos keys the
    /// dates a membership passed through (nefos keeps only the latest).
    #[serde(flatten)]
    pub dates: BTreeMap<String, String>,
}

/// The query of `GET /projects/memberships`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipsQuery {
    /// Only those of this project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// The query of `GET /projects/apps`: the same filter.
pub type ApplicationsQuery = MembershipsQuery;

/// `POST /projects/memberships`: exactly one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MembershipRequest {
    /// Ask to join a project.
    Join { project: IdText },
    /// Add a user (by email, name or id) to a project one owns.
    Enroll { project: IdText, user: String },
}

/// The answer to `POST /projects/memberships` (200).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipCreated {
    pub id: i64,
}

/// `POST /projects/memberships/{id}/action`: one action with its reason (kamaki sends
/// `{"leave": ""}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MembershipAction {
    Leave(Option<String>),
    Cancel(Option<String>),
    Accept(Option<String>),
    Reject(Option<String>),
    Remove(Option<String>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kamaki_membership_bodies_parse() {
        let join: MembershipRequest =
            serde_json::from_str(r#"{"join": {"project": "abc"}}"#).unwrap();
        assert_eq!(
            join,
            MembershipRequest::Join {
                project: IdText::Text("abc".into())
            }
        );
        let leave: MembershipAction = serde_json::from_str(r#"{"leave": ""}"#).unwrap();
        assert_eq!(leave, MembershipAction::Leave(Some(String::new())));
        let view = MembershipView {
            id: 5,
            user: "u".into(),
            project: "p".into(),
            state: "accepted".into(),
            dates: BTreeMap::from([("accepted".into(), "2024-01-01T00:00:00.000000+00:00".into())]),
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["accepted"], "2024-01-01T00:00:00.000000+00:00");
    }
}
