//! Images and members as the client prints them: listings through the shared
//! [`Listing`], one image as a field/value table or Glance's own JSON.

use nefos_image_api::glance::{ImageView, MemberView};
use serde_json::Value;

use crate::client::output::{Format, Listing};

const LIST_COLUMNS: &[&str] = &["id", "name", "status", "visibility", "disk_format", "size"];
const MEMBER_COLUMNS: &[&str] = &["member_id", "status", "created_at", "updated_at"];

/// Glance's own attributes, in the order an image is shown; its properties follow,
/// sorted, and the links (`self`, `file`, `schema`) are left to `-f json`.
const FIELDS: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "owner",
    "disk_format",
    "container_format",
    "size",
    "virtual_size",
    "min_disk",
    "min_ram",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "protected",
    "os_hidden",
    "tags",
    "created_at",
    "updated_at",
];
const LINKS: &[&str] = &["self", "file", "schema"];

pub fn list(images: &[ImageView], format: Format) -> anyhow::Result<String> {
    let rows = images
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Listing::new(LIST_COLUMNS, &rows).render(format))
}

pub fn members(members: &[MemberView], format: Format) -> anyhow::Result<String> {
    let rows = members
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Listing::new(MEMBER_COLUMNS, &rows).render(format))
}

/// One image: every attribute and property as a row of a table, one value a line
/// (`-f value`, as the openstack CLI prints a single item), or Glance's JSON whole.
pub fn image(view: &ImageView, format: Format) -> anyhow::Result<String> {
    if format == Format::Json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(view)?));
    }
    let Value::Object(mut fields) = serde_json::to_value(view)? else {
        anyhow::bail!("an image did not serialise as a JSON object");
    };
    let mut rows: Vec<(String, Value)> = FIELDS
        .iter()
        .filter_map(|name| fields.remove(*name).map(|v| ((*name).to_owned(), v)))
        .collect();
    // The rest are properties (a `Map` iterates in key order).
    rows.extend(
        fields
            .into_iter()
            .filter(|(k, _)| !LINKS.contains(&k.as_str())),
    );
    if format == Format::Value {
        return Ok(rows
            .iter()
            .map(|(_, value)| format!("{}\n", text(value)))
            .collect());
    }
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(vec!["field", "value"]);
    for (name, value) in &rows {
        table.add_row(vec![name.clone(), text(value)]);
    }
    Ok(format!("{table}\n"))
}

/// A value as text: strings bare, lists joined by commas, nothing for a missing value.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn view() -> ImageView {
        ImageView {
            id: "i1".into(),
            name: Some("debian".into()),
            status: "active".into(),
            visibility: "public".into(),
            protected: false,
            os_hidden: false,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            owner: "p1".into(),
            size: Some(3),
            virtual_size: None,
            min_ram: 0,
            min_disk: 1,
            disk_format: Some("raw".into()),
            container_format: Some("bare".into()),
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
            tags: vec!["a".into(), "b".into()],
            self_link: "/v2/images/i1".into(),
            file: "/v2/images/i1/file".into(),
            schema: "/v2/schemas/image".into(),
            properties: BTreeMap::from([
                ("users".to_owned(), Value::from("root")),
                ("os".to_owned(), Value::from("debian")),
            ]),
        }
    }

    #[test]
    fn an_image_shows_attributes_then_properties_without_links() {
        let lines = image(&view(), Format::Value).unwrap();
        let lines: Vec<&str> = lines.lines().collect();
        assert_eq!(lines[..3], ["i1", "debian", "active"]);
        assert_eq!(lines[lines.len() - 2..], ["debian", "root"]);
        assert!(lines.contains(&"a, b"));
        let table = image(&view(), Format::Table).unwrap();
        assert!(table.contains("users") && !table.contains("/v2/images/i1"));
        let json: Value = serde_json::from_str(&image(&view(), Format::Json).unwrap()).unwrap();
        assert_eq!(
            (json["os"].as_str(), json["self"].as_str()),
            (Some("debian"), Some("/v2/images/i1"))
        );
    }

    #[test]
    fn listings_have_the_summary_columns() {
        let rows: Value = serde_json::from_str(&list(&[view()], Format::Json).unwrap()).unwrap();
        assert_eq!(
            rows,
            serde_json::json!([{"id": "i1", "name": "debian", "status": "active",
                "visibility": "public", "disk_format": "raw", "size": 3}])
        );
    }
}
