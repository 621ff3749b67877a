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

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use nefos_db::Database;
use tokio::sync::Mutex;

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
    /// Commission serials this process took from the database and has not handed out yet.
    serials: Arc<Mutex<Range<i64>>>,
    /// The commissions this process holds pending for work still under way (an upload
    /// being read). One pending under this process's id but not here was left behind by
    /// work that ended without resolving it, and the liveness job rejects it.
    in_flight: Arc<std::sync::Mutex<HashSet<i64>>>,
}

/// Commission serials a process takes from the database at a time. A process that stops
/// leaves the rest of its block unused: serials are unique and grow, with gaps.
const SERIAL_BLOCK: i64 = 100;

impl Quotas {
    pub fn new(db: Database) -> Self {
        Quotas {
            db,
            instance: uuid::Uuid::new_v4().simple().to_string(),
            serials: Arc::new(Mutex::new(0..0)),
            in_flight: Arc::default(),
        }
    }

    /// Marks a commission this process holds as no longer under way: resolved, or about to
    /// be by a transaction that committed.
    pub fn settled(&self, serial: i64) {
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.remove(&serial);
        }
    }

    fn is_in_flight(&self, serial: i64) -> bool {
        self.in_flight
            .lock()
            .map(|in_flight| in_flight.contains(&serial))
            .unwrap_or(true)
    }

    /// A new commission serial, from this process's block (taking a new block when it has
    /// none left).
    async fn next_serial(&self) -> Result<i64, QuotaError> {
        let mut serials = self.serials.lock().await;
        if serials.is_empty() {
            let last =
                nefos_db::quota::reserve_commission_serials(self.db.pool(), SERIAL_BLOCK).await?;
            *serials = (last - SERIAL_BLOCK + 1)..(last + 1);
        }
        let serial = serials.start;
        serials.start += 1;
        Ok(serial)
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// This process's id among control-plane processes.
    pub fn instance(&self) -> &str {
        &self.instance
    }
}
