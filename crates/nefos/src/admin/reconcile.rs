//! `nefos admin quota reconcile`: recorded `pithos.diskspace` usage against what object
//! storage holds (Synnefo's `snf-manage reconcile-resources-pithos`), and the commissions
//! left pending (its `reconcile-commissions-*`).

use anyhow::Context;
use clap::Args;
use nefos_identity::Identity;
use nefos_quota::{Discrepancy, PITHOS_DISKSPACE, QuotaError, Quotas};

use super::amount;
use super::output::{Names, date, or_gone, print_json, rfc3339, table};

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Set every differing usage to what is stored.
    #[arg(long)]
    fix: bool,
    /// Print JSON (exact numbers) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, serde::Serialize)]
struct DifferenceOut {
    project_id: String,
    project_name: Option<String>,
    /// `None` for the project's own holding: all its members together.
    member_id: Option<String>,
    member_name: Option<String>,
    resource: String,
    recorded: i64,
    actual: i64,
}

#[derive(Debug, serde::Serialize)]
struct ProvisionOut {
    project_id: String,
    member_id: String,
    resource: String,
    quantity: i64,
}

#[derive(Debug, serde::Serialize)]
struct PendingOut {
    serial: i64,
    client: String,
    name: String,
    issued_at: String,
    #[serde(skip)]
    issued_micros: i64,
    provisions: Vec<ProvisionOut>,
}

#[derive(Debug, serde::Serialize)]
struct ReconcileOut {
    resource: &'static str,
    fixed: bool,
    differences: Vec<DifferenceOut>,
    pending_commissions: Vec<PendingOut>,
}

pub async fn run(identity: &Identity, quotas: &Quotas, args: ReconcileArgs) -> anyhow::Result<()> {
    let resource = PITHOS_DISKSPACE.name;
    let found = compare(quotas, args.fix).await?;
    let names = Names::load(identity).await?;
    let differences = found
        .into_iter()
        .map(|d| DifferenceOut {
            project_name: names.project(&d.project_id).map(str::to_owned),
            member_name: d
                .member_id
                .as_deref()
                .and_then(|m| names.user(m))
                .map(str::to_owned),
            project_id: d.project_id,
            member_id: d.member_id,
            resource: d.resource,
            recorded: d.recorded,
            actual: d.actual,
        })
        .collect::<Vec<_>>();
    let pending_commissions = pending(quotas).await?;
    let out = ReconcileOut {
        resource,
        fixed: args.fix && !differences.is_empty(),
        differences,
        pending_commissions,
    };
    if args.json {
        print_json(&out)?;
    } else {
        print_report(&out, &names);
    }
    if !out.differences.is_empty() && !args.fix {
        anyhow::bail!(
            "{} holdings of {resource} differ from what object storage holds; \
             `nefos admin quota reconcile --fix` sets them to it",
            out.differences.len()
        );
    }
    Ok(())
}

/// Reads what object storage holds and the recorded usage in one snapshot, so that an
/// upload committing meanwhile is counted in both or in neither; with `fix`, corrects the
/// usage in that same transaction.
async fn compare(quotas: &Quotas, fix: bool) -> anyhow::Result<Vec<Discrepancy>> {
    let mut tx = quotas.database().begin_snapshot().await?;
    let stored = nefos_db::storage::stored_bytes_by_member(&mut *tx).await?;
    let found = match quotas
        .reconcile_in(&mut tx, PITHOS_DISKSPACE.name, &stored, fix)
        .await
    {
        Ok(found) => found,
        Err(QuotaError::Db(error)) if error.is_serialization_failure() => {
            anyhow::bail!(
                "usage changed while it was being corrected (uploads or deletions are \
                 running); nothing was changed, run the command again"
            )
        }
        Err(other) => return Err(other.into()),
    };
    if fix {
        tx.commit()
            .await
            .context("cannot commit the corrected usage; nothing was changed")?;
    } else {
        tx.rollback()
            .await
            .context("cannot end the reconciliation's transaction")?;
    }
    Ok(found)
}

/// Every pending commission with its provisions; one resolved meanwhile is left out.
async fn pending(quotas: &Quotas) -> anyhow::Result<Vec<PendingOut>> {
    let mut out = Vec::new();
    for serial in quotas.pending(None).await? {
        let commission = match quotas.commission(serial).await {
            Ok(commission) => commission,
            Err(QuotaError::NoCommission { .. }) => continue,
            Err(other) => return Err(other.into()),
        };
        out.push(PendingOut {
            serial: commission.serial,
            client: commission.client,
            name: commission.name,
            issued_at: rfc3339(commission.issued_at),
            issued_micros: commission.issued_at,
            provisions: commission
                .provisions
                .into_iter()
                .map(|p| ProvisionOut {
                    project_id: p.project_id,
                    member_id: p.member_id,
                    resource: p.resource,
                    quantity: p.quantity,
                })
                .collect(),
        });
    }
    Ok(out)
}

fn print_report(out: &ReconcileOut, names: &Names) {
    let bytes = |n: i64| format!("{} ({n})", amount::show_bytes(n));
    if out.differences.is_empty() {
        println!(
            "{}: every holding matches what object storage holds",
            out.resource
        );
    } else {
        let mut rows = table(&["project", "member", "resource", "recorded", "actual"]);
        for d in &out.differences {
            rows.add_row(vec![
                or_gone(d.project_name.as_deref()),
                match &d.member_id {
                    Some(_) => or_gone(d.member_name.as_deref()),
                    None => "(all members)".to_owned(),
                },
                d.resource.clone(),
                bytes(d.recorded),
                bytes(d.actual),
            ]);
        }
        println!("{rows}");
        if out.fixed {
            println!(
                "{} holdings differed from what object storage holds; corrected",
                out.differences.len()
            );
        }
    }
    if out.pending_commissions.is_empty() {
        println!("no pending commissions");
        return;
    }
    println!(
        "{} pending commissions (a running control plane rejects those a stopped process \
         held once it has been silent for [quotas] abandoned_after_seconds, 30 s by default):",
        out.pending_commissions.len(),
    );
    let mut rows = table(&["serial", "client", "name", "issued", "provisions"]);
    for c in &out.pending_commissions {
        let provisions = c
            .provisions
            .iter()
            .map(|p| {
                let holder = names
                    .user(&p.member_id)
                    .map_or_else(|| p.member_id.clone(), str::to_owned);
                let project = names
                    .project(&p.project_id)
                    .map_or_else(|| p.project_id.clone(), str::to_owned);
                format!("{} {:+} for {holder} in {project}", p.resource, p.quantity)
            })
            .collect::<Vec<_>>()
            .join("\n");
        rows.add_row(vec![
            c.serial.to_string(),
            c.client.clone(),
            c.name.clone(),
            date(c.issued_micros),
            provisions,
        ]);
    }
    println!("{rows}");
}
