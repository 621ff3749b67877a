//! Applications: any user applies for a new project, or its owner for a change; an
//! administrator approves or denies.

use std::collections::BTreeMap;

use nefos_db::DbError;
use nefos_db::identity::{self as iq, ProjectRow};
use nefos_db::quota::{self as q, ApplicationRow, GrantRow};
use nefos_db::time::now_micros;
use nefos_identity::Caller;

use super::{Grant, Policy};
use crate::{QuotaError, Quotas};

/// What an application asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationSpec {
    /// The project to change; `None` for a new one.
    pub project_id: Option<String>,
    pub name: String,
    pub description: String,
    pub homepage: String,
    pub start_at: Option<i64>,
    pub end_at: i64,
    pub join_policy: Policy,
    pub leave_policy: Policy,
    pub max_members: Option<i64>,
    pub resources: BTreeMap<String, Grant>,
    pub comments: String,
}

/// An application as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Application {
    pub id: String,
    pub project_id: String,
    pub applicant_id: String,
    /// `pending`, `approved`, `denied`, `dismissed` or `cancelled`.
    pub state: String,
    pub name: String,
    pub description: String,
    pub homepage: String,
    pub start_at: Option<i64>,
    pub end_at: i64,
    pub join_policy: String,
    pub leave_policy: String,
    pub max_members: Option<i64>,
    pub resources: BTreeMap<String, Grant>,
    pub comments: String,
    pub reason: String,
    pub created_at: i64,
    pub decided_at: Option<i64>,
}

impl TryFrom<ApplicationRow> for Application {
    type Error = QuotaError;

    fn try_from(row: ApplicationRow) -> Result<Self, QuotaError> {
        let resources = serde_json::from_str(&row.resources)
            .map_err(|e| QuotaError::invalid("stored application", format!("{}: {e}", row.id)))?;
        Ok(Application {
            id: row.id,
            project_id: row.project_id,
            applicant_id: row.applicant_id,
            state: row.state,
            name: row.name,
            description: row.description,
            homepage: row.homepage,
            start_at: row.start_at,
            end_at: row.end_at,
            join_policy: row.join_policy,
            leave_policy: row.leave_policy,
            max_members: row.max_members,
            resources,
            comments: row.comments,
            reason: row.reason,
            created_at: row.created_at,
            decided_at: row.decided_at,
        })
    }
}

impl Quotas {
    /// Submits an application. Any user may apply for a new project, which exists
    /// (uninitialized, granting nothing) until an administrator decides; only the owner
    /// may apply to change a project, and a newer application replaces a pending one.
    pub async fn apply(
        &self,
        caller: Caller<'_>,
        spec: ApplicationSpec,
    ) -> Result<Application, QuotaError> {
        let Some(applicant) = caller.user_id() else {
            return Err(QuotaError::not_allowed("applications are made by users"));
        };
        check_spec(&spec, now_micros())?;
        let resources = q::list_resources(self.db.pool()).await?;
        for resource in spec.resources.keys() {
            if !resources.iter().any(|r| &r.name == resource) {
                return Err(QuotaError::UnknownResource {
                    resource: resource.clone(),
                });
            }
        }
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        let project_id = match &spec.project_id {
            Some(id) => {
                self.lock_project(&mut tx, id).await?;
                let project = q::get_project_settings(&mut *tx, id)
                    .await?
                    .ok_or_else(|| QuotaError::not_found("project", id))?;
                if project.owner_id.as_deref() != Some(applicant) && !caller.is_admin() {
                    return Err(QuotaError::not_found("project", id));
                }
                if project.kind != "regular" || project.state == "deleted" {
                    return Err(QuotaError::conflict(format!(
                        "a {} {} project takes no applications",
                        project.state, project.kind
                    )));
                }
                // A newer application replaces a pending one, as in Synnefo.
                let pending = q::ApplicationFilter {
                    project_id: Some(id.clone()),
                    state: Some("pending".to_owned()),
                    ..q::ApplicationFilter::default()
                };
                for old in q::list_applications(&mut *tx, &pending).await? {
                    q::decide_application(&mut *tx, &old.id, "pending", "cancelled", "", now)
                        .await?;
                }
                id.clone()
            }
            None => {
                let project = ProjectRow {
                    id: new_id(),
                    name: spec.name.clone(),
                    description: spec.description.clone(),
                    enabled: false,
                    kind: "regular".to_owned(),
                    owner_id: Some(applicant.to_owned()),
                    created_at: now,
                    updated_at: now,
                };
                iq::insert_project(&mut tx, &project)
                    .await
                    .map_err(|e| match e {
                        DbError::Conflict { .. } => QuotaError::conflict(format!(
                            "a project named {:?} exists already",
                            spec.name
                        )),
                        other => other.into(),
                    })?;
                mark_uninitialized(&mut tx, &project.id).await?;
                project.id
            }
        };
        let resources_json = serde_json::to_string(&spec.resources)
            .map_err(|e| QuotaError::invalid("resources", e.to_string()))?;
        let row = ApplicationRow {
            id: new_id(),
            project_id,
            applicant_id: applicant.to_owned(),
            state: "pending".to_owned(),
            name: spec.name,
            description: spec.description,
            homepage: spec.homepage,
            start_at: spec.start_at,
            end_at: spec.end_at,
            join_policy: spec.join_policy.as_str().to_owned(),
            leave_policy: spec.leave_policy.as_str().to_owned(),
            max_members: spec.max_members,
            resources: resources_json,
            comments: spec.comments,
            reason: String::new(),
            created_at: now,
            decided_at: None,
        };
        q::insert_application(&mut *tx, &row).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a project application"))?;
        Application::try_from(row)
    }

