//! What users and administrators see of quotas: limit, usage and pending per holding.

use std::collections::BTreeMap;

use nefos_db::identity as iq;
use nefos_db::quota::{self as q, HoldingFilter, WHOLE_PROJECT};
use nefos_db::time::now_micros;
use nefos_identity::Caller;

use crate::limits::Limits;
use crate::{QuotaError, Quotas};

/// One holding as shown: Astakos's `usage` counts what pending commissions reserve
/// (`usage_max`); `pending` is that reserved part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct HoldingView {
    pub limit: i64,
    pub usage: i64,
    pub pending: i64,
}

impl HoldingView {
    /// Usage beyond the limit: a limit lowered below what is used, or a forced commission.
    pub fn over_limit(&self) -> bool {
        self.usage > self.limit
    }
}

/// A member's quota in one project, per resource, beside the project's own.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ProjectQuota {
    pub project_id: String,
    pub member: BTreeMap<String, HoldingView>,
    pub project: BTreeMap<String, HoldingView>,
}

impl Quotas {
    /// A user's quotas in every project the user belongs to (the personal project first).
    /// The user or an administrator may ask.
    pub async fn user_quotas(
        &self,
        caller: Caller<'_>,
        user_id: &str,
    ) -> Result<Vec<ProjectQuota>, QuotaError> {
        if !caller.is_or_admin(user_id) {
            return Err(QuotaError::not_found("user", user_id));
        }
        let user = iq::get_user(self.db.pool(), user_id)
            .await?
            .ok_or_else(|| QuotaError::not_found("user", user_id))?;
        let mut projects = vec![user.base_project_id.clone()];
        let filter = iq::AssignmentFilter {
            user_id: Some(user_id.to_owned()),
            ..iq::AssignmentFilter::default()
        };
        for assignment in iq::list_role_assignments(self.db.pool(), &filter).await? {
            if !projects.contains(&assignment.project_id) {
                projects.push(assignment.project_id);
            }
        }
        let mut quotas = Vec::new();
        for project_id in projects {
            quotas.push(self.quota_of(&project_id, Some(user_id)).await?);
        }
        Ok(quotas)
    }

    /// A project's quota as a whole, and every member's. Its owner, its members or an
    /// administrator may ask.
    pub async fn project_quota(
        &self,
        caller: Caller<'_>,
        project_id: &str,
    ) -> Result<ProjectQuota, QuotaError> {
        self.require_project_reader(caller, project_id).await?;
        self.quota_of(project_id, None).await
    }

    /// Every member's quota in a project, by user id: whoever holds a role on it, and whoever
    /// still holds usage there (a member who left keeps what it used, over a zero limit).
    /// Its owner, its members or an administrator may ask.
    pub async fn member_quotas(
        &self,
        caller: Caller<'_>,
        project_id: &str,
    ) -> Result<BTreeMap<String, BTreeMap<String, HoldingView>>, QuotaError> {
        self.require_project_reader(caller, project_id).await?;
        let filter = iq::AssignmentFilter {
            project_id: Some(project_id.to_owned()),
            ..iq::AssignmentFilter::default()
        };
        let mut members: Vec<String> = iq::list_role_assignments(self.db.pool(), &filter)
            .await?
            .into_iter()
            .map(|a| a.user_id)
            .collect();
        let holdings = HoldingFilter {
            project_id: Some(project_id.to_owned()),
            ..HoldingFilter::default()
        };
        members.extend(
            q::list_holdings(self.db.pool(), &holdings)
                .await?
                .into_iter()
                .filter(|h| h.member_id != WHOLE_PROJECT && (h.usage_min != 0 || h.usage_max != 0))
                .map(|h| h.member_id),
        );
        members.sort_unstable();
        members.dedup();
        let mut quotas = BTreeMap::new();
        for member in members {
            let quota = self.quota_of(project_id, Some(&member)).await?;
            quotas.insert(member, quota.member);
        }
        Ok(quotas)
    }

    /// Limits and usage of `project_id` for `member` (or only the project's own).
    pub(crate) async fn quota_of(
        &self,
        project_id: &str,
        member: Option<&str>,
    ) -> Result<ProjectQuota, QuotaError> {
        let now = now_micros();
        let mut quota = ProjectQuota {
            project_id: project_id.to_owned(),
            ..ProjectQuota::default()
        };
        let holdings = q::list_holdings(
            self.db.pool(),
            &HoldingFilter {
                project_id: Some(project_id.to_owned()),
                ..HoldingFilter::default()
            },
        )
        .await?;
        for resource in q::list_resources(self.db.pool()).await? {
            let facts = q::limit_facts(
                self.db.pool(),
                project_id,
                member.unwrap_or(WHOLE_PROJECT),
                &resource.name,
            )
            .await?;
            let limits = facts.map_or(
                Limits {
                    member: 0,
                    project: 0,
                },
                |f| Limits::from_facts(&f, now),
            );
            let view = |holder: &str, limit: i64| {
                let held = holdings
                    .iter()
                    .find(|h| h.member_id == holder && h.resource == resource.name);
                HoldingView {
                    limit,
                    usage: held.map_or(0, |h| h.usage_max),
                    pending: held.map_or(0, |h| h.usage_max - h.usage_min),
                }
            };
            quota
                .project
                .insert(resource.name.clone(), view(WHOLE_PROJECT, limits.project));
            if let Some(member) = member {
                quota
                    .member
                    .insert(resource.name.clone(), view(member, limits.member));
            }
        }
        Ok(quota)
    }
}
