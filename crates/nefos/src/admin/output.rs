//! What the admin commands print: tables by default, JSON on request, and the names shown
//! beside the ids.

use std::collections::HashMap;

use anyhow::Context;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use nefos_db::time::from_micros;
use nefos_identity::{Caller, Identity, ProjectFilter, UserFilter};

pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    table
}

/// A time for a table, to the second, in UTC.
pub fn date(micros: i64) -> String {
    from_micros(micros).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A time for JSON and CSV: RFC 3339, UTC.
pub fn rfc3339(micros: i64) -> String {
    from_micros(micros).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Prints `value` as indented JSON.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("cannot write the JSON output")?;
    println!("{text}");
    Ok(())
}

/// The names of every user and project, read once, for output that lists ids.
#[derive(Debug, Default)]
pub struct Names {
    users: HashMap<String, String>,
    projects: HashMap<String, String>,
}

impl Names {
    pub async fn load(identity: &Identity) -> anyhow::Result<Names> {
        let op = Caller::Operator;
        let users = identity
            .users(op, &UserFilter::default())
            .await?
            .into_iter()
            .map(|u| (u.id, u.name))
            .collect();
        let projects = identity
            .projects(op, &ProjectFilter::default())
            .await?
            .into_iter()
            .map(|p| (p.id, p.name))
            .collect();
        Ok(Names { users, projects })
    }

    /// A user's name; `None` for a user deleted since.
    pub fn user(&self, id: &str) -> Option<&str> {
        self.users.get(id).map(String::as_str)
    }

    pub fn project(&self, id: &str) -> Option<&str> {
        self.projects.get(id).map(String::as_str)
    }
}

/// A name for a table: the name, or a mark that the id names nothing any more.
pub fn or_gone(name: Option<&str>) -> String {
    name.unwrap_or("(deleted)").to_owned()
}