    /// An application its applicant, the project's owner or an administrator may see.
    pub async fn application(
        &self,
        caller: Caller<'_>,
        id: &str,
    ) -> Result<Application, QuotaError> {
        let row = q::get_application(self.db.pool(), id)
            .await?
            .ok_or_else(|| QuotaError::not_found("application", id))?;
        if caller.user_id() != Some(row.applicant_id.as_str()) && !caller.is_admin() {
            // Not "project not found": that would tell a stranger the project exists.
            self.require_project_owner(caller, &row.project_id)
                .await
                .map_err(|_| QuotaError::not_found("application", id))?;
        }
        Application::try_from(row)
    }

    /// Applications: the caller's own, or (administrators) all, oldest first.
    pub async fn applications(
        &self,
        caller: Caller<'_>,
        project_id: Option<&str>,
        state: Option<&str>,
    ) -> Result<Vec<Application>, QuotaError> {
        let applicant_id = if caller.is_admin() {
            None
        } else {
            caller.user_id().map(str::to_owned)
        };
        let filter = q::ApplicationFilter {
            project_id: project_id.map(str::to_owned),
            applicant_id,
            state: state.map(str::to_owned),
        };
        q::list_applications(self.db.pool(), &filter)
            .await?
            .into_iter()
            .map(Application::try_from)
            .collect()
    }

    /// Approves a pending application: the project becomes (or stays) active with what
    /// the application asks. Administrators only.
    pub async fn approve(
        &self,
        caller: Caller<'_>,
        application_id: &str,
        reason: &str,
    ) -> Result<Application, QuotaError> {
        require_admin(caller, "approve applications")?;
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        let app = self.pending_application(&mut tx, application_id).await?;
        let mut project = q::get_project_settings(&mut *tx, &app.project_id)
            .await?
            .ok_or_else(|| QuotaError::not_found("project", &app.project_id))?;
        if matches!(project.state.as_str(), "terminated" | "deleted") {
            return Err(QuotaError::conflict(format!(
                "the project is {}",
                project.state
            )));
        }
        let grants: BTreeMap<String, Grant> = serde_json::from_str(&app.resources)
            .map_err(|e| QuotaError::invalid("stored application", e.to_string()))?;
        let grants: BTreeMap<String, GrantRow> =
            grants.into_iter().map(|(r, g)| (r, g.into())).collect();
        project.name = app.name.clone();
        project.description = app.description.clone();
        project.homepage = app.homepage.clone();
        project.start_at = app.start_at;
        project.end_at = Some(app.end_at);
        project.join_policy = app.join_policy.clone();
        project.leave_policy = app.leave_policy.clone();
        project.max_members = app.max_members;
        if project.state == "uninitialized" {
            project.state = "active".to_owned();
        }
        let enabled = project.state != "deleted";
        q::update_project_settings(&mut *tx, &project, enabled, now)
            .await
            .map_err(|e| match e {
                DbError::Conflict { .. } => {
                    QuotaError::conflict(format!("a project named {:?} exists already", app.name))
                }
                other => other.into(),
            })?;
        q::replace_project_grants(&mut tx, &project.id, &grants).await?;
        if !q::decide_application(&mut *tx, application_id, "pending", "approved", reason, now)
            .await?
        {
            return Err(QuotaError::conflict(
                "the application was decided meanwhile",
            ));
        }
        let decided = q::get_application(&mut *tx, application_id)
            .await?
            .ok_or_else(|| QuotaError::not_found("application", application_id))?;
        tx.commit()
            .await
            .map_err(DbError::query("commit an approval"))?;
        Application::try_from(decided)
    }

    /// Denies a pending application; a project that was never approved is deleted (its
    /// Keystone project stays, disabled). Administrators only.
    pub async fn deny(
        &self,
        caller: Caller<'_>,
        application_id: &str,
        reason: &str,
    ) -> Result<Application, QuotaError> {
        require_admin(caller, "deny applications")?;
        self.close_application(application_id, "denied", reason)
            .await
    }

    /// Withdraws one's own pending application.
    pub async fn cancel_application(
        &self,
        caller: Caller<'_>,
        application_id: &str,
    ) -> Result<Application, QuotaError> {
        self.own_application(caller, application_id, "cancels")
            .await?;
        self.close_application(application_id, "cancelled", "")
            .await
    }

