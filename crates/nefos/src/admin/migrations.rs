//! `nefos admin server migrate|migrations` and the evacuation of `nefos admin node drain`:
//! live migrations an operator starts. The command records each move (its saga owned by no
//! process) and a control-plane process adopts and runs it within seconds; the command
//! follows the moves in the database and reports how they went.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use nefos_compute::{Compute, MigrationFilter, ServerMigration};
use nefos_db::Database;
use nefos_db::compute::{self as q, MIGRATION_UNDER_WAY};

use super::output::table;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Live-migrates a running or paused server to another node (`--to`, or the node the
    /// scheduler chooses) and follows the move to its end.
    Migrate {
        /// The server's id.
        server: String,
        /// The node to move it to.
        #[arg(long)]
        to: Option<String>,
        /// Start the move and return.
        #[arg(long)]
        no_wait: bool,
    },
    /// Moves of servers, newest first, with what each measured.
    Migrations {
        /// Only this server's.
        server: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// How often the commands read the moves they follow.
const POLL: Duration = Duration::from_millis(500);
/// How long an evacuation waits for servers busy with another task to be free to move.
const BUSY_WAIT: Duration = Duration::from_secs(600);

/// A compute service whose sagas are recorded for the control plane to run.
pub async fn compute(config: &Config, db: Database) -> anyhow::Result<Compute> {
    let key_config = config.clone();
    let key = tokio::task::spawn_blocking(move || key_config.cluster_secret())
        .await
        .context("reading the control plane's key failed")??;
    let nodes = nefos_compute::NodeRpc::new(nefos_compute::NodeRegistry::new(db.clone()), key);
    let store = nefos_blocks::BlockStore::open(&config.block_store()).await?;
    let quotas = nefos_quota::Quotas::new(db.clone());
    let storage = nefos_storage::Storage::new(db.clone(), store, quotas.clone());
    let images = nefos_image::Images::new(storage).with_size_cap(config.images.size_cap_bytes);
    let networks = nefos_network::Networks::new(
        db.clone(),
        quotas.clone(),
        nefos_network::NetworkSettings::default(),
    );
    Ok(Compute::new(
        db.clone(),
        nodes,
        quotas,
        images,
        networks,
        nefos_saga::Sagas::recorder(db),
        config.compute.settings()?,
    ))
}

pub async fn run(config: &Config, db: Database, command: ServerCommand) -> anyhow::Result<()> {
    let compute = compute(config, db).await?;
    match command {
        ServerCommand::Migrate {
            server,
            to,
            no_wait,
        } => {
            let started = compute
                .operator_live_migrate(&request_id(), &server, to.as_deref())
                .await?;
            println!(
                "migration {} of server {server}: {} → {}",
                started.id, started.source_node, started.dest_node
            );
            if no_wait {
                return Ok(());
            }
            let ended = follow(&compute, started.id).await?;
            print_ended(&ended);
            if ended.status == "completed" {
                Ok(())
            } else {
                anyhow::bail!("the server stays on {}", ended.source_node)
            }
        }
        ServerCommand::Migrations { server, limit } => {
            let filter = MigrationFilter {
                server,
                limit: Some(limit),
                ..MigrationFilter::default()
            };
            let rows = compute.operator_migrations(&filter).await?;
            print_table(&rows);
            Ok(())
        }
    }
}

fn request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4())
}

/// Waits for a move's end, printing its progress as it changes.
async fn follow(compute: &Compute, id: i64) -> anyhow::Result<ServerMigration> {
    let mut last = String::new();
    loop {
        let row = compute.operator_migration(id).await?;
        let line = progress(&row);
        if line != last {
            println!("{line}");
            last = line;
        }
        if !MIGRATION_UNDER_WAY.contains(&row.status.as_str()) {
            return Ok(row);
        }
        tokio::time::sleep(POLL).await;
    }
}

fn progress(row: &ServerMigration) -> String {
    let mib = |bytes: i64| bytes >> 20;
    format!(
        "  {}: memory {}/{} MiB, disk {}/{} MiB",
        row.status,
        mib(row.memory_processed_bytes),
        mib(row.memory_total_bytes),
        mib(row.disk_processed_bytes),
        mib(row.disk_total_bytes)
    )
}

fn print_ended(row: &ServerMigration) {
    match row.status.as_str() {
        "completed" => println!(
            "server {} runs on {}: paused {} ms, {} ms in all",
            row.server_id,
            row.dest_node,
            row.downtime_ms.unwrap_or_default(),
            row.total_ms.unwrap_or_default()
        ),
        status => println!(
            "server {} stays on {}: the move is {status}: {}",
            row.server_id,
            row.source_node,
            row.error.as_deref().unwrap_or("no reason recorded")
        ),
    }
}

