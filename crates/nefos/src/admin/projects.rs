//! `nefos admin project application …` and `project suspend|resume|terminate`: the
//! Synnefo side of projects, which an administrator decides (Synnefo's
//! `snf-manage project-control`).

use clap::{Args, Subcommand};
use nefos_identity::{Caller, Identity};
use nefos_quota::Quotas;
use nefos_quota::projects::{Application, Grant, LifecycleAction};

use super::amount;
use super::output::{Names, date, or_gone, print_json, table};

#[derive(Debug, Subcommand)]
pub enum ApplicationCommand {
    /// Lists applications, oldest first.
    List {
        /// Only those in this state: pending, approved, denied, dismissed or cancelled.
        #[arg(long, value_parser = ["pending", "approved", "denied", "dismissed", "cancelled"])]
        state: Option<String>,
        /// Print JSON (exact numbers) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Approves a pending application: the project becomes active (or changes) with what
    /// it asks for.
    Approve {
        application: String,
        /// Why, for the applicant.
        #[arg(long, default_value = "")]
        reason: String,
        /// Print JSON (exact numbers) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Denies a pending application; a project that was never approved is deleted.
    Deny {
        application: String,
        /// Why, for the applicant.
        #[arg(long)]
        reason: String,
        /// Print JSON (exact numbers) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// What `project suspend|resume|terminate` take.
#[derive(Debug, Args)]
pub struct LifecycleArgs {
    /// The project, by name or id.
    project: String,
    /// Print JSON (exact numbers) instead of a table.
    #[arg(long)]
    json: bool,
}

/// An application as the commands show it: with the applicant's and the project's names.
#[derive(Debug, serde::Serialize)]
struct ApplicationOut {
    #[serde(flatten)]
    application: Application,
    applicant_name: Option<String>,
    /// The project's name now (an application for a change may ask for another).
    project_name: Option<String>,
}

#[derive(Debug, serde::Serialize)]
struct ProjectStateOut {
    id: String,
    name: String,
    state: String,
}

pub async fn applications(
    identity: &Identity,
    quotas: &Quotas,
    command: ApplicationCommand,
) -> anyhow::Result<()> {
    let op = Caller::Operator;
    match command {
        ApplicationCommand::List { state, json } => {
            let found = quotas.applications(op, None, state.as_deref()).await?;
            print(identity, quotas, found, Shape::List, json).await
        }
        ApplicationCommand::Approve {
            application,
            reason,
            json,
        } => {
            let decided = quotas.approve(op, &application, &reason).await?;
            print(identity, quotas, vec![decided], Shape::One, json).await
        }
        ApplicationCommand::Deny {
            application,
            reason,
            json,
        } => {
            if reason.trim().is_empty() {
                anyhow::bail!("a denial needs a reason (--reason), which the applicant reads");
            }
            let decided = quotas.deny(op, &application, &reason).await?;
            print(identity, quotas, vec![decided], Shape::One, json).await
        }
    }
}

pub async fn lifecycle(
    identity: &Identity,
    quotas: &Quotas,
    action: LifecycleAction,
    args: LifecycleArgs,
) -> anyhow::Result<()> {
    let op = Caller::Operator;
    let project = identity.project_by_id_or_name(op, &args.project).await?;
    quotas.change_project_state(op, &project.id, action).await?;
    let info = quotas.project(op, &project.id).await?;
    let out = ProjectStateOut {
        id: info.id,
        name: info.name,
        state: info.state,
    };
    if args.json {
        return print_json(&out);
    }
    println!("project {} ({}) is {}", out.name, out.id, out.state);
    Ok(())
}

/// Whether the output is a listing (a JSON array) or one decided application (an object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    List,
    One,
}

async fn print(
    identity: &Identity,
    quotas: &Quotas,
    applications: Vec<Application>,
    shape: Shape,
    json: bool,
) -> anyhow::Result<()> {
    let names = Names::load(identity).await?;
    let out: Vec<ApplicationOut> = applications
        .into_iter()
        .map(|application| ApplicationOut {
            applicant_name: names.user(&application.applicant_id).map(str::to_owned),
            project_name: names.project(&application.project_id).map(str::to_owned),
            application,
        })
        .collect();
    if json {
        return match (shape, out.as_slice()) {
            (Shape::One, [one]) => print_json(one),
            _ => print_json(&out),
        };
    }
    let units: std::collections::BTreeMap<String, String> = quotas
        .resources()
        .await?
        .into_iter()
        .map(|r| (r.name, r.unit))
        .collect();
    let mut rows = table(&[
        "id",
        "name",
        "applicant",
        "state",
        "submitted",
        "ends",
        "policies",
        "resources (per member / project)",
        "reason",
    ]);
    for a in &out {
        let app = &a.application;
        let resources = app
            .resources
            .iter()
            .map(|(name, grant)| grant_text(name, grant, units.get(name).map(String::as_str)))
            .collect::<Vec<_>>()
            .join("\n");
        rows.add_row(vec![
            app.id.clone(),
            app.name.clone(),
            or_gone(a.applicant_name.as_deref()),
            app.state.clone(),
            date(app.created_at),
            date(app.end_at),
            format!(
                "join {}, leave {}{}",
                app.join_policy,
                app.leave_policy,
                app.max_members
                    .map(|m| format!(", max {m} members"))
                    .unwrap_or_default()
            ),
            resources,
            app.reason.clone(),
        ]);
    }
    println!("{rows}");
    if out.is_empty() {
        println!("no applications");
    }
    if let (Shape::One, [a]) = (shape, out.as_slice()) {
        let project = quotas
            .project(Caller::Operator, &a.application.project_id)
            .await?;
        println!(
            "application {} is {}; project {} is {}",
            a.application.id, a.application.state, project.name, project.state
        );
    }
    Ok(())
}

fn grant_text(resource: &str, grant: &Grant, unit: Option<&str>) -> String {
    let unit = unit.unwrap_or("count");
    format!(
        "{resource} {} / {}",
        amount::show(grant.member_capacity, unit),
        amount::show(grant.project_capacity, unit)
    )
}
