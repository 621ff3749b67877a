//! Commissions per second: 16 concurrent issuers, each issuing and accepting commissions of
//! one unit, on one holding (every issuer charges the same member) and on 16 different
//! holdings (one member each), on SQLite and on PostgreSQL.
//!
//! The baseline, measured in the same run on the same database with the same concurrency
//! and the same contention, is a bare write transaction: `BEGIN; UPDATE one row; COMMIT`
//! (on one shared row, or on a row per issuer). A commission is three transactions (a
//! serial, the issue, the acceptance) that lock its holdings, so the ratio shows what the
//! engine costs over the database's own floor. Goal (quota issue): ≥ 1,000 commissions/s
//! on different holdings on PostgreSQL.
//!
//! Run: `cargo build --release -p nefos-bench && target/release/commission-bench
//!       [--postgres postgres://USER@HOST:PORT]` (a server on which it may create a
//! database; without one, SQLite only). `scripts/postgres start DIR PORT` starts one.

use std::sync::Arc;

use clap::Parser;
use nefos_bench::{measure, scratch_postgres};
use nefos_db::{Database, PoolSettings};
use nefos_identity::{Caller, Identity, IdentityConfig, NewUser};
use nefos_quota::projects::Grant;
use nefos_quota::{NewCommission, PITHOS_DISKSPACE, Provision, Quotas};

#[derive(Debug, Parser)]
struct Args {
    /// A PostgreSQL server (`postgres://USER@HOST:PORT`) to create a scratch database on.
    #[arg(long, env = "NEFOS_BENCH_POSTGRES")]
    postgres: Option<String>,
    /// Concurrent issuers.
    #[arg(long, default_value_t = 16)]
    issuers: usize,
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
}

/// Who the issuers charge: one member for all, or one each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holdings {
    One,
    PerIssuer,
}

impl Holdings {
    fn label(self) -> &'static str {
        match self {
            Holdings::One => "one holding",
            Holdings::PerIssuer => "16 holdings",
        }
    }
}

/// A member that can use (almost) unlimited `pithos.diskspace`.
#[derive(Debug, Clone)]
struct Member {
    project_id: String,
    user_id: String,
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
    println!(
        "{} issuers, {} s per figure; a commission = issue + accept",
        args.issuers, args.seconds
    );
    for (label, url) in databases {
        let settings = PoolSettings {
            max_connections: u32::try_from(args.issuers + 4).unwrap_or(u32::MAX),
            ..PoolSettings::default()
        };
        let db = Database::connect(&url, &settings).await?;
        db.migrate().await?;
        let members = Arc::new(members(&db, args.issuers).await?);
        sqlx::query("CREATE TABLE bench_rows (id BIGINT PRIMARY KEY, value BIGINT NOT NULL)")
            .execute(db.pool())
            .await?;
        for id in 0..args.issuers {
            sqlx::query("INSERT INTO bench_rows (id, value) VALUES ($1, 0)")
                .bind(i64::try_from(id)?)
                .execute(db.pool())
                .await?;
        }
        println!("\n{label}");
        for holdings in [Holdings::One, Holdings::PerIssuer] {
            let bench_db = db.clone();
            let baseline = measure(args.issuers, args.seconds, move |issuer| {
                let db = bench_db.clone();
                let row = match holdings {
                    Holdings::One => 0,
                    Holdings::PerIssuer => i64::try_from(issuer).unwrap_or(0),
                };
                async move { bare_transaction(&db, row).await }
            })
            .await?;
            let quotas = Quotas::new(db.clone());
            let members = members.clone();
            let commissions = measure(args.issuers, args.seconds, move |issuer| {
                let quotas = quotas.clone();
                let member = match holdings {
                    Holdings::One => members[0].clone(),
                    Holdings::PerIssuer => members[issuer].clone(),
                };
                async move { commission(&quotas, &member).await }
            })
            .await?;
            println!(
                "  {:<12} {:>8.0} commissions/s   bare transactions {:>8.0}/s   ratio {:.2}",
                holdings.label(),
                commissions,
                baseline,
                commissions / baseline
            );
        }
        db.close().await;
    }
    Ok(())
}

async fn bare_transaction(db: &Database, row: i64) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE bench_rows SET value = value + 1 WHERE id = $1")
        .bind(row)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

async fn commission(quotas: &Quotas, member: &Member) -> anyhow::Result<()> {
    let serial = quotas
        .issue(
            NewCommission {
                client: "bench".to_owned(),
                name: "bench".to_owned(),
                provisions: vec![Provision::new(
                    &member.project_id,
                    &member.user_id,
                    PITHOS_DISKSPACE.name,
                    1,
                )],
                force: false,
            },
            false,
        )
        .await?;
    quotas.accept(serial).await?;
    Ok(())
}

/// `count` users, each with a personal project that may use i64::MAX / 2 bytes.
async fn members(db: &Database, count: usize) -> anyhow::Result<Vec<Member>> {
    let identity = Identity::new(db.clone(), IdentityConfig::default());
    let quotas = Quotas::new(db.clone());
    quotas.register_resources(&[PITHOS_DISKSPACE]).await?;
    let mut members = Vec::new();
    for i in 0..count {
        let user = identity
            .create_user(
                Caller::Operator,
                NewUser {
                    name: format!("bench{i}"),
                    email: None,
                    password: None,
                    enabled: true,
                },
            )
            .await?;
        let unlimited = Grant {
            member_capacity: i64::MAX / 2,
            project_capacity: i64::MAX / 2,
        };
        quotas
            .set_grant(
                Caller::Operator,
                &user.base_project_id,
                PITHOS_DISKSPACE.name,
                unlimited,
            )
            .await?;
        members.push(Member {
            project_id: user.base_project_id,
            user_id: user.id,
        });
    }
    Ok(members)
}
