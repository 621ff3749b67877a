//! Two-phase commissions: every change of usage is a set of provisions issued at once.
//!
//! Issuing checks every holding the provisions touch against its limit and reserves the
//! change (an increase raises `usage_max`, a decrease lowers `usage_min`), or refuses the
//! whole commission; accepting makes it permanent, rejecting releases it. The holdings a
//! step touches change in one upsert, which takes their row locks on PostgreSQL until the
//! transaction ends: commissions on one holding check one after another, commissions on
//! different holdings run side by side. Holdings are always locked in the same (sorted)
//! order, so two commissions cannot deadlock. SQLite runs one writer at a time anyway.

use std::collections::BTreeMap;

use nefos_db::quota::{
    self as q, CommissionRow, HoldingChange, HoldingRow, ProvisionRow, UsageEventRow, WHOLE_PROJECT,
};
use nefos_db::time::now_micros;
use nefos_db::{DbError, Transaction};

use crate::limits::Limits;
use crate::{QuotaError, Quotas, Shortfall};

/// One change of a member's usage of a resource in a project. It counts against the
/// member's limit there and against the project's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provision {
    pub project_id: String,
    pub member_id: String,
    pub resource: String,
    /// Positive to use more, negative to release.
    pub quantity: i64,
}

impl Provision {
    pub fn new(project_id: &str, member_id: &str, resource: &str, quantity: i64) -> Self {
        Provision {
            project_id: project_id.to_owned(),
            member_id: member_id.to_owned(),
            resource: resource.to_owned(),
            quantity,
        }
    }
}

/// A commission to issue.
#[derive(Debug, Clone)]
pub struct NewCommission {
    /// Who issues it: a service name, or the user id of an API client.
    pub client: String,
    /// What it is for, for people reading the pending ones.
    pub name: String,
    pub provisions: Vec<Provision>,
    /// Skip the limit checks: an administrator's decision to overcommit.
    pub force: bool,
}

/// A pending commission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commission {
    pub serial: i64,
    pub client: String,
    pub name: String,
    pub issued_at: i64,
    pub provisions: Vec<Provision>,
}

/// Which step of a commission changes the holdings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Issue,
    Accept,
    Reject,
    /// Issue and accept at once, inside a caller's transaction.
    Charge,
}

/// What a commission asks of one holding: its increases and its decreases, apart, since
/// they move different bounds.
#[derive(Debug, Clone, Copy, Default)]
struct Change {
    increase: i64,
    decrease: i64,
}

type HoldingKey = (String, String, String);

impl Quotas {
    /// Issues a commission: checks and reserves it, or refuses it whole. Commissions
    /// issued by a service of this process (`held_here`) are rejected by another process
    /// should this one stop before resolving them.
    pub async fn issue(
        &self,
        commission: NewCommission,
        held_here: bool,
    ) -> Result<i64, QuotaError> {
        if commission.provisions.is_empty() {
            return Err(QuotaError::invalid("commission", "it has no provisions"));
        }
        let serial = self.next_serial().await?;
        if held_here && let Ok(mut in_flight) = self.in_flight.lock() {
            // Before it is visible, so the liveness job never takes it for left behind.
            in_flight.insert(serial);
        }
        let issued = self.issue_as(serial, commission, held_here).await;
        if issued.is_err() {
            self.settled(serial);
        }
        issued
    }

    async fn issue_as(
        &self,
        serial: i64,
        commission: NewCommission,
        held_here: bool,
    ) -> Result<i64, QuotaError> {
        let provisions = rows(&commission.provisions);
        let mut tx = self.db.begin().await?;
        apply(&mut tx, &provisions, Step::Issue, commission.force).await?;
        let row = CommissionRow {
            serial,
            client: commission.client,
            instance: held_here.then(|| self.instance.clone()),
            name: commission.name,
            issued_at: now_micros(),
        };
        q::insert_commission(&mut tx, &row, &provisions).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a commission"))?;
        Ok(serial)
    }

    /// Makes a pending commission permanent.
    pub async fn accept(&self, serial: i64) -> Result<(), QuotaError> {
        self.settled(serial);
        let mut tx = self.db.begin().await?;
        resolve_in(&mut tx, serial, Step::Accept).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a commission's acceptance"))?;
        Ok(())
    }

