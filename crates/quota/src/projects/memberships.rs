//! Memberships: users join and leave by the project's policies; the owner accepts,
//! rejects, adds and removes. An accepted member holds the project's `member` role; one
//! who leaves or is removed loses every role there and the tokens scoped to it, but keeps
//! what it stored or runs there (shown over its now zero limit).

use nefos_db::identity::{self as iq, RoleAssignmentRow};
use nefos_db::quota::{self as q, MembershipRow};
use nefos_db::time::now_micros;
use nefos_db::{DbError, Transaction};
use nefos_identity::Caller;

use super::Policy;
use crate::{QuotaError, Quotas};

/// A membership as shown.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Membership {
    pub id: i64,
    pub project_id: String,
    pub user_id: String,
    /// `requested`, `accepted`, `leave_requested`, `rejected`, `cancelled`, `removed` or
    /// `left`.
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<MembershipRow> for Membership {
    fn from(row: MembershipRow) -> Self {
        Membership {
            id: row.id,
            project_id: row.project_id,
            user_id: row.user_id,
            state: row.state,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// What can be done to a membership, and by whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipAction {
    /// The member leaves (at once, or asks to, by the leave policy).
    Leave,
    /// The user withdraws a request to join.
    Cancel,
    /// The owner accepts a request to join or to leave.
    Accept,
    /// The owner rejects a request to join or to leave.
    Reject,
    /// The owner removes a member.
    Remove,
}

impl MembershipAction {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "leave" => MembershipAction::Leave,
            "cancel" => MembershipAction::Cancel,
            "accept" => MembershipAction::Accept,
            "reject" => MembershipAction::Reject,
            "remove" => MembershipAction::Remove,
            _ => return None,
        })
    }
}

impl Quotas {
    /// Asks to join an active project: accepted at once under an `auto` join policy,
    /// pending the owner's answer under `moderated`, refused under `closed`.
    pub async fn join(
        &self,
        caller: Caller<'_>,
        project_id: &str,
    ) -> Result<Membership, QuotaError> {
        let Some(user_id) = caller.user_id() else {
            return Err(QuotaError::not_allowed("users join projects"));
        };
        let mut tx = self.db.begin().await?;
        self.lock_project(&mut tx, project_id).await?;
        let project = q::get_project_settings(&mut *tx, project_id)
            .await?
            .filter(|p| p.kind == "regular")
            .ok_or_else(|| QuotaError::not_found("project", project_id))?;
        if project.state != "active" {
            return Err(QuotaError::conflict(format!(
                "the project is {}",
                project.state
            )));
        }
        if let Some(existing) = q::membership_of(&mut *tx, project_id, user_id).await?
            && matches!(
                existing.state.as_str(),
                "requested" | "accepted" | "leave_requested"
            )
        {
            return Err(QuotaError::conflict(format!(
                "already {} in this project",
                existing.state
            )));
        }
        let state = match Policy::parse(&project.join_policy)? {
            Policy::Auto => "accepted",
            Policy::Moderated => "requested",
            Policy::Closed => return Err(QuotaError::conflict("the project is closed to joining")),
        };
        if state == "accepted" {
            check_room(&mut tx, project_id, project.max_members).await?;
        }
        let membership = set_membership(&mut tx, project_id, user_id, state).await?;
        tx.commit().await.map_err(DbError::query("commit a join"))?;
        Ok(membership.into())
    }

    /// Adds a user to a project at once, whatever its join policy. Its owner or an
    /// administrator.
    pub async fn enroll(
        &self,
        caller: Caller<'_>,
        project_id: &str,
        user_id: &str,
    ) -> Result<Membership, QuotaError> {
        self.require_project_owner(caller, project_id).await?;
        let mut tx = self.db.begin().await?;
        self.lock_project(&mut tx, project_id).await?;
        let project = q::get_project_settings(&mut *tx, project_id)
            .await?
            .ok_or_else(|| QuotaError::not_found("project", project_id))?;
        if project.kind != "regular" || project.state != "active" {
            return Err(QuotaError::conflict("only active projects take members"));
        }
        if iq::get_user(&mut *tx, user_id).await?.is_none() {
            return Err(QuotaError::not_found("user", user_id));
        }
        if q::membership_of(&mut *tx, project_id, user_id)
            .await?
            .is_some_and(|m| m.state == "accepted" || m.state == "leave_requested")
        {
            return Err(QuotaError::conflict("already a member"));
        }
        check_room(&mut tx, project_id, project.max_members).await?;
        let membership = set_membership(&mut tx, project_id, user_id, "accepted").await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit an enrolment"))?;
        Ok(membership.into())
    }

