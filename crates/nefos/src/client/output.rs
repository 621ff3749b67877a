//! How listings are printed: `-f table` for people, `-f json` and `-f value` for scripts,
//! as the openstack CLI does; and how transfers show their progress.

use clap::{Args, ValueEnum};
use indicatif::ProgressStyle;
use serde_json::{Map, Value};

/// The progress bar of transfers (drawn on stderr, and only on a terminal).
pub fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table with a header.
    #[default]
    Table,
    /// A JSON list of objects, one per row, keyed by column.
    Json,
    /// One line per row, its values separated by spaces, no header.
    Value,
}

/// The `-f` option of every listing.
#[derive(Debug, Clone, Copy, Args)]
pub struct FormatArg {
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t)]
    pub format: Format,
}

/// Rows of a listing, each value taken from the store's JSON entry by column name.
#[derive(Debug)]
pub struct Listing {
    columns: &'static [&'static str],
    rows: Vec<Vec<Value>>,
}

impl Listing {
    pub fn new(columns: &'static [&'static str], entries: &[Value]) -> Listing {
        let rows = entries
            .iter()
            .map(|entry| {
                columns
                    .iter()
                    .map(|c| entry.get(*c).cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .collect();
        Listing { columns, rows }
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => {
                let mut table = comfy_table::Table::new();
                table
                    .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
                    .set_header(self.columns.to_vec());
                for row in &self.rows {
                    table.add_row(row.iter().map(plain).collect::<Vec<_>>());
                }
                format!("{table}\n")
            }
            Format::Json => {
                let rows: Vec<Value> = self
                    .rows
                    .iter()
                    .map(|row| {
                        let fields: Map<String, Value> = self
                            .columns
                            .iter()
                            .map(|c| (*c).to_owned())
                            .zip(row.iter().cloned())
                            .collect();
                        Value::Object(fields)
                    })
                    .collect();
                // Serialising a `Value` cannot fail; the fallback is never printed.
                let text = serde_json::to_string_pretty(&rows).unwrap_or_default();
                format!("{text}\n")
            }
            Format::Value => self
                .rows
                .iter()
                .map(|row| {
                    let values: Vec<String> = row.iter().map(plain).collect();
                    format!("{}\n", values.join(" "))
                })
                .collect(),
        }
    }
}

/// A value as text: strings without their quotes, nothing for a missing value.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn listing() -> Listing {
        Listing::new(
            &["name", "bytes"],
            &[
                json!({"name": "a b", "bytes": 3, "hash": "x"}),
                json!({"name": "c"}),
            ],
        )
    }

    #[test]
    fn json_rows_hold_exactly_the_columns() {
        let rows: Value = serde_json::from_str(&listing().render(Format::Json)).unwrap();
        assert_eq!(
            rows,
            json!([{"name": "a b", "bytes": 3}, {"name": "c", "bytes": null}])
        );
    }

    #[test]
    fn value_rows_are_bare_lines() {
        assert_eq!(listing().render(Format::Value), "a b 3\nc \n");
    }

    #[test]
    fn tables_have_a_header() {
        let table = listing().render(Format::Table);
        assert!(table.contains("name") && table.contains("bytes") && table.contains("a b"));
    }
}
