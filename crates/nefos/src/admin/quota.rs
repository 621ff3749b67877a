//! `nefos admin quota show` and `set`: a user's or a project's limits and usage, and the
//! limits a project grants (Synnefo's `snf-manage quota-list` and `project-modify`).

use std::collections::BTreeMap;

use clap::{ArgGroup, Args, Subcommand};
use nefos_identity::{Caller, Identity, ProjectKind};
use nefos_quota::projects::{Grant, ProjectInfo};
use nefos_quota::{HoldingView, Quotas, Resource};

use super::amount;
use super::output::{Names, or_gone, print_json, table};
use super::reconcile::{self, ReconcileArgs};
use super::resource;

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Limits, usage and pending (reserved by unresolved commissions) of every resource:
    /// a user's in each of its projects, or a project's and each of its members'. Usage
    /// above a limit is marked OVER.
    Show(ShowArgs),
    /// Sets a limit: a user's (in its personal project), or a project's for all its members
    /// together and, with --member-limit, for each member.
    Set(SetArgs),
    /// Compares `pithos.diskspace` usage with what object storage holds, and with --fix
    /// corrects it; lists pending commissions. Exits non-zero when usage differs and
    /// --fix was not given.
    Reconcile(ReconcileArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("holder").required(true).args(["user", "project"])))]
pub struct ShowArgs {
    /// A user, by name or id.
    #[arg(long)]
    user: Option<String>,
    /// A project, by name or id.
    #[arg(long)]
    project: Option<String>,
    /// Only this resource.
    #[arg(long)]
    resource: Option<String>,
    /// Print JSON (exact numbers) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("holder").required(true).args(["user", "project"])))]
pub struct SetArgs {
    /// A user (by name or id): sets the limit of its personal project.
    #[arg(long)]
    user: Option<String>,
    /// A project (by name or id): sets its limit for all members together.
    #[arg(long)]
    project: Option<String>,
    /// The resource, e.g. `pithos.diskspace` or `cyclades.vm`.
    resource: String,
    /// The limit: `20GiB`, `512MiB` or bytes for sizes, a number for counts.
    #[arg(allow_hyphen_values = true)]
    limit: String,
    /// The limit of each member of the project (default: the one in force now).
    #[arg(long, conflicts_with = "user", allow_hyphen_values = true)]
    member_limit: Option<String>,
    /// Print JSON (exact numbers) instead of a table.
    #[arg(long)]
    json: bool,
}

/// One holding as the commands show it.
#[derive(Debug, serde::Serialize)]
struct HoldingOut {
    project_id: String,
    project_name: Option<String>,
    /// `None` for the project's own holding: all its members together.
    member_id: Option<String>,
    member_name: Option<String>,
    resource: String,
    unit: String,
    limit: i64,
    usage: i64,
    pending: i64,
    over_limit: bool,
}

#[derive(Debug, serde::Serialize)]
struct Named {
    id: String,
    name: String,
}

#[derive(Debug, serde::Serialize)]
struct ShowOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<Named>,
    holdings: Vec<HoldingOut>,
}

#[derive(Debug, serde::Serialize)]
struct SetOut {
    project_id: String,
    project_name: String,
    resource: String,
    unit: String,
    project_limit: i64,
    member_limit: i64,
}

pub async fn run(
    identity: &Identity,
    quotas: &Quotas,
    command: QuotaCommand,
) -> anyhow::Result<()> {
    match command {
        QuotaCommand::Show(args) => show(identity, quotas, args).await,
        QuotaCommand::Set(args) => set(identity, quotas, args).await,
        QuotaCommand::Reconcile(args) => reconcile::run(identity, quotas, args).await,
    }
}

