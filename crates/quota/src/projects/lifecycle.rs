//! Suspending, resuming and terminating an approved project. None of them deletes
//! anything of its members: a project that is not active grants nothing, so what its
//! members use shows as over the limit and new commissions are refused.

use nefos_db::DbError;
use nefos_db::quota as q;
use nefos_db::time::now_micros;
use nefos_identity::Caller;

use super::applications::require_admin;
use crate::{QuotaError, Quotas};

/// What an administrator does to an approved project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleAction {
    Suspend,
    Resume,
    Terminate,
}

impl LifecycleAction {
    /// The states it applies to, and the state it leads to.
    fn transition(self) -> (&'static [&'static str], &'static str) {
        match self {
            LifecycleAction::Suspend => (&["active"], "suspended"),
            LifecycleAction::Resume => (&["suspended"], "active"),
            LifecycleAction::Terminate => (&["active", "suspended"], "terminated"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleAction::Suspend => "suspend",
            LifecycleAction::Resume => "resume",
            LifecycleAction::Terminate => "terminate",
        }
    }
}

impl Quotas {
    /// Suspends, resumes or terminates a regular project. Administrators only.
    pub async fn change_project_state(
        &self,
        caller: Caller<'_>,
        project_id: &str,
        action: LifecycleAction,
    ) -> Result<(), QuotaError> {
        require_admin(caller, "suspend, resume or terminate projects")?;
        let (from, to) = action.transition();
        let mut tx = self.db.begin().await?;
        self.lock_project(&mut tx, project_id).await?;
        let mut project = q::get_project_settings(&mut *tx, project_id)
            .await?
            .ok_or_else(|| QuotaError::not_found("project", project_id))?;
        if project.kind != "regular" {
            return Err(QuotaError::conflict(
                "personal and system projects are not suspended or terminated",
            ));
        }
        if !from.contains(&project.state.as_str()) {
            return Err(QuotaError::conflict(format!(
                "cannot {} a project that is {}",
                action.as_str(),
                project.state
            )));
        }
        project.state = to.to_owned();
        // Members keep their Keystone access, to see and remove what they have there.
        q::update_project_settings(&mut *tx, &project, true, now_micros()).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a project state change"))?;
        tracing::info!(project_id, state = to, "project state changed");
        Ok(())
    }
}
