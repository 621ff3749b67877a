//! What the control plane adds to a server's creation: create-to-ACTIVE through the compute
//! API against the node-only spawn of the same VM, in the same run.
//!
//! Starts a control plane (`nefos up --no-node --guest-image`, which registers the tiny
//! guest as the public image `nefos-tiny`) and one node (TCG) enrolled beside it. One
//! server is created and deleted first to fill the node's image cache. Then over `--rounds`
//! rounds, taking turns at going first:
//! (a) node only: `NodeRpc::ensure_vm` of the VM a create sends (1 vCPU, 128 MiB, 1 GiB,
//!     a user-mode NIC forwarding TCP 22, a config drive with hostname and password), timed
//!     until it returns, when QEMU runs; then `destroy_vm`;
//! (b) the API: `POST /compute/v2.1/servers` (m1.nano, nefos-tiny, networks auto) as the
//!     demo user, timed until `GET /servers/{id}` (polled every 5 ms) says ACTIVE, which it
//!     says once the node reported the VM running; then `DELETE`, waited for.
//!
//! Prints each round, the medians, their difference (goal: the control plane adds
//! < 150 ms) and their ratio.
//!
//! Run: `cargo build --release -p nefos -p nefos-bench && target/release/server-create-bench`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use nefos_bench::cluster::{Cloud, Node, median};
use nefos_node_api::{ConfigDriveLayout, EnsureVm, GuestConfig, NicSpec, PowerState, VmSpec};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
struct Args {
    /// Measured rounds (each creates one VM each way).
    #[arg(long, default_value_t = 7)]
    rounds: u32,
    /// The guest image (default: the workspace's `target/guest/nefos-tiny.raw`).
    #[arg(long)]
    image: Option<PathBuf>,
    /// The `nefos` binary (default: the one next to this program).
    #[arg(long)]
    nefos: Option<PathBuf>,
}

const NODE_ID: &str = "create-bench";
const GOAL: Duration = Duration::from_millis(150);
const POLL: Duration = Duration::from_millis(5);
const LIMIT: Duration = Duration::from_secs(120);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = match &args.nefos {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("nefos"),
    };
    if !binary.exists() {
        bail!("no nefos binary at {}", binary.display());
    }
    let image = args.image.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guest/nefos-tiny.raw")
    });
    if !image.exists() {
        bail!(
            "no guest image at {}: run scripts/build-guest-image",
            image.display()
        );
    }
    let image = image.canonicalize()?;
    let cloud = Cloud::start(&binary, &image, true).await?;
    let node = Node::start(&binary, &cloud, NODE_ID).await?;
    let api = Api::login(&cloud).await?;
    println!(
        "server-create-bench: {} rounds, TCG, m1.nano (1 vCPU, 128 MiB, 1 GiB)",
        args.rounds
    );
    let warm = api.create_to_active("warm-up").await?;
    println!("  cold (image cache filled): API {:.0} ms", ms(warm));

    let (mut node_only, mut through_api) = (Vec::new(), Vec::new());
    for round in 0..args.rounds.max(1) {
        let name = format!("bench-{round}");
        let (a, b) = if round % 2 == 0 {
            let a = spawn_on_node(&cloud, &node, &name, round).await?;
            (a, api.create_to_active(&name).await?)
        } else {
            let b = api.create_to_active(&name).await?;
            (spawn_on_node(&cloud, &node, &name, round).await?, b)
        };
        println!(
            "  round {round}: node only {:.0} ms, API {:.0} ms",
            ms(a),
            ms(b)
        );
        node_only.push(a);
        through_api.push(b);
    }
    let (a, b) = (median(node_only), median(through_api));
    let added = b.saturating_sub(a);
    println!(
        "medians: node only {:.0} ms, API create-to-ACTIVE {:.0} ms ({:.2} of node only)",
        ms(a),
        ms(b),
        b.as_secs_f64() / a.as_secs_f64()
    );
    println!(
        "the control plane adds {:.0} ms: goal < {} ms {}",
        ms(added),
        GOAL.as_millis(),
        if added < GOAL { "met" } else { "NOT met" }
    );
    drop(node);
    drop(cloud);
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The node-only spawn: the ensure a create's saga sends, until it returns.
async fn spawn_on_node(
    cloud: &Cloud,
    node: &Node,
    name: &str,
    round: u32,
) -> anyhow::Result<Duration> {
    let id = format!("00000000-0000-4000-8000-{:012}", u64::from(round) + 1);
    let request = EnsureVm {
        generation: 1,
        spec: VmSpec {
            name: name.to_owned(),
            vcpus: 1,
            ram_mib: 128,
            disk_bytes: 1 << 30,
            image: cloud.image.clone(),
            guest: GuestConfig {
                hostname: name.to_owned(),
                layout: ConfigDriveLayout::OpenStack,
                admin_pass: Some("bench-password".to_owned()),
                public_keys: BTreeMap::new(),
                user_data: None,
            },
            nics: vec![NicSpec::UserForward {
                mac: "fa:16:3e:00:00:01".to_owned(),
                forward_tcp: vec![22],
            }],
            cpu_model: None,
        },
        power: PowerState::Running,
    };
    let started = Instant::now();
    cloud.nodes.ensure_vm(NODE_ID, &id, &request).await?;
    let took = started.elapsed();
    node.rpc.destroy_vm(&id, 2).await?;
    Ok(took)
}

/// The demo user on the compute API.
struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
    image: String,
}

impl Api {
    async fn login(cloud: &Cloud) -> anyhow::Result<Api> {
        let token = cloud.token("demo").await?;
        let image = cloud.public_image(&token).await?;
        Ok(Api {
            http: reqwest::Client::new(),
            url: format!("{}/compute/v2.1", cloud.process.url),
            token,
            image,
        })
    }

    /// Creates a server, times it to ACTIVE, then deletes it and waits until it is gone.
    async fn create_to_active(&self, name: &str) -> anyhow::Result<Duration> {
        let body = json!({"server": {"name": name, "imageRef": self.image, "flavorRef": "6",
                                     "networks": "auto"}});
        let started = Instant::now();
        let created: Value = self
            .http
            .post(format!("{}/servers", self.url))
            .header("x-auth-token", &self.token)
            .header("openstack-api-version", "compute 2.96")
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = created["server"]["id"]
            .as_str()
            .context("no server id")?
            .to_owned();
        let took = loop {
            let server = self.show(&id).await?;
            match server["server"]["status"].as_str() {
                Some("ACTIVE") => break started.elapsed(),
                Some("ERROR") => bail!("server {id} failed: {server}"),
                _ if started.elapsed() > LIMIT => bail!("server {id} never got ACTIVE"),
                _ => tokio::time::sleep(POLL).await,
            }
        };
        self.http
            .delete(format!("{}/servers/{id}", self.url))
            .header("x-auth-token", &self.token)
            .send()
            .await?
            .error_for_status()?;
        let deleting = Instant::now();
        while self.show(&id).await?.get("server").is_some() {
            if deleting.elapsed() > LIMIT {
                bail!("server {id} was never deleted");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(took)
    }

    async fn show(&self, id: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}/servers/{id}", self.url))
            .header("x-auth-token", &self.token)
            .header("openstack-api-version", "compute 2.96")
            .send()
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Value::Null);
        }
        Ok(response.error_for_status()?.json().await?)
    }
}
