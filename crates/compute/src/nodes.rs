use crate::ComputeError;
use std::time::Duration;

use nefos_db::compute::{self as queries, NodeRow};
use nefos_db::{Database, DbError};
use nefos_node_api::{
    ClusterSecret, EnsureVm, Heartbeat, NodeClient, NodeCredential, NodeInfo, Secret, VmStatus,
};

/// A registered node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub info: NodeInfo,
    pub running_vms: u32,
    /// Microseconds since the epoch.
    pub registered_at: i64,
    pub heartbeat_at: i64,
    /// Drained by an operator: nothing new is placed on it.
    pub drained: bool,
    pub drained_reason: Option<String>,
}

/// A node that missed this many of its heartbeats is down.
pub const MISSED_HEARTBEATS: u32 = 3;

impl Node {
    /// Whether the node was heard from within `silence` before `now` (microseconds).
    pub fn is_alive(&self, now: i64, silence: Duration) -> bool {
        now.saturating_sub(self.heartbeat_at) <= micros(silence)
    }

    /// Whether the node is up at `now`: it has missed fewer than [`MISSED_HEARTBEATS`] of
    /// the heartbeats its own interval promises.
    pub fn is_up(&self, now: i64) -> bool {
        let interval = Duration::from_secs(self.info.heartbeat_seconds.max(1));
        self.is_alive(now, interval * MISSED_HEARTBEATS)
    }
}

#[derive(Debug, Clone)]
pub struct NodeRegistry {
    db: Database,
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// A node id: 1 to 64 of A-Z a-z 0-9 - _ .
fn check_node_id(id: &str) -> Result<(), ComputeError> {
    let id_ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if id_ok {
        Ok(())
    } else {
        Err(ComputeError::InvalidNode {
            reason: format!("node id {id:?} must be 1 to 64 of A-Z a-z 0-9 - _ ."),
        })
    }
}

/// A pending enrolment: the join token to hand to the node, shown once.
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub node_id: String,
    pub join_token: Secret,
    /// Microseconds since the epoch.
    pub expires_at: i64,
}

/// A node that has exchanged its join token: its token, to hand to it once, and the id
/// its RPC key is derived from.
#[derive(Debug, Clone)]
pub struct Joined {
    pub node_id: String,
    pub token: Secret,
    pub credential_id: String,
}

impl NodeRegistry {
    pub fn new(db: Database) -> NodeRegistry {
        NodeRegistry { db }
    }

    /// Starts enrolling node `id`: a one-time join token, valid for `valid_for`, that the
    /// node exchanges for its own credential ([`NodeRegistry::join`]). Enrolling a node
    /// whose enrolment is pending replaces the token; a node that has joined must be
    /// revoked first.
    pub async fn enroll(&self, id: &str, valid_for: Duration) -> Result<Enrolment, ComputeError> {
        check_node_id(id)?;
        let join_token = Secret::generate();
        let now = nefos_db::time::now_micros();
        let expires_at = now.saturating_add(micros(valid_for));
        let stored = queries::put_enrolment(
            self.db.pool(),
            id,
            &join_token.stored_hash(),
            expires_at,
            &Secret::generate().stored_hash(),
            now,
        )
        .await?;
        if !stored {
            return Err(ComputeError::AlreadyEnrolled { id: id.to_owned() });
        }
        tracing::info!(node = %id, "node enrolment started");
        Ok(Enrolment {
            node_id: id.to_owned(),
            join_token,
            expires_at,
        })
    }

    /// Exchanges a join token, once and before it expires, for the node's own token.
    pub async fn join(&self, join_token: &Secret) -> Result<Joined, ComputeError> {
        let token = Secret::generate();
        let joined = queries::complete_join(
            self.db.pool(),
            &join_token.stored_hash(),
            &token.stored_hash(),
            nefos_db::time::now_micros(),
        )
        .await?
        .ok_or(ComputeError::JoinRefused)?;
        tracing::info!(node = %joined.node_id, "node joined");
        Ok(Joined {
            node_id: joined.node_id,
            token,
            credential_id: joined.credential_id,
        })
    }

    /// The node holding `token`, unless its credential was revoked.
    pub async fn authenticate(&self, token: &Secret) -> Result<Option<String>, ComputeError> {
        Ok(queries::node_of_token(self.db.pool(), &token.stored_hash()).await?)
    }

