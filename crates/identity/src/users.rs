//! Users. Creating a user creates its personal base project in the same transaction, so no
//! user ever exists without one (docs/design.md §7).

use std::collections::BTreeMap;

use nefos_db::identity::{self as q, ProjectRow, RoleAssignmentRow, UserRow};
use nefos_db::time::now_micros;

use crate::model::{check_email, check_name};
use crate::password::check_password_input;
use crate::secret::new_id;
use crate::{
    ADMIN_PROJECT, Caller, Identity, IdentityError, NewUser, Project, ProjectFilter, ProjectKind,
    Role, User, UserFilter, UserPatch,
};

impl Identity {
    /// Creates a user and its base project, named after the user, on which the user is a
    /// `member`. Administrators only.
    pub async fn create_user(
        &self,
        caller: Caller<'_>,
        new: NewUser,
    ) -> Result<User, IdentityError> {
        caller.require_admin("create users")?;
        self.insert_user_with_project(new, ProjectKind::Base, Role::Member)
            .await
    }

    /// Creates the cloud administrator: a user whose base project is the system project, on
    /// which it holds `admin`. Used once, by `nefos up` and `nefos admin bootstrap`.
    pub async fn create_admin_user(&self, new: NewUser) -> Result<User, IdentityError> {
        self.insert_user_with_project(new, ProjectKind::System, Role::Admin)
            .await
    }

