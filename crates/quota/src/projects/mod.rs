//! Synnefo projects: applications that an administrator approves or denies, the project
//! life cycle (active, suspended, terminated), and memberships by join and leave policy.
//! A project is also the Keystone project its members scope tokens to; an accepted member
//! holds its `member` role.

mod applications;
mod lifecycle;
mod memberships;

use std::collections::BTreeMap;

use nefos_db::identity as iq;
use nefos_db::quota::{self as q, GrantRow, ProjectSettingsRow};
use nefos_identity::Caller;

use crate::{QuotaError, Quotas};

pub use applications::{Application, ApplicationSpec};
pub use lifecycle::LifecycleAction;
pub use memberships::{Membership, MembershipAction};

/// Who may join or leave a project, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// At once.
    Auto,
    /// When the project's owner accepts.
    Moderated,
    /// Not at all (the owner may still add and remove members).
    Closed,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Auto => "auto",
            Policy::Moderated => "moderated",
            Policy::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Result<Self, QuotaError> {
        match text {
            "auto" => Ok(Policy::Auto),
            "moderated" => Ok(Policy::Moderated),
            "closed" => Ok(Policy::Closed),
            other => Err(QuotaError::invalid(
                "policy",
                format!("{other:?} is not auto, moderated or closed"),
            )),
        }
    }
}

/// What a project grants of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    /// The limit of each member.
    pub member_capacity: i64,
    /// The limit of all members together.
    pub project_capacity: i64,
}

impl From<GrantRow> for Grant {
    fn from(row: GrantRow) -> Self {
        Grant {
            member_capacity: row.member_limit,
            project_capacity: row.project_limit,
        }
    }
}

impl From<Grant> for GrantRow {
    fn from(grant: Grant) -> Self {
        GrantRow {
            member_limit: grant.member_capacity,
            project_limit: grant.project_capacity,
        }
    }
}

/// A project as Synnefo shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProjectInfo {
    pub id: String,
    pub name: String,
    pub description: String,
    pub homepage: String,
    /// `uninitialized`, `active`, `suspended`, `terminated` or `deleted`.
    pub state: String,
    /// `base` for a personal project, `system` or `regular`.
    pub kind: String,
    pub owner_id: Option<String>,
    pub created_at: i64,
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    pub join_policy: String,
    pub leave_policy: String,
    pub max_members: Option<i64>,
    /// What it grants; a personal project's omitted resources have the base defaults.
    pub resources: BTreeMap<String, Grant>,
    pub members: i64,
    /// The newest application, for the projects its owner or an administrator looks at.
    pub last_application: Option<Application>,
}

/// Which projects [`Quotas::projects`] returns.
#[derive(Debug, Clone, Default)]
pub struct ProjectQuery {
    pub state: Option<String>,
    pub owner_id: Option<String>,
    pub name: Option<String>,
    /// Every project for an administrator (otherwise only the caller's own).
    pub all: bool,
}

impl Quotas {
    /// A project its owner, a member, a user asking to join, or an administrator may see;
    /// active projects are visible to every user, so that they can ask to join.
    pub async fn project(&self, caller: Caller<'_>, id: &str) -> Result<ProjectInfo, QuotaError> {
        let row = q::get_project_settings(self.db.pool(), id)
            .await?
            .ok_or_else(|| QuotaError::not_found("project", id))?;
        if row.state != "active" || row.kind != "regular" {
            self.require_project_reader(caller, id).await?;
        }
        self.project_info(caller, row).await
    }

    /// The caller's projects (owned, joined or asked to join); every project for an
    /// administrator asking for all.
    pub async fn projects(
        &self,
        caller: Caller<'_>,
        query: &ProjectQuery,
    ) -> Result<Vec<ProjectInfo>, QuotaError> {
        let related_to = match caller {
            _ if query.all && caller.is_admin() => None,
            Caller::Operator => None,
            Caller::Token(ctx) => Some(ctx.user_id.clone()),
        };
        let filter = q::ProjectSettingsFilter {
            related_to,
            state: query.state.clone(),
            owner_id: query.owner_id.clone(),
            name: query.name.clone(),
        };
        let mut projects = Vec::new();
        for row in q::list_project_settings(self.db.pool(), &filter).await? {
            projects.push(self.project_info(caller, row).await?);
        }
        Ok(projects)
    }