    /// Revokes node `id` alone: its credential (or pending enrolment), its block grants and
    /// its registration go, so its next call to the internal API is refused.
    pub async fn revoke(&self, id: &str) -> Result<(), ComputeError> {
        let mut tx = self.db.begin().await?;
        let had_credential = queries::delete_credential(&mut *tx, id).await?;
        queries::revoke_blocks(&mut *tx, id).await?;
        let was_registered = queries::delete_node(&mut *tx, id).await?;
        if !(had_credential || was_registered) {
            return Err(ComputeError::UnknownNode { id: id.to_owned() });
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a node's revocation"))?;
        tracing::info!(node = %id, "node revoked");
        Ok(())
    }

    /// Lets node `id` read the blocks of an image it is asked to run.
    pub async fn grant_image(&self, id: &str, hashes: &[String]) -> Result<(), ComputeError> {
        // Stored as the internal API names blocks: lowercase hex.
        let mut unique: Vec<String> = hashes.iter().map(|h| h.to_ascii_lowercase()).collect();
        unique.sort_unstable();
        unique.dedup();
        let unique: Vec<&str> = unique.iter().map(String::as_str).collect();
        let mut tx = self.db.begin().await?;
        queries::grant_blocks(&mut tx, id, &unique, nefos_db::time::now_micros()).await?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a node's block grants"))?;
        Ok(())
    }

    /// Whether node `id` may read block `hash` (lowercase hex): only if it was granted an
    /// image holding it.
    pub async fn may_read_block(&self, id: &str, hash: &str) -> Result<bool, ComputeError> {
        Ok(queries::block_granted(self.db.pool(), id, hash).await?)
    }

    /// Records a node's self-description; registering again replaces it.
    pub async fn register(&self, info: &NodeInfo) -> Result<Node, ComputeError> {
        check_node_id(&info.id)?;
        if !nefos_node_api::api_compatible(info.api_version) {
            return Err(ComputeError::InvalidNode {
                reason: format!(
                    "the agent speaks API version {}; this control plane speaks {} and works \
                     with one version older or newer",
                    info.api_version,
                    nefos_node_api::API_VERSION
                ),
            });
        }
        if !(info.rpc_url.starts_with("http://") || info.rpc_url.starts_with("https://")) {
            return Err(ComputeError::InvalidNode {
                reason: format!("rpc_url {:?} is not an http(s) URL", info.rpc_url),
            });
        }
        let now = nefos_db::time::now_micros();
        let row = NodeRow {
            id: info.id.clone(),
            rpc_url: info.rpc_url.clone(),
            cpus: i64::from(info.cpus),
            ram_mib: to_i64(info.ram_mib),
            disk_free_bytes: to_i64(info.disk_free_bytes),
            disk_total_bytes: to_i64(info.disk_total_bytes),
            guest_cpu_model: info.guest_cpu_model.clone(),
            host_cpu: info.host_cpu.clone(),
            cpu_features: serde_json::to_string(&info.cpu_features)
                .unwrap_or_else(|_| "[]".to_owned()),
            tunnel_address: info.tunnel_address.map(|a| a.to_string()),
            public_network: i64::from(info.public_network),
            accelerator: info.accelerator.as_str().to_owned(),
            qemu_version: info.qemu_version.clone(),
            agent_version: info.agent_version.clone(),
            api_version: i64::from(info.api_version),
            running_vms: 0,
            registered_at: now,
            heartbeat_at: now,
            heartbeat_seconds: to_i64(info.heartbeat_seconds),
            drained: 0,
            drained_reason: None,
        };
        queries::upsert_node(self.db.pool(), &row).await?;
        tracing::info!(node = %info.id, rpc = %info.rpc_url, "node registered");
        Ok(node_of(row))
    }

    pub async fn heartbeat(&self, id: &str, beat: &Heartbeat) -> Result<(), ComputeError> {
        let known = queries::record_heartbeat(
            self.db.pool(),
            id,
            i64::from(beat.running_vms),
            to_i64(beat.disk_free_bytes),
            nefos_db::time::now_micros(),
        )
        .await?;
        if known {
            Ok(())
        } else {
            Err(ComputeError::UnknownNode { id: id.to_owned() })
        }
    }

    /// Drains a node (nothing new is placed on it), saying why, or undrains it.
    pub async fn set_drained(
        &self,
        id: &str,
        drained: bool,
        reason: Option<&str>,
    ) -> Result<(), ComputeError> {
        if queries::set_drained(self.db.pool(), id, drained, reason).await? {
            tracing::info!(node = %id, drained, "node drain changed");
            Ok(())
        } else {
            Err(ComputeError::UnknownNode { id: id.to_owned() })
        }
    }

    pub async fn list(&self) -> Result<Vec<Node>, ComputeError> {
        Ok(queries::list_nodes(self.db.pool())
            .await?
            .into_iter()
            .map(node_of)
            .collect())
    }

    pub async fn get(&self, id: &str) -> Result<Node, ComputeError> {
        queries::get_node(self.db.pool(), id)
            .await?
            .map(node_of)
            .ok_or_else(|| ComputeError::UnknownNode { id: id.to_owned() })
    }
}

fn node_of(row: NodeRow) -> Node {
    let to_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
    let accelerator = if row.accelerator == "kvm" {
        nefos_node_api::Accelerator::Kvm
    } else {
        nefos_node_api::Accelerator::Tcg
    };
    Node {
        info: NodeInfo {
            id: row.id,
            rpc_url: row.rpc_url,
            cpus: u32::try_from(row.cpus).unwrap_or(0),
            ram_mib: to_u64(row.ram_mib),
            disk_free_bytes: to_u64(row.disk_free_bytes),
            disk_total_bytes: to_u64(row.disk_total_bytes),
            guest_cpu_model: row.guest_cpu_model,
            host_cpu: row.host_cpu,
            cpu_features: serde_json::from_str(&row.cpu_features).unwrap_or_default(),
            tunnel_address: row.tunnel_address.and_then(|a| a.parse().ok()),
            public_network: row.public_network != 0,
            accelerator,
            qemu_version: row.qemu_version,
            agent_version: row.agent_version,
            api_version: u32::try_from(row.api_version).unwrap_or(1),
            heartbeat_seconds: to_u64(row.heartbeat_seconds),
        },
        running_vms: u32::try_from(row.running_vms).unwrap_or(0),
        registered_at: row.registered_at,
        heartbeat_at: row.heartbeat_at,
        drained: row.drained != 0,
        drained_reason: row.drained_reason,
    }
}

/// The control plane's way to drive nodes: it holds the control plane's key, derives each
/// node's RPC key from it, and grants a node an image's blocks before asking it to run it.
#[derive(Debug, Clone)]
pub struct NodeRpc {
    registry: NodeRegistry,
    key: ClusterSecret,
}

impl NodeRpc {
    pub fn new(registry: NodeRegistry, key: ClusterSecret) -> NodeRpc {
        NodeRpc { registry, key }
    }

