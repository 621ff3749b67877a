//! `nefos admin usage report`: what each user or project used over a period, from the
//! usage events accepted commissions leave (VM-hours, core-hours, GiB-months …).

use chrono::{DateTime, NaiveDate};
use clap::{Args, Subcommand, ValueEnum};
use nefos_identity::{Caller, Identity};
use nefos_quota::Quotas;
use thiserror::Error;

use super::amount;
use super::output::{Names, or_gone, print_json, rfc3339, table};

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Usage over [--from, --to) by user or by project, per resource.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Start of the period: RFC 3339 (2025-01-01T00:00:00Z) or a date (2025-01-01, at
    /// midnight UTC).
    #[arg(long, value_parser = parse_time)]
    from: i64,
    /// End of the period, excluded; the same forms.
    #[arg(long, value_parser = parse_time)]
    to: i64,
    /// Who usage is summed for.
    #[arg(long, value_enum)]
    by: By,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum By {
    User,
    Project,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Error)]
#[error("{text:?} is not a time: give RFC 3339 (2025-01-31T12:00:00Z) or a date (2025-01-31)")]
pub struct TimeError {
    text: String,
}

/// A time as microseconds since the epoch, from RFC 3339 or a date (its midnight UTC).
fn parse_time(text: &str) -> Result<i64, TimeError> {
    let error = || TimeError {
        text: text.to_owned(),
    };
    let trimmed = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(time.timestamp_micros());
    }
    NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|midnight| midnight.and_utc().timestamp_micros())
        .ok_or_else(error)
}

#[derive(Debug, serde::Serialize)]
struct LineOut {
    holder_id: String,
    holder_name: Option<String>,
    resource: String,
    unit: String,
    amount: f64,
    /// Usage at the end of the period, in the resource's own unit (bytes or a count).
    usage_at_end: i64,
}

#[derive(Debug, serde::Serialize)]
struct ReportOut {
    from: String,
    to: String,
    by: &'static str,
    lines: Vec<LineOut>,
}

pub async fn run(
    identity: &Identity,
    quotas: &Quotas,
    command: UsageCommand,
) -> anyhow::Result<()> {
    let UsageCommand::Report(args) = command;
    let by_project = args.by == By::Project;
    let report = quotas
        .usage_report(Caller::Operator, args.from, args.to, by_project)
        .await?;
    let names = Names::load(identity).await?;
    let units: std::collections::BTreeMap<String, String> = quotas
        .resources()
        .await?
        .into_iter()
        .map(|r| (r.name, r.unit))
        .collect();
    let out = ReportOut {
        from: rfc3339(report.from),
        to: rfc3339(report.to),
        by: if by_project { "project" } else { "user" },
        lines: report
            .lines
            .into_iter()
            .map(|line| LineOut {
                holder_name: if by_project {
                    names.project(&line.holder)
                } else {
                    names.user(&line.holder)
                }
                .map(str::to_owned),
                holder_id: line.holder,
                resource: line.resource,
                unit: line.unit,
                amount: line.amount,
                usage_at_end: line.usage_at_end,
            })
            .collect(),
    };
    match args.format {
        Format::Json => print_json(&out)?,
        Format::Csv => print!("{}", csv(&out)),
        Format::Table => {
            println!("usage by {} from {} to {}", out.by, out.from, out.to);
            let mut rows = table(&[
                out.by,
                "name",
                "resource",
                "amount",
                "unit",
                "in use at the end",
            ]);
            for line in &out.lines {
                let unit = units.get(&line.resource).map_or("count", String::as_str);
                rows.add_row(vec![
                    line.holder_id.clone(),
                    or_gone(line.holder_name.as_deref()),
                    line.resource.clone(),
                    format!("{:.3}", line.amount),
                    line.unit.clone(),
                    amount::show(line.usage_at_end, unit),
                ]);
            }
            println!("{rows}");
            if out.lines.is_empty() {
                println!("no usage in this period");
            }
        }
    }
    Ok(())
}

/// The report as CSV (quoted as RFC 4180 says, lines ending in `\n`): a header, then one line per holder and resource, the
/// amount in full precision.
fn csv(report: &ReportOut) -> String {
    let mut text = String::from("holder_id,holder_name,resource,amount,unit,usage_at_end\n");
    for line in &report.lines {
        let fields = [
            line.holder_id.clone(),
            line.holder_name.clone().unwrap_or_default(),
            line.resource.clone(),
            line.amount.to_string(),
            line.unit.clone(),
            line.usage_at_end.to_string(),
        ];
        let fields: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    text
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_rfc3339_or_as_dates() {
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000_000);
        assert_eq!(parse_time("1970-01-01T00:00:01Z").unwrap(), 1_000_000);
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00").unwrap(), 0);
        for bad in ["2025-13-01", "yesterday", "2025-01-01 10:00", ""] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
