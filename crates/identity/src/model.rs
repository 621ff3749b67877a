//! The identity service's public types.

use std::fmt;
use std::str::FromStr;

use nefos_db::identity::{ProjectRow, RoleAssignmentRow, UserRow};

use crate::IdentityError;

/// A user, as callers see it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub enabled: bool,
    /// The user's personal project (Synnefo's base project; Keystone's `default_project_id`).
    pub base_project_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: row.id,
            name: row.name,
            email: row.email,
            enabled: row.enabled,
            base_project_id: row.base_project_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// What kind of project this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectKind {
    /// A user's personal project, created and deleted with the user.
    Base,
    /// The cloud's administration project: its `admin` role makes cloud administrators.
    System,
    /// A project created by an administrator for a group of users.
    Regular,
}

impl ProjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectKind::Base => "base",
            ProjectKind::System => "system",
            ProjectKind::Regular => "regular",
        }
    }

    /// Reads a stored kind; anything unknown is treated as the least privileged kind.
    pub(crate) fn from_stored(kind: &str) -> Self {
        match kind {
            "base" => ProjectKind::Base,
            "system" => ProjectKind::System,
            _ => ProjectKind::Regular,
        }
    }
}

/// A project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub kind: ProjectKind,
    /// For a base project, its user.
    pub owner_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<ProjectRow> for Project {
    fn from(row: ProjectRow) -> Self {
        Project {
            kind: ProjectKind::from_stored(&row.kind),
            id: row.id,
            name: row.name,
            description: row.description,
            enabled: row.enabled,
            owner_id: row.owner_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A role a user holds on a project. The set is fixed; a role's id is its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Manages the project; on the system project, administers the cloud.
    Admin,
    /// Uses the project's resources.
    Member,
    /// Reads the project's resources.
    Reader,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Member, Role::Reader];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Reader => "reader",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| IdentityError::not_found("role", s))
    }
}

/// `user_id` holds `role` on `project_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    pub project_id: String,
    pub user_id: String,
    pub role: Role,
}

impl RoleAssignment {
    pub(crate) fn from_row(row: RoleAssignmentRow) -> Option<Self> {
        Some(RoleAssignment {
            role: row.role.parse().ok()?,
            project_id: row.project_id,
            user_id: row.user_id,
        })
    }
}

/// A user to create.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub name: String,
    pub email: Option<String>,
    pub password: Option<String>,
    pub enabled: bool,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    /// `Some(None)` clears the address.
    pub email: Option<Option<String>>,
    pub password: Option<String>,
    pub enabled: Option<bool>,
}

/// A project to create.
#[derive(Debug, Clone, Default)]
pub struct NewProject {
    pub name: String,
    pub description: String,
    pub enabled: bool,
}

/// Changes to a project; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

pub use nefos_db::identity::{ProjectFilter, UserFilter};

/// Which role assignments to list.
#[derive(Debug, Clone, Default)]
pub struct RoleAssignmentFilter {
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub role: Option<Role>,
}

/// Names of users and projects: what Keystone accepts, minus control characters, and
/// without `/`, so a name can never be mistaken for a path.
pub(crate) fn check_name(field: &'static str, name: &str) -> Result<(), IdentityError> {
    if name.trim().is_empty() {
        return Err(IdentityError::invalid(field, "must not be empty"));
    }
    if name.chars().count() > 255 {
        return Err(IdentityError::invalid(field, "longer than 255 characters"));
    }
    if name.chars().any(|c| c.is_control() || c == '/') {
        return Err(IdentityError::invalid(
            field,
            "contains a control character or '/'",
        ));
    }
    Ok(())
}

pub(crate) fn check_email(email: &str) -> Result<(), IdentityError> {
    let valid = email.len() <= 255
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_control() || c.is_whitespace());
    if valid {
        Ok(())
    } else {
        Err(IdentityError::invalid(
            "email",
            format!("{email:?} is not an address"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().ok(), Some(role));
        }
        assert!("owner".parse::<Role>().is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("name", "alice").is_ok());
        assert!(check_name("name", "Άλκηστις Παπαδοπούλου").is_ok());
        assert!(check_name("name", "").is_err());
        assert!(check_name("name", "   ").is_err());
        assert!(check_name("name", "a/b").is_err());
        assert!(check_name("name", "a\nb").is_err());
        assert!(check_name("name", &"x".repeat(256)).is_err());
    }

    #[test]
    fn emails_are_checked() {
        assert!(check_email("alice@example.org").is_ok());
        assert!(check_email("alice").is_err());
        assert!(check_email("@example.org").is_err());
        assert!(check_email("a b@example.org").is_err());
    }
}
