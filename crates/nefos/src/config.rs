//! The control plane's configuration file (TOML). Every field has a default, so an empty
//! file runs a loopback cloud on SQLite in `./nefos-data`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use nefos_api::{BodyPace, HttpLimits, TlsFiles};
use nefos_blocks::BlockStoreConfig;
use nefos_db::{Database, PoolSettings};
use nefos_identity::{IdentityConfig, LoginThrottleConfig};
use nefos_node_api::ClusterSecret;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP APIs listen on.
    pub listen: SocketAddr,
    /// The URL clients reach this cloud at (a load balancer's, in a multi-node cloud).
    /// Default: `http(s)://<listen>`.
    pub public_url: Option<String>,
    /// Where local state lives (the SQLite database, by default).
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`. Default: `DATA_DIR/nefos.db`.
    pub database: Option<String>,
    pub database_max_connections: u32,
    pub identity: IdentitySection,
    pub http: HttpSection,
    pub tls: Option<TlsSection>,
    /// Where object, image and snapshot blocks live. Default: `fs` in `DATA_DIR/blocks`.
    pub blocks: Option<BlockStoreConfig>,
    /// The control plane's own key, from which it derives each node's RPC key; shared by
    /// the cloud's `nefos serve` processes and never given to a node. Default:
    /// `DATA_DIR/cluster-secret`, generated on first start.
    pub cluster_secret_file: Option<PathBuf>,
    /// Address the internal API (node enrolment, heartbeats, image blocks) listens on,
    /// apart from the public APIs: an address on the operators' network that nodes reach
    /// and tenants do not.
    pub internal_listen: SocketAddr,
    pub quotas: QuotasSection,
    pub images: ImagesSection,
    pub compute: ComputeSection,
}

/// The compute service: placement and what servers get.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeSection {
    /// vCPUs placed per host CPU.
    pub cpu_allocation_ratio: f64,
    /// Guest RAM placed per byte of host RAM (less the reserved RAM).
    pub ram_allocation_ratio: f64,
    /// Root disk bytes placed per byte of a node's disk (overlays grow as guests write).
    pub disk_allocation_ratio: f64,
    /// Host RAM each node keeps for itself, in MiB.
    pub reserved_host_ram_mib: u64,
    /// Guest TCP ports each server's node forwards from its loopback (user-mode
    /// networking; see docs/servers.md).
    pub forward_tcp: Vec<u16>,
    /// The network (its id) servers that name none get a port on (Nova's `auto`), e.g.
    /// the provider's public network, shared with every project; unset, they get
    /// user-mode networking with `forward_tcp`.
    pub auto_network: Option<String>,
    /// The CPU model servers get unless their flavor's `nefos:cpu_model` names another:
    /// `x86-64-v1` … `x86-64-v4`.
    pub cpu_model: String,
    /// The longest a live migration may pause the guest for its switch, in milliseconds.
    pub migration_downtime_ms: u64,
    /// Bytes per second a live migration's memory stream may take; 0: no limit.
    pub migration_bandwidth: u64,
    /// What a live migration does when a busy guest dirties memory faster than it is sent:
    /// `auto_converge` (QEMU slows the guest's vCPUs until it converges) or `none`.
    pub migration_convergence: nefos_node_api::Convergence,
}

impl Default for ComputeSection {
    fn default() -> Self {
        let defaults = nefos_compute::ComputeSettings::default();
        ComputeSection {
            cpu_allocation_ratio: defaults.cpu_allocation_ratio,
            ram_allocation_ratio: defaults.ram_allocation_ratio,
            disk_allocation_ratio: defaults.disk_allocation_ratio,
            reserved_host_ram_mib: defaults.reserved_host_ram_mib,
            forward_tcp: defaults.forward_tcp,
            auto_network: defaults.auto_network,
            cpu_model: defaults.cpu_model,
            migration_downtime_ms: defaults.migration.downtime_ms,
            migration_bandwidth: defaults.migration.max_bandwidth,
            migration_convergence: defaults.migration.convergence,
        }
    }
}

impl ComputeSection {
    /// The settings, once checked: a CPU model must be one nefos knows.
    pub fn settings(&self) -> anyhow::Result<nefos_compute::ComputeSettings> {
        if nefos_node_api::cpu_model(&self.cpu_model).is_none() {
            anyhow::bail!(
                "[compute] cpu_model = {:?} is not a CPU model nefos knows ({})",
                self.cpu_model,
                nefos_node_api::CpuModel::names()
            );
        }
        Ok(nefos_compute::ComputeSettings {
            cpu_allocation_ratio: self.cpu_allocation_ratio,
            ram_allocation_ratio: self.ram_allocation_ratio,
            disk_allocation_ratio: self.disk_allocation_ratio,
            reserved_host_ram_mib: self.reserved_host_ram_mib,
            forward_tcp: self.forward_tcp.clone(),
            auto_network: self.auto_network.clone(),
            cpu_model: self.cpu_model.clone(),
            migration: nefos_node_api::MigrationLimits {
                downtime_ms: self.migration_downtime_ms,
                max_bandwidth: self.migration_bandwidth,
                convergence: self.migration_convergence,
            },
        })
    }
}

/// The image service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesSection {
    /// The largest image an upload may store, in bytes (Glance's `image_size_cap`).
    pub size_cap_bytes: u64,
}

impl Default for ImagesSection {
    fn default() -> Self {
        ImagesSection {
            size_cap_bytes: nefos_image::DEFAULT_SIZE_CAP,
        }
    }
}

/// How control-plane processes find the commissions a stopped one left pending.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotasSection {
    /// How often each process records that it is alive, in seconds.
    pub heartbeat_seconds: u64,
    /// A process silent this long (seconds) is taken for stopped, and the commissions it
    /// held pending are rejected. Keep it several heartbeats long.
    pub abandoned_after_seconds: u64,
}

impl Default for QuotasSection {
    fn default() -> Self {
        QuotasSection {
            heartbeat_seconds: 5,
            abandoned_after_seconds: 30,
        }
    }
}

impl QuotasSection {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_seconds.max(1))
    }

    /// At least three heartbeats, whatever is configured: a shorter silence would take
    /// live processes for stopped ones and reject their uploads' reservations.
    pub fn abandoned_after(&self) -> Duration {
        Duration::from_secs(self.abandoned_after_seconds).max(self.heartbeat() * 3)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySection {
    /// Lifetime of a new token, in seconds.
    pub token_ttl_seconds: u64,
    /// How long a process trusts a token it validated (0: never), in seconds. A revocation
    /// made through another control-plane process takes effect here within this time.
    pub token_cache_seconds: u64,
    /// Failed password logins allowed per user name within `login_window_seconds`, after
    /// which that name's logins get 429 until the window passes (0: no limit).
    pub login_max_failures_per_user: u32,
    /// Failed password logins allowed per client address within the window (0: no limit).
    pub login_max_failures_per_address: u32,
    pub login_window_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    pub header_timeout_seconds: u64,
    pub shutdown_grace_seconds: u64,
    /// Front proxies (load balancers) whose `X-Forwarded-For` header names the client, for
    /// the per-address login throttle.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// A request body that sends nothing for this long is cut off (408).
    pub body_idle_timeout_seconds: u64,
    /// After `body_grace_seconds`, a request body must average at least this rate (0: no
    /// minimum), or it is cut off (408).
    pub body_min_bytes_per_second: u64,
    pub body_grace_seconds: u64,
    /// Connections served at once; more clients wait in the listen backlog.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain.
    pub certificate: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            data_dir: PathBuf::from("nefos-data"),
            database: None,
            database_max_connections: 16,
            identity: IdentitySection::default(),
            http: HttpSection::default(),
            tls: None,
            blocks: None,
            cluster_secret_file: None,
            internal_listen: SocketAddr::from(([127, 0, 0, 1], 8082)),
            quotas: QuotasSection::default(),
            images: ImagesSection::default(),
            compute: ComputeSection::default(),
        }
    }
}

impl Default for IdentitySection {
    fn default() -> Self {
        let defaults = IdentityConfig::default();
        IdentitySection {
            token_ttl_seconds: defaults.token_ttl.as_secs(),
            token_cache_seconds: defaults.token_cache_ttl.as_secs(),
            login_max_failures_per_user: defaults.login_throttle.max_failures_per_user,
            login_max_failures_per_address: defaults.login_throttle.max_failures_per_address,
            login_window_seconds: defaults.login_throttle.window.as_secs(),
        }
    }
}

impl Default for HttpSection {
    fn default() -> Self {
        let limits = HttpLimits::default();
        HttpSection {
            max_header_bytes: limits.max_header_bytes,
            max_body_bytes: limits.max_body_bytes,
            header_timeout_seconds: limits.header_timeout.as_secs(),
            shutdown_grace_seconds: limits.shutdown_grace.as_secs(),
            trusted_proxies: limits.trusted_proxies,
            body_idle_timeout_seconds: limits.body_pace.idle_timeout.as_secs(),
            body_min_bytes_per_second: limits.body_pace.min_bytes_per_second,
            body_grace_seconds: limits.body_pace.grace.as_secs(),
            max_connections: limits.max_connections,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("invalid configuration in {}", path.display()))
    }

    pub fn database_url(&self) -> String {
        match &self.database {
            Some(url) => url.clone(),
            None => Database::sqlite_url(&self.data_dir.join("nefos.db")),
        }
    }

    /// Opens the database and brings its schema up to date.
    pub async fn open_database(&self) -> anyhow::Result<Database> {
        let settings = PoolSettings {
            max_connections: self.database_max_connections,
            ..Default::default()
        };
        let db = Database::connect(&self.database_url(), &settings).await?;
        let status = db.migrate().await?;
        tracing::info!(version = status.version, applied = status.applied, backend = ?db.backend(), "database ready");
        Ok(db)
    }

    pub fn block_store(&self) -> BlockStoreConfig {
        self.blocks.clone().unwrap_or_else(|| BlockStoreConfig::Fs {
            path: self.data_dir.join("blocks"),
        })
    }

    pub fn cluster_secret_path(&self) -> PathBuf {
        self.cluster_secret_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("cluster-secret"))
    }

    /// The control plane's key, created (0600) on first use.
    pub fn cluster_secret(&self) -> anyhow::Result<ClusterSecret> {
        let path = self.cluster_secret_path();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(ClusterSecret::load_or_create(&path)?)
    }

    pub fn identity_config(&self) -> IdentityConfig {
        IdentityConfig {
            token_ttl: Duration::from_secs(self.identity.token_ttl_seconds),
            token_cache_ttl: Duration::from_secs(self.identity.token_cache_seconds),
            login_throttle: LoginThrottleConfig {
                max_failures_per_user: self.identity.login_max_failures_per_user,
                max_failures_per_address: self.identity.login_max_failures_per_address,
                window: Duration::from_secs(self.identity.login_window_seconds),
            },
        }
    }

    pub fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            max_header_bytes: self.http.max_header_bytes,
            max_body_bytes: self.http.max_body_bytes,
            header_timeout: Duration::from_secs(self.http.header_timeout_seconds),
            shutdown_grace: Duration::from_secs(self.http.shutdown_grace_seconds),
            trusted_proxies: self.http.trusted_proxies.clone(),
            body_pace: BodyPace {
                idle_timeout: Duration::from_secs(self.http.body_idle_timeout_seconds),
                min_bytes_per_second: self.http.body_min_bytes_per_second,
                grace: Duration::from_secs(self.http.body_grace_seconds),
            },
            max_connections: self.http.max_connections,
        }
    }

    pub fn tls_files(&self) -> Option<TlsFiles> {
        self.tls.as_ref().map(|t| TlsFiles {
            certificate: t.certificate.clone(),
            key: t.key.clone(),
        })
    }
}
