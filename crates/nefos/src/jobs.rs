//! The control plane's background work (docs/design.md §3). Each job is a loop with an
//! interval, run either by every `nefos serve` process (work each process owes for itself,
//! such as its heartbeat, or idempotent work over queues in the database) or by one of
//! them at a time, the leader of that loop (a PostgreSQL advisory lock; on SQLite the one
//! process leads). What the jobs work on is in the database, so any process may pick up
//! where another stopped.

use std::future::Future;
use std::time::Duration;

use nefos_compute::Compute;
use nefos_db::{Backend, Database};
use nefos_identity::Identity;
use nefos_image::Images;
use nefos_storage::Storage;
use tokio::task::JoinHandle;

use crate::config::QuotasSection;

/// What the jobs work on.
#[derive(Debug, Clone)]
pub struct Services {
    pub identity: Identity,
    pub storage: Storage,
    pub images: Images,
    pub compute: Compute,
    pub quotas: QuotasSection,
}

/// Who runs a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runs {
    /// Every process, each for itself or over a shared queue.
    EveryProcess,
    /// One process at a time: the loop's leader.
    Leader,
}

/// How often the reconciler compares every node with the database.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(60);
/// How often the image registry is tidied.
const IMAGE_TIDY_INTERVAL: Duration = Duration::from_secs(60);
/// How often the expirer looks for objects past their `X-Delete-At`.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(2);
/// Due objects deleted per database query.
const EXPIRY_BATCH: i64 = 500;
/// How often the digest job looks for versions stored without their MD5.
const DIGEST_INTERVAL: Duration = Duration::from_secs(1);
/// Versions completed per pass.
const DIGEST_BATCH: i64 = 16;
/// How often subnets changed outside the API are looked for, to send nodes.
const NETWORK_CHANGES_INTERVAL: Duration = Duration::from_secs(2);
/// How often sagas of stopped processes are looked for.
const SAGA_RECOVERY_INTERVAL: Duration = Duration::from_secs(5);

