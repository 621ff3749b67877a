//! Commissions left pending by a control-plane process that stopped.
//!
//! A service issues a commission before it writes what the commission pays for and
//! resolves it with that write; a process killed in between leaves it pending. Each process
//! records a heartbeat; the pending commissions of a process whose heartbeat stopped are
//! rejected by any other, so none stays pending and usage equals what exists.

use std::time::Duration;

use nefos_db::quota as q;
use nefos_db::time::now_micros;

use crate::{QuotaError, Quotas};

impl Quotas {
    /// Records that this process is alive.
    pub async fn heartbeat(&self) -> Result<(), QuotaError> {
        q::heartbeat_instance(self.db.pool(), &self.instance, now_micros()).await?;
        Ok(())
    }

    /// Rejects the pending commissions of processes silent for `silence` or longer (any
    /// process but this one, with zero: right for the one process of a SQLite cloud at
    /// start). Returns how many it rejected.
    pub async fn reject_abandoned(&self, silence: Duration) -> Result<usize, QuotaError> {
        let silence = i64::try_from(silence.as_micros()).unwrap_or(i64::MAX);
        let alive_since = now_micros().saturating_sub(silence);
        let serials =
            q::list_abandoned_commissions(self.db.pool(), alive_since, &self.instance).await?;
        let mut rejected = 0;
        for serial in serials {
            match self.reject(serial).await {
                Ok(()) => rejected += 1,
                // Resolved meanwhile by its process after all, or by another.
                Err(QuotaError::NoCommission { .. }) => {}
                // One that cannot be resolved must not keep the others pending.
                Err(error) => {
                    tracing::warn!(serial, error = %error, "cannot reject an abandoned commission");
                }
            }
        }
        if rejected > 0 {
            tracing::warn!(
                rejected,
                "rejected commissions left pending by stopped processes"
            );
        }
        q::forget_dead_instances(self.db.pool(), alive_since).await?;
        Ok(rejected + self.reject_left_behind().await?)
    }

    /// Rejects this process's own pending commissions whose work has ended without
    /// resolving them (an upload whose rejection failed when it was dropped).
    async fn reject_left_behind(&self) -> Result<usize, QuotaError> {
        let held = q::list_commissions_of_instance(self.db.pool(), &self.instance).await?;
        let mut rejected = 0;
        for serial in held {
            if self.is_in_flight(serial) {
                continue;
            }
            match self.reject(serial).await {
                Ok(()) => rejected += 1,
                Err(QuotaError::NoCommission { .. }) => {}
                Err(error) => {
                    tracing::warn!(serial, error = %error, "cannot reject a commission left behind");
                }
            }
        }
        Ok(rejected)
    }
}
