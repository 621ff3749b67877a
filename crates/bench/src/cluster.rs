//! A cloud for benchmarks that boot VMs: a control plane (`nefos up --no-node`) with the
//! tiny guest in the admin's object store, and `nefos node` processes (TCG) enrolled with
//! it at run time, as an operator adds nodes.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use nefos_compute::{ComputeError, NodeRegistry, NodeRpc};
use nefos_db::{Database, PoolSettings};
use nefos_node_api::{ClusterSecret, DiskFormat, ImageContent, NodeClient};
use nefos_test_utils::{NefosProcess, free_port, read_credentials};
use tempfile::TempDir;

/// A control plane with the guest image in the admin's object store, and the bench's
/// handle on its nodes over its database and key.
#[derive(Debug)]
pub struct Cloud {
    /// Kept for its drop, which stops the control plane before its directory goes.
    pub process: NefosProcess,
    pub internal_url: String,
    pub nodes: NodeRpc,
    /// The control plane's database (SQLite), as the bench reads it.
    pub db: Database,
    pub binary: std::path::PathBuf,
    pub data: TempDir,
    /// The guest image's content, as nodes fetch it.
    pub image: ImageContent,
}

impl Cloud {
    /// Starts a control plane and stores the guest `image` in the admin's `images`
    /// container; `register` has `nefos up` do that and register it as the public image
    /// `nefos-tiny`, for servers to boot from through the compute API.
    pub async fn start(binary: &Path, image: &Path, register: bool) -> anyhow::Result<Cloud> {
        let data = tempfile::Builder::new()
            .prefix("nefos-bench-cp-")
            .tempdir()?;
        let internal = format!("127.0.0.1:{}", free_port());
        let image_arg = image.display().to_string();
        let mut extra = vec!["--internal-listen", internal.as_str()];
        if register {
            extra.extend(["--guest-image", image_arg.as_str()]);
        }
        let process = NefosProcess::up(binary, data.path(), &extra);
        let db = Database::connect(
            &Database::sqlite_url(&data.path().join("nefos.db")),
            &PoolSettings::default(),
        )
        .await?;
        let key = ClusterSecret::load(&data.path().join("cluster-secret"))?;
        let nodes = NodeRpc::new(NodeRegistry::new(db.clone()), key);
        let password = read_credentials(data.path())
            .remove("admin")
            .context("no admin password in the credentials file")?;
        let http = reqwest::Client::new();
        let (token, account) =
            crate::login_object_store(&http, &process.url, "admin", &password).await?;
        let name = image
            .file_name()
            .and_then(|n| n.to_str())
            .context("the image has no file name")?;
        let container = format!("{account}/images");
        let object = format!("{container}/{name}");
        if !register {
            http.put(&container)
                .header("x-auth-token", &token)
                .send()
                .await?
                .error_for_status()?;
            http.put(&object)
                .header("x-auth-token", &token)
                .body(tokio::fs::read(image).await?)
                .send()
                .await?
                .error_for_status()?;
        }
        let hashmap: serde_json::Value = http
            .get(format!("{object}?hashmap&format=json"))
            .header("x-auth-token", &token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let image = ImageContent {
            size: hashmap["bytes"]
                .as_u64()
                .context("no bytes in the hashmap")?,
            block_size: hashmap["block_size"]
                .as_u64()
                .context("no block_size in the hashmap")?,
            hashes: hashmap["hashes"]
                .as_array()
                .context("no hashes in the hashmap")?
                .iter()
                .map(|h| h.as_str().map(str::to_owned).context("a hash is no string"))
                .collect::<anyhow::Result<_>>()?,
            format: DiskFormat::Raw,
        };
        Ok(Cloud {
            process,
            internal_url: format!("http://{internal}"),
            nodes,
            db,
            binary: binary.to_owned(),
            data,
            image,
        })
    }

    /// Runs `nefos admin ARGS --data DATA`, which must succeed.
    pub fn admin(&self, args: &[&str]) -> anyhow::Result<()> {
        let output = std::process::Command::new(&self.binary)
            .arg("admin")
            .args(args)
            .arg("--data")
            .arg(self.data.path())
            .output()?;
        if !output.status.success() {
            anyhow::bail!(
                "nefos admin {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// A Keystone token of `user` (from `nefos up`'s credentials) scoped to its project.
    pub async fn token(&self, user: &str) -> anyhow::Result<String> {
        let password = read_credentials(self.data.path())
            .remove(user)
            .with_context(|| format!("no password of {user}"))?;
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": user, "domain": {"id": "default"}}}}});
        let answer = reqwest::Client::new()
            .post(format!("{}/identity/v3/auth/tokens", self.process.url))
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        Ok(answer
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .context("no token in the answer")?
            .to_owned())
    }

    /// The id of the public image `nefos-tiny` (`start` with `register`).
    pub async fn public_image(&self, token: &str) -> anyhow::Result<String> {
        let images: serde_json::Value = reqwest::Client::new()
            .get(format!(
                "{}/image/v2/images?name=nefos-tiny",
                self.process.url
            ))
            .header("x-auth-token", token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(images["images"][0]["id"]
            .as_str()
            .context("no image nefos-tiny")?
            .to_owned())
    }
}

/// A `nefos node` (TCG) enrolled with the control plane. Fields drop in order: the process
/// before its directory.
#[derive(Debug)]
pub struct Node {
    pub process: NefosProcess,
    pub rpc: NodeClient,
    /// Its RPC API's base URL.
    pub url: String,
    pub dir: TempDir,
}

impl Node {
    /// Enrols node `id` and starts it; returns once it has registered.
    pub async fn start(binary: &Path, cloud: &Cloud, id: &str) -> anyhow::Result<Node> {
        // QEMU's unix sockets live under the data directory: keep its path short.
        let dir = tempfile::Builder::new().prefix("nfs").tempdir_in("/tmp")?;
        let enrolment = cloud
            .nodes
            .registry()
            .enroll(id, Duration::from_secs(600))
            .await?;
        let url_port = free_port();
        let url = format!("http://127.0.0.1:{url_port}");
        let args = vec![
            "node".to_owned(),
            "--id".to_owned(),
            id.to_owned(),
            "--data".to_owned(),
            dir.path().display().to_string(),
            "--listen".to_owned(),
            format!("127.0.0.1:{url_port}"),
            "--control-plane".to_owned(),
            cloud.internal_url.clone(),
            "--join-token".to_owned(),
            enrolment.join_token.expose().to_owned(),
            "--accelerator".to_owned(),
            "tcg".to_owned(),
        ];
        let process = NefosProcess::spawn(binary, &args, &url);
        // The node serves once it has joined and registers a moment later.
        let started = Instant::now();
        let rpc = loop {
            match cloud.nodes.client(id).await {
                Ok(rpc) => break rpc,
                Err(ComputeError::UnknownNode { .. })
                    if started.elapsed() < Duration::from_secs(60) =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => return Err(error).context("the node did not register"),
            }
        };
        Ok(Node {
            process,
            rpc,
            url,
            dir,
        })
    }
}

/// The median of `durations` (the upper one of an even count).
pub fn median(mut durations: Vec<Duration>) -> Duration {
    durations.sort_unstable();
    durations[durations.len() / 2]
}
