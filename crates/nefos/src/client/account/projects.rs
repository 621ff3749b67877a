//! `nefos project …`: list, show and apply for projects; join, leave; and, as a project's
//! owner, see its members and accept or reject their requests.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use nefos_account_api::{
    Applied, GrantView, IdText, MembershipAction, MembershipCreated, MembershipRequest,
    MembershipView, ProjectSpec, ProjectView, paths,
};
use reqwest::Method;

use super::call;
use super::quotas::human_bytes;
use crate::client::Session;
use crate::client::output::{Format, FormatArg, Listing};

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// The projects you own, belong to, or asked to join.
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    /// One project: its settings and what it grants each member and all together.
    Show {
        project: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Applies for a new project (an administrator approves or denies it), or, with
    /// --project, for a change of one you own.
    Apply(Box<ApplyArgs>),
    /// Asks to join a project: at once if its join policy is auto.
    Join { project: String },
    /// Leaves a project (or asks to, if its leave policy is moderated).
    Leave { project: String },
    /// The members of a project and their requests (all of them for its owner).
    Members {
        project: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Accepts a request to join (or leave) one of your projects, by membership id.
    Accept { membership: i64 },
    /// Rejects a request to join (or leave) one of your projects, by membership id.
    Reject { membership: i64 },
    /// Removes a member from one of your projects, by membership id.
    Remove { membership: i64 },
}

/// What `nefos project apply` asks for.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The project's name.
    #[arg(long)]
    pub name: String,
    /// When it ends (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    pub end_date: String,
    /// When it starts (default: on approval).
    #[arg(long)]
    pub start_date: Option<String>,
    #[arg(long, default_value = "")]
    pub description: String,
    #[arg(long)]
    pub homepage: Option<String>,
    /// Who may join: auto, moderated (you accept) or closed.
    #[arg(long, default_value = "moderated")]
    pub join_policy: String,
    /// Who may leave: auto, moderated or closed.
    #[arg(long, default_value = "auto")]
    pub leave_policy: String,
    #[arg(long)]
    pub max_members: Option<i64>,
    /// What it grants: RESOURCE=PER_MEMBER[,TOTAL] (sizes like 10GiB for byte
    /// resources; TOTAL defaults to PER_MEMBER × max members, or PER_MEMBER).
    #[arg(long = "resource", value_name = "RESOURCE=PER_MEMBER[,TOTAL]")]
    pub resources: Vec<String>,
    /// Why the project is needed, for the administrator.
    #[arg(long)]
    pub comments: Option<String>,
    /// The project to change, instead of a new one.
    #[arg(long)]
    pub project: Option<String>,
}

const PROJECT_COLUMNS: &[&str] = &["id", "name", "state", "owner", "end_date", "join_policy"];
const MEMBER_COLUMNS: &[&str] = &["id", "user", "state"];

pub async fn run(session: &Session, command: ProjectCommand) -> anyhow::Result<()> {
    match command {
        ProjectCommand::List { format } => {
            let projects: Vec<ProjectView> =
                call(session, Method::GET, paths::PROJECTS, &[], &[], None::<&()>).await?;
            let rows = projects
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()?;
            print!(
                "{}",
                Listing::new(PROJECT_COLUMNS, &rows).render(format.format)
            );
        }
        ProjectCommand::Show { project, format } => {
            let view: ProjectView = call(
                session,
                Method::GET,
                paths::PROJECT,
                &[&project],
                &[],
                None::<&()>,
            )
            .await?;
            show(&view, format.format)?;
        }
        ProjectCommand::Apply(args) => {
            let ApplyArgs {
                name,
                end_date,
                start_date,
                description,
                homepage,
                join_policy,
                leave_policy,
                max_members,
                resources,
                comments,
                project,
            } = *args;
            let mut grants = BTreeMap::new();
            for text in &resources {
                let (resource, grant) = parse_grant(text, max_members)?;
                grants.insert(resource, grant);
            }
            let spec = ProjectSpec {
                name: Some(name),
                end_date: Some(end_date),
                start_date,
                description: Some(description),
                homepage,
                join_policy: Some(join_policy),
                leave_policy: Some(leave_policy),
                max_members,
                resources: Some(grants),
                comments,
                ..ProjectSpec::default()
            };
            let applied: Applied = match &project {
                Some(id) => {
                    call(
                        session,
                        Method::POST,
                        paths::PROJECT,
                        &[id],
                        &[],
                        Some(&spec),
                    )
                    .await?
                }
                None => {
                    call(
                        session,
                        Method::POST,
                        paths::PROJECTS,
                        &[],
                        &[],
                        Some(&spec),
                    )
                    .await?
                }
            };
            println!(
                "project {} applied for (application {}); an administrator decides",
                applied.id, applied.application
            );
        }
        ProjectCommand::Join { project } => {
            let request = MembershipRequest::Join {
                project: IdText::Text(project.clone()),
            };
            let created: MembershipCreated = call(
                session,
                Method::POST,
                paths::MEMBERSHIPS,
                &[],
                &[],
                Some(&request),
            )
            .await?;
            let membership: MembershipView = membership(session, created.id).await?;
            println!(
                "membership {} in {project}: {}",
                membership.id, membership.state
            );
        }
        ProjectCommand::Leave { project } => {
            let Some(user) = session.user_id.as_deref() else {
                bail!("log in with credentials (not a bare token and storage URL) to leave");
            };
            let mine: Vec<MembershipView> = memberships(session, &project)
                .await?
                .into_iter()
                .filter(|m| m.user == user && m.state == "accepted")
                .collect();
            let Some(own) = mine.first() else {
                bail!("you are not a member of {project}");
            };
            let left = act(session, own.id, MembershipAction::Leave(None)).await?;
            // Astakos calls a membership that ended `removed`, however it ended.
            match left.state.as_str() {
                "leave_requested" => println!("asked to leave {project}; its owner decides"),
                _ => println!("left {project}"),
            }
        }
        ProjectCommand::Members { project, format } => {
            let members = memberships(session, &project).await?;
            let rows = members
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()?;
            print!(
                "{}",
                Listing::new(MEMBER_COLUMNS, &rows).render(format.format)
            );
        }
        ProjectCommand::Accept { membership } => {
            report(act(session, membership, MembershipAction::Accept(None)).await?);
        }
        ProjectCommand::Reject { membership } => {
            report(act(session, membership, MembershipAction::Reject(None)).await?);
        }
        ProjectCommand::Remove { membership } => {
            report(act(session, membership, MembershipAction::Remove(None)).await?);
        }
    }
    Ok(())
}

