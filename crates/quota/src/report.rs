//! Usage over time: what a user or a project used over a period, from the usage events
//! every accepted commission leaves.

use std::collections::BTreeMap;

use nefos_db::quota as q;
use nefos_identity::Caller;

use crate::{QuotaError, Quotas};

const MICROS_PER_HOUR: f64 = 3_600_000_000.0;
/// An average month (365.25 days / 12), the unit storage is billed in.
const HOURS_PER_MONTH: f64 = 730.5;
const GIB: f64 = 1_073_741_824.0;

/// One holder's use of one resource over the period.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UsageLine {
    /// A user id (by user) or a project id (by project).
    pub holder: String,
    pub resource: String,
    /// What `amount` counts: `VM-hours`, `core-hours`, `GiB-hours`, `GiB-months`, ….
    pub unit: String,
    pub amount: f64,
    /// Usage at the end of the period, in the resource's own unit.
    pub usage_at_end: i64,
}

/// Usage over `[from, to)` (microseconds since the epoch).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UsageReport {
    pub from: i64,
    pub to: i64,
    pub by_project: bool,
    pub lines: Vec<UsageLine>,
}

impl Quotas {
    /// Usage over a period by user or by project. Administrators only.
    pub async fn usage_report(
        &self,
        caller: Caller<'_>,
        from: i64,
        to: i64,
        by_project: bool,
    ) -> Result<UsageReport, QuotaError> {
        if !caller.is_admin() {
            return Err(QuotaError::not_allowed(
                "only administrators read usage reports",
            ));
        }
        if to <= from {
            return Err(QuotaError::invalid("period", "it must end after it starts"));
        }
        let units: BTreeMap<String, String> = q::list_resources(self.db.pool())
            .await?
            .into_iter()
            .map(|r| (r.name, r.unit))
            .collect();
        let mut totals: BTreeMap<(String, String), (f64, i64)> = BTreeMap::new();
        for row in q::usage_integrals(self.db.pool(), from, to).await? {
            let holder = if by_project {
                row.project_id
            } else {
                row.member_id
            };
            let total = totals.entry((holder, row.resource)).or_default();
            total.0 += row.integral;
            total.1 += row.usage_at_end;
        }
        let lines = totals
            .into_iter()
            .map(|((holder, resource), (integral, usage_at_end))| {
                let hours = integral / MICROS_PER_HOUR;
                let (unit, amount) = unit_of(&resource, units.get(&resource), hours);
                UsageLine {
                    holder,
                    resource,
                    unit,
                    amount,
                    usage_at_end,
                }
            })
            .collect();
        Ok(UsageReport {
            from,
            to,
            by_project,
            lines,
        })
    }
}

/// The unit a resource's usage over time is reported in, and the amount in it, from
/// `hours` (quantity × hours in the resource's own unit).
fn unit_of(resource: &str, unit: Option<&String>, hours: f64) -> (String, f64) {
    match (resource, unit.map(String::as_str)) {
        ("pithos.diskspace", _) => ("GiB-months".to_owned(), hours / GIB / HOURS_PER_MONTH),
        ("cyclades.vm", _) => ("VM-hours".to_owned(), hours),
        ("cyclades.cpu" | "cyclades.total_cpu", _) => ("core-hours".to_owned(), hours),
        (_, Some("bytes")) => ("GiB-hours".to_owned(), hours / GIB),
        _ => ("unit-hours".to_owned(), hours),
    }
}
