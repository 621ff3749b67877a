//! `nefos serve`: the control plane, and the serving loop `nefos up` shares.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use futures::FutureExt;
use nefos_api::{ApiState, InternalState};
use nefos_blocks::BlockStore;
use nefos_compute::{Compute, NodeRegistry, NodeRpc};
use nefos_db::Backend;
use nefos_identity::Identity;
use nefos_quota::{CYCLADES_RESOURCES, PITHOS_DISKSPACE, Quotas};
use nefos_storage::Storage;
use tokio::net::TcpListener;

use crate::config::Config;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); see docs/configuration.md.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    crate::data_dir::prepare(&config.data_dir).await?;
    let control_plane = ControlPlane::start(&config).await?;
    println!("nefos control plane at {}", control_plane.public_url);
    println!("internal API for nodes at {}", control_plane.internal_url);
    control_plane.serve(&config).await
}

/// A control plane that has bound its ports and opened its database.
#[derive(Debug)]
pub struct ControlPlane {
    pub listener: TcpListener,
    pub public_url: String,
    /// The internal API's own listener, for node agents.
    pub internal_listener: TcpListener,
    /// The internal API's URL as bound (what a node on this machine would use).
    pub internal_url: String,
    pub identity: Identity,
    pub storage: Storage,
    pub compute: Compute,
}

impl ControlPlane {
    pub async fn start(config: &Config) -> anyhow::Result<ControlPlane> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local = listener
            .local_addr()
            .context("cannot read the listening address")?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{local}"))
            .trim_end_matches('/')
            .to_owned();
        let internal_listener = TcpListener::bind(config.internal_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen for the internal API on {}",
                    config.internal_listen
                )
            })?;
        let internal_url = format!(
            "{scheme}://{}",
            internal_listener
                .local_addr()
                .context("cannot read the internal API's listening address")?
        );
        let blocks = BlockStore::open(&config.block_store())
            .await
            .context("cannot open the block store")?;
        // A store that cannot take a block would otherwise show only as failed uploads.
        blocks.probe().await.with_context(|| {
            format!(
                "the block store at {} failed its start-up check (write, read back and \
                 delete a probe)",
                blocks.location()
            )
        })?;
        // Opened after the block store's check, so that a start refused for its store
        // leaves the database as it found it.
        let db = config.open_database().await?;
        let identity = Identity::new(db.clone(), config.identity_config());
        let quotas = Quotas::new(db.clone());
        register_quota_resources(&quotas).await?;
        quotas
            .heartbeat()
            .await
            .context("cannot record this process among the control plane's")?;
        // The one process of a SQLite cloud knows that every commission another left
        // pending is abandoned; with PostgreSQL, others may be running, and the liveness
        // job waits for their heartbeats to stop.
        if db.backend() == Backend::Sqlite {
            quotas
                .reject_abandoned(Duration::ZERO)
                .await
                .context("cannot resolve the commissions a stopped process left pending")?;
        }
        let storage = Storage::new(db, blocks, quotas);
        // Sharing grants of earlier versions named users by name; they are kept by id now.
        let upgraded = storage
            .upgrade_grantee_names()
            .await
            .context("cannot upgrade the sharing grants to user ids")?;
        if upgraded > 0 {
            tracing::info!(upgraded, "sharing grants and groups now name users by id");
        }
        // The key file is read (or made) off the async runtime.
        let key_config = config.clone();
        let cluster_secret = tokio::task::spawn_blocking(move || key_config.cluster_secret())
            .await
            .context("reading the control plane's key failed")??;
        let db = identity.database().clone();
        let nodes = NodeRpc::new(NodeRegistry::new(db.clone()), cluster_secret);
        let sagas = nefos_saga::Sagas::new(db.clone(), storage.quotas().instance());
        let images =
            nefos_image::Images::new(storage.clone()).with_size_cap(config.images.size_cap_bytes);
        let compute = Compute::new(
            db,
            nodes,
            storage.quotas().clone(),
            images,
            sagas,
            config.compute.settings(),
        );
        Ok(ControlPlane {
            listener,
            public_url,
            internal_listener,
            internal_url,
            identity,
            storage,
            compute,
        })
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn serve(self, config: &Config) -> anyhow::Result<()> {
        let tls = match config.tls_files() {
            Some(files) => Some(nefos_api::server::tls_acceptor(&files)?),
            None => None,
        };
        let limits = config.http_limits();
        let mut state = ApiState::new(
            self.identity.clone(),
            self.storage.clone(),
            &self.public_url,
        );
        state.images = nefos_image::Images::new(self.storage.clone())
            .with_size_cap(config.images.size_cap_bytes);
        state.compute = Some(self.compute.clone());
        let images = state.images.clone();
        let app = nefos_api::router(state, &limits);
        let internal = nefos_api::internal_router(
            InternalState {
                nodes: self.compute.nodes().clone(),
                storage: self.storage.clone(),
            },
            &limits,
        );
        // The one process of a SQLite cloud resumes at once what a stopped one left;
        // with PostgreSQL, the loop waits for the other processes' heartbeats to stop.
        let sagas = self.compute.sagas().clone();
        if self.identity.database().backend() == Backend::Sqlite {
            match sagas.recover(Duration::ZERO).await {
                Ok(0) => {}
                Ok(resumed) => tracing::warn!(resumed, "resumed sagas a stopped process left"),
                Err(error) => {
                    tracing::error!(error = %nefos_api::error_chain(&error), "cannot resume sagas");
                }
            }
        }
        let saga_recovery = tokio::spawn(recover_sagas(sagas, config.quotas.abandoned_after()));
        let purge = tokio::spawn(purge_expired_tokens(self.identity.clone()));
        let expirer = tokio::spawn(expire_objects(self.storage.clone()));
        let digests = tokio::spawn(compute_digests(self.storage.clone()));
        let unregistered = tokio::spawn(tidy_images(images, config.quotas.abandoned_after()));
        let liveness = tokio::spawn(quota_liveness(
            self.storage.quotas().clone(),
            config.quotas.heartbeat(),
            config.quotas.abandoned_after(),
        ));
        tracing::info!(listen = %self.listener.local_addr()?, public_url = %self.public_url, internal_url = %self.internal_url, "serving");
        // One signal stops both listeners.
        let shutdown = shutdown_signal().shared();
        let served = tokio::try_join!(
            nefos_api::server::serve(
                self.listener,
                app,
                tls.clone(),
                limits.clone(),
                shutdown.clone()
            ),
            nefos_api::server::serve(self.internal_listener, internal, tls, limits, shutdown),
        );
        purge.abort();
        expirer.abort();
        digests.abort();
        unregistered.abort();
        liveness.abort();
        saga_recovery.abort();
        served?;
        self.identity.database().close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Deletes tokens a day after they expire, hourly. Idempotent, so every control-plane
/// process may run it.
async fn purge_expired_tokens(identity: Identity) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match identity
            .purge_expired_tokens(Duration::from_secs(24 * 3600))
            .await
        {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged expired tokens"),
            Err(error) => {
                tracing::warn!(error = %nefos_api::error_chain(&error), "token purge failed")
            }
        }
    }
}

