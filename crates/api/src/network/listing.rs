//! Neutron's listing parameters over any resource: filters by attribute (`?name=a&name=b`
//! matches either; `fixed_ips=ip_address=…` within a port's addresses), `fields=`
//! selection, `sort_key`/`sort_dir`, and paging by `limit`, `marker` and `page_reverse`
//! with `<collection>_links`. Resources arrive here already narrowed to what the caller
//! may see, as JSON objects in Neutron's shape.

use std::cmp::Ordering;

use http::StatusCode;
use serde_json::{Map, Value};

use super::NeutronError;
use crate::ApiState;

/// A listing's query.
#[derive(Debug, Default)]
pub(crate) struct ListQuery {
    filters: Vec<(String, Vec<String>)>,
    fields: Vec<String>,
    sort: Vec<(String, bool)>,
    limit: Option<usize>,
    marker: Option<String>,
    page_reverse: bool,
    /// The query without `marker` and `page_reverse`, for the links.
    kept: Vec<(String, String)>,
}

impl ListQuery {
    /// The values a filter on `attribute` asks for, if any.
    pub fn filter(&self, attribute: &str) -> Option<&[String]> {
        self.filters
            .iter()
            .find(|(name, _)| name == attribute)
            .map(|(_, values)| values.as_slice())
    }
}

/// Parses a listing's query; `attributes` are those a filter or sort may name.
pub(crate) fn list_query(
    raw: Option<&str>,
    attributes: &[&str],
) -> Result<ListQuery, NeutronError> {
    let mut query = ListQuery::default();
    let mut sort_keys = Vec::new();
    let mut sort_dirs = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let (key, value) = (key.into_owned(), value.into_owned());
        if key != "marker" && key != "page_reverse" {
            query.kept.push((key.clone(), value.clone()));
        }
        match key.as_str() {
            "fields" => query.fields.push(value),
            "sort_key" => sort_keys.push(value),
            "sort_dir" => sort_dirs.push(value),
            "limit" => {
                let limit: i64 = value.parse().map_err(|_| {
                    NeutronError::bad_request(format!(
                        "Limit must be an integer 0 or greater and not '{value}'"
                    ))
                })?;
                let limit = usize::try_from(limit).map_err(|_| {
                    NeutronError::bad_request(format!(
                        "Limit must be an integer 0 or greater and not '{value}'"
                    ))
                })?;
                // 0 means no limit, as in Neutron.
                query.limit = (limit > 0).then_some(limit);
            }
            "marker" => query.marker = Some(value),
            "page_reverse" => query.page_reverse = value.eq_ignore_ascii_case("true"),
            _ => {
                if !attributes.contains(&key.as_str()) {
                    return Err(NeutronError::bad_request(format!(
                        "['{key}'] is invalid attribute for filtering"
                    )));
                }
                match query.filters.iter_mut().find(|(name, _)| *name == key) {
                    Some((_, values)) => values.push(value),
                    None => query.filters.push((key, vec![value])),
                }
            }
        }
    }
    if sort_keys.len() != sort_dirs.len() && !sort_dirs.is_empty() {
        return Err(NeutronError::bad_request(
            "The number of sort_keys and sort_dirs must be same",
        ));
    }
    for (index, key) in sort_keys.into_iter().enumerate() {
        if !attributes.contains(&key.as_str()) {
            return Err(NeutronError::bad_request(format!(
                "{key} is an invalid attribute for sort_keys"
            )));
        }
        let ascending = match sort_dirs.get(index).map(String::as_str) {
            None | Some("asc") => true,
            Some("desc") => false,
            Some(other) => {
                return Err(NeutronError::bad_request(format!(
                    "{other} is an invalid value for sort_dirs, valid values are: asc, desc"
                )));
            }
        };
        query.sort.push((key, ascending));
    }
    Ok(query)
}

