//! `GET /v2/images`'s query string, as Glance reads it: filters (with `in:` lists and
//! date operators), `sort=key:dir,…` or repeated `sort_key`/`sort_dir`, `marker`, `limit`;
//! any other key filters on a property.

use chrono::{DateTime, NaiveDateTime};
use nefos_image::{
    DateFilter, DateOperator, ImageStatus, ListQuery, MAX_LIMIT, MemberStatus, MemberStatusFilter,
    SortDirection, SortKey, Visibility, VisibilityFilter,
};

use super::error::GlanceError;

pub(crate) fn list_query(pairs: &[(String, String)]) -> Result<ListQuery, GlanceError> {
    let mut query = ListQuery::default();
    let mut sort_keys = Vec::new();
    let mut sort_dirs = Vec::new();
    let mut sort_combined = None;
    for (key, value) in pairs {
        match key.as_str() {
            "limit" => {
                let limit: i64 = value
                    .parse()
                    .map_err(|_| GlanceError::bad_request("limit param must be an integer"))?;
                let limit = usize::try_from(limit)
                    .map_err(|_| GlanceError::bad_request("limit param must be positive"))?;
                query.limit = Some(limit.min(MAX_LIMIT));
            }
            "marker" => query.marker = Some(value.clone()),
            "sort_key" => sort_keys.push(sort_key(value)?),
            "sort_dir" => sort_dirs.push(sort_direction(value)?),
            "sort" => sort_combined = Some(value.clone()),
            "name" => query.names = in_list(value),
            "id" => query.ids = in_list(value),
            "status" => {
                query.statuses = in_list(value)
                    .iter()
                    .map(|s| {
                        ImageStatus::parse(s).ok_or_else(|| {
                            GlanceError::bad_request(format!("Invalid status value: {s}"))
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "disk_format" => query.disk_formats = in_list(value),
            "container_format" => query.container_formats = in_list(value),
            "visibility" => {
                query.visibility = match value.as_str() {
                    "all" => VisibilityFilter::All,
                    other => VisibilityFilter::Only(Visibility::parse(other).map_err(|_| {
                        GlanceError::bad_request(format!("Invalid visibility value: {other}"))
                    })?),
                };
            }
            "member_status" => {
                query.member_status = match value.as_str() {
                    "all" => MemberStatusFilter::All,
                    other => {
                        MemberStatusFilter::Only(MemberStatus::parse(other).map_err(|_| {
                            GlanceError::bad_request(format!("Invalid status value: {other}"))
                        })?)
                    }
                };
            }
            "owner" => query.owner = Some(value.clone()),
            "tag" => query.tags.push(value.clone()),
            "size_min" => query.size_min = Some(size(key, value)?),
            "size_max" => query.size_max = Some(size(key, value)?),
            "created_at" => query.created_at.push(date_filter(key, value)?),
            "updated_at" => query.updated_at.push(date_filter(key, value)?),
            "os_hidden" => query.os_hidden = flag(key, value)?,
            "protected" => query.protected = Some(flag(key, value)?),
            "checksum" => query.checksum = Some(value.clone()),
            "os_hash_value" => query.os_hash_value = Some(value.clone()),
            property => {
                query.properties.insert(property.to_owned(), value.clone());
            }
        }
    }
    query.sort = match sort_combined {
        Some(_) if !sort_keys.is_empty() || !sort_dirs.is_empty() => {
            return Err(GlanceError::bad_request(
                "The 'sort' parameter cannot be combined with 'sort_key' or 'sort_dir'",
            ));
        }
        Some(text) => combined_sort(&text)?,
        None => legacy_sort(sort_keys, sort_dirs)?,
    };
    Ok(query)
}

/// `sort=name:asc,created_at` (a key without a direction sorts descending).
fn combined_sort(text: &str) -> Result<Vec<(SortKey, SortDirection)>, GlanceError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (key, dir) = item.split_once(':').unwrap_or((item, "desc"));
            Ok((sort_key(key)?, sort_direction(dir)?))
        })
        .collect()
}

/// Repeated `sort_key` and `sort_dir`: one direction for all keys, or one per key.
fn legacy_sort(
    keys: Vec<SortKey>,
    dirs: Vec<SortDirection>,
) -> Result<Vec<(SortKey, SortDirection)>, GlanceError> {
    if dirs.len() > 1 && dirs.len() != keys.len() {
        return Err(GlanceError::bad_request(
            "Number of sort dirs does not match the number of sort keys",
        ));
    }
    if keys.is_empty() && !dirs.is_empty() {
        return Ok(vec![(SortKey::CreatedAt, dirs[0])]);
    }
    Ok(keys
        .into_iter()
        .enumerate()
        .map(|(i, key)| {
            let dir = dirs
                .get(i)
                .or(dirs.first())
                .copied()
                .unwrap_or(SortDirection::Desc);
            (key, dir)
        })
        .collect())
}

fn sort_key(text: &str) -> Result<SortKey, GlanceError> {
    SortKey::parse(text)
        .ok_or_else(|| GlanceError::bad_request(format!("Invalid sort key: {text}. It should be one of the following: name, status, container_format, disk_format, size, virtual_size, id, created_at, updated_at, visibility, owner, min_disk, min_ram.")))
}

fn sort_direction(text: &str) -> Result<SortDirection, GlanceError> {
    match text {
        "asc" => Ok(SortDirection::Asc),
        "desc" => Ok(SortDirection::Desc),
        other => Err(GlanceError::bad_request(format!(
            "Invalid sort direction: {other}"
        ))),
    }
}

/// `in:a,b,"c,d"` as a list; any other value (also `eq:x`) as a list of one.
fn in_list(value: &str) -> Vec<String> {
    if let Some(list) = value.strip_prefix("in:") {
        let mut items = Vec::new();
        let mut current = String::new();
        let mut quoted = false;
        for c in list.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => items.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        items.push(current);
        items
    } else {
        vec![value.strip_prefix("eq:").unwrap_or(value).to_owned()]
    }
}

fn size(key: &str, value: &str) -> Result<u64, GlanceError> {
    value.parse().map_err(|_| {
        GlanceError::bad_request(format!(
            "Unable to filter on a range with a non-numeric value: {key}={value}"
        ))
    })
}

fn flag(key: &str, value: &str) -> Result<bool, GlanceError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(GlanceError::bad_request(format!(
            "Invalid value for {key}: {value} (expected a boolean)"
        ))),
    }
}