    async fn project_info(
        &self,
        caller: Caller<'_>,
        row: ProjectSettingsRow,
    ) -> Result<ProjectInfo, QuotaError> {
        let resources = q::project_grants(self.db.pool(), &row.id)
            .await?
            .into_iter()
            .map(|(resource, grant)| (resource, Grant::from(grant)))
            .collect();
        let members = q::count_members(self.db.pool(), &row.id).await?;
        let owns = caller
            .user_id()
            .is_some_and(|u| row.owner_id.as_deref() == Some(u));
        let last_application = if owns || caller.is_admin() {
            let filter = q::ApplicationFilter {
                project_id: Some(row.id.clone()),
                ..q::ApplicationFilter::default()
            };
            q::list_applications(self.db.pool(), &filter)
                .await?
                .pop()
                .map(Application::try_from)
                .transpose()?
        } else {
            None
        };
        Ok(ProjectInfo {
            id: row.id,
            name: row.name,
            description: row.description,
            homepage: row.homepage,
            state: row.state,
            kind: row.kind,
            owner_id: row.owner_id,
            created_at: row.created_at,
            start_at: row.start_at,
            end_at: row.end_at,
            join_policy: row.join_policy,
            leave_policy: row.leave_policy,
            max_members: row.max_members,
            resources,
            members,
            last_application,
        })
    }

    /// Sets what a project grants of a resource (`nefos admin quota set`); for a personal
    /// project, its user's limit. Administrators only.
    pub async fn set_grant(
        &self,
        caller: Caller<'_>,
        project_id: &str,
        resource: &str,
        grant: Grant,
    ) -> Result<(), QuotaError> {
        if !caller.is_admin() {
            return Err(QuotaError::not_allowed("only administrators set quotas"));
        }
        if grant.member_capacity < 0 || grant.project_capacity < 0 {
            return Err(QuotaError::invalid("limit", "must not be negative"));
        }
        if !q::list_resources(self.db.pool())
            .await?
            .iter()
            .any(|r| r.name == resource)
        {
            return Err(QuotaError::UnknownResource {
                resource: resource.to_owned(),
            });
        }
        let mut tx = self.db.begin().await?;
        if iq::get_project(&mut *tx, project_id).await?.is_none() {
            return Err(QuotaError::not_found("project", project_id));
        }
        q::set_project_grant(&mut *tx, project_id, resource, grant.into()).await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit a quota change"))?;
        Ok(())
    }

    /// Sets a project's limit of a resource as the OpenStack APIs set one (Neutron's and
    /// Nova's quota `PUT`): what its members may use together. A personal project's user
    /// gets the same limit; a regular project's members keep the limit each had, or, where
    /// none was set, may each use the whole. Administrators only.
    pub async fn set_project_limit(
        &self,
        caller: Caller<'_>,
        project_id: &str,
        resource: &str,
        limit: i64,
    ) -> Result<(), QuotaError> {
        if !caller.is_admin() {
            return Err(QuotaError::not_allowed("only administrators set quotas"));
        }
        let project = self.project(caller, project_id).await?;
        let member_capacity = match project.resources.get(resource) {
            Some(grant) if project.kind == "regular" => grant.member_capacity,
            _ => limit,
        };
        let grant = Grant {
            member_capacity,
            project_capacity: limit,
        };
        self.set_grant(caller, project_id, resource, grant).await
    }

    /// Makes the transactions that change one project (its state, settings, applications
    /// and memberships) take turns, so that each decides on what the previous one left:
    /// an approval racing a termination, or two joins racing for the last place.
    pub(crate) async fn lock_project(
        &self,
        tx: &mut nefos_db::Transaction,
        project_id: &str,
    ) -> Result<(), QuotaError> {
        self.db
            .lock_key(tx, &format!("project:{project_id}"))
            .await?;
        Ok(())
    }

    /// Owner, member, or administrator; anyone else is told the project does not exist.
    pub(crate) async fn require_project_reader(
        &self,
        caller: Caller<'_>,
        project_id: &str,
    ) -> Result<(), QuotaError> {
        let Caller::Token(ctx) = caller else {
            return Ok(());
        };
        if ctx.is_cloud_admin() {
            return Ok(());
        }
        let project = iq::get_project(self.db.pool(), project_id)
            .await?
            .ok_or_else(|| QuotaError::not_found("project", project_id))?;
        let is_member = !iq::roles_on_project(self.db.pool(), &ctx.user_id, project_id)
            .await?
            .is_empty();
        // A user asking to join sees the project; one rejected or gone no longer does.
        let asked = q::membership_of(self.db.pool(), project_id, &ctx.user_id)
            .await?
            .is_some_and(|m| {
                matches!(
                    m.state.as_str(),
                    "requested" | "accepted" | "leave_requested"
                )
            });
        if project.owner_id.as_deref() == Some(ctx.user_id.as_str()) || is_member || asked {
            Ok(())
        } else {
            Err(QuotaError::not_found("project", project_id))
        }
    }
}