async fn show(identity: &Identity, quotas: &Quotas, args: ShowArgs) -> anyhow::Result<()> {
    let op = Caller::Operator;
    if let Some(name) = &args.resource {
        resource::find(quotas, name).await?;
    }
    let names = Names::load(identity).await?;
    let units: BTreeMap<String, String> = quotas
        .resources()
        .await?
        .into_iter()
        .map(|r| (r.name, r.unit))
        .collect();
    let holding =
        |project_id: &str, member: Option<&str>, resource: &str, view: &HoldingView| HoldingOut {
            project_id: project_id.to_owned(),
            project_name: names.project(project_id).map(str::to_owned),
            member_id: member.map(str::to_owned),
            member_name: member.and_then(|m| names.user(m)).map(str::to_owned),
            resource: resource.to_owned(),
            unit: units.get(resource).cloned().unwrap_or_default(),
            limit: view.limit,
            usage: view.usage,
            pending: view.pending,
            over_limit: view.over_limit(),
        };
    let mut out = ShowOut {
        user: None,
        project: None,
        holdings: Vec::new(),
    };
    if let Some(user) = &args.user {
        let user = identity.user_by_id_or_name(op, user).await?;
        for quota in quotas.user_quotas(op, &user.id).await? {
            for (resource, view) in &quota.member {
                out.holdings
                    .push(holding(&quota.project_id, Some(&user.id), resource, view));
            }
            // A personal project's whole is its user; a shared one's limit binds all its
            // members together, which is worth seeing beside the member's own.
            let kind = identity.project(op, &quota.project_id).await?.kind;
            if kind == ProjectKind::Regular {
                for (resource, view) in &quota.project {
                    out.holdings
                        .push(holding(&quota.project_id, None, resource, view));
                }
            }
        }
        out.user = Some(Named {
            id: user.id,
            name: user.name,
        });
    } else if let Some(project) = &args.project {
        let project = identity.project_by_id_or_name(op, project).await?;
        let quota = quotas.project_quota(op, &project.id).await?;
        for (resource, view) in &quota.project {
            out.holdings
                .push(holding(&project.id, None, resource, view));
        }
        let members = quotas.member_quotas(op, &project.id).await?;
        let mut members: Vec<_> = members.into_iter().collect();
        members.sort_by_key(|(id, _)| (names.user(id).map(str::to_owned), id.clone()));
        for (member, views) in &members {
            for (resource, view) in views {
                out.holdings
                    .push(holding(&project.id, Some(member), resource, view));
            }
        }
        out.project = Some(Named {
            id: project.id,
            name: project.name,
        });
    }
    if let Some(only) = &args.resource {
        out.holdings.retain(|h| &h.resource == only);
    }
    if args.json {
        return print_json(&out);
    }
    if let Some(user) = &out.user {
        println!("quotas of user {} ({})", user.name, user.id);
    }
    if let Some(project) = &out.project {
        println!("quotas of project {} ({})", project.name, project.id);
    }
    let mut rows = table(&[
        "project", "member", "resource", "limit", "usage", "pending", "",
    ]);
    for h in &out.holdings {
        rows.add_row(vec![
            or_gone(h.project_name.as_deref()),
            match &h.member_id {
                Some(_) => or_gone(h.member_name.as_deref()),
                None => "(all members)".to_owned(),
            },
            h.resource.clone(),
            amount::show(h.limit, &h.unit),
            amount::show(h.usage, &h.unit),
            amount::show(h.pending, &h.unit),
            if h.over_limit { "OVER" } else { "" }.to_owned(),
        ]);
    }
    println!("{rows}");
    let over = out.holdings.iter().filter(|h| h.over_limit).count();
    if over > 0 {
        println!(
            "{over} marked OVER use more than their limit: nothing can be added there until \
             enough is released or the limit is raised"
        );
    }
    Ok(())
}

async fn set(identity: &Identity, quotas: &Quotas, args: SetArgs) -> anyhow::Result<()> {
    let op = Caller::Operator;
    let resource = resource::find(quotas, &args.resource).await?;
    let limit = amount::parse(&args.limit, &resource.name, &resource.unit)?;
    let project_id = if let Some(user) = &args.user {
        identity.user_by_id_or_name(op, user).await?.base_project_id
    } else if let Some(project) = &args.project {
        identity.project_by_id_or_name(op, project).await?.id
    } else {
        anyhow::bail!("name a user (--user) or a project (--project)");
    };
    let project = quotas.project(op, &project_id).await?;
    let member = match (&args.user, &args.member_limit) {
        (Some(_), _) => limit,
        (None, Some(text)) => amount::parse(text, &resource.name, &resource.unit)?,
        (None, None) => member_limit_in_force(&project, &resource),
    };
    let grant = Grant {
        member_capacity: member,
        project_capacity: limit,
    };
    quotas
        .set_grant(op, &project.id, &resource.name, grant)
        .await?;
    let out = SetOut {
        project_id: project.id,
        project_name: project.name,
        resource: resource.name,
        unit: resource.unit,
        project_limit: grant.project_capacity,
        member_limit: grant.member_capacity,
    };
    if args.json {
        return print_json(&out);
    }
    match &args.user {
        Some(_) => println!(
            "{} of {} (its personal project) is now limited to {}",
            out.resource,
            out.project_name,
            amount::show(out.project_limit, &out.unit)
        ),
        None => println!(
            "{} of project {}: {} for all members together, {} for each member",
            out.resource,
            out.project_name,
            amount::show(out.project_limit, &out.unit),
            amount::show(out.member_limit, &out.unit)
        ),
    }
    match project.state.as_str() {
        "active" => {}
        "uninitialized" => println!(
            "note: the project is not approved yet; it grants nothing until it is, and approving \
             its application replaces its grants with what the application asks"
        ),
        state => println!("note: the project is {state}; it grants nothing while it is"),
    }
    Ok(())
}

/// What the project grants each member of `resource` now: its grant, or the default for
/// its kind of project.
fn member_limit_in_force(project: &ProjectInfo, resource: &Resource) -> i64 {
    match project.resources.get(&resource.name) {
        Some(grant) => grant.member_capacity,
        None if project.kind == "regular" => resource.project_default,
        None => resource.base_default,
    }
}
