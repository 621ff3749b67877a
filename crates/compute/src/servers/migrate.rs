//! Live migration of servers between nodes (Nova's `os-migrateLive`, `os-migrations` and
//! `servers/{id}/migrations`), for administrators. The request checks the server's state,
//! chooses the destination under the placement lock and records the move, its task and
//! its saga in one transaction; the saga (`sagas/migrate.rs`) does the rest.

use nefos_db::compute::{self as q, MigrationRow, MigrationSelection};
use nefos_db::time::now_micros;
use nefos_identity::AuthContext;

use super::Asked;
use super::sagas::migrate::{LIVE_MIGRATION_GENERATIONS, LiveMigrateParams, LiveMigrateSaga};
use super::state::{self, task};
use crate::scheduler::{Demand, PLACEMENT_LOCK};
use crate::{Compute, ComputeError};

/// A move of a server, as Nova's migration records show it.
pub type ServerMigration = MigrationRow;

/// Who the moves an operator's command starts are recorded as asked by.
pub const OPERATOR: &str = "operator";

/// Nova's `migration_type` of a live migration.
pub const LIVE_MIGRATION: &str = "live-migration";

/// Which moves a listing shows.
#[derive(Debug, Clone, Default)]
pub struct MigrationFilter {
    pub server: Option<String>,
    pub status: Option<String>,
    pub kind: Option<String>,
    /// From or to this node.
    pub node: Option<String>,
    pub changes_since: Option<i64>,
    /// Older than this move (newest first).
    pub marker: Option<i64>,
    pub limit: Option<i64>,
}

fn require_admin(caller: &AuthContext, rule: &str) -> Result<(), ComputeError> {
    if caller.is_cloud_admin() {
        Ok(())
    } else {
        Err(ComputeError::forbidden(format!(
            "Policy doesn't allow {rule} to be performed."
        )))
    }
}

impl Compute {
    /// Starts moving a running or paused server to `host`, or to the node the scheduler
    /// chooses, while it runs. Administrators only.
    pub async fn live_migrate_server(
        &self,
        caller: &AuthContext,
        request_id: &str,
        id: &str,
        host: Option<&str>,
    ) -> Result<ServerMigration, ComputeError> {
        require_admin(caller, "os_compute_api:os-migrate-server:migrate_live")?;
        let server = self.server(caller, id).await?;
        self.start_live_migration(&server, &caller.user_id, request_id, host)
            .await
    }

    /// [`Compute::live_migrate_server`] for the cloud's operator (`nefos admin server
    /// migrate`, `node drain`): recorded as asked by [`OPERATOR`].
    pub async fn operator_live_migrate(
        &self,
        request_id: &str,
        id: &str,
        host: Option<&str>,
    ) -> Result<ServerMigration, ComputeError> {
        let row = q::get_server(self.db().pool(), id)
            .await?
            .filter(|row| row.deleted_at.is_none())
            .ok_or_else(|| ComputeError::no_server(id))?;
        let metadata = q::server_metadata(self.db().pool(), id).await?;
        let tags = q::server_tags(self.db().pool(), id).await?;
        let server = super::Server::from_row(row, metadata, tags, &[]);
        self.start_live_migration(&server, OPERATOR, request_id, host)
            .await
    }

    /// A move of the server `id` (its servers' id, or Nova's integer id), for the
    /// operator.
    pub async fn operator_migration(&self, id: i64) -> Result<ServerMigration, ComputeError> {
        q::get_migration(self.db().pool(), id)
            .await?
            .ok_or_else(|| ComputeError::not_found(format!("Migration {id} could not be found.")))
    }

    async fn start_live_migration(
        &self,
        server: &super::Server,
        user_id: &str,
        request_id: &str,
        host: Option<&str>,
    ) -> Result<ServerMigration, ComputeError> {
        let id = server.id.as_str();
        let source = self.check_allowed(server, state::LIVE_MIGRATE)?;
        if host == Some(source.as_str()) {
            return Err(ComputeError::invalid(format!(
                "Unable to migrate instance ({id}) to current host ({source})."
            )));
        }
        let agent = self.nodes().registry().get(&source).await?;
        if agent.info.api_version < nefos_node_api::LIVE_MIGRATION_API_VERSION {
            return Err(ComputeError::invalid(format!(
                "Migration pre-check error: the agent of {source} is too old for live \
                 migration (API version {}); upgrade it first.",
                agent.info.api_version
            )));
        }
        let row = q::get_server(self.db().pool(), id)
            .await?
            .ok_or_else(|| ComputeError::no_server(id))?;
        let model_name = row
            .cpu_model
            .clone()
            .unwrap_or_else(|| self.inner.settings.cpu_model.clone());
        let model = nefos_node_api::cpu_model(&model_name).ok_or_else(|| {
            ComputeError::invalid(format!("The server's CPU model {model_name} is unknown."))
        })?;
        let demand = Demand {
            vcpus: u64::from(server.flavor.vcpus),
            ram_mib: server.flavor.ram_mib,
            disk_gib: server.flavor.disk_gib,
            cpu_model: Some(model),
        };
        let mut tx = self.db().begin().await?;
        self.db().lock_key(&mut tx, PLACEMENT_LOCK).await?;
        let destination = match host {
            Some(host) => {
                self.inner
                    .check_destination(&mut tx, host, demand, &model_name)
                    .await?;
                host.to_owned()
            }
            // Nova answers a move nowhere fits with 400, not a create's 409.
            None => self
                .inner
                .place_away(&mut tx, demand, &source)
                .await
                .map_err(|error| match error {
                    ComputeError::Conflict { message } => ComputeError::Invalid { message },
                    other => other,
                })?,
        };
        self.begin_task(&mut tx, server, task::MIGRATING, state::LIVE_MIGRATE)
            .await?;
        let generation =
            u64::try_from(q::take_generations(&mut tx, id, LIVE_MIGRATION_GENERATIONS).await?)
                .unwrap_or(0);
        let now = now_micros();
        let mut migration = MigrationRow {
            id: 0,
            uuid: uuid::Uuid::new_v4().to_string(),
            server_id: id.to_owned(),
            project_id: server.project_id.clone(),
            user_id: user_id.to_owned(),
            kind: LIVE_MIGRATION.to_owned(),
            source_node: source.clone(),
            dest_node: destination.clone(),
            status: "queued".to_owned(),
            memory_total_bytes: 0,
            memory_processed_bytes: 0,
            memory_remaining_bytes: 0,
            disk_total_bytes: 0,
            disk_processed_bytes: 0,
            disk_remaining_bytes: 0,
            downtime_ms: None,
            total_ms: None,
            error: None,
            created_at: now,
            updated_at: now,
        };
        migration.id = q::insert_migration(&mut tx, &migration).await?;
        let params = LiveMigrateParams {
            server_id: id.to_owned(),
            migration_id: migration.id,
            migration_uuid: migration.uuid.clone(),
            source,
            destination,
            generation,
            limits: self.inner.settings.migration,
            request_id: request_id.to_owned(),
        };
        let asked = Asked {
            server,
            user_id,
            request_id,
            action: LIVE_MIGRATION,
        };
        self.record_and_run::<LiveMigrateSaga>(tx, asked, &params)
            .await?;
        tracing::info!(server = %id, from = %migration.source_node, to = %migration.dest_node, migration = migration.id, "live migration started");
        Ok(migration)
    }