    /// Acts on a membership. The member leaves or cancels; the project's owner (or an
    /// administrator) accepts, rejects and removes.
    pub async fn act_on_membership(
        &self,
        caller: Caller<'_>,
        membership_id: i64,
        action: MembershipAction,
    ) -> Result<Membership, QuotaError> {
        let mut tx = self.db.begin().await?;
        let found = q::get_membership(&mut *tx, membership_id)
            .await?
            .ok_or_else(|| QuotaError::not_found("membership", membership_id.to_string()))?;
        // Read again once the project is ours: its state may have moved meanwhile.
        self.lock_project(&mut tx, &found.project_id).await?;
        let membership = q::get_membership(&mut *tx, membership_id)
            .await?
            .ok_or_else(|| QuotaError::not_found("membership", membership_id.to_string()))?;
        let project = q::get_project_settings(&mut *tx, &membership.project_id)
            .await?
            .ok_or_else(|| QuotaError::not_found("project", &membership.project_id))?;
        let is_member = caller.user_id() == Some(membership.user_id.as_str());
        let is_owner = caller
            .user_id()
            .is_some_and(|u| project.owner_id.as_deref() == Some(u))
            || caller.is_admin();
        if !is_member && !is_owner {
            return Err(QuotaError::not_found(
                "membership",
                membership_id.to_string(),
            ));
        }
        let state = membership.state.as_str();
        let next = match action {
            MembershipAction::Leave if is_member && state == "accepted" => {
                match Policy::parse(&project.leave_policy)? {
                    Policy::Auto => "left",
                    Policy::Moderated => "leave_requested",
                    Policy::Closed => {
                        return Err(QuotaError::conflict(
                            "the project does not let members leave",
                        ));
                    }
                }
            }
            MembershipAction::Cancel if is_member && state == "requested" => "cancelled",
            MembershipAction::Cancel if is_member && state == "leave_requested" => "accepted",
            MembershipAction::Accept if is_owner && state == "requested" => {
                check_room(&mut tx, &project.id, project.max_members).await?;
                "accepted"
            }
            MembershipAction::Accept if is_owner && state == "leave_requested" => "left",
            MembershipAction::Reject if is_owner && state == "requested" => "rejected",
            MembershipAction::Reject if is_owner && state == "leave_requested" => "accepted",
            MembershipAction::Remove
                if is_owner && matches!(state, "accepted" | "leave_requested") =>
            {
                "removed"
            }
            _ if !is_owner
                && matches!(
                    action,
                    MembershipAction::Accept | MembershipAction::Reject | MembershipAction::Remove
                ) =>
            {
                return Err(QuotaError::not_allowed(
                    "only the project's owner does that",
                ));
            }
            _ => {
                return Err(QuotaError::conflict(format!(
                    "cannot {action:?} a membership that is {state}"
                )));
            }
        };
        let updated = set_membership(&mut tx, &project.id, &membership.user_id, next).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a membership change"))?;
        Ok(updated.into())
    }

    /// Memberships the caller may see: its own and those of projects it owns (every one
    /// for an administrator), optionally of one project.
    pub async fn memberships(
        &self,
        caller: Caller<'_>,
        project_id: Option<&str>,
    ) -> Result<Vec<Membership>, QuotaError> {
        let visible_to = if caller.is_admin() {
            None
        } else {
            caller.user_id().map(str::to_owned)
        };
        let filter = q::MembershipFilter {
            project_id: project_id.map(str::to_owned),
            user_id: None,
            visible_to,
        };
        Ok(q::list_memberships(self.db.pool(), &filter)
            .await?
            .into_iter()
            .map(Membership::from)
            .collect())
    }
}

/// Records a membership's new state and brings the user's roles on the project along: an
/// accepted member holds `member`; one who is no longer a member holds nothing and loses
/// the tokens scoped there (for good, as in Keystone).
async fn set_membership(
    tx: &mut Transaction,
    project_id: &str,
    user_id: &str,
    state: &str,
) -> Result<MembershipRow, QuotaError> {
    let now = now_micros();
    let id = q::next_membership_id(tx).await?;
    let row = MembershipRow {
        id,
        project_id: project_id.to_owned(),
        user_id: user_id.to_owned(),
        state: state.to_owned(),
        created_at: now,
        updated_at: now,
    };
    let stored = q::upsert_membership(tx, &row).await?;
    match state {
        "accepted" => {
            let assignment = RoleAssignmentRow {
                project_id: project_id.to_owned(),
                user_id: user_id.to_owned(),
                role: "member".to_owned(),
                created_at: now,
            };
            iq::grant_role(tx, &assignment).await?;
        }
        "left" | "removed" => {
            iq::revoke_role(tx, project_id, user_id, None).await?;
            iq::revoke_project_tokens(&mut **tx, project_id, Some(user_id), now).await?;
        }
        _ => {}
    }
    Ok(stored)
}

/// Refuses a new member beyond the project's maximum.
async fn check_room(
    tx: &mut Transaction,
    project_id: &str,
    max_members: Option<i64>,
) -> Result<(), QuotaError> {
    if let Some(max) = max_members
        && q::count_members(&mut **tx, project_id).await? >= max
    {
        return Err(QuotaError::conflict(format!(
            "the project has its maximum of {max} members"
        )));
    }
    Ok(())
}
