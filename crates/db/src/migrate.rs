//! Versioned schema migrations, applied in order at start-up.
//!
//! Each migration runs in its own transaction together with the row that records it, so a
//! crash leaves the schema either before or after a migration, never inside one. Concurrent
//! starts are serialised by the write lock (SQLite) or an advisory lock (PostgreSQL).

use sqlx::Row;

use crate::time::now_micros;
use crate::{Backend, Database, DbError};

/// One schema step. Versions are dense and start at 1.
#[derive(Debug)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
    /// The oldest schema version whose binaries still work on a database with this
    /// migration applied. An additive (expand) migration — new tables, new columns with
    /// defaults — keeps the release before it working (`Some(version - 1)`), so that the
    /// control-plane processes of a cloud can be replaced one at a time; one that renames,
    /// drops or rewrites (contract) does not (`None`).
    pub compatible_from: Option<i64>,
}

/// Every migration this binary knows, oldest first.
pub static MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "identity",
        sql: include_str!("../migrations/0001_identity.sql"),
        compatible_from: None,
    },
    Migration {
        version: 2,
        name: "storage",
        sql: include_str!("../migrations/0002_storage.sql"),
        compatible_from: None,
    },
    Migration {
        version: 3,
        name: "compute_nodes",
        sql: include_str!("../migrations/0003_compute_nodes.sql"),
        compatible_from: None,
    },
    Migration {
        version: 4,
        name: "object_digests",
        sql: include_str!("../migrations/0004_object_digests.sql"),
        compatible_from: None,
    },
    Migration {
        version: 5,
        name: "node_credentials",
        sql: include_str!("../migrations/0005_node_credentials.sql"),
        compatible_from: None,
    },
    Migration {
        version: 6,
        name: "quotas",
        sql: include_str!("../migrations/0006_quotas.sql"),
        compatible_from: None,
    },
    Migration {
        version: 7,
        name: "images",
        sql: include_str!("../migrations/0007_images.sql"),
        compatible_from: None,
    },
    Migration {
        version: 8,
        name: "compute",
        sql: include_str!("../migrations/0008_compute.sql"),
        compatible_from: None,
    },
    Migration {
        version: 9,
        name: "server resize and serials",
        sql: include_str!("../migrations/0009_server_resize_and_serials.sql"),
        compatible_from: None,
    },
    Migration {
        version: 10,
        name: "node drain reason",
        sql: include_str!("../migrations/0010_node_drain_reason.sql"),
        compatible_from: None,
    },
    Migration {
        version: 11,
        name: "server listing index",
        sql: include_str!("../migrations/0011_server_listing_index.sql"),
        compatible_from: None,
    },
    Migration {
        version: 12,
        name: "cpu models",
        sql: include_str!("../migrations/0012_cpu_models.sql"),
        compatible_from: None,
    },
    Migration {
        version: 13,
        name: "networks",
        sql: include_str!("../migrations/0013_networks.sql"),
        compatible_from: None,
    },
    Migration {
        version: 14,
        name: "node tunnels and server ports",
        sql: include_str!("../migrations/0014_node_tunnels.sql"),
        compatible_from: None,
    },
    Migration {
        version: 15,
        name: "security groups",
        sql: include_str!("../migrations/0015_security_groups.sql"),
        compatible_from: None,
    },
    Migration {
        version: 16,
        name: "routers and floating IPs",
        sql: include_str!("../migrations/0016_routers.sql"),
        compatible_from: None,
    },
    Migration {
        version: 17,
        name: "allowed address pairs",
        sql: include_str!("../migrations/0017_allowed_address_pairs.sql"),
        compatible_from: None,
    },
    Migration {
        version: 18,
        name: "nodes' public interfaces",
        sql: include_str!("../migrations/0018_node_public_interfaces.sql"),
        compatible_from: None,
    },
    Migration {
        version: 19,
        name: "container ACLs",
        sql: include_str!("../migrations/0019_container_acls.sql"),
        compatible_from: None,
    },
    Migration {
        version: 20,
        name: "server migrations",
        sql: include_str!("../migrations/0020_server_migrations.sql"),
        compatible_from: Some(19),
    },
];

/// Where a database's schema stands relative to this binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The version the database is at after the call.
    pub version: i64,
    /// How many migrations the call applied.
    pub applied: usize,
}

/// Written in a migration after a text column that must sort bytewise (Swift orders names
/// by their UTF-8 bytes); each engine spells that collation differently.
const COLLATE_BYTES: &str = "@COLLATE_BYTES@";

/// An arbitrary constant naming nefos's migration lock among PostgreSQL advisory locks.
const PG_MIGRATION_LOCK: i64 = 0x6e65_666f_735f_6d31;

fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

