//! Charging `pithos.diskspace` through the quota engine.
//!
//! Every stored version counts, as many as the container keeps (Pithos), charged to a
//! member of the account's project: the writer when the write comes from a token scoped
//! to the account, otherwise (a sharee, an administrator) the project's owner. The member
//! is kept with the version, so deleting it releases exactly what it was charged.
//!
//! A streamed upload of known size reserves its bytes with a pending commission before
//! it reads the body, so an upload that does not fit is refused before anything is stored,
//! and concurrent uploads cannot all pass a check and then together overrun the limit.
//! The reservation is accepted in the transaction that records the version, and the rest
//! of the change (what the write releases, or what an upload of unknown size adds) is
//! charged in that same transaction; an upload that fails or is abandoned rejects it.

use nefos_db::identity as iq;
use nefos_db::storage::{Charges, ContainerRow};
use nefos_db::{Connection, Transaction};
use nefos_quota::{NewCommission, PITHOS_DISKSPACE, Provision, QuotaError, Quotas};

use crate::access::Accessor;
use crate::container::Versioning;
use crate::{Storage, StorageError};

use nefos_db::storage as q;

/// Bytes reserved for an upload; rejected when dropped unsettled (a failed upload, or a
/// client that went away mid-body).
#[derive(Debug)]
pub(crate) struct Reservation {
    quotas: Quotas,
    serial: Option<i64>,
    /// The member it is reserved for, and how many bytes.
    pub(crate) member: String,
    pub(crate) bytes: i64,
}

impl Reservation {
    /// Accepts the reservation inside the transaction that records what it paid for.
    pub(crate) async fn accept_in(&mut self, tx: &mut Transaction) -> Result<(), StorageError> {
        if let Some(serial) = self.serial {
            self.quotas.accept_in(tx, serial).await?;
        }
        Ok(())
    }

    /// Marks the reservation resolved, once the transaction that accepted it committed.
    pub(crate) fn settle(mut self) {
        if let Some(serial) = self.serial.take() {
            self.quotas.settled(serial);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let Some(serial) = self.serial.take() else {
            return;
        };
        let quotas = self.quotas.clone();
        // Dropped mid-request (the client went away): reject off the request's task. With
        // no runtime to do it on, or should the rejection fail, the liveness job rejects it,
        // since it is no longer marked in flight.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    match quotas.reject(serial).await {
                        Ok(()) | Err(QuotaError::NoCommission { .. }) => {}
                        Err(error) => {
                            tracing::warn!(serial, %error, "cannot reject an upload's reservation; the liveness job will retry");
                        }
                    }
                });
            }
            Err(_) => quotas.settled(serial),
        }
    }
}

impl Storage {
    /// The member a write by `who` into the account `project_id` is charged to.
    pub(crate) async fn charged_member(
        &self,
        conn: &mut Connection,
        who: Accessor<'_>,
        project_id: &str,
    ) -> Result<String, StorageError> {
        if let Accessor::Token(ctx) = who
            && ctx.project_id() == Some(project_id)
        {
            return Ok(ctx.user_id.clone());
        }
        let owner = iq::get_project(&mut *conn, project_id)
            .await?
            .and_then(|p| p.owner_id);
        if let Some(owner) = owner {
            return Ok(owner);
        }
        match (Self::responsible_member(conn, project_id).await?, who) {
            (Some(member), _) => Ok(member),
            (None, Accessor::Token(ctx)) => Ok(ctx.user_id.clone()),
            (None, Accessor::Signed(_) | Accessor::Anonymous { .. }) => {
                Err(StorageError::Forbidden)
            }
        }
    }

    /// Whom a write from outside the project is charged to when it has no owner (a write
    /// through a signed URL, a container's ACL or sharing): its longest-standing
    /// administrator, failing that its longest-standing member, as those who may set the
    /// keys, ACLs and sharing that let it in.
    async fn responsible_member(
        conn: &mut Connection,
        project_id: &str,
    ) -> Result<Option<String>, StorageError> {
        for role in ["admin", "member"] {
            let filter = iq::AssignmentFilter {
                user_id: None,
                project_id: Some(project_id.to_owned()),
                role: Some(role.to_owned()),
            };
            let assignments = iq::list_role_assignments(&mut *conn, &filter).await?;
            if let Some(first) = assignments.into_iter().min_by_key(|a| a.created_at) {
                return Ok(Some(first.user_id));
            }
        }
        Ok(None)
    }

