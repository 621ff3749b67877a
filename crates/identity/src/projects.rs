//! Projects and the roles users hold on them.

use nefos_db::DbError;
use nefos_db::identity::{self as q, AssignmentFilter, ProjectRow, RoleAssignmentRow};
use nefos_db::time::now_micros;

use crate::model::check_name;
use crate::secret::new_id;
use crate::{
    Caller, Identity, IdentityError, NewProject, Project, ProjectFilter, ProjectKind, ProjectPatch,
    Role, RoleAssignment, RoleAssignmentFilter,
};

impl Identity {
    /// Creates a regular project. Administrators only.
    pub async fn create_project(
        &self,
        caller: Caller<'_>,
        new: NewProject,
    ) -> Result<Project, IdentityError> {
        caller.require_admin("create projects")?;
        check_name("name", &new.name)?;
        let now = now_micros();
        let row = ProjectRow {
            id: new_id(),
            name: new.name,
            description: new.description,
            enabled: new.enabled,
            kind: ProjectKind::Regular.as_str().to_owned(),
            owner_id: None,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.db.begin().await?;
        q::insert_project(&mut tx, &row).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a new project"))?;
        Ok(row.into())
    }

    /// Whether the caller may see `project_id`: administrators see all, users the projects
    /// they hold a role on.
    async fn may_see_project(
        &self,
        caller: Caller<'_>,
        project_id: &str,
    ) -> Result<bool, IdentityError> {
        match caller {
            Caller::Operator => Ok(true),
            Caller::Token(ctx) if ctx.is_cloud_admin() => Ok(true),
            Caller::Token(ctx) => {
                Ok(
                    !q::roles_on_project(self.db.pool(), &ctx.user_id, project_id)
                        .await?
                        .is_empty(),
                )
            }
        }
    }

    /// A project the caller may see; otherwise "not found".
    pub async fn project(&self, caller: Caller<'_>, id: &str) -> Result<Project, IdentityError> {
        let row = q::get_project(self.db.pool(), id).await?;
        match row {
            Some(row) if self.may_see_project(caller, &row.id).await? => Ok(row.into()),
            _ => Err(IdentityError::not_found("project", id)),
        }
    }

    /// A project by id or, failing that, by name.
    pub async fn project_by_id_or_name(
        &self,
        caller: Caller<'_>,
        id_or_name: &str,
    ) -> Result<Project, IdentityError> {
        let found = match q::get_project(self.db.pool(), id_or_name).await? {
            Some(row) => Some(row),
            None => q::get_project_by_name(self.db.pool(), id_or_name).await?,
        };
        match found {
            Some(row) if self.may_see_project(caller, &row.id).await? => Ok(row.into()),
            _ => Err(IdentityError::not_found("project", id_or_name)),
        }
    }

    /// Projects matching `filter`: all for an administrator, the caller's own otherwise.
    pub async fn projects(
        &self,
        caller: Caller<'_>,
        filter: &ProjectFilter,
    ) -> Result<Vec<Project>, IdentityError> {
        let mut filter = filter.clone();
        if let Caller::Token(ctx) = caller
            && !ctx.is_cloud_admin()
        {
            if filter.member.as_deref().is_some_and(|m| m != ctx.user_id) {
                return Ok(Vec::new());
            }
            filter.member = Some(ctx.user_id.clone());
        }
        Ok(q::list_projects(self.db.pool(), &filter)
            .await?
            .into_iter()
            .map(Project::from)
            .collect())
    }

    /// Changes a project. Administrators only; a base project keeps its owner's name.
    pub async fn update_project(
        &self,
        caller: Caller<'_>,
        id: &str,
        patch: ProjectPatch,
    ) -> Result<Project, IdentityError> {
        caller.require_admin("change projects")?;
        if let Some(name) = &patch.name {
            check_name("name", name)?;
        }
        let mut tx = self.db.begin().await?;
        let mut row = q::get_project(&mut *tx, id)
            .await?
            .ok_or_else(|| IdentityError::not_found("project", id))?;
        if let Some(name) = patch.name
            && name != row.name
        {
            if row.kind != ProjectKind::Regular.as_str() {
                return Err(IdentityError::NotAllowed {
                    reason: "personal and system projects cannot be renamed",
                });
            }
            row.name = name;
        }
        if let Some(description) = patch.description {
            row.description = description;
        }
        if let Some(enabled) = patch.enabled {
            if row.enabled && !enabled {
                // As Keystone: disabling a project revokes its tokens for good, so enabling
                // it again does not bring them back.
                q::revoke_project_tokens(&mut *tx, id, None, now_micros()).await?;
            }
            row.enabled = enabled;
        }
        row.updated_at = now_micros();
        q::update_project(&mut tx, &row).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a project change"))?;
        self.cache.clear();
        Ok(row.into())
    }

    /// Deletes a regular project. Administrators only; base projects go with their user.
    pub async fn delete_project(&self, caller: Caller<'_>, id: &str) -> Result<(), IdentityError> {
        caller.require_admin("delete projects")?;
        let mut tx = self.db.begin().await?;
        let row = q::get_project(&mut *tx, id)
            .await?
            .ok_or_else(|| IdentityError::not_found("project", id))?;
        if row.kind != ProjectKind::Regular.as_str() {
            return Err(IdentityError::NotAllowed {
                reason: "personal and system projects are deleted only with their user",
            });
        }
        q::delete_project(&mut tx, id).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a project deletion"))?;
        self.cache.clear();
        Ok(())
    }

    /// Grants `role` on a project to a user. Administrators only; idempotent.
    pub async fn grant_role(
        &self,
        caller: Caller<'_>,
        project_id: &str,
        user_id: &str,
        role: Role,
    ) -> Result<(), IdentityError> {
        caller.require_admin("assign roles")?;
        let mut tx = self.db.begin().await?;
        if q::get_project(&mut *tx, project_id).await?.is_none() {
            return Err(IdentityError::not_found("project", project_id));
        }
        if q::get_user(&mut *tx, user_id).await?.is_none() {
            return Err(IdentityError::not_found("user", user_id));
        }
        let assignment = RoleAssignmentRow {
            project_id: project_id.to_owned(),
            user_id: user_id.to_owned(),
            role: role.as_str().to_owned(),
            created_at: now_micros(),
        };
        q::grant_role(&mut tx, &assignment).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a role grant"))?;
        self.cache.clear();
        Ok(())
    }

    /// Revokes `role` (or every role, with `None`) of a user on a project. Administrators
    /// only. Revoking what is not held is "not found", as in Keystone.
    pub async fn revoke_role(
        &self,
        caller: Caller<'_>,
        project_id: &str,
        user_id: &str,
        role: Option<Role>,
    ) -> Result<(), IdentityError> {
        caller.require_admin("revoke roles")?;
        let mut tx = self.db.begin().await?;
        let project = q::get_project(&mut *tx, project_id)
            .await?
            .ok_or_else(|| IdentityError::not_found("project", project_id))?;
        if project.owner_id.as_deref() == Some(user_id) {
            return Err(IdentityError::NotAllowed {
                reason: "a user cannot be removed from its own personal project",
            });
        }
        let removed = q::revoke_role(&mut tx, project_id, user_id, role.map(Role::as_str)).await?;
        if removed == 0 {
            return Err(IdentityError::not_found(
                "role assignment",
                &format!("{project_id}/{user_id}"),
            ));
        }
        // As Keystone: a removed role revokes the user's tokens on the project, which stay
        // revoked when the user is added again.
        q::revoke_project_tokens(&mut *tx, project_id, Some(user_id), now_micros()).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a role revocation"))?;
        self.cache.clear();
        Ok(())
    }

    /// The roles a user holds on a project; the user or an administrator may ask.
    pub async fn roles_on_project(
        &self,
        caller: Caller<'_>,
        project_id: &str,
        user_id: &str,
    ) -> Result<Vec<Role>, IdentityError> {
        if !caller.is_or_admin(user_id) {
            return Err(IdentityError::not_found("user", user_id));
        }
        let roles = q::roles_on_project(self.db.pool(), user_id, project_id).await?;
        Ok(roles.iter().filter_map(|r| r.parse().ok()).collect())
    }

    /// Role assignments matching `filter`: all for an administrator, the caller's own
    /// otherwise.
    pub async fn role_assignments(
        &self,
        caller: Caller<'_>,
        filter: &RoleAssignmentFilter,
    ) -> Result<Vec<RoleAssignment>, IdentityError> {
        let mut user_id = filter.user_id.clone();
        if let Caller::Token(ctx) = caller
            && !ctx.is_cloud_admin()
        {
            if user_id.as_deref().is_some_and(|u| u != ctx.user_id) {
                return Ok(Vec::new());
            }
            user_id = Some(ctx.user_id.clone());
        }
        let db_filter = AssignmentFilter {
            user_id,
            project_id: filter.project_id.clone(),
            role: filter.role.map(|r| r.as_str().to_owned()),
        };
        let rows = q::list_role_assignments(self.db.pool(), &db_filter).await?;
        Ok(rows
            .into_iter()
            .filter_map(RoleAssignment::from_row)
            .collect())
    }
}