    /// Releases what a pending commission reserved.
    pub async fn reject(&self, serial: i64) -> Result<(), QuotaError> {
        self.settled(serial);
        let mut tx = self.db.begin().await?;
        resolve_in(&mut tx, serial, Step::Reject).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a commission's rejection"))?;
        Ok(())
    }

    /// Accepts a pending commission inside `tx`, so it becomes permanent exactly when what
    /// it paid for is written.
    pub async fn accept_in(&self, tx: &mut Transaction, serial: i64) -> Result<(), QuotaError> {
        resolve_in(tx, serial, Step::Accept).await
    }

    /// Issues and accepts provisions at once inside `tx`: for a change written in the same
    /// transaction (a release when something is deleted, an increase whose size was not
    /// known beforehand). Refused whole, like [`Quotas::issue`], when it does not fit.
    pub async fn charge_in(
        &self,
        tx: &mut Transaction,
        provisions: &[Provision],
    ) -> Result<(), QuotaError> {
        let provisions = rows(provisions);
        apply(tx, &provisions, Step::Charge, false).await
    }

    /// [`Quotas::charge_in`] whatever the limits: for what exists already and must be
    /// counted (a VM found using more than its record said), as Astakos's forced
    /// commissions.
    pub async fn force_in(
        &self,
        tx: &mut Transaction,
        provisions: &[Provision],
    ) -> Result<(), QuotaError> {
        let provisions = rows(provisions);
        apply(tx, &provisions, Step::Charge, true).await
    }

    /// Checks that provisions would fit now, changing nothing.
    pub async fn check(&self, provisions: &[Provision]) -> Result<(), QuotaError> {
        let provisions = rows(provisions);
        let mut tx = self.db.begin().await?;
        apply(&mut tx, &provisions, Step::Issue, false).await?;
        tx.rollback()
            .await
            .map_err(DbError::query("roll back a quota check"))?;
        Ok(())
    }

    /// A pending commission.
    pub async fn commission(&self, serial: i64) -> Result<Commission, QuotaError> {
        let row = q::get_commission(self.db.pool(), serial)
            .await?
            .ok_or(QuotaError::NoCommission { serial })?;
        let provisions = q::list_provisions(self.db.pool(), serial).await?;
        Ok(Commission {
            serial: row.serial,
            client: row.client,
            name: row.name,
            issued_at: row.issued_at,
            provisions: provisions
                .into_iter()
                .map(|p| Provision {
                    project_id: p.project_id,
                    member_id: p.member_id,
                    resource: p.resource,
                    quantity: p.quantity,
                })
                .collect(),
        })
    }

    /// The serials of pending commissions: a client's, or all.
    pub async fn pending(&self, client: Option<&str>) -> Result<Vec<i64>, QuotaError> {
        Ok(q::list_commissions(self.db.pool(), client)
            .await?
            .into_iter()
            .map(|c| c.serial)
            .collect())
    }
}

fn rows(provisions: &[Provision]) -> Vec<ProvisionRow> {
    provisions
        .iter()
        .map(|p| ProvisionRow {
            project_id: p.project_id.clone(),
            member_id: p.member_id.clone(),
            resource: p.resource.clone(),
            quantity: p.quantity,
        })
        .collect()
}

async fn resolve_in(tx: &mut Transaction, serial: i64, step: Step) -> Result<(), QuotaError> {
    // Taking it out first takes its rows' locks: a second resolution waits, then finds
    // nothing to resolve.
    let provisions = q::take_commission(&mut **tx, serial).await?;
    if provisions.is_empty() {
        return Err(QuotaError::NoCommission { serial });
    }
    apply(tx, &provisions, step, false).await
}

