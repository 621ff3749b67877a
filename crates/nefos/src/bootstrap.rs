//! The cloud administrator: the user `admin`, whose base project is the system project
//! `admin`, on which it holds the `admin` role. `nefos up` makes it on first start and
//! `nefos admin bootstrap` for a cloud run by `nefos serve`, both through
//! [`ensure_admin`], which only adds what is missing.

use anyhow::Context;
use nefos_identity::{Caller, Identity, IdentityError, NewUser, ProjectKind, Role, UserPatch};

/// The cloud administrator's user name.
pub const ADMIN_USER: &str = "admin";

/// What [`ensure_admin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOutcome {
    /// The user, the system project and the role were created.
    Created,
    /// Everything was in place already.
    Unchanged,
    /// The administrator had lost its `admin` role on the system project; it has it again.
    RoleRestored,
    /// The administrator's password was set to the one given (its tokens are revoked).
    PasswordReset,
    /// The administrator has another password than the one given, and was left alone.
    OtherPassword,
}

/// Whether the cloud administrator exists.
pub async fn admin_exists(identity: &Identity) -> anyhow::Result<bool> {
    match identity
        .user_by_id_or_name(Caller::Operator, ADMIN_USER)
        .await
    {
        Ok(_) => Ok(true),
        Err(IdentityError::NotFound { .. }) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Makes sure the cloud administrator exists with its system project and role. A missing
/// administrator is created with `password`, which must then be given. An existing one
/// keeps its password unless `reset_password`; `password`, when given, is compared with
/// it, so that the caller can say whether they differ.
pub async fn ensure_admin(
    identity: &Identity,
    password: Option<&str>,
    reset_password: bool,
) -> anyhow::Result<AdminOutcome> {
    let op = Caller::Operator;
    let user = match identity.user_by_id_or_name(op, ADMIN_USER).await {
        Ok(user) => user,
        Err(IdentityError::NotFound { .. }) => {
            let password = password.context("a new administrator needs a password")?;
            identity
                .create_admin_user(NewUser {
                    name: ADMIN_USER.to_owned(),
                    email: None,
                    password: Some(password.to_owned()),
                    enabled: true,
                })
                .await
                .context("cannot create the cloud administrator")?;
            return Ok(AdminOutcome::Created);
        }
        Err(error) => return Err(error.into()),
    };
    let project = identity.project(op, &user.base_project_id).await?;
    if project.kind != ProjectKind::System {
        anyhow::bail!(
            "a user named {ADMIN_USER} exists but is not the cloud administrator: its project \
             {} is not the system project; rename it (`nefos admin user`), then run this again",
            project.name
        );
    }
    let mut outcome = AdminOutcome::Unchanged;
    let roles = identity.roles_on_project(op, &project.id, &user.id).await?;
    if !roles.contains(&Role::Admin) {
        identity
            .grant_role(op, &project.id, &user.id, Role::Admin)
            .await?;
        outcome = AdminOutcome::RoleRestored;
    }
    let Some(password) = password else {
        return Ok(outcome);
    };
    if identity
        .password_matches(op, &user.id, password.to_owned())
        .await?
    {
        return Ok(outcome);
    }
    if !reset_password {
        return Ok(AdminOutcome::OtherPassword);
    }
    identity
        .update_user(
            op,
            &user.id,
            UserPatch {
                password: Some(password.to_owned()),
                ..Default::default()
            },
        )
        .await?;
    Ok(AdminOutcome::PasswordReset)
}
