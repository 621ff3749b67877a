//! Ports allocated per second: `--workers` concurrent loops each creating ports on one
//! network (a /16, so the pool never runs out during the run), each port a row, an address
//! taken race-free from the pool, an IP-history entry, its security group and its quota
//! charge, all in one transaction, on SQLite and on PostgreSQL.
//!
//! The baseline, measured in the same run on the same database with the same concurrency,
//! is a bare write transaction that locks one shared row (`BEGIN; UPDATE; COMMIT`), as a
//! port's creation locks its network's: the ratio shows what networking costs over the
//! database's own floor. Goal (networks issue): ≥ 1,000 ports/s on PostgreSQL.
//!
//! Run: `cargo build --release -p nefos-bench && target/release/port-bench
//!       [--postgres postgres://USER@HOST:PORT]` (a server on which it may create a
//! database; without one, SQLite only). `scripts/postgres start DIR PORT` starts one.

use std::sync::Arc;

use clap::Parser;
use nefos_bench::{measure, scratch_postgres};
use nefos_db::{Database, PoolSettings};
use nefos_identity::{Caller, Identity, IdentityConfig};
use nefos_network::{NetworkSettings, Networks, NewNetwork, NewPort, NewSubnet};
use nefos_quota::{CYCLADES_RESOURCES, Quotas};
use nefos_test_utils::identity::member;

#[derive(Debug, Parser)]
struct Args {
    /// A PostgreSQL server (`postgres://USER@HOST:PORT`) to create a scratch database on.
    #[arg(long, env = "NEFOS_BENCH_POSTGRES")]
    postgres: Option<String>,
    /// Concurrent creators.
    #[arg(long, default_value_t = 16)]
    workers: usize,
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mut databases = vec![("SQLite", Database::sqlite_url(&dir.path().join("bench.db")))];
    match &args.postgres {
        Some(server) => databases.push(("PostgreSQL", scratch_postgres(server).await?)),
        None => println!("(no --postgres given: PostgreSQL skipped)"),
    }
    println!("{} workers, {} s per figure", args.workers, args.seconds);
    for (label, url) in databases {
        let settings = PoolSettings {
            max_connections: u32::try_from(args.workers + 4).unwrap_or(u32::MAX),
            ..PoolSettings::default()
        };
        let db = Database::connect(&url, &settings).await?;
        db.migrate().await?;
        sqlx::query("CREATE TABLE bench_rows (id BIGINT PRIMARY KEY, value BIGINT NOT NULL)")
            .execute(db.pool())
            .await?;
        sqlx::query("INSERT INTO bench_rows (id, value) VALUES (0, 0)")
            .execute(db.pool())
            .await?;
        let quotas = Quotas::new(db.clone());
        quotas.register_resources(CYCLADES_RESOURCES).await?;
        quotas
            .set_resource_defaults(Caller::Operator, "cyclades.port", Some(1 << 40), None)
            .await?;
        let identity = Identity::new(db.clone(), IdentityConfig::default());
        let caller = Arc::new(member(&identity, "bench").await);
        let networks = Networks::new(db.clone(), quotas.clone(), NetworkSettings::default());
        let network = networks
            .create_network(
                &caller,
                NewNetwork {
                    name: "bench".to_owned(),
                    ..NewNetwork::default()
                },
            )
            .await?
            .id;
        networks
            .create_subnet(
                &caller,
                NewSubnet {
                    network_id: network.clone(),
                    ip_version: 4,
                    cidr: "10.64.0.0/16".to_owned(),
                    ..NewSubnet::default()
                },
            )
            .await?;

        let bench_db = db.clone();
        let baseline = measure(args.workers, args.seconds, move |_| {
            let db = bench_db.clone();
            async move { bare_transaction(&db).await }
        })
        .await?;
        let ports = measure(args.workers, args.seconds, move |_| {
            let (networks, caller, network) = (networks.clone(), caller.clone(), network.clone());
            async move {
                let new = NewPort {
                    network_id: network,
                    ..NewPort::default()
                };
                networks.create_port(&caller, new).await?;
                Ok(())
            }
        })
        .await?;
        println!(
            "{label:<11} {ports:>8.0} ports/s   bare transactions {baseline:>8.0}/s   ratio {:.2}{}",
            ports / baseline,
            if label == "PostgreSQL" {
                format!(
                    "   (goal >= 1000 ports/s: {})",
                    if ports >= 1000.0 { "met" } else { "not met" }
                )
            } else {
                String::new()
            }
        );
        db.close().await;
    }
    Ok(())
}

async fn bare_transaction(db: &Database) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE bench_rows SET value = value + 1 WHERE id = 0")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
