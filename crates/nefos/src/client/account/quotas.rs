//! `nefos quota show`: the caller's limits and usage in each of its projects.

use anyhow::Context;
use clap::Subcommand;
use nefos_account_api::{ProjectView, Resources, UserQuotas, paths};
use reqwest::Method;
use serde_json::{Value, json};

use super::call;
use crate::client::Session;
use crate::client::output::{Format, FormatArg, Listing};

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Limits, usage and pending reservations per project and resource: yours in each
    /// project you belong to, beside the project's as a whole.
    Show {
        #[command(flatten)]
        format: FormatArg,
    },
}

const COLUMNS: &[&str] = &[
    "project",
    "resource",
    "limit",
    "usage",
    "pending",
    "project limit",
    "project usage",
];

pub async fn run(session: &Session, command: QuotaCommand) -> anyhow::Result<()> {
    let QuotaCommand::Show { format } = command;
    let quotas: UserQuotas = call(session, Method::GET, paths::QUOTAS, &[], &[], None::<&()>)
        .await
        .context("cannot read your quotas")?;
    let resources: Resources = call(
        session,
        Method::GET,
        paths::RESOURCES,
        &[],
        &[],
        None::<&()>,
    )
    .await?;
    let projects: Vec<ProjectView> =
        call(session, Method::GET, paths::PROJECTS, &[], &[], None::<&()>).await?;
    let name_of = |id: &str| {
        projects
            .iter()
            .find(|p| p.id == id)
            .map_or_else(|| id.to_owned(), |p| p.name.clone())
    };
    let mut rows = Vec::new();
    for (project, held) in &quotas {
        for (resource, view) in held {
            let in_bytes = resources.get(resource).and_then(|r| r.unit.as_deref()) == Some("bytes");
            // People read sizes; scripts get exact numbers.
            let amount = |n: i64| match (format.format, in_bytes) {
                (Format::Table, true) => json!(human_bytes(n)),
                _ => json!(n),
            };
            let mut row = json!({
                "project": if format.format == Format::Table { name_of(project) } else { project.clone() },
                "resource": resource,
                "limit": amount(view.limit),
                "usage": amount(view.usage),
                "pending": amount(view.pending),
                "project limit": amount(view.project_limit),
                "project usage": amount(view.project_usage),
            });
            if view.usage > view.limit && format.format == Format::Table {
                row["usage"] = json!(format!("{} (over)", plain(&row["usage"])));
            }
            rows.push(row);
        }
    }
    print!("{}", Listing::new(COLUMNS, &rows).render(format.format));
    Ok(())
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `1.5 GiB`, `20 GiB`, `512 B`.
pub(super) fn human_bytes(bytes: i64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(20 << 30), "20 GiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}