/// Starts every job; the handles stop them when aborted. On SQLite the sagas a stopped
/// process left are resumed first, at once: the one process of such a cloud knows that
/// whoever ran them has stopped.
pub async fn spawn(services: &Services) -> Vec<JoinHandle<()>> {
    let db = services.identity.database().clone();
    if db.backend() == Backend::Sqlite {
        match services.compute.sagas().recover(Duration::ZERO).await {
            Ok(0) => {}
            Ok(resumed) => tracing::warn!(resumed, "resumed sagas a stopped process left"),
            Err(error) => {
                tracing::error!(error = %nefos_api::error_chain(&error), "cannot resume sagas");
            }
        }
    }
    let abandoned_after = services.quotas.abandoned_after();
    let s = services.clone();
    vec![
        // Each process records its own heartbeat, and any may resolve the commissions of
        // a process whose heartbeat stopped.
        spawn_loop(
            &db,
            "quota-liveness",
            services.quotas.heartbeat(),
            Runs::EveryProcess,
            {
                let quotas = s.storage.quotas().clone();
                move || {
                    let quotas = quotas.clone();
                    async move {
                        if let Err(error) = quotas.heartbeat().await {
                            tracing::warn!(error = %nefos_api::error_chain(&error), "heartbeat failed");
                            return;
                        }
                        if let Err(error) = quotas.reject_abandoned(abandoned_after).await {
                            tracing::warn!(error = %nefos_api::error_chain(&error), "resolving abandoned commissions failed");
                        }
                    }
                }
            },
        ),
        // Adoption is a compare-and-set: each saga goes to one process.
        spawn_loop(
            &db,
            "saga-recovery",
            SAGA_RECOVERY_INTERVAL,
            Runs::EveryProcess,
            {
                let sagas = s.compute.sagas().clone();
                move || {
                    let sagas = sagas.clone();
                    async move {
                        if let Err(error) = sagas.recover(abandoned_after).await {
                            tracing::warn!(error = %nefos_api::error_chain(&error), "saga recovery failed");
                        }
                    }
                }
            },
        ),
        // Changes of subnets made outside the API (`nefos admin network pool add`,
        // `renumber`) reach the nodes within seconds; the reconciler would take a minute.
        spawn_loop(
            &db,
            "network-changes",
            NETWORK_CHANGES_INTERVAL,
            Runs::Leader,
            {
                let compute = s.compute.clone();
                let seen = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(
                    nefos_db::time::now_micros(),
                ));
                move || {
                    let compute = compute.clone();
                    let seen = seen.clone();
                    async move {
                        let since = seen.load(std::sync::atomic::Ordering::Relaxed);
                        let latest = compute.sync_changed_networks(since).await;
                        seen.store(latest, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            },
        ),
        spawn_loop(
            &db,
            "reconcile-servers",
            RECONCILE_INTERVAL,
            Runs::Leader,
            {
                let reconciler = s.compute.reconciler();
                move || {
                    let reconciler = reconciler.clone();
                    async move {
                        match reconciler
                            .reconcile_all(nefos_compute::ReconcileMode::default())
                            .await
                        {
                            Ok(report) if !report.repairs.is_empty() => {
                                tracing::warn!(
                                    repairs = report.repairs.len(),
                                    "reconciled servers"
                                );
                            }
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(error = %nefos_api::error_chain(&error), "server reconciliation failed");
                            }
                        }
                    }
                }
            },
        ),
        spawn_loop(
            &db,
            "token-purge",
            Duration::from_secs(3600),
            Runs::Leader,
            {
                let identity = s.identity.clone();
                move || {
                    let identity = identity.clone();
                    async move {
                        match identity
                            .purge_expired_tokens(Duration::from_secs(24 * 3600))
                            .await
                        {
                            Ok(0) => {}
                            Ok(purged) => tracing::info!(purged, "purged expired tokens"),
                            Err(error) => {
                                tracing::warn!(error = %nefos_api::error_chain(&error), "token purge failed");
                            }
                        }
                    }
                }
            },
        ),
        spawn_loop(&db, "object-expiry", EXPIRY_INTERVAL, Runs::Leader, {
            let storage = s.storage.clone();
            move || {
                let storage = storage.clone();
                async move {
                    match storage.delete_expired(EXPIRY_BATCH).await {
                        Ok(0) => {}
                        Ok(deleted) => tracing::info!(deleted, "deleted expired objects"),
                        Err(error) => {
                            tracing::warn!(error = %nefos_api::error_chain(&error), "object expiry failed");
                        }
                    }
                }
            }
        }),
        // The versions waiting for their MD5 are the queue; any process may work on it.
        spawn_loop(
            &db,
            "object-digests",
            DIGEST_INTERVAL,
            Runs::EveryProcess,
            {
                let storage = s.storage.clone();
                move || {
                    let storage = storage.clone();
                    async move {
                        loop {
                            match storage.compute_pending_digests(DIGEST_BATCH).await {
                                Ok(done) if done >= DIGEST_BATCH.unsigned_abs() => continue,
                                Ok(_) => break,
                                Err(error) => {
                                    tracing::warn!(error = %nefos_api::error_chain(&error), "digest job failed");
                                    break;
                                }
                            }
                        }
                    }
                }
            },
        ),
        // Drops the rows of images whose object went, and puts back uploads a stopped
        // process left half-done.
        spawn_loop(&db, "image-tidy", IMAGE_TIDY_INTERVAL, Runs::Leader, {
            let images = s.images.clone();
            move || {
                let images = images.clone();
                async move {
                    match images.forget_unregistered().await {
                        Ok(0) => {}
                        Ok(count) => {
                            tracing::info!(count, "dropped the records of unregistered images")
                        }
                        Err(error) => {
                            tracing::warn!(error = %nefos_api::error_chain(&error), "unregistered-image sweep failed");
                        }
                    }
                    if let Err(error) = images.recover_interrupted(abandoned_after).await {
                        tracing::warn!(error = %nefos_api::error_chain(&error), "interrupted-upload sweep failed");
                    }
                }
            }
        }),
    ]
}

/// Runs `pass` every `every`, by every process or by the loop's leader only.
fn spawn_loop<F, Fut>(
    db: &Database,
    name: &'static str,
    every: Duration,
    runs: Runs,
    mut pass: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let db = db.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match runs {
                Runs::EveryProcess => pass().await,
                Runs::Leader => match db.try_singleton(name).await {
                    Ok(Some(lead)) => {
                        pass().await;
                        if let Err(error) = lead.release().await {
                            tracing::warn!(job = name, error = %nefos_api::error_chain(&error), "cannot release the lead of a job");
                        }
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(job = name, error = %nefos_api::error_chain(&error), "cannot tell who leads the job");
                    }
                },
            }
        }
    })
}
