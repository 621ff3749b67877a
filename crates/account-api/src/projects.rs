//! `/projects`: Synnefo projects, their applications and life cycle.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::IdText;

/// What a project grants of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    /// The limit of each member.
    pub member_capacity: i64,
    /// The limit of all members together.
    pub project_capacity: i64,
}

/// A project (`GET /projects`, `GET /projects/{id}`). Dates are ISO 8601 with
/// microseconds and `+00:00`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectView {
    pub id: String,
    /// `uninitialized`, `active`, `suspended`, `terminated` or `deleted`.
    pub state: String,
    pub creation_date: String,
    pub name: String,
    /// `null` for the system project.
    pub owner: Option<String>,
    pub homepage: String,
    pub description: String,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    /// `auto`, `moderated` or `closed`.
    pub join_policy: String,
    pub leave_policy: String,
    /// [`crate::UNLIMITED_MEMBERS`] when there is no limit.
    pub max_members: i64,
    /// Always `false`: nefos has no private projects.
    pub private: bool,
    /// A personal (base) project or the cloud's system project.
    pub system_project: bool,
    pub resources: BTreeMap<String, GrantView>,
    /// The newest application, for its owner and administrators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_application: Option<ApplicationView>,
}

/// An application for a new project or for a change of one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationView {
    /// nefos's application id (a UUID without hyphens): what `app_id` names.
    pub id: String,
    pub project: String,
    /// `pending`, `approved`, `denied`, `dismissed` or `cancelled`.
    pub state: String,
    pub name: String,
    /// The project's owner: its applicant.
    pub owner: String,
    pub applicant: String,
    pub homepage: String,
    pub description: String,
    pub start_date: Option<String>,
    pub end_date: String,
    pub comments: String,
    pub join_policy: String,
    pub leave_policy: String,
    pub max_members: i64,
    pub private: bool,
    pub resources: BTreeMap<String, GrantView>,
}

/// The body of `POST /projects` (apply for a project; `name` and `end_date` required)
/// and of `PUT /projects/{id}` (apply for a change; what is left out stays as it is).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only the applicant: nefos takes no applications on another user's behalf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comments: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_members: Option<i64>,
    /// Only `false`: nefos has no private projects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<BTreeMap<String, GrantView>>,
}

/// The answer to an application (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The project's id.
    pub id: String,
    /// The application's id.
    pub application: String,
}

/// The query of `GET /projects`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectsQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `default` or `related` (projects the caller owns or belongs to; every project for an
    /// administrator), `member` (where the caller is an accepted member of an active
    /// project), `owner` (the caller's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// What an action carries: a reason, and for the actions on an application its id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// astakosclient 0.19 spells `reason` so for the actions on applications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<IdText>,
}

impl ActionArgs {
    /// The reason given, under either spelling.
    pub fn reason_text(&self) -> &str {
        self.reason
            .as_deref()
            .or(self.reasons.as_deref())
            .unwrap_or("")
    }
}

/// `POST /projects/{id}/action`: exactly one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProjectAction {
    Suspend(ActionArgs),
    /// Astakos's name; nefos calls it resume, and takes both.
    #[serde(alias = "resume")]
    Unsuspend(ActionArgs),
    Terminate(ActionArgs),
    Approve(ActionArgs),
    Deny(ActionArgs),
    Dismiss(ActionArgs),
    Cancel(ActionArgs),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kamaki_action_bodies_parse() {
        let approve: ProjectAction =
            serde_json::from_str(r#"{"approve": {"reasons": "ok", "app_id": "7"}}"#).unwrap();
        let ProjectAction::Approve(args) = approve else {
            panic!("not an approval");
        };
        assert_eq!(args.reason_text(), "ok");
        assert_eq!(args.app_id, Some(IdText::Text("7".into())));
        let resume: ProjectAction = serde_json::from_str(r#"{"resume": {}}"#).unwrap();
        assert!(matches!(resume, ProjectAction::Unsuspend(_)));
        assert!(serde_json::from_str::<ProjectAction>(r#"{"reinstate": {}}"#).is_err());
        assert!(
            serde_json::from_str::<ProjectAction>(r#"{"suspend": {}, "terminate": {}}"#).is_err()
        );
    }
}
