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
        let networks = nefos_network::Networks::new(
            db.clone(),
            storage.quotas().clone(),
            nefos_network::NetworkSettings::default(),
        );
        let compute = Compute::new(
            db,
            nodes,
            storage.quotas().clone(),
            images,
            networks,
            sagas,
            config.compute.settings()?,
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
        state.networks = self.compute.networks().clone();
        let images = state.images.clone();
        let app = nefos_api::router(state, &limits);
        let internal = nefos_api::internal_router(
            InternalState {
                nodes: self.compute.nodes().clone(),
                storage: self.storage.clone(),
                reconciler: Some(self.compute.reconciler()),
            },
            &limits,
        );
        let jobs = crate::jobs::spawn(&crate::jobs::Services {
            identity: self.identity.clone(),
            storage: self.storage.clone(),
            images,
            compute: self.compute.clone(),
            quotas: config.quotas.clone(),
        })
        .await;
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
        for job in jobs {
            job.abort();
        }
        served?;
        self.identity.database().close().await;
        tracing::info!("stopped");
        Ok(())
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
