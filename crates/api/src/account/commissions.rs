//! `/commissions`: two-phase quota changes, issued and resolved by cloud administrators.
//!
//! A commission belongs to whoever issued it (the administrator's user id is its client):
//! one issued by another administrator or by a nefos service is invisible here, as
//! another component's is in Astakos, so no one resolves a commission a service still
//! holds. Commissions issued here are not held by this process (`held_here = false`):
//! they stay pending until their issuer resolves them.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use nefos_account_api::{
    CommissionAction, CommissionInfo, IssueCommission, IssuedCommission, PROJECT_PREFIX,
    Provision as WireProvision, ResolveCommissions, ResolvedCommissions, USER_PREFIX,
};
use nefos_identity::IdentityError;
use nefos_quota::{Commission, NewCommission, Provision};

use super::dates;
use super::error::AccountError;
use super::extract::{Admin, Body, Id, User};
use crate::ApiState;

/// `POST /commissions`: checks and reserves every provision, or refuses them all (413
/// `overLimit` naming the limit and usage of the holding that did not fit).
pub(super) async fn issue(
    State(state): State<ApiState>,
    Admin(admin): Admin,
    Body(request): Body<IssueCommission>,
) -> Result<(StatusCode, Json<IssuedCommission>), AccountError> {
    let provisions = to_provisions(&request.provisions)?;
    // Every project and member named must exist before anything is reserved.
    let projects: BTreeSet<&str> = provisions.iter().map(|p| p.project_id.as_str()).collect();
    for project_id in projects {
        state.quotas.project(admin.caller(), project_id).await?;
    }
    let members: BTreeSet<&str> = provisions.iter().map(|p| p.member_id.as_str()).collect();
    for member_id in members {
        match state.identity.user(admin.caller(), member_id).await {
            Ok(_) => {}
            Err(IdentityError::NotFound { .. }) => {
                return Err(AccountError::not_found(format!("no user {member_id}")));
            }
            Err(other) => return Err(other.into()),
        }
    }
    let commission = NewCommission {
        client: admin.id().to_owned(),
        name: request.name.unwrap_or_default(),
        provisions,
        force: request.force,
    };
    let serial = state.quotas.issue(commission, false).await?;
    if request.auto_accept {
        state.quotas.accept(serial).await?;
    }
    Ok((StatusCode::CREATED, Json(IssuedCommission { serial })))
}

/// `GET /commissions`: the serials of the caller's pending commissions.
pub(super) async fn pending(
    State(state): State<ApiState>,
    Admin(admin): Admin,
) -> Result<Json<Vec<i64>>, AccountError> {
    Ok(Json(state.quotas.pending(Some(admin.id())).await?))
}

/// `GET /commissions/{serial}`.
pub(super) async fn show(
    State(state): State<ApiState>,
    Admin(admin): Admin,
    serial: Id,
) -> Result<Json<CommissionInfo>, AccountError> {
    let commission = owned(&state, &admin, serial.number("commission")?).await?;
    Ok(Json(CommissionInfo {
        serial: commission.serial,
        issue_time: dates::iso(commission.issued_at),
        name: commission.name,
        provisions: commission
            .provisions
            .into_iter()
            .map(|p| WireProvision {
                holder: format!("{USER_PREFIX}{}", p.member_id),
                source: Some(format!("{PROJECT_PREFIX}{}", p.project_id)),
                resource: p.resource,
                quantity: p.quantity,
            })
            .collect(),
    }))
}

/// `POST /commissions/{serial}/action`: `{"accept": ""}` or `{"reject": ""}`.
pub(super) async fn act(
    State(state): State<ApiState>,
    Admin(admin): Admin,
    serial: Id,
    Body(action): Body<CommissionAction>,
) -> Result<StatusCode, AccountError> {
    let serial = serial.number("commission")?;
    let accept = match (action.accept.is_some(), action.reject.is_some()) {
        (true, false) => true,
        (false, true) => false,
        _ => {
            return Err(AccountError::bad_request("specify either accept or reject"));
        }
    };
    resolve(&state, &admin, serial, accept).await?;
    Ok(StatusCode::OK)
}

/// `POST /commissions/action`: accepts and rejects several; each failure is reported
/// with its error body, the others done.
pub(super) async fn resolve_many(
    State(state): State<ApiState>,
    Admin(admin): Admin,
    Body(request): Body<ResolveCommissions>,
) -> Result<Json<ResolvedCommissions>, AccountError> {
    let mut answer = ResolvedCommissions::default();
    let both: BTreeSet<i64> = request
        .accept
        .iter()
        .filter(|s| request.reject.contains(s))
        .copied()
        .collect();
    for serial in &both {
        let error =
            AccountError::bad_request(format!("cannot both accept and reject serial {serial}"));
        answer.failed.push((*serial, error.body()));
    }
    let decisions = request
        .accept
        .iter()
        .map(|s| (*s, true))
        .chain(request.reject.iter().map(|s| (*s, false)))
        .filter(|(serial, _)| !both.contains(serial));
    for (serial, accept) in decisions {
        match resolve(&state, &admin, serial, accept).await {
            Ok(()) if accept => answer.accepted.push(serial),
            Ok(()) => answer.rejected.push(serial),
            Err(error) => answer.failed.push((serial, error.body())),
        }
    }
    Ok(Json(answer))
}