    /// Reserves room for an upload of `size` bytes (or, when the size is not known yet,
    /// checks that there is any room left) before its body is read. A version it replaces
    /// in a container that keeps no history frees its bytes, so only the difference is
    /// reserved.
    pub(crate) async fn reserve(
        &self,
        who: Accessor<'_>,
        container: &ContainerRow,
        name: &str,
        size: Option<u64>,
    ) -> Result<Reservation, StorageError> {
        let mut conn = self
            .db
            .pool()
            .acquire()
            .await
            .map_err(nefos_db::DbError::query("acquire a connection"))?;
        let member = self
            .charged_member(&mut conn, who, &container.project_id)
            .await?;
        let mut freed = 0;
        if size.is_some()
            && container.versioning == Versioning::None.as_str()
            && let Some(current) = q::get_current(&mut *conn, &container.id, name).await?
            && current.charged_to == member
        {
            freed = current.charged_bytes;
        }
        // Returned before the commission takes a connection of its own: holding one while
        // waiting for another would let a burst of uploads exhaust the pool.
        drop(conn);
        let mut reservation = Reservation {
            quotas: self.quotas.clone(),
            serial: None,
            member: member.clone(),
            bytes: 0,
        };
        let Some(size) = size else {
            self.quotas
                .check(&[self.diskspace(container, &member, 1)])
                .await?;
            return Ok(reservation);
        };
        let bytes = i64::try_from(size)
            .unwrap_or(i64::MAX)
            .saturating_sub(freed);
        if bytes > 0 {
            let commission = NewCommission {
                client: PITHOS_DISKSPACE.service.to_owned(),
                name: format!("upload to {}/{name}", container.id),
                provisions: vec![self.diskspace(container, &member, bytes)],
                force: false,
            };
            reservation.serial = Some(self.quotas.issue(commission, true).await?);
            reservation.bytes = bytes;
        }
        Ok(reservation)
    }

    /// Checks, without reserving, that the account has room for `bytes` more for the
    /// writer: for raw block uploads, which are charged when an object names the blocks.
    pub(crate) async fn check_room(
        &self,
        who: Accessor<'_>,
        container: &ContainerRow,
        bytes: u64,
    ) -> Result<(), StorageError> {
        let mut conn = self
            .db
            .pool()
            .acquire()
            .await
            .map_err(nefos_db::DbError::query("acquire a connection"))?;
        let member = self
            .charged_member(&mut conn, who, &container.project_id)
            .await?;
        drop(conn);
        let bytes = i64::try_from(bytes.max(1)).unwrap_or(i64::MAX);
        self.quotas
            .check(&[self.diskspace(container, &member, bytes)])
            .await?;
        Ok(())
    }

    /// Charges a new version of `size` bytes to `member` and releases `released`, inside
    /// the transaction that writes them: what `reservation` holds is accepted, the rest
    /// is charged and checked.
    pub(crate) async fn charge_version(
        &self,
        tx: &mut Transaction,
        container: &ContainerRow,
        member: &str,
        size: i64,
        released: &Charges,
        reservation: Option<&mut Reservation>,
    ) -> Result<(), StorageError> {
        let reserved = match reservation {
            Some(reservation) if reservation.member == member => {
                reservation.accept_in(tx).await?;
                reservation.bytes
            }
            Some(reservation) => {
                // Reserved for another member (membership changed meanwhile): release it
                // and charge the one it is now.
                reservation.accept_in(tx).await?;
                let reserved = reservation.bytes;
                self.quotas
                    .charge_in(
                        tx,
                        &[self.diskspace(container, &reservation.member, -reserved)],
                    )
                    .await?;
                0
            }
            None => 0,
        };
        let mut provisions = vec![self.diskspace(container, member, size - reserved)];
        for (holder, bytes) in released {
            provisions.push(self.diskspace(container, holder, -bytes));
        }
        // Versions from before quotas that no one could be charged for count only in the
        // project's total, which a reconciliation corrects.
        provisions.retain(|p| p.quantity != 0 && !p.member_id.is_empty());
        if !provisions.is_empty() {
            self.quotas.charge_in(tx, &provisions).await?;
        }
        Ok(())
    }

    /// Releases what versions that are gone were charged, inside the transaction that
    /// deletes them.
    pub(crate) async fn release(
        &self,
        tx: &mut Transaction,
        container: &ContainerRow,
        released: &Charges,
    ) -> Result<(), StorageError> {
        self.charge_version(tx, container, "", 0, released, None)
            .await
    }

    fn diskspace(&self, container: &ContainerRow, member: &str, bytes: i64) -> Provision {
        Provision::new(&container.project_id, member, PITHOS_DISKSPACE.name, bytes)
    }
}
