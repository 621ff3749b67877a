//! Quotas and projects for nefos (docs/design.md §7), as Synnefo's Astakos has them.
//!
//! Services register the resources they count ([`ResourceSpec`]); usage is held per
//! (project, member, resource) and per project, and changes only through commissions
//! ([`Quotas::issue`], then [`Quotas::accept`] or [`Quotas::reject`]; or
//! [`Quotas::charge_in`] inside the transaction that writes the change). Limits follow from
//! what a project grants its members ([`projects`]). No HTTP here: the API crate
//! translates Astakos's account API into calls on [`Quotas`].

mod commission;
mod error;
mod limits;
mod liveness;
pub mod projects;
mod reconcile;
mod report;
mod resources;
mod views;

use nefos_db::Database;

pub use commission::{Commission, NewCommission, Provision};
pub use error::{QuotaError, Shortfall};
pub use limits::Limits;
pub use reconcile::Discrepancy;
pub use report::{UsageLine, UsageReport};
pub use resources::{CYCLADES_RESOURCES, PITHOS_DISKSPACE, Resource, ResourceSpec, Unit};
pub use views::{HoldingView, ProjectQuota};

/// The quota engine; cheap to clone, safe to share. One per control-plane process: its
/// instance id marks the commissions this process holds pending.
#[derive(Debug, Clone)]
pub struct Quotas {
    db: Database,
    instance: String,
}

impl Quotas {
    pub fn new(db: Database) -> Self {
        Quotas {
            db,
            instance: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// This process's id among control-plane processes.
    pub fn instance(&self) -> &str {
        &self.instance
    }
}