/// How often the expirer looks for objects past their `X-Delete-At`.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(2);
/// Due objects deleted per database query.
const EXPIRY_BATCH: i64 = 500;

/// Deletes objects whose `X-Delete-At` has passed (they already read as gone), every few
/// seconds. Idempotent, so every control-plane process may run it.
async fn expire_objects(storage: Storage) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match storage.delete_expired(EXPIRY_BATCH).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "deleted expired objects"),
            Err(error) => {
                tracing::warn!(error = %nefos_api::error_chain(&error), "object expiry failed")
            }
        }
    }
}

/// How often the digest job looks for versions stored without their MD5.
const DIGEST_INTERVAL: Duration = Duration::from_secs(1);
/// Versions completed per pass.
const DIGEST_BATCH: i64 = 16;

/// Computes the MD5s of versions made from hashmaps or partial updates (see
/// `nefos_storage`'s digest job). The pending versions in the database are its queue;
/// idempotent, so every control-plane process may run it.
async fn compute_digests(storage: Storage) {
    let mut tick = tokio::time::interval(DIGEST_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
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

/// How often the image registry is tidied.
const IMAGE_TIDY_INTERVAL: Duration = Duration::from_secs(60);

/// Drops the rows of images whose object was deleted or overwritten (they stopped being
/// images then; every read checks), and puts back the images whose upload or import a
/// stopped control-plane process left half-done (silent for `abandoned_after`, as the
/// quota engine judges). Idempotent, so every control-plane process may run it.
async fn tidy_images(images: nefos_image::Images, abandoned_after: Duration) {
    let mut tick = tokio::time::interval(IMAGE_TIDY_INTERVAL);
    loop {
        tick.tick().await;
        match images.forget_unregistered().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "dropped the records of unregistered images"),
            Err(error) => {
                tracing::warn!(error = %nefos_api::error_chain(&error), "unregistered-image sweep failed");
            }
        }
        if let Err(error) = images.recover_interrupted(abandoned_after).await {
            tracing::warn!(error = %nefos_api::error_chain(&error), "interrupted-upload sweep failed");
        }
    }
}

/// Adopts, every few seconds, the sagas of control-plane processes silent for
/// `abandoned_after` (their heartbeats are the quota engine's), and runs them here.
/// Every control-plane process runs it; adoption is a compare-and-set, so each saga
/// goes to one.
async fn recover_sagas(sagas: nefos_saga::Sagas, abandoned_after: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = sagas.recover(abandoned_after).await {
            tracing::warn!(error = %nefos_api::error_chain(&error), "saga recovery failed");
        }
    }
}

/// Registers the resources this binary's services count (defaults an administrator
/// changed are kept): at every start of the control plane, and before the admin commands
/// on quotas, so that they know every resource even before the first start.
pub(crate) async fn register_quota_resources(quotas: &Quotas) -> anyhow::Result<()> {
    quotas
        .register_resources(&[PITHOS_DISKSPACE])
        .await
        .context("cannot register object storage's quota resource")?;
    quotas
        .register_resources(CYCLADES_RESOURCES)
        .await
        .context("cannot register compute's quota resources")?;
    Ok(())
}

/// Records this process's heartbeat every `heartbeat` and rejects the commissions of
/// processes silent for `abandoned_after` (see `nefos_quota`'s liveness). Every
/// control-plane process runs it.
async fn quota_liveness(quotas: Quotas, heartbeat: Duration, abandoned_after: Duration) {
    let mut tick = tokio::time::interval(heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = quotas.heartbeat().await {
            tracing::warn!(error = %nefos_api::error_chain(&error), "heartbeat failed");
            continue;
        }
        if let Err(error) = quotas.reject_abandoned(abandoned_after).await {
            tracing::warn!(error = %nefos_api::error_chain(&error), "resolving abandoned commissions failed");
        }
    }
}

pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "cannot watch SIGTERM; stopping on SIGINT only");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested");
}
