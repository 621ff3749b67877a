//! Listing images as Glance does: which images a caller sees by default, filters, sorting
//! and paging by marker.
//!
//! The database narrows to what the caller may see at all; the rest happens here, over
//! that set. An image registry holds thousands of images, not millions, and Glance's
//! filters (property equality, date operators, `in:` lists) are easier to get exactly
//! right over typed values than as generated SQL for two engines.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::{Caller, Image, ImageError, ImageStatus, Images, MemberStatus, Visibility};

/// Glance's `limit_param_default` and `api_limit_max`.
pub const DEFAULT_LIMIT: usize = 25;
pub const MAX_LIMIT: usize = 1000;

/// Which visibilities a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VisibilityFilter {
    /// Glance's default: the caller's own images, public ones, and shared ones it
    /// accepted (community images only when they are its own).
    #[default]
    Default,
    Only(Visibility),
    /// Everything the caller may see, community images included.
    All,
}

/// Which member answers a listing of shared images shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberStatusFilter {
    #[default]
    Accepted,
    Only(MemberStatus),
    All,
}

/// Glance's comparison operators on dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOperator {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Neq,
}

/// A date filter: `created_at=gte:2026-01-01T00:00:00Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateFilter {
    pub operator: DateOperator,
    /// Microseconds since the epoch.
    pub at: i64,
}

impl DateFilter {
    fn matches(&self, value: i64) -> bool {
        // Glance compares at second precision: stored microseconds are cut to seconds.
        let value = value.div_euclid(1_000_000);
        let at = self.at.div_euclid(1_000_000);
        match self.operator {
            DateOperator::Gt => value > at,
            DateOperator::Gte => value >= at,
            DateOperator::Lt => value < at,
            DateOperator::Lte => value <= at,
            DateOperator::Eq => value == at,
            DateOperator::Neq => value != at,
        }
    }
}

/// The keys Glance sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Name,
    Status,
    ContainerFormat,
    DiskFormat,
    Size,
    VirtualSize,
    Id,
    CreatedAt,
    UpdatedAt,
    Visibility,
    Owner,
    MinDisk,
    MinRam,
}

impl SortKey {
    pub fn parse(text: &str) -> Option<SortKey> {
        Some(match text {
            "name" => SortKey::Name,
            "status" => SortKey::Status,
            "container_format" => SortKey::ContainerFormat,
            "disk_format" => SortKey::DiskFormat,
            "size" => SortKey::Size,
            "virtual_size" => SortKey::VirtualSize,
            "id" => SortKey::Id,
            "created_at" => SortKey::CreatedAt,
            "updated_at" => SortKey::UpdatedAt,
            "visibility" => SortKey::Visibility,
            "owner" => SortKey::Owner,
            "min_disk" => SortKey::MinDisk,
            "min_ram" => SortKey::MinRam,
            _ => return None,
        })
    }

