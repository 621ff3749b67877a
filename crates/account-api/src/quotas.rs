//! `/quotas`, `/service_quotas`, `/service_project_quotas` and `/resources`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A member's quota of one resource in one project, beside the project's own. `usage`
/// counts what pending commissions reserve; `pending` is that reserved part. What the
/// member can still use is `min(limit, project_limit - (project_usage - usage)) - usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QuotaView {
    pub limit: i64,
    pub usage: i64,
    pub pending: i64,
    pub project_limit: i64,
    pub project_usage: i64,
    pub project_pending: i64,
}

/// A user's quotas: project id → resource → quota (`GET /quotas`).
pub type UserQuotas = BTreeMap<String, BTreeMap<String, QuotaView>>;

/// Every user's quotas: user id → [`UserQuotas`] (`GET /service_quotas`).
pub type ServiceQuotas = BTreeMap<String, UserQuotas>;

/// A project's own quota of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProjectQuotaView {
    pub project_limit: i64,
    pub project_usage: i64,
    pub project_pending: i64,
}

/// A project's quotas: resource → quota.
pub type ProjectQuotas = BTreeMap<String, ProjectQuotaView>;

/// Every project's quotas: project id → [`ProjectQuotas`] (`GET /service_project_quotas`).
pub type ServiceProjectQuotas = BTreeMap<String, ProjectQuotas>;

/// The query of `GET /service_quotas` and `GET /service_project_quotas`: comma-separated
/// ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceQuotasQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

impl ServiceQuotasQuery {
    /// The ids of a comma-separated filter; `None` when the filter is absent.
    pub fn ids(filter: Option<&str>) -> Option<Vec<String>> {
        filter.map(|text| {
            text.split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }
}

/// A resource quotas count (`GET /resources`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceInfo {
    /// The service that registered it (`pithos`, `cyclades`).
    pub service: String,
    pub description: String,
    /// `bytes`, or `null` for a count, as in Astakos.
    pub unit: Option<String>,
    pub ui_visible: bool,
    pub api_visible: bool,
}

/// Every resource, by name.
pub type Resources = BTreeMap<String, ResourceInfo>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_separated_filters() {
        assert_eq!(ServiceQuotasQuery::ids(None), None);
        assert_eq!(
            ServiceQuotasQuery::ids(Some("a, b,,c")),
            Some(vec!["a".to_owned(), "b".to_owned(), "c".to_owned()])
        );
    }
}
