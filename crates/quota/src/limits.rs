//! How limits follow from a project's grant, kind and state, and the membership: computed
//! when a commission is checked, never stored, so a change of grant, membership or project
//! state takes effect at once and cannot drift from what it follows from.

use nefos_db::quota::LimitFacts;

/// The limits of one (project, member, resource) and of the project as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub member: i64,
    pub project: i64,
}

impl Limits {
    pub(crate) fn from_facts(facts: &LimitFacts, now: i64) -> Limits {
        let closed = Limits {
            member: 0,
            project: 0,
        };
        let (Some(kind), Some(state)) = (&facts.project_kind, &facts.project_state) else {
            return closed;
        };
        // Only an active project grants anything; one past its end date no longer is,
        // whether or not anyone has marked it terminated yet. What its members already use
        // stays theirs, over the limit.
        if state != "active" || facts.project_end_at.is_some_and(|end| end <= now) {
            return closed;
        }
        let default = if kind == "regular" {
            facts.project_default
        } else {
            // A personal project and the system project have the base defaults.
            facts.base_default
        };
        let project = facts.granted_project_limit.unwrap_or(default);
        let member = if facts.is_member {
            facts.granted_member_limit.unwrap_or(default)
        } else {
            0
        };
        Limits { member, project }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(kind: &str, state: &str) -> LimitFacts {
        LimitFacts {
            base_default: 100,
            project_default: 10,
            project_kind: Some(kind.to_owned()),
            project_state: Some(state.to_owned()),
            project_end_at: None,
            granted_member_limit: None,
            granted_project_limit: None,
            is_member: true,
        }
    }

    #[test]
    fn defaults_come_from_the_kind_of_project() {
        let base = Limits::from_facts(&facts("base", "active"), 0);
        assert_eq!((base.member, base.project), (100, 100));
        let regular = Limits::from_facts(&facts("regular", "active"), 0);
        assert_eq!((regular.member, regular.project), (10, 10));
    }

    #[test]
    fn a_grant_overrides_the_defaults() {
        let mut f = facts("regular", "active");
        f.granted_member_limit = Some(5);
        f.granted_project_limit = Some(50);
        let limits = Limits::from_facts(&f, 0);
        assert_eq!((limits.member, limits.project), (5, 50));
    }

    #[test]
    fn non_members_and_inactive_or_ended_projects_get_nothing() {
        let mut f = facts("regular", "active");
        f.is_member = false;
        assert_eq!(Limits::from_facts(&f, 0).member, 0);
        for state in ["suspended", "terminated", "uninitialized", "deleted"] {
            let limits = Limits::from_facts(&facts("regular", state), 0);
            assert_eq!((limits.member, limits.project), (0, 0), "{state}");
        }
        let mut ended = facts("regular", "active");
        ended.project_end_at = Some(10);
        assert_eq!(Limits::from_facts(&ended, 9).member, 10);
        assert_eq!(Limits::from_facts(&ended, 10).member, 0);
    }
}