    async fn insert_user_with_project(
        &self,
        new: NewUser,
        kind: ProjectKind,
        role: Role,
    ) -> Result<User, IdentityError> {
        check_name("name", &new.name)?;
        if let Some(email) = &new.email {
            check_email(email)?;
        }
        let password_hash = match new.password {
            Some(password) => Some(self.hashers.hash(password).await?),
            None => None,
        };
        let now = now_micros();
        let user_id = new_id();
        let project = ProjectRow {
            id: new_id(),
            // The cloud administrator's project is the system project, whatever its user's name.
            name: if kind == ProjectKind::System {
                ADMIN_PROJECT.to_owned()
            } else {
                new.name.clone()
            },
            description: match kind {
                ProjectKind::System => "Administration of the cloud".to_owned(),
                _ => format!("Personal project of {}", new.name),
            },
            enabled: true,
            kind: kind.as_str().to_owned(),
            owner_id: Some(user_id.clone()),
            created_at: now,
            updated_at: now,
        };
        let user = UserRow {
            id: user_id,
            name: new.name,
            email: new.email,
            password_hash,
            enabled: new.enabled,
            base_project_id: project.id.clone(),
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.db.begin().await?;
        if q::get_user_by_name(&mut *tx, &user.name).await?.is_some() {
            return Err(IdentityError::Conflict {
                what: "a user with this name",
            });
        }
        if q::get_project_by_name(&mut *tx, &project.name)
            .await?
            .is_some()
        {
            return Err(IdentityError::Conflict {
                what: "a project with this name",
            });
        }
        q::insert_project(&mut tx, &project).await?;
        q::insert_user(&mut tx, &user).await?;
        q::grant_role(
            &mut tx,
            &RoleAssignmentRow {
                project_id: project.id.clone(),
                user_id: user.id.clone(),
                role: role.as_str().to_owned(),
                created_at: now,
            },
        )
        .await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit a new user"))?;
        tracing::info!(user_id = %user.id, name = %user.name, "created user");
        Ok(user.into())
    }

    /// A user, if the caller is that user or an administrator; otherwise "not found".
    pub async fn user(&self, caller: Caller<'_>, id: &str) -> Result<User, IdentityError> {
        if !caller.is_or_admin(id) {
            return Err(IdentityError::not_found("user", id));
        }
        q::get_user(self.db.pool(), id)
            .await?
            .map(User::from)
            .ok_or_else(|| IdentityError::not_found("user", id))
    }

    /// A user by id or, failing that, by name (the lookup the CLI tools make).
    pub async fn user_by_id_or_name(
        &self,
        caller: Caller<'_>,
        id_or_name: &str,
    ) -> Result<User, IdentityError> {
        let found = match q::get_user(self.db.pool(), id_or_name).await? {
            Some(user) => Some(user),
            None => q::get_user_by_name(self.db.pool(), id_or_name).await?,
        };
        match found {
            Some(user) if caller.is_or_admin(&user.id) => Ok(user.into()),
            _ => Err(IdentityError::not_found("user", id_or_name)),
        }
    }

    /// Users matching `filter`: all of them for an administrator, only the caller otherwise.
    pub async fn users(
        &self,
        caller: Caller<'_>,
        filter: &UserFilter,
    ) -> Result<Vec<User>, IdentityError> {
        let rows = q::list_users(self.db.pool(), filter).await?;
        Ok(rows
            .into_iter()
            .filter(|row| caller.is_or_admin(&row.id))
            .map(User::from)
            .collect())
    }

    /// Changes a user. Administrators only. Disabling a user or changing its password
    /// revokes its tokens. Renaming a user renames its base project with it.
    pub async fn update_user(
        &self,
        caller: Caller<'_>,
        id: &str,
        patch: UserPatch,
    ) -> Result<User, IdentityError> {
        caller.require_admin("change users")?;
        if let Some(name) = &patch.name {
            check_name("name", name)?;
        }
        if let Some(Some(email)) = &patch.email {
            check_email(email)?;
        }
        let password_hash = match patch.password {
            Some(password) => Some(self.hashers.hash(password).await?),
            None => None,
        };
        let mut tx = self.db.begin().await?;
        let mut row = q::get_user(&mut *tx, id)
            .await?
            .ok_or_else(|| IdentityError::not_found("user", id))?;
        let revoke = password_hash.is_some() || (patch.enabled == Some(false) && row.enabled);
        let renamed = patch.name.as_ref().is_some_and(|name| *name != row.name);
        if let Some(name) = patch.name {
            row.name = name;
        }
        if let Some(email) = patch.email {
            row.email = email;
        }
        if let Some(hash) = password_hash {
            row.password_hash = Some(hash);
        }
        if let Some(enabled) = patch.enabled {
            row.enabled = enabled;
        }
        row.updated_at = now_micros();
        if renamed {
            // As at creation, a user may not take a name a project holds: its base project is
            // named after it.
            let holder = q::get_project_by_name(&mut *tx, &row.name).await?;
            if holder.is_some_and(|p| p.id != row.base_project_id) {
                return Err(IdentityError::Conflict {
                    what: "a project with this name",
                });
            }
        }
        q::update_user(&mut tx, &row).await?;
        if renamed
            && let Some(mut base) = q::get_project(&mut *tx, &row.base_project_id).await?
            && base.kind == ProjectKind::Base.as_str()
        {
            base.name = row.name.clone();
            base.updated_at = row.updated_at;
            q::update_project(&mut tx, &base).await?;
        }
        if revoke {
            q::revoke_user_tokens(&mut *tx, id, row.updated_at).await?;
        }
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit a user change"))?;
        self.cache.clear();
        Ok(row.into())
    }

    /// Whether `password` is the user's password, without issuing a token or changing
    /// anything. Administrators only (`nefos admin bootstrap` asks it of the cloud
    /// administrator's password before deciding whether to reset it).
    pub async fn password_matches(
        &self,
        caller: Caller<'_>,
        id: &str,
        password: String,
    ) -> Result<bool, IdentityError> {
        caller.require_admin("check passwords")?;
        let row = q::get_user(self.db.pool(), id)
            .await?
            .ok_or_else(|| IdentityError::not_found("user", id))?;
        self.hashers.verify(row.password_hash, password).await
    }

    /// A user changes its own password, proving the old one; all its tokens are revoked.
    pub async fn change_own_password(
        &self,
        caller: Caller<'_>,
        id: &str,
        original: String,
        new: String,
    ) -> Result<(), IdentityError> {
        if caller.user_id() != Some(id) {
            return Err(IdentityError::not_found("user", id));
        }
        check_password_input(&new)?;
        let row = q::get_user(self.db.pool(), id)
            .await?
            .ok_or_else(|| IdentityError::not_found("user", id))?;
        if !self.hashers.verify(row.password_hash, original).await? {
            return Err(IdentityError::Unauthorized {
                reason: "the original password is wrong",
            });
        }
        self.update_user(
            Caller::Operator,
            id,
            UserPatch {
                password: Some(new),
                ..Default::default()
            },
        )
        .await?;
        Ok(())
    }

    /// Deletes a user together with its base project, role assignments and tokens.
    /// Administrators only; the cloud administrator owning the system project cannot go.
    pub async fn delete_user(&self, caller: Caller<'_>, id: &str) -> Result<(), IdentityError> {
        caller.require_admin("delete users")?;
        let mut tx = self.db.begin().await?;
        let user = q::get_user(&mut *tx, id)
            .await?
            .ok_or_else(|| IdentityError::not_found("user", id))?;
        let base = q::get_project(&mut *tx, &user.base_project_id).await?;
        if base
            .as_ref()
            .is_some_and(|p| p.kind == ProjectKind::System.as_str())
        {
            return Err(IdentityError::NotAllowed {
                reason: "the user that owns the system project cannot be deleted",
            });
        }
        q::delete_user(&mut tx, id).await?;
        q::delete_project(&mut tx, &user.base_project_id).await?;
        tx.commit()
            .await
            .map_err(nefos_db::DbError::query("commit a user deletion"))?;
        self.cache.clear();
        tracing::info!(user_id = %id, "deleted user");
        Ok(())
    }

    /// The projects a user holds a role on; the user or an administrator may ask.
    pub async fn user_projects(
        &self,
        caller: Caller<'_>,
        user_id: &str,
    ) -> Result<Vec<Project>, IdentityError> {
        self.user(caller, user_id).await?;
        let filter = ProjectFilter {
            member: Some(user_id.to_owned()),
            ..Default::default()
        };
        Ok(q::list_projects(self.db.pool(), &filter)
            .await?
            .into_iter()
            .map(Project::from)
            .collect())
    }
}

impl Identity {
    /// Synnefo's user catalogs, for any authenticated caller (Astakos shows display names
    /// to every user): the name of each id in `ids` (a user's, or a project's, since
    /// nefos's accounts and image owners are projects), and the id of each user name in
    /// `names`. Unknown ones are left out.
    pub async fn user_catalogs(
        &self,
        ids: &[String],
        names: &[String],
    ) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>), IdentityError> {
        let pool = self.db.pool();
        let mut by_id = BTreeMap::new();
        for id in ids {
            if let Some(user) = q::get_user(pool, id).await? {
                by_id.insert(id.clone(), user.name);
            } else if let Some(project) = q::get_project(pool, id).await? {
                by_id.insert(id.clone(), project.name);
            }
        }
        let mut by_name = BTreeMap::new();
        for name in names {
            if let Some(user) = q::get_user_by_name(pool, name).await? {
                by_name.insert(name.clone(), user.id);
            }
        }
        Ok((by_id, by_name))
    }
}