    pub fn registry(&self) -> &NodeRegistry {
        &self.registry
    }

    /// The secret of live migration `migration` (its uuid), which its two nodes are given.
    pub fn migration_secret(&self, migration: &str) -> Secret {
        self.key.migration_secret(migration)
    }

    /// The key console tickets are signed with.
    pub fn console_key(&self) -> nefos_node_api::SigningKey {
        self.key.console_key()
    }

    /// Completes a node's enrolment: its token and its RPC key, to hand to it once.
    pub async fn join(&self, join_token: &Secret) -> Result<NodeCredential, ComputeError> {
        let joined = self.registry.join(join_token).await?;
        let rpc_key = self
            .key
            .node_rpc_key(&joined.node_id, &joined.credential_id);
        Ok(NodeCredential {
            node_id: joined.node_id,
            token: joined.token.expose().to_owned(),
            rpc_key: rpc_key.expose().to_owned(),
        })
    }

    /// A client of node `id`'s RPC, at the address it registered, with its RPC key.
    pub async fn client(&self, id: &str) -> Result<NodeClient, ComputeError> {
        let credential_id = queries::credential_id_of(self.registry.db.pool(), id)
            .await?
            .ok_or_else(|| ComputeError::NotEnrolled { id: id.to_owned() })?;
        let node = self.registry.get(id).await?;
        NodeClient::new(
            &node.info.rpc_url,
            self.key.node_rpc_key(id, &credential_id),
        )
        .map_err(|source| ComputeError::Rpc {
            node: id.to_owned(),
            source,
        })
    }

    /// Asks node `node` to ensure VM `vm` — the one way to make a node run an image: the
    /// node is first granted the image's blocks, which it then fetches.
    pub async fn ensure_vm(
        &self,
        node: &str,
        vm: &str,
        request: &EnsureVm,
    ) -> Result<VmStatus, ComputeError> {
        let client = self.granted(node, &request.spec.image.hashes).await?;
        client
            .ensure_vm(vm, request)
            .await
            .map_err(|source| ComputeError::Rpc {
                node: node.to_owned(),
                source,
            })
    }

    /// Asks node `node` to make ready to receive the running VM `vm`: the node is first
    /// granted the image's blocks, as for [`NodeRpc::ensure_vm`].
    pub async fn prepare_incoming(
        &self,
        node: &str,
        vm: &str,
        request: &nefos_node_api::IncomingVm,
    ) -> Result<VmStatus, ComputeError> {
        let client = self.granted(node, &request.spec.image.hashes).await?;
        client
            .prepare_incoming(vm, request)
            .await
            .map_err(|source| ComputeError::Rpc {
                node: node.to_owned(),
                source,
            })
    }

    /// A client of node `node`, once the node is granted the blocks `hashes` of the image
    /// it is about to fetch.
    async fn granted(&self, node: &str, hashes: &[String]) -> Result<NodeClient, ComputeError> {
        let client = self.client(node).await?;
        self.registry.grant_image(node, hashes).await?;
        Ok(client)
    }
}