async fn resolve(
    state: &ApiState,
    admin: &User,
    serial: i64,
    accept: bool,
) -> Result<(), AccountError> {
    owned(state, admin, serial).await?;
    if accept {
        state.quotas.accept(serial).await?;
    } else {
        state.quotas.reject(serial).await?;
    }
    Ok(())
}

/// A pending commission the caller issued; any other is "not found".
async fn owned(state: &ApiState, admin: &User, serial: i64) -> Result<Commission, AccountError> {
    let commission = state.quotas.commission(serial).await?;
    if commission.client != admin.id() {
        return Err(nefos_quota::QuotaError::NoCommission { serial }.into());
    }
    Ok(commission)
}

/// Astakos's provisions as nefos's: each (user, project) provision becomes a member's;
/// each project-level one must equal the sum of the member provisions it mirrors.
fn to_provisions(wire: &[WireProvision]) -> Result<Vec<Provision>, AccountError> {
    if wire.is_empty() {
        return Err(AccountError::bad_request("a commission needs provisions"));
    }
    let mut provisions = Vec::new();
    let mut project_level: BTreeMap<(String, String), i64> = BTreeMap::new();
    for p in wire {
        let malformed = || AccountError::bad_request(format!("malformed provision {p:?}"));
        if p.resource.is_empty() {
            return Err(malformed());
        }
        if let Some(project_id) = p.holder.strip_prefix(PROJECT_PREFIX) {
            if p.source.is_some() || project_id.is_empty() {
                return Err(malformed());
            }
            let sum = project_level
                .entry((project_id.to_owned(), p.resource.clone()))
                .or_default();
            *sum = sum.checked_add(p.quantity).ok_or_else(malformed)?;
            continue;
        }
        let member_id = bare(&p.holder, USER_PREFIX).ok_or_else(malformed)?;
        let project_id = p
            .source
            .as_deref()
            .and_then(|source| bare(source, PROJECT_PREFIX))
            .ok_or_else(malformed)?;
        provisions.push(Provision::new(
            project_id,
            member_id,
            &p.resource,
            p.quantity,
        ));
    }
    for ((project_id, resource), quantity) in project_level {
        let members: i64 = provisions
            .iter()
            .filter(|p| p.project_id == project_id && p.resource == resource)
            .map(|p| p.quantity)
            .fold(0i64, i64::saturating_add);
        if members != quantity {
            return Err(AccountError::bad_request(format!(
                "the project provision of {resource} in {project_id} ({quantity}) differs from \
                 its members' ({members}): nefos counts a project's usage from its members'"
            )));
        }
    }
    if provisions.is_empty() {
        return Err(AccountError::bad_request(
            "a commission needs a provision with a user as holder",
        ));
    }
    Ok(provisions)
}

/// An id with its Astakos prefix, or bare; `None` when empty or of another kind.
fn bare<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let id = text.strip_prefix(prefix).unwrap_or(text);
    (!id.is_empty() && !id.contains(':')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(holder: &str, source: Option<&str>, quantity: i64) -> WireProvision {
        WireProvision {
            holder: holder.into(),
            source: source.map(str::to_owned),
            resource: "cyclades.vm".into(),
            quantity,
        }
    }

    #[test]
    fn astakos_provisions_map_to_members_of_projects() {
        let mapped = to_provisions(&[
            wire("user:u", Some("project:p"), 2),
            wire("project:p", None, 2),
            wire("v", Some("p"), -1),
            wire("project:p", None, -1),
        ])
        .unwrap();
        assert_eq!(
            mapped,
            vec![
                Provision::new("p", "u", "cyclades.vm", 2),
                Provision::new("p", "v", "cyclades.vm", -1),
            ]
        );
    }

    #[test]
    fn inconsistent_or_malformed_provisions_are_refused() {
        for bad in [
            vec![
                wire("user:u", Some("project:p"), 2),
                wire("project:p", None, 3),
            ],
            vec![wire("project:p", None, 0)],
            vec![wire("user:u", None, 1)],
            vec![wire("service:x", Some("project:p"), 1)],
            vec![wire("user:", Some("project:p"), 1)],
            vec![],
        ] {
            assert!(to_provisions(&bad).is_err(), "{bad:?}");
        }
    }
}