    /// Moves of servers, newest first; administrators only.
    pub async fn migrations(
        &self,
        caller: &AuthContext,
        filter: &MigrationFilter,
    ) -> Result<Vec<ServerMigration>, ComputeError> {
        require_admin(caller, "os_compute_api:os-migrations:index")?;
        let selection = MigrationSelection {
            server: filter.server.as_deref(),
            project: None,
            status: filter.status.as_deref(),
            kind: filter.kind.as_deref(),
            node: filter.node.as_deref(),
            under_way: false,
            changed_since: filter.changes_since,
            before: filter.marker,
            limit: filter.limit,
        };
        Ok(q::list_migrations(self.db().pool(), &selection).await?)
    }

    /// Moves of servers, newest first, for the operator.
    pub async fn operator_migrations(
        &self,
        filter: &MigrationFilter,
    ) -> Result<Vec<ServerMigration>, ComputeError> {
        let selection = MigrationSelection {
            server: filter.server.as_deref(),
            status: filter.status.as_deref(),
            kind: filter.kind.as_deref(),
            node: filter.node.as_deref(),
            changed_since: filter.changes_since,
            before: filter.marker,
            limit: filter.limit,
            ..MigrationSelection::default()
        };
        Ok(q::list_migrations(self.db().pool(), &selection).await?)
    }

    /// The live migrations of a server under way (Nova's `servers/{id}/migrations`);
    /// administrators only.
    pub async fn server_migrations(
        &self,
        caller: &AuthContext,
        server: &str,
    ) -> Result<Vec<ServerMigration>, ComputeError> {
        require_admin(caller, "os_compute_api:servers:migrations:index")?;
        self.server(caller, server).await?;
        let selection = MigrationSelection {
            server: Some(server),
            kind: Some(LIVE_MIGRATION),
            under_way: true,
            ..MigrationSelection::default()
        };
        Ok(q::list_migrations(self.db().pool(), &selection).await?)
    }

    /// One live migration of a server under way.
    pub async fn server_migration(
        &self,
        caller: &AuthContext,
        server: &str,
        migration: i64,
    ) -> Result<ServerMigration, ComputeError> {
        require_admin(caller, "os_compute_api:servers:migrations:show")?;
        self.server(caller, server).await?;
        let found = q::get_migration(self.db().pool(), migration)
            .await?
            .filter(|row| row.server_id == server);
        match found {
            Some(row) if q::MIGRATION_UNDER_WAY.contains(&row.status.as_str()) => Ok(row),
            Some(_) => Err(ComputeError::not_found(format!(
                "In-progress live migration {migration} is not found for server {server}."
            ))),
            None => Err(ComputeError::not_found(format!(
                "Migration {migration} could not be found."
            ))),
        }
    }

    /// Aborts a live migration under way: the server stays where it was.
    pub async fn abort_migration(
        &self,
        caller: &AuthContext,
        server: &str,
        migration: i64,
    ) -> Result<(), ComputeError> {
        require_admin(caller, "os_compute_api:servers:migrations:delete")?;
        self.server(caller, server).await?;
        let row = q::get_migration(self.db().pool(), migration)
            .await?
            .filter(|row| row.server_id == server)
            .ok_or_else(|| {
                ComputeError::not_found(format!("Migration {migration} could not be found."))
            })?;
        if row.kind != LIVE_MIGRATION {
            return Err(ComputeError::invalid(format!(
                "Migration {migration} for instance {server} is not a live-migration."
            )));
        }
        let cancelled = q::set_migration_status(
            self.db().pool(),
            migration,
            &["queued", "preparing", "running"],
            "cancelling",
            now_micros(),
        )
        .await?;
        if !cancelled {
            return Err(ComputeError::invalid(format!(
                "Migration {migration} state of instance {server} is {}. Cannot abort live \
                 migration in this state.",
                row.status
            )));
        }
        tracing::info!(server, migration, "live migration abort asked");
        Ok(())
    }
}
