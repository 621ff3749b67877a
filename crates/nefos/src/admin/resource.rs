//! `nefos admin resource`: the resources quotas count and their default limits (Synnefo's
//! `snf-manage resource-list` and `resource-modify`).

use clap::{ArgGroup, Args, Subcommand};
use nefos_identity::Caller;
use nefos_quota::{Quotas, Resource};

use super::amount;
use super::output::{print_json, table};

#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// Lists the resources and their defaults.
    List {
        /// Print JSON (exact numbers) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Changes a resource's default limits. A personal project that sets no limit of its
    /// own follows a new base default at once; a regular project that grants nothing of the
    /// resource follows the project default.
    SetDefault(SetDefaultArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("default").required(true).multiple(true).args(["base", "project"])))]
pub struct SetDefaultArgs {
    /// The resource, e.g. `pithos.diskspace`.
    name: String,
    /// The limit of every personal project (`20GiB`, `512MiB` for sizes; a number for
    /// counts).
    #[arg(long, allow_hyphen_values = true)]
    base: Option<String>,
    /// The limit, per member and for the whole project, of a regular project whose grant
    /// omits the resource.
    #[arg(long, allow_hyphen_values = true)]
    project: Option<String>,
    /// Print JSON (exact numbers) instead of a table.
    #[arg(long)]
    json: bool,
}

/// A resource as the commands show it.
#[derive(Debug, serde::Serialize)]
struct ResourceOut {
    name: String,
    service: String,
    unit: String,
    description: String,
    base_default: i64,
    project_default: i64,
}

impl From<Resource> for ResourceOut {
    fn from(r: Resource) -> Self {
        ResourceOut {
            name: r.name,
            service: r.service,
            unit: r.unit,
            description: r.description,
            base_default: r.base_default,
            project_default: r.project_default,
        }
    }
}

pub async fn run(quotas: &Quotas, command: ResourceCommand) -> anyhow::Result<()> {
    match command {
        ResourceCommand::List { json } => {
            let resources: Vec<ResourceOut> = quotas
                .resources()
                .await?
                .into_iter()
                .map(ResourceOut::from)
                .collect();
            print(&resources, json)
        }
        ResourceCommand::SetDefault(args) => {
            let resource = find(quotas, &args.name).await?;
            let read = |text: &Option<String>| {
                text.as_deref()
                    .map(|t| amount::parse(t, &resource.name, &resource.unit))
                    .transpose()
            };
            let base = read(&args.base)?;
            let project = read(&args.project)?;
            let changed = quotas
                .set_resource_defaults(Caller::Operator, &resource.name, base, project)
                .await?;
            let changed = ResourceOut::from(changed);
            if args.json {
                print_json(&changed)
            } else {
                print(&[changed], false)
            }
        }
    }
}

/// A registered resource by name; an unknown name is refused with the known ones.
pub async fn find(quotas: &Quotas, name: &str) -> anyhow::Result<Resource> {
    let resources = quotas.resources().await?;
    let known: Vec<&str> = resources.iter().map(|r| r.name.as_str()).collect();
    let known = known.join(", ");
    resources
        .iter()
        .find(|r| r.name == name)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("unknown resource {name:?}; the resources are {known}"))
}

fn print(resources: &[ResourceOut], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&resources);
    }
    let mut out = table(&[
        "name",
        "service",
        "unit",
        "base default",
        "project default",
        "description",
    ]);
    for r in resources {
        out.add_row(vec![
            r.name.clone(),
            r.service.clone(),
            r.unit.clone(),
            amount::show(r.base_default, &r.unit),
            amount::show(r.project_default, &r.unit),
            r.description.clone(),
        ]);
    }
    println!("{out}");
    Ok(())
}