fn report(membership: MembershipView) {
    println!(
        "membership {} of {} in {}: {}",
        membership.id, membership.user, membership.project, membership.state
    );
}

async fn membership(session: &Session, id: i64) -> anyhow::Result<MembershipView> {
    call(
        session,
        Method::GET,
        paths::MEMBERSHIP,
        &[&id.to_string()],
        &[],
        None::<&()>,
    )
    .await
}

async fn memberships(session: &Session, project: &str) -> anyhow::Result<Vec<MembershipView>> {
    call(
        session,
        Method::GET,
        paths::MEMBERSHIPS,
        &[],
        &[("project", project)],
        None::<&()>,
    )
    .await
}

/// Acts on a membership and returns it as it is now.
async fn act(
    session: &Session,
    id: i64,
    action: MembershipAction,
) -> anyhow::Result<MembershipView> {
    let id_text = id.to_string();
    let _: serde_json::Value = call(
        session,
        Method::POST,
        paths::MEMBERSHIP_ACTION,
        &[&id_text],
        &[],
        Some(&action),
    )
    .await?;
    membership(session, id).await
}

fn show(view: &ProjectView, format: Format) -> anyhow::Result<()> {
    if format != Format::Table {
        let rows = vec![serde_json::to_value(view)?];
        let columns: &[&str] = &[
            "id",
            "name",
            "state",
            "owner",
            "description",
            "homepage",
            "start_date",
            "end_date",
            "join_policy",
            "leave_policy",
            "max_members",
            "resources",
        ];
        print!("{}", Listing::new(columns, &rows).render(format));
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    let field = |name: &str, value: String| vec![name.to_owned(), value];
    table.add_row(field("id", view.id.clone()));
    table.add_row(field("name", view.name.clone()));
    table.add_row(field("state", view.state.clone()));
    table.add_row(field("owner", view.owner.clone().unwrap_or_default()));
    table.add_row(field("description", view.description.clone()));
    table.add_row(field("homepage", view.homepage.clone()));
    table.add_row(field("ends", view.end_date.clone().unwrap_or_default()));
    table.add_row(field(
        "policies",
        format!("join {}, leave {}", view.join_policy, view.leave_policy),
    ));
    for (resource, grant) in &view.resources {
        let amount = |n: i64| {
            if resource.ends_with("ram")
                || resource.ends_with("disk")
                || resource.ends_with("space")
            {
                human_bytes(n)
            } else {
                n.to_string()
            }
        };
        table.add_row(field(
            resource,
            format!(
                "{} per member, {} in all",
                amount(grant.member_capacity),
                amount(grant.project_capacity)
            ),
        ));
    }
    println!("{table}");
    Ok(())
}

/// `RESOURCE=PER_MEMBER[,TOTAL]`, sizes with binary suffixes.
fn parse_grant(text: &str, max_members: Option<i64>) -> anyhow::Result<(String, GrantView)> {
    let (resource, amounts) = text
        .split_once('=')
        .with_context(|| format!("{text:?} is not RESOURCE=PER_MEMBER[,TOTAL]"))?;
    let (member, total) = match amounts.split_once(',') {
        Some((member, total)) => (parse_amount(member)?, Some(parse_amount(total)?)),
        None => (parse_amount(amounts)?, None),
    };
    let total = total.unwrap_or_else(|| {
        max_members
            .filter(|m| *m > 0)
            .map_or(member, |m| member.saturating_mul(m))
    });
    Ok((
        resource.trim().to_owned(),
        GrantView {
            member_capacity: member,
            project_capacity: total,
        },
    ))
}

/// `12`, `512MiB`, `10GiB`, `1TiB` (also `10G`, `10GB` as binary units).
fn parse_amount(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: i64 = number
        .parse()
        .with_context(|| format!("{text:?} is not an amount"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => bail!("unknown unit {other:?} in {text:?}"),
    };
    number
        .checked_mul(1 << shift)
        .with_context(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_read_with_units_and_totals() {
        let (resource, grant) = parse_grant("pithos.diskspace=1GiB", Some(10)).unwrap();
        assert_eq!(resource, "pithos.diskspace");
        assert_eq!(
            (grant.member_capacity, grant.project_capacity),
            (1 << 30, 10 << 30)
        );
        let (_, grant) = parse_grant("cyclades.vm=2,5", None).unwrap();
        assert_eq!((grant.member_capacity, grant.project_capacity), (2, 5));
        assert!(parse_grant("cyclades.vm", None).is_err());
        assert!(parse_grant("x=1XB", None).is_err());
    }
}