fn print_table(rows: &[ServerMigration]) {
    let mut out = table(&[
        "id",
        "server",
        "from",
        "to",
        "status",
        "paused ms",
        "total ms",
        "memory MiB",
        "disk MiB",
        "started",
        "error",
    ]);
    for row in rows {
        let ms = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        out.add_row([
            row.id.to_string(),
            row.server_id.clone(),
            row.source_node.clone(),
            row.dest_node.clone(),
            row.status.clone(),
            ms(row.downtime_ms),
            ms(row.total_ms),
            (row.memory_processed_bytes >> 20).to_string(),
            (row.disk_processed_bytes >> 20).to_string(),
            nefos_db::time::from_micros(row.created_at).to_rfc3339(),
            row.error.clone().unwrap_or_default(),
        ]);
    }
    println!("{out}");
}

/// How a server fared in an evacuation.
enum Fate {
    Moved(Box<ServerMigration>),
    Failed(String),
    Left(String),
}

/// Live-migrates every running or paused server away from `node`, `parallel` at a time,
/// printing progress, then a report. Servers that are stopped or busy stay (cold
/// migration is not available). Fails when any server is left on the node.
pub async fn evacuate(
    config: &Config,
    db: Database,
    node: &str,
    parallel: usize,
) -> anyhow::Result<()> {
    let compute = compute(config, db.clone()).await?;
    let parallel = parallel.max(1);
    let mut fates: BTreeMap<String, Fate> = BTreeMap::new();
    let mut in_flight: BTreeMap<String, i64> = BTreeMap::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    // Since when only servers busy with another task are left.
    let mut busy_since: Option<std::time::Instant> = None;
    loop {
        // Moves under way end, for good or not.
        for (server, id) in in_flight.clone() {
            let row = compute.operator_migration(id).await?;
            if MIGRATION_UNDER_WAY.contains(&row.status.as_str()) {
                continue;
            }
            in_flight.remove(&server);
            println!(
                "{server}: {}",
                if row.status == "completed" {
                    format!("moved to {}", row.dest_node)
                } else {
                    format!(
                        "not moved ({})",
                        row.error.as_deref().unwrap_or(&row.status)
                    )
                }
            );
            let fate = if row.status == "completed" {
                Fate::Moved(Box::new(row))
            } else {
                Fate::Failed(row.error.unwrap_or(row.status))
            };
            fates.insert(server, fate);
        }
        let scope = q::ServerScope {
            node: Some(node),
            ..q::ServerScope::default()
        };
        let servers = q::list_servers(db.pool(), &scope).await?;
        let mut waiting = Vec::new();
        for server in &servers {
            names.insert(server.id.clone(), server.name.clone());
            if fates.contains_key(&server.id) || in_flight.contains_key(&server.id) {
                continue;
            }
            let movable = matches!(server.vm_state.as_str(), "active" | "paused")
                && server.task_state.is_none();
            if movable {
                waiting.push(server.id.clone());
            }
        }
        for server in waiting {
            if in_flight.len() >= parallel {
                break;
            }
            match compute
                .operator_live_migrate(&request_id(), &server, None)
                .await
            {
                Ok(started) => {
                    println!(
                        "{server}: moving to {} (migration {})",
                        started.dest_node, started.id
                    );
                    in_flight.insert(server, started.id);
                }
                Err(error) => {
                    let reason = nefos_api::error_chain(&error);
                    println!("{server}: cannot move: {reason}");
                    fates.insert(server, Fate::Failed(reason));
                }
            }
        }
        if !in_flight.is_empty() {
            busy_since = None;
        } else {
            // What is still there and was not tried stays: not running, or busy.
            let tried: BTreeSet<&String> = fates.keys().collect();
            let left: Vec<(String, String)> = servers
                .iter()
                .filter(|s| !tried.contains(&s.id))
                .map(|s| {
                    let why = match &s.task_state {
                        Some(task) => format!("busy ({task})"),
                        None => format!("{}: only running or paused servers move live", s.vm_state),
                    };
                    (s.id.clone(), why)
                })
                .collect();
            // Servers busy with something else are waited for, for a while.
            let waited_enough = busy_since
                .get_or_insert_with(std::time::Instant::now)
                .elapsed()
                > BUSY_WAIT;
            if waited_enough || left.iter().all(|(_, why)| !why.starts_with("busy")) {
                for (server, why) in left {
                    fates.insert(server, Fate::Left(why));
                }
                break;
            }
        }
        tokio::time::sleep(POLL).await;
    }
    let mut out = table(&["server", "name", "outcome", "paused ms", "total ms"]);
    let mut stays = 0;
    for (server, fate) in &fates {
        let name = names.get(server).cloned().unwrap_or_default();
        let row = match fate {
            Fate::Moved(m) => [
                format!("moved to {}", m.dest_node),
                m.downtime_ms.map(|v| v.to_string()).unwrap_or_default(),
                m.total_ms.map(|v| v.to_string()).unwrap_or_default(),
            ],
            Fate::Failed(reason) => {
                stays += 1;
                [format!("stays: {reason}"), String::new(), String::new()]
            }
            Fate::Left(reason) => {
                stays += 1;
                [format!("stays: {reason}"), String::new(), String::new()]
            }
        };
        let [outcome, paused, total] = row;
        out.add_row([server.clone(), name, outcome, paused, total]);
    }
    println!("{out}");
    if stays > 0 {
        anyhow::bail!("node {node} is drained but still holds {stays} server(s)");
    }
    println!("node {node} is drained and holds no servers");
    Ok(())
}