    /// Acknowledges one's own denied application.
    pub async fn dismiss_application(
        &self,
        caller: Caller<'_>,
        application_id: &str,
    ) -> Result<Application, QuotaError> {
        let app = self
            .own_application(caller, application_id, "dismisses")
            .await?;
        let now = now_micros();
        if !q::decide_application(
            self.db.pool(),
            application_id,
            "denied",
            "dismissed",
            &app.reason,
            now,
        )
        .await?
        {
            return Err(QuotaError::conflict(
                "only a denied application can be dismissed",
            ));
        }
        self.application(caller, application_id).await
    }

    /// An application of the caller's own: only its applicant `does` what is asked.
    async fn own_application(
        &self,
        caller: Caller<'_>,
        application_id: &str,
        does: &str,
    ) -> Result<Application, QuotaError> {
        let app = self.application(caller, application_id).await?;
        if caller.user_id() == Some(app.applicant_id.as_str()) {
            Ok(app)
        } else {
            Err(QuotaError::not_allowed(format!(
                "only the applicant {does} an application"
            )))
        }
    }

    async fn close_application(
        &self,
        application_id: &str,
        to: &str,
        reason: &str,
    ) -> Result<Application, QuotaError> {
        let now = now_micros();
        let mut tx = self.db.begin().await?;
        let app = self.pending_application(&mut tx, application_id).await?;
        if !q::decide_application(&mut *tx, application_id, "pending", to, reason, now).await? {
            return Err(QuotaError::conflict(
                "the application was decided meanwhile",
            ));
        }
        if let Some(mut project) = q::get_project_settings(&mut *tx, &app.project_id).await?
            && project.state == "uninitialized"
        {
            project.state = "deleted".to_owned();
            q::update_project_settings(&mut *tx, &project, false, now).await?;
        }
        let closed = q::get_application(&mut *tx, application_id)
            .await?
            .ok_or_else(|| QuotaError::not_found("application", application_id))?;
        tx.commit()
            .await
            .map_err(DbError::query("commit an application's decision"))?;
        Application::try_from(closed)
    }

    async fn pending_application(
        &self,
        tx: &mut nefos_db::Transaction,
        id: &str,
    ) -> Result<ApplicationRow, QuotaError> {
        let found = q::get_application(&mut **tx, id)
            .await?
            .ok_or_else(|| QuotaError::not_found("application", id))?;
        // Read again once the project is ours: another decision may have come first.
        self.lock_project(tx, &found.project_id).await?;
        let app = q::get_application(&mut **tx, id)
            .await?
            .ok_or_else(|| QuotaError::not_found("application", id))?;
        if app.state != "pending" {
            return Err(QuotaError::conflict(format!(
                "the application is {}, not pending",
                app.state
            )));
        }
        Ok(app)
    }

    /// The project's owner or an administrator; anyone else is told it does not exist.
    pub(crate) async fn require_project_owner(
        &self,
        caller: Caller<'_>,
        project_id: &str,
    ) -> Result<ProjectRow, QuotaError> {
        let project = iq::get_project(self.db.pool(), project_id)
            .await?
            .ok_or_else(|| QuotaError::not_found("project", project_id))?;
        let owns = caller
            .user_id()
            .is_some_and(|u| project.owner_id.as_deref() == Some(u));
        if owns || caller.is_admin() {
            Ok(project)
        } else {
            Err(QuotaError::not_found("project", project_id))
        }
    }
}

fn check_spec(spec: &ApplicationSpec, now: i64) -> Result<(), QuotaError> {
    if spec.name.trim().is_empty() || spec.name.len() > 255 || spec.name.contains('\0') {
        return Err(QuotaError::invalid("name", "1 to 255 characters, no NUL"));
    }
    if spec.end_at <= now {
        return Err(QuotaError::invalid("end_date", "must be in the future"));
    }
    if spec.start_at.is_some_and(|start| start >= spec.end_at) {
        return Err(QuotaError::invalid(
            "start_date",
            "must come before the end date",
        ));
    }
    if spec.max_members.is_some_and(|m| m < 0) {
        return Err(QuotaError::invalid("max_members", "must not be negative"));
    }
    for (resource, grant) in &spec.resources {
        if grant.member_capacity < 0 || grant.project_capacity < 0 {
            return Err(QuotaError::invalid(
                "resources",
                format!("{resource}: capacities must not be negative"),
            ));
        }
    }
    Ok(())
}

pub(super) fn require_admin(caller: Caller<'_>, what: &str) -> Result<(), QuotaError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(QuotaError::not_allowed(format!(
            "only administrators {what}"
        )))
    }
}

async fn mark_uninitialized(
    tx: &mut nefos_db::Transaction,
    project_id: &str,
) -> Result<(), QuotaError> {
    let mut row = q::get_project_settings(&mut **tx, project_id)
        .await?
        .ok_or_else(|| QuotaError::not_found("project", project_id))?;
    row.state = "uninitialized".to_owned();
    q::update_project_settings(&mut **tx, &row, false, now_micros()).await?;
    Ok(())
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
