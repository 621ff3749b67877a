//! Token validation, inspection and revocation.

use nefos_db::identity as q;
use nefos_db::time::now_micros;

use crate::secret::token_hash;
use crate::{AuthContext, Caller, Identity, IdentityError, ProjectKind, Role, ScopedProject};

const INVALID: &str = "the token is not valid: unknown, expired or revoked";

impl Identity {
    /// What a token grants, if it is known, unexpired and unrevoked, its user enabled, and,
    /// for a scoped token, its project enabled with the user still holding a role on it.
    pub async fn validate(&self, token: &str) -> Result<AuthContext, IdentityError> {
        let hash = token_hash(token);
        if let Some(context) = self.cache.get(&hash) {
            return Ok(context);
        }
        let generation = self.cache.generation();
        let unauthorized = IdentityError::Unauthorized { reason: INVALID };
        let Some(found) = q::lookup_token(self.db.pool(), &hash).await? else {
            return Err(unauthorized);
        };
        if found.revoked_at.is_some() || found.expires_at <= now_micros() || !found.user_enabled {
            return Err(unauthorized);
        }
        let (project, roles) = match (&found.project_id, &found.project_name) {
            (None, _) => (None, Vec::new()),
            (Some(id), Some(name)) if found.project_enabled == Some(true) => {
                let roles: Vec<Role> = q::roles_on_project(self.db.pool(), &found.user_id, id)
                    .await?
                    .iter()
                    .filter_map(|r| r.parse().ok())
                    .collect();
                if roles.is_empty() {
                    return Err(unauthorized);
                }
                let kind = ProjectKind::from_stored(found.project_kind.as_deref().unwrap_or(""));
                (
                    Some(ScopedProject {
                        id: id.clone(),
                        name: name.clone(),
                        kind,
                    }),
                    roles,
                )
            }
            _ => return Err(unauthorized),
        };
        let context = AuthContext {
            user_id: found.user_id,
            user_name: found.user_name,
            project,
            roles,
            methods: found.methods.split(',').map(str::to_owned).collect(),
            issued_at: found.issued_at,
            expires_at: found.expires_at,
            audit_id: found.audit_id,
        };
        self.cache.insert(hash, context.clone(), generation);
        Ok(context)
    }

    /// Validates `subject` on behalf of `caller`: a user may inspect its own tokens, an
    /// administrator any token. Anything else, like an invalid token, is "not found".
    pub async fn inspect_token(
        &self,
        caller: Caller<'_>,
        subject: &str,
    ) -> Result<AuthContext, IdentityError> {
        match self.validate(subject).await {
            Ok(context) if caller.is_or_admin(&context.user_id) => Ok(context),
            Ok(_) | Err(IdentityError::Unauthorized { .. }) => Err(IdentityError::NotFound {
                kind: "token",
                id: "(subject token)".into(),
            }),
            Err(other) => Err(other),
        }
    }

    /// Revokes `subject`: the caller's own token, or any token for an administrator.
    pub async fn revoke_token(
        &self,
        caller: Caller<'_>,
        subject: &str,
    ) -> Result<(), IdentityError> {
        let context = self.inspect_token(caller, subject).await?;
        q::revoke_token(self.db.pool(), &token_hash(subject), now_micros()).await?;
        self.cache.clear();
        tracing::info!(user_id = %context.user_id, audit_id = %context.audit_id, "revoked token");
        Ok(())
    }

    /// Forgets every validation this process remembers, so the next request of each token
    /// asks the database. For changes made outside this crate that revoke tokens (a
    /// project membership ending, in the quota engine's transaction), which the cache
    /// would otherwise trust for up to `token_cache_ttl`.
    pub fn forget_cached_tokens(&self) {
        self.cache.clear();
    }

    /// Deletes tokens that expired more than `grace` ago; returns how many.
    pub async fn purge_expired_tokens(
        &self,
        grace: std::time::Duration,
    ) -> Result<u64, IdentityError> {
        let grace = i64::try_from(grace.as_micros()).unwrap_or(i64::MAX);
        Ok(q::purge_expired_tokens(self.db.pool(), now_micros().saturating_sub(grace)).await?)
    }
}
