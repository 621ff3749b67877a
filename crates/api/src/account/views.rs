//! nefos's projects, applications and memberships in Astakos's JSON shapes.

use std::collections::BTreeMap;

use nefos_account_api::{
    ApplicationView, GrantView, MembershipView, ProjectView, UNLIMITED_MEMBERS,
};
use nefos_quota::projects::{Application, Grant, Membership, ProjectInfo};

use super::dates::iso;

fn grants(resources: &BTreeMap<String, Grant>) -> BTreeMap<String, GrantView> {
    resources
        .iter()
        .map(|(resource, grant)| {
            let view = GrantView {
                member_capacity: grant.member_capacity,
                project_capacity: grant.project_capacity,
            };
            (resource.clone(), view)
        })
        .collect()
}

pub(super) fn project(info: ProjectInfo) -> ProjectView {
    let owner = info.owner_id.clone();
    ProjectView {
        creation_date: iso(info.created_at),
        start_date: info.start_at.map(iso),
        end_date: info.end_at.map(iso),
        max_members: info.max_members.unwrap_or(UNLIMITED_MEMBERS),
        private: false,
        system_project: info.kind != "regular",
        resources: grants(&info.resources),
        last_application: info
            .last_application
            .map(|app| application(app, owner.as_deref())),
        id: info.id,
        state: info.state,
        name: info.name,
        owner: info.owner_id,
        homepage: info.homepage,
        description: info.description,
        join_policy: info.join_policy,
        leave_policy: info.leave_policy,
    }
}

/// An application of a project owned by `owner` (its applicant when not known).
pub(super) fn application(app: Application, owner: Option<&str>) -> ApplicationView {
    ApplicationView {
        owner: owner.unwrap_or(&app.applicant_id).to_owned(),
        start_date: app.start_at.map(iso),
        end_date: iso(app.end_at),
        max_members: app.max_members.unwrap_or(UNLIMITED_MEMBERS),
        private: false,
        resources: grants(&app.resources),
        id: app.id,
        project: app.project_id,
        state: app.state,
        name: app.name,
        applicant: app.applicant_id,
        homepage: app.homepage,
        description: app.description,
        comments: app.comments,
        join_policy: app.join_policy,
        leave_policy: app.leave_policy,
    }
}

/// Astakos's name of a membership state: having left is `removed` there too.
fn membership_state(state: &str) -> &str {
    match state {
        "left" => "removed",
        other => other,
    }
}

pub(super) fn membership(m: Membership) -> MembershipView {
    let state = membership_state(&m.state).to_owned();
    MembershipView {
        dates: BTreeMap::from([(state.clone(), iso(m.updated_at))]),
        id: m.id,
        user: m.user_id,
        project: m.project_id,
        state,
    }
}
