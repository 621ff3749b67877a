//! Checking recorded usage against what exists.

use std::collections::BTreeMap;

use nefos_db::Transaction;
use nefos_db::quota::{self as q, HoldingFilter, WHOLE_PROJECT};

use crate::{QuotaError, Quotas};

/// A holding whose recorded usage differs from what exists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Discrepancy {
    pub project_id: String,
    /// `None` for the project's own holding.
    pub member_id: Option<String>,
    pub resource: String,
    pub recorded: i64,
    pub actual: i64,
}

impl Quotas {
    /// Compares the usage recorded for `resource` with `actual` (what exists, by
    /// (project, member), as the owning service counts it inside `tx`), and with `fix` sets
    /// the recorded usage to it. Holdings with pending commissions are compared by what
    /// was accepted (their reservations are kept).
    pub async fn reconcile_in(
        &self,
        tx: &mut Transaction,
        resource: &str,
        actual: &[(String, String, i64)],
        fix: bool,
    ) -> Result<Vec<Discrepancy>, QuotaError> {
        let mut expected: BTreeMap<(String, String), i64> = BTreeMap::new();
        for (project_id, member_id, usage) in actual {
            // What is charged to no member (versions from before quotas that no one could
            // be charged for) counts in the project's total only.
            if member_id != WHOLE_PROJECT {
                *expected
                    .entry((project_id.clone(), member_id.clone()))
                    .or_default() += usage;
            }
            *expected
                .entry((project_id.clone(), WHOLE_PROJECT.to_owned()))
                .or_default() += usage;
        }
        let filter = HoldingFilter {
            resource: Some(resource.to_owned()),
            ..HoldingFilter::default()
        };
        let mut recorded: BTreeMap<(String, String), i64> = BTreeMap::new();
        for holding in q::list_holdings(&mut **tx, &filter).await? {
            recorded.insert((holding.project_id, holding.member_id), holding.usage_min);
        }
        let keys: std::collections::BTreeSet<_> =
            expected.keys().chain(recorded.keys()).cloned().collect();
        let mut found = Vec::new();
        for (project_id, member_id) in keys {
            let key = (project_id, member_id);
            let actual = expected.get(&key).copied().unwrap_or(0);
            let held = recorded.get(&key).copied().unwrap_or(0);
            if actual == held {
                continue;
            }
            let (project_id, member_id) = key;
            if fix {
                q::set_holding_usage(&mut **tx, &project_id, &member_id, resource, actual).await?;
                if member_id != WHOLE_PROJECT {
                    // Usage over time follows the correction from now on.
                    let event = q::UsageEventRow {
                        project_id: project_id.clone(),
                        member_id: member_id.clone(),
                        resource: resource.to_owned(),
                        quantity: actual - held,
                        at: nefos_db::time::now_micros(),
                    };
                    q::insert_usage_event(&mut **tx, &event).await?;
                }
            }
            found.push(Discrepancy {
                member_id: (member_id != WHOLE_PROJECT).then_some(member_id),
                project_id,
                resource: resource.to_owned(),
                recorded: held,
                actual,
            });
        }
        if !found.is_empty() {
            tracing::warn!(
                resource,
                count = found.len(),
                fix,
                "quota usage differed from what exists"
            );
        }
        Ok(found)
    }
}