impl Database {
    /// Brings the schema up to this binary's version. Refuses a database whose schema is
    /// newer than the binary, since its code would misread it.
    pub async fn migrate(&self) -> Result<SchemaStatus, DbError> {
        self.ensure_schema_table().await?;
        let mut applied = 0;
        for migration in MIGRATIONS {
            let mut tx = self.begin().await?;
            if self.backend() == Backend::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PG_MIGRATION_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(DbError::query("take the migration lock"))?;
            }
            let current = current_version(&mut tx).await?;
            if current > latest_version() && !readable_by_this_binary(&mut tx, current).await? {
                return Err(DbError::SchemaTooNew {
                    database: current,
                    binary: latest_version(),
                });
            }
            if migration.version <= current {
                continue;
            }
            let sql = migration
                .sql
                .replace(COLLATE_BYTES, self.backend().byte_collation());
            let failed = |source| DbError::Migration {
                version: migration.version,
                name: migration.name,
                source,
            };
            sqlx::raw_sql(&sql)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            sqlx::query("INSERT INTO nefos_schema (version, name, applied_at) VALUES ($1, $2, $3)")
                .bind(migration.version)
                .bind(migration.name)
                .bind(now_micros())
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            sqlx::query(
                "INSERT INTO nefos_schema_compatibility (version, compatible_from) VALUES ($1, $2)",
            )
            .bind(migration.version)
            .bind(migration.compatible_from.unwrap_or(migration.version))
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "applied migration"
            );
            applied += 1;
        }
        let version = self.schema_version().await?;
        if version > latest_version() && !self.newer_schema_readable(version).await? {
            return Err(DbError::SchemaTooNew {
                database: version,
                binary: latest_version(),
            });
        }
        Ok(SchemaStatus { version, applied })
    }

    /// Whether this binary works on the database's newer schema (version `database`):
    /// every migration past the binary's keeps binaries of its version working.
    async fn newer_schema_readable(&self, database: i64) -> Result<bool, DbError> {
        let mut conn = self
            .pool()
            .acquire()
            .await
            .map_err(DbError::query("acquire a connection"))?;
        readable_by_this_binary(&mut conn, database).await
    }

    /// Checks, without changing anything, that the schema is this binary's version, or a
    /// newer one that keeps this binary working (a roll to a newer release under way).
    pub async fn check_schema(&self) -> Result<i64, DbError> {
        let version = self.schema_version().await?;
        let binary = latest_version();
        match version.cmp(&binary) {
            std::cmp::Ordering::Greater if self.newer_schema_readable(version).await? => {
                tracing::warn!(
                    database = version,
                    binary,
                    "the database's schema is newer than this binary's, and keeps it working"
                );
                Ok(version)
            }
            std::cmp::Ordering::Greater => Err(DbError::SchemaTooNew {
                database: version,
                binary,
            }),
            std::cmp::Ordering::Less => Err(DbError::SchemaTooOld {
                database: version,
                binary,
            }),
            std::cmp::Ordering::Equal => Ok(version),
        }
    }

    /// The highest migration version recorded in the database (0 for an empty one, which
    /// this leaves empty).
    pub async fn schema_version(&self) -> Result<i64, DbError> {
        let mut conn = self
            .pool()
            .acquire()
            .await
            .map_err(DbError::query("acquire a connection"))?;
        let exists = match self.backend() {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'nefos_schema'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = 'nefos_schema'"
            }
        };
        let tables: i64 = sqlx::query_scalar(exists)
            .fetch_one(&mut *conn)
            .await
            .map_err(DbError::query("look for the schema table"))?;
        if tables == 0 {
            return Ok(0);
        }
        current_version(&mut conn).await
    }

    async fn ensure_schema_table(&self) -> Result<(), DbError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS nefos_schema (
                version BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at BIGINT NOT NULL
            )",
        )
        .execute(self.pool())
        .await
        .map_err(DbError::query("create the schema table"))?;
        // For each migration, the oldest schema version whose binaries still work with it
        // (`Migration::compatible_from`); migrations applied before this table existed
        // have no row, and count as keeping no older binary working.
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS nefos_schema_compatibility (
                version BIGINT PRIMARY KEY,
                compatible_from BIGINT NOT NULL
            )",
        )
        .execute(self.pool())
        .await
        .map_err(DbError::query("create the schema compatibility table"))?;
        Ok(())
    }
}

/// Whether every migration between this binary's schema and `database` keeps binaries of
/// this binary's schema working.
async fn readable_by_this_binary(
    conn: &mut sqlx::AnyConnection,
    database: i64,
) -> Result<bool, DbError> {
    let binary = latest_version();
    let row = sqlx::query(
        "SELECT COUNT(*) AS steps, COALESCE(MAX(compatible_from), 0) AS oldest
         FROM nefos_schema_compatibility WHERE version > $1 AND version <= $2",
    )
    .bind(binary)
    .bind(database)
    .fetch_one(conn)
    .await;
    // A database from before the table existed has none: nothing newer is readable.
    let Ok(row) = row else {
        return Ok(false);
    };
    let steps: i64 = row
        .try_get("steps")
        .map_err(DbError::query("read the schema's compatibility"))?;
    let oldest: i64 = row
        .try_get("oldest")
        .map_err(DbError::query("read the schema's compatibility"))?;
    Ok(steps == database - binary && oldest <= binary)
}

async fn current_version(conn: &mut sqlx::AnyConnection) -> Result<i64, DbError> {
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS version FROM nefos_schema")
        .fetch_one(conn)
        .await
        .map_err(DbError::query("read the schema version"))?;
    row.try_get::<i64, _>("version")
        .map_err(DbError::query("read the schema version"))
}