/// `gte:2026-01-01T00:00:00Z` (no operator: `eq`).
fn date_filter(key: &str, value: &str) -> Result<DateFilter, GlanceError> {
    let (operator, date) = match value.split_once(':') {
        Some((op, rest)) if matches!(op, "gt" | "gte" | "lt" | "lte" | "eq" | "neq") => {
            let operator = match op {
                "gt" => DateOperator::Gt,
                "gte" => DateOperator::Gte,
                "lt" => DateOperator::Lt,
                "lte" => DateOperator::Lte,
                "eq" => DateOperator::Eq,
                _ => DateOperator::Neq,
            };
            (operator, rest)
        }
        _ => (DateOperator::Eq, value),
    };
    let at = DateTime::parse_from_rfc3339(date)
        .map(|d| d.timestamp_micros())
        .or_else(|_| {
            NaiveDateTime::parse_from_str(date, "%Y-%m-%dT%H:%M:%S")
                .map(|d| d.and_utc().timestamp_micros())
        })
        .map_err(|_| {
            GlanceError::bad_request(format!(
                "Invalid value for {key}: {date} is not an ISO 8601 time"
            ))
        })?;
    Ok(DateFilter { operator, at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn in_lists_honour_quotes() {
        assert_eq!(in_list("in:a,\"b,c\",d"), vec!["a", "b,c", "d"]);
        assert_eq!(in_list("plain"), vec!["plain"]);
    }

    #[test]
    fn sort_forms() {
        let q = list_query(&pairs(&[("sort", "name:asc,size")])).ok();
        assert_eq!(
            q.map(|q| q.sort),
            Some(vec![
                (SortKey::Name, SortDirection::Asc),
                (SortKey::Size, SortDirection::Desc)
            ])
        );
        let q = list_query(&pairs(&[
            ("sort_key", "name"),
            ("sort_key", "id"),
            ("sort_dir", "asc"),
        ]))
        .ok();
        assert_eq!(
            q.map(|q| q.sort),
            Some(vec![
                (SortKey::Name, SortDirection::Asc),
                (SortKey::Id, SortDirection::Asc)
            ])
        );
        assert!(list_query(&pairs(&[("sort_key", "bogus")])).is_err());
        assert!(list_query(&pairs(&[("sort", "name"), ("sort_dir", "asc")])).is_err());
    }

    #[test]
    fn unknown_keys_filter_properties_and_dates_take_operators() {
        let q = list_query(&pairs(&[
            ("os_distro", "debian"),
            ("created_at", "gte:2026-01-01T00:00:00Z"),
        ]));
        let q = q.ok();
        assert_eq!(
            q.as_ref()
                .and_then(|q| q.properties.get("os_distro"))
                .map(String::as_str),
            Some("debian")
        );
        assert_eq!(q.map(|q| q.created_at[0].operator), Some(DateOperator::Gte));
    }
}