    fn compare(self, a: &Image, b: &Image) -> Ordering {
        match self {
            SortKey::Name => a.name.cmp(&b.name),
            SortKey::Status => a.status.as_str().cmp(b.status.as_str()),
            SortKey::ContainerFormat => a.container_format.cmp(&b.container_format),
            SortKey::DiskFormat => a.disk_format.cmp(&b.disk_format),
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::VirtualSize => a.virtual_size.cmp(&b.virtual_size),
            SortKey::Id => a.id.cmp(&b.id),
            SortKey::CreatedAt => a.created_at.cmp(&b.created_at),
            SortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
            SortKey::Visibility => a.visibility.as_str().cmp(b.visibility.as_str()),
            SortKey::Owner => a.owner.cmp(&b.owner),
            SortKey::MinDisk => a.min_disk.cmp(&b.min_disk),
            SortKey::MinRam => a.min_ram.cmp(&b.min_ram),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    Asc,
    Desc,
}

/// A listing request (Glance's `GET /v2/images` query).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub visibility: VisibilityFilter,
    pub member_status: MemberStatusFilter,
    /// Any of these names (`name=in:a,b`); empty: any.
    pub names: Vec<String>,
    pub ids: Vec<String>,
    pub statuses: Vec<ImageStatus>,
    pub disk_formats: Vec<String>,
    pub container_formats: Vec<String>,
    pub owner: Option<String>,
    /// Every tag must be present.
    pub tags: Vec<String>,
    /// Every property must have this value.
    pub properties: BTreeMap<String, String>,
    pub protected: Option<bool>,
    /// Hidden images are left out unless asked for (`os_hidden=true` shows only them).
    pub os_hidden: bool,
    pub checksum: Option<String>,
    pub os_hash_value: Option<String>,
    pub size_min: Option<u64>,
    pub size_max: Option<u64>,
    pub created_at: Vec<DateFilter>,
    pub updated_at: Vec<DateFilter>,
    /// Sort keys in order; `created_at` descending when empty. `id` is always the last
    /// key, so the order is total and markers are exact.
    pub sort: Vec<(SortKey, SortDirection)>,
    /// The id of the last image of the previous page.
    pub marker: Option<String>,
    /// [`DEFAULT_LIMIT`] when `None`; at most [`MAX_LIMIT`].
    pub limit: Option<usize>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub images: Vec<Image>,
    /// The marker of the next page, when there is one.
    pub next_marker: Option<String>,
}

impl Images {
    /// The images `caller` asked for, sorted and paged.
    pub async fn list(
        &self,
        caller: Caller<'_>,
        query: &ListQuery,
    ) -> Result<ListPage, ImageError> {
        let images = self.visible_images(caller).await?;
        page(caller, images, query)
    }
}

fn page(caller: Caller<'_>, images: Vec<Image>, query: &ListQuery) -> Result<ListPage, ImageError> {
    let mut sort = query.sort.clone();
    if sort.is_empty() {
        sort.push((SortKey::CreatedAt, SortDirection::Desc));
    }
    if !sort.iter().any(|(key, _)| *key == SortKey::Id) {
        let direction = sort.last().map_or(SortDirection::Desc, |(_, d)| *d);
        sort.push((SortKey::Id, direction));
    }
    let mut shown: Vec<Image> = images
        .into_iter()
        .filter(|image| listed(caller, image, query))
        .collect();
    shown.sort_by(|a, b| {
        sort.iter()
            .map(|(key, direction)| match direction {
                SortDirection::Asc => key.compare(a, b),
                SortDirection::Desc => key.compare(b, a),
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
    let start = match &query.marker {
        None => 0,
        Some(marker) => {
            shown
                .iter()
                .position(|image| &image.id == marker)
                .ok_or_else(|| {
                    ImageError::invalid(
                        "marker",
                        format!("Invalid marker. Image {marker} could not be found."),
                    )
                })?
                + 1
        }
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let rest = shown.len().saturating_sub(start);
    let images: Vec<Image> = shown.into_iter().skip(start).take(limit).collect();
    let next_marker = (rest > limit && limit > 0)
        .then(|| images.last().map(|i| i.id.clone()))
        .flatten();
    Ok(ListPage {
        images,
        next_marker,
    })
}

/// Whether `image` (which the caller may see) belongs in this listing.
fn listed(caller: Caller<'_>, image: &Image, query: &ListQuery) -> bool {
    let own = caller.project_id() == Some(image.owner.as_str());
    let member_ok = match query.member_status {
        MemberStatusFilter::All => true,
        MemberStatusFilter::Accepted => image.member_status == Some(MemberStatus::Accepted),
        MemberStatusFilter::Only(status) => image.member_status == Some(status),
    };
    let by_visibility = match query.visibility {
        VisibilityFilter::Default => match image.visibility {
            Visibility::Public => true,
            Visibility::Private | Visibility::Community => own || caller.is_admin(),
            Visibility::Shared => own || caller.is_admin() || member_ok,
        },
        VisibilityFilter::Only(Visibility::Shared) => {
            image.visibility == Visibility::Shared && (own || caller.is_admin() || member_ok)
        }
        VisibilityFilter::Only(visibility) => image.visibility == visibility,
        VisibilityFilter::All => {
            image.visibility != Visibility::Shared || own || member_ok || caller.is_admin()
        }
    };
    by_visibility
        && (image.os_hidden == query.os_hidden)
        && any_of(&query.names, image.name.as_deref())
        && any_of(&query.ids, Some(&image.id))
        && (query.statuses.is_empty() || query.statuses.contains(&image.status))
        // Glance never lists killed images unless asked for them by status.
        && (image.status != ImageStatus::Killed || query.statuses.contains(&ImageStatus::Killed))
        && any_of(&query.disk_formats, image.disk_format.as_deref())
        && any_of(&query.container_formats, image.container_format.as_deref())
        && query.owner.as_ref().is_none_or(|o| *o == image.owner)
        && query.tags.iter().all(|t| image.tags.contains(t))
        && query
            .properties
            .iter()
            .all(|(k, v)| image.properties.get(k) == Some(v))
        && query.protected.is_none_or(|p| p == image.protected)
        && query
            .checksum
            .as_ref()
            .is_none_or(|c| image.checksum.as_ref() == Some(c))
        && query
            .os_hash_value
            .as_ref()
            .is_none_or(|h| image.os_hash_value.as_ref() == Some(h))
        && query
            .size_min
            .is_none_or(|min| image.size.is_some_and(|s| s >= min))
        && query
            .size_max
            .is_none_or(|max| image.size.is_some_and(|s| s <= max))
        && query.created_at.iter().all(|f| f.matches(image.created_at))
        && query.updated_at.iter().all(|f| f.matches(image.updated_at))
}

fn any_of(wanted: &[String], value: Option<&str>) -> bool {
    wanted.is_empty() || value.is_some_and(|v| wanted.iter().any(|w| w == v))
}