/// Whether an attribute's value matches one of a filter's values.
fn matches(value: Option<&Value>, wanted: &[String]) -> bool {
    let Some(value) = value else {
        return false;
    };
    wanted.iter().any(|want| match value {
        Value::String(text) => text == want,
        Value::Bool(b) => match want.to_ascii_lowercase().as_str() {
            "true" | "1" => *b,
            "false" | "0" => !*b,
            _ => false,
        },
        Value::Number(n) => n.to_string() == *want,
        Value::Null => want.is_empty() || want == "None",
        // A port's `fixed_ips=ip_address=…` or `fixed_ips=subnet_id=…`; a list of
        // strings (a network's subnets) holding the value.
        Value::Array(items) => items.iter().any(|item| match item {
            Value::String(text) => text == want,
            Value::Object(fields) => want.split_once('=').is_some_and(|(key, wanted)| {
                fields.get(key).and_then(Value::as_str) == Some(wanted)
            }),
            _ => false,
        }),
        Value::Object(_) => false,
    })
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(value: Option<&Value>) -> u8 {
        match value {
            None | Some(Value::Null) => 0,
            Some(Value::Bool(_)) => 1,
            Some(Value::Number(_)) => 2,
            Some(Value::String(_)) => 3,
            Some(_) => 4,
        }
    }
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn id_of(item: &Map<String, Value>) -> &str {
    item.get("id").and_then(Value::as_str).unwrap_or_default()
}

/// Applies `query` to `items` and renders `{collection: [...], collection_links: [...]}`;
/// `url` is the collection's public URL.
pub(crate) fn render(
    query: &ListQuery,
    items: Vec<Map<String, Value>>,
    collection: &str,
    url: &str,
) -> Result<Value, NeutronError> {
    let mut items: Vec<Map<String, Value>> = items
        .into_iter()
        .filter(|item| {
            query
                .filters
                .iter()
                .all(|(name, wanted)| matches(item.get(name), wanted))
        })
        .collect();
    if !query.sort.is_empty() {
        items.sort_by(|a, b| {
            query
                .sort
                .iter()
                .map(|(key, ascending)| {
                    let order = compare(a.get(key), b.get(key));
                    if *ascending { order } else { order.reverse() }
                })
                .find(|order| order.is_ne())
                .unwrap_or_else(|| id_of(a).cmp(id_of(b)))
        });
    }
    let mut links = Vec::new();
    if let Some(limit) = query.limit {
        let start = match &query.marker {
            Some(marker) => {
                let position = items
                    .iter()
                    .position(|i| id_of(i) == marker)
                    .ok_or_else(|| {
                        NeutronError::new(
                            StatusCode::NOT_FOUND,
                            "HTTPNotFound",
                            format!("Marker {marker} could not be found."),
                        )
                    })?;
                if query.page_reverse {
                    position
                } else {
                    position + 1
                }
            }
            None if query.page_reverse => items.len(),
            None => 0,
        };
        let (from, to) = if query.page_reverse {
            (start.saturating_sub(limit), start)
        } else {
            (start, (start + limit).min(items.len()))
        };
        let (more_before, more_after) = (from > 0, to < items.len());
        items = items.drain(from..to).collect();
        let link = |rel: &str, marker: &str, reverse: bool| {
            let mut pairs = form_urlencoded::Serializer::new(String::new());
            for (key, value) in &query.kept {
                pairs.append_pair(key, value);
            }
            pairs.append_pair("marker", marker);
            if reverse {
                pairs.append_pair("page_reverse", "True");
            }
            serde_json::json!({"rel": rel, "href": format!("{url}?{}", pairs.finish())})
        };
        if let (Some(first), Some(last)) = (items.first(), items.last()) {
            if more_after {
                links.push(link("next", id_of(last), false));
            }
            if more_before || query.marker.is_some() {
                links.push(link("previous", id_of(first), true));
            }
        }
    }
    if !query.fields.is_empty() {
        for item in &mut items {
            item.retain(|key, _| query.fields.contains(key));
        }
    }
    let mut body = Map::new();
    body.insert(
        collection.to_owned(),
        Value::Array(items.into_iter().map(Value::Object).collect()),
    );
    if !links.is_empty() {
        body.insert(format!("{collection}_links"), Value::Array(links));
    }
    Ok(Value::Object(body))
}

/// The public URL of a collection's path (one of [`nefos_network_api::paths`]).
pub(crate) fn collection_url(state: &ApiState, path: &str) -> String {
    format!("{}{}{path}", state.public_url(), nefos_network_api::PREFIX)
}

/// A single resource with `?fields=` applied.
pub(crate) fn select_fields(raw: Option<&str>, mut item: Map<String, Value>) -> Map<String, Value> {
    let fields: Vec<String> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .filter(|(key, _)| key == "fields")
        .map(|(_, value)| value.into_owned())
        .collect();
    if !fields.is_empty() {
        item.retain(|key, _| fields.contains(key));
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items() -> Vec<Map<String, Value>> {
        [
            json!({"id": "a", "name": "x", "admin_state_up": true, "mtu": 1450,
                   "fixed_ips": [{"subnet_id": "s", "ip_address": "10.0.0.5"}]}),
            json!({"id": "b", "name": "y", "admin_state_up": false, "mtu": 1400, "fixed_ips": []}),
            json!({"id": "c", "name": "x", "admin_state_up": true, "mtu": 1300, "fixed_ips": []}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect()
    }

    const ATTRIBUTES: &[&str] = &["id", "name", "admin_state_up", "mtu", "fixed_ips"];

    fn ids(body: &Value) -> Vec<&str> {
        body["things"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect()
    }

    fn list(raw: &str) -> Value {
        let query = list_query(Some(raw), ATTRIBUTES).unwrap();
        render(&query, items(), "things", "http://h/v2.0/things").unwrap()
    }

    #[test]
    fn filters_match_any_of_their_values_and_all_of_their_names() {
        assert_eq!(ids(&list("name=x")), ["a", "c"]);
        assert_eq!(ids(&list("name=x&name=y&admin_state_up=False")), ["b"]);
        assert_eq!(ids(&list("mtu=1400")), ["b"]);
        assert_eq!(ids(&list("fixed_ips=ip_address%3D10.0.0.5")), ["a"]);
        let unknown = list_query(Some("colour=red"), ATTRIBUTES).unwrap_err();
        assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn sorting_and_paging_walk_both_ways() {
        assert_eq!(ids(&list("sort_key=mtu&sort_dir=asc")), ["c", "b", "a"]);
        assert_eq!(ids(&list("sort_key=name&sort_dir=desc")), ["b", "a", "c"]);
        let first = list("limit=2");
        assert_eq!(ids(&first), ["a", "b"]);
        let next = first["things_links"][0]["href"].as_str().unwrap();
        assert!(next.ends_with("?limit=2&marker=b"), "{next}");
        let second = list("limit=2&marker=b");
        assert_eq!(ids(&second), ["c"]);
        assert_eq!(second["things_links"][0]["rel"], "previous");
        assert_eq!(ids(&list("limit=2&marker=c&page_reverse=True")), ["a", "b"]);
        let missing = list_query(Some("limit=1&marker=zz"), ATTRIBUTES).unwrap();
        assert!(render(&missing, items(), "things", "u").is_err());
    }

    #[test]
    fn fields_select_what_is_shown() {
        let body = list("fields=id&fields=mtu&name=y");
        assert_eq!(body["things"], json!([{"id": "b", "mtu": 1400}]));
    }
}