/// Applies one step of a commission to every holding it touches, checking limits when it
/// issues.
async fn apply(
    tx: &mut Transaction,
    provisions: &[ProvisionRow],
    step: Step,
    force: bool,
) -> Result<(), QuotaError> {
    let now = now_micros();
    let checks = matches!(step, Step::Issue | Step::Charge);
    // The limits of each (project, member, resource), and the project's own, looked up
    // once; this also refuses resources no service registered.
    let mut member_limits: BTreeMap<HoldingKey, i64> = BTreeMap::new();
    let mut project_limits: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut changes: BTreeMap<HoldingKey, Change> = BTreeMap::new();
    for p in provisions {
        if p.member_id == WHOLE_PROJECT {
            return Err(QuotaError::invalid("provision", "names no member"));
        }
        let member_key = (
            p.project_id.clone(),
            p.member_id.clone(),
            p.resource.clone(),
        );
        if checks && !member_limits.contains_key(&member_key) {
            let facts = q::limit_facts(&mut **tx, &p.project_id, &p.member_id, &p.resource)
                .await?
                .ok_or_else(|| QuotaError::UnknownResource {
                    resource: p.resource.clone(),
                })?;
            let limits = Limits::from_facts(&facts, now);
            member_limits.insert(member_key.clone(), limits.member);
            project_limits.insert((p.project_id.clone(), p.resource.clone()), limits.project);
        }
        let project_key = (
            p.project_id.clone(),
            WHOLE_PROJECT.to_owned(),
            p.resource.clone(),
        );
        for key in [member_key, project_key] {
            let change = changes.entry(key).or_default();
            if p.quantity > 0 {
                change.increase += p.quantity;
            } else {
                change.decrease += p.quantity;
            }
        }
    }
    let mut deltas = Vec::with_capacity(changes.len());
    for ((project_id, member_id, resource), change) in &changes {
        let (add_min, add_max) = match step {
            Step::Issue => (change.decrease, change.increase),
            Step::Accept => (change.increase, change.decrease),
            Step::Reject => (-change.decrease, -change.increase),
            Step::Charge => {
                let net = change.increase + change.decrease;
                (net, net)
            }
        };
        if add_min != 0 || add_max != 0 {
            deltas.push(HoldingChange {
                project_id: project_id.clone(),
                member_id: member_id.clone(),
                resource: resource.clone(),
                add_min,
                add_max,
            });
        }
    }
    // One statement for every holding, in the map's (sorted) order.
    let updated = q::add_to_holdings(&mut **tx, &deltas).await?;
    if checks {
        for delta in &deltas {
            let Some(now) = updated.iter().find(|h| {
                h.project_id == delta.project_id
                    && h.member_id == delta.member_id
                    && h.resource == delta.resource
            }) else {
                continue;
            };
            check_holding(delta, now, &member_limits, &project_limits, force)?;
        }
    }
    if matches!(step, Step::Accept | Step::Charge) {
        record_usage(tx, &changes, now).await?;
    }
    Ok(())
}

/// Refuses an issued change that takes a holding over its limit (unless forced) or a
/// release that takes its usage below zero.
fn check_holding(
    delta: &HoldingChange,
    now: &HoldingRow,
    member_limits: &BTreeMap<HoldingKey, i64>,
    project_limits: &BTreeMap<(String, String), i64>,
    force: bool,
) -> Result<(), QuotaError> {
    let HoldingChange {
        project_id,
        member_id,
        resource,
        add_min,
        add_max,
    } = delta;
    if *add_max > 0 && !force {
        let limit = if member_id == WHOLE_PROJECT {
            project_limits.get(&(project_id.clone(), resource.clone()))
        } else {
            member_limits.get(&(project_id.clone(), member_id.clone(), resource.clone()))
        }
        .copied()
        .unwrap_or(0);
        if now.usage_max > limit {
            return Err(QuotaError::Exceeded(Box::new(Shortfall {
                project_id: project_id.clone(),
                member_id: (member_id != WHOLE_PROJECT).then(|| member_id.clone()),
                resource: resource.clone(),
                limit,
                usage: now.usage_max - add_max,
                requested: *add_max,
            })));
        }
    }
    if *add_min < 0 && now.usage_min < 0 {
        return Err(QuotaError::BelowZero {
            project_id: project_id.clone(),
            member_id: member_id.clone(),
            resource: resource.clone(),
            usage: now.usage_min - add_min,
            released: -add_min,
        });
    }
    Ok(())
}

/// Keeps each member's accepted change as a usage event, for usage over time.
async fn record_usage(
    tx: &mut Transaction,
    changes: &BTreeMap<HoldingKey, Change>,
    now: i64,
) -> Result<(), QuotaError> {
    for ((project_id, member_id, resource), change) in changes {
        let quantity = change.increase + change.decrease;
        if member_id == WHOLE_PROJECT || quantity == 0 {
            continue;
        }
        let event = UsageEventRow {
            project_id: project_id.clone(),
            member_id: member_id.clone(),
            resource: resource.clone(),
            quantity,
            at: now,
        };
        q::insert_usage_event(&mut **tx, &event).await?;
    }
    Ok(())
}
