//! What an image is: Glance's fields, its status life cycle, visibility and members.

use std::collections::BTreeMap;

use crate::ImageError;

/// Glance's status life cycle. `queued` has no data; an upload moves it through `saving`,
/// an interoperable import through `uploading` (staged) and `importing`, to `active`.
/// `deactivated` keeps the data but refuses its download. A deleted image is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ImageStatus {
    Queued,
    Saving,
    Uploading,
    Importing,
    Active,
    Deactivated,
    /// The data could not be kept and the image cannot be used again (Glance's terminal
    /// failure state); only deletion remains.
    Killed,
}

impl ImageStatus {
    pub const ALL: [ImageStatus; 7] = [
        ImageStatus::Queued,
        ImageStatus::Saving,
        ImageStatus::Uploading,
        ImageStatus::Importing,
        ImageStatus::Active,
        ImageStatus::Deactivated,
        ImageStatus::Killed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ImageStatus::Queued => "queued",
            ImageStatus::Saving => "saving",
            ImageStatus::Uploading => "uploading",
            ImageStatus::Importing => "importing",
            ImageStatus::Active => "active",
            ImageStatus::Deactivated => "deactivated",
            ImageStatus::Killed => "killed",
        }
    }

    pub fn parse(text: &str) -> Option<ImageStatus> {
        ImageStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the image has its data (can be downloaded or booted, unless deactivated).
    pub fn has_data(self) -> bool {
        matches!(self, ImageStatus::Active | ImageStatus::Deactivated)
    }
}

/// Who sees an image besides its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Visibility {
    /// Everyone, listed by default. Only cloud administrators publish.
    Public,
    /// The owner only.
    Private,
    /// The owner and the projects it is offered to (members), listed by a member once it
    /// accepts.
    Shared,
    /// Everyone who asks: listed only when a listing asks for community images.
    Community,
}

impl Visibility {
    pub const ALL: [Visibility; 4] = [
        Visibility::Public,
        Visibility::Private,
        Visibility::Shared,
        Visibility::Community,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
            Visibility::Shared => "shared",
            Visibility::Community => "community",
        }
    }

    pub fn parse(text: &str) -> Result<Visibility, ImageError> {
        Visibility::ALL
            .into_iter()
            .find(|v| v.as_str() == text)
            .ok_or_else(|| {
                ImageError::invalid(
                    "visibility",
                    format!("{text:?} is not one of public, private, shared, community"),
                )
            })
    }
}

/// A member's answer to a shared image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MemberStatus {
    Pending,
    Accepted,
    Rejected,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Pending => "pending",
            MemberStatus::Accepted => "accepted",
            MemberStatus::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Result<MemberStatus, ImageError> {
        match text {
            "pending" => Ok(MemberStatus::Pending),
            "accepted" => Ok(MemberStatus::Accepted),
            "rejected" => Ok(MemberStatus::Rejected),
            other => Err(ImageError::invalid(
                "status",
                format!("{other:?} is not one of pending, accepted, rejected"),
            )),
        }
    }
}

/// Disk formats nefos boots. Glance knows more (vmdk, vdi, vhd, iso, …); nefos refuses
/// them when they are named, instead of storing an image it cannot start.
pub const DISK_FORMATS: &[&str] = &["raw", "qcow2"];

/// Container formats nefos accepts: images are plain disks.
pub const CONTAINER_FORMATS: &[&str] = &["bare"];

/// Where an image's bytes are: an object version of the storage service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLocation {
    /// The project whose account holds the object (the image's owner).
    pub project_id: String,
    pub container_id: String,
    pub container: String,
    pub name: String,
    pub serial: i64,
    /// Whether the image service wrote the object (deleted with the image) or a user
    /// registered an object of theirs (kept when the image is unregistered).
    pub owned: bool,
}

/// An image as the image service knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub owner: String,
    pub name: Option<String>,
    pub status: ImageStatus,
    pub visibility: Visibility,
    pub protected: bool,
    pub os_hidden: bool,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    /// GiB.
    pub min_disk: u64,
    /// MiB.
    pub min_ram: u64,
    pub size: Option<u64>,
    pub virtual_size: Option<u64>,
    /// MD5 of the data, hex.
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    /// Additional properties (Glance's free-form strings; Synnefo's `os`, `users`, …).
    pub properties: BTreeMap<String, String>,
    pub tags: Vec<String>,
    /// Microseconds since the epoch.
    pub created_at: i64,
    pub updated_at: i64,
    pub location: Option<ObjectLocation>,
    /// The asking project's answer, when the image is shared with it.
    pub member_status: Option<MemberStatus>,
}

/// One project an image is shared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub image_id: String,
    pub member_id: String,
    pub status: MemberStatus,
    pub created_at: i64,
    pub updated_at: i64,
}
