//! Node credentials (hardening issue, item 12): the internal API has a listener of its
//! own; each node has its own credential from its enrolment, can be revoked alone, cannot
//! act for or drive another node, and reads only the blocks of images it was asked to run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::http;
use common::vms::{Cloud, Node};
use nefos_node_api::{
    EnsureVm, GuestConfig, Heartbeat, ImageContent, NodeClient, NodeCredential, PowerState, Secret,
    VmSpec,
};
use serde_json::json;

/// `len` bytes that no other upload shares blocks with.
fn unique_bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut state = u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// `GET /internal/v1/blocks/HASH` at `base` with `bearer`: the status.
async fn get_block(base: &str, hash: &str, bearer: &str) -> u16 {
    http()
        .get(format!("{base}/internal/v1/blocks/{hash}"))
        .header("authorization", bearer)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `POST /internal/v1/enroll` with `join_token`: the status and, on success, the credential.
async fn join(cloud: &Cloud, join_token: &str) -> (u16, Option<NodeCredential>) {
    let response = http()
        .post(format!("{}/internal/v1/enroll", cloud.internal_url))
        .json(&json!({ "join_token": join_token }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let credential = if status == 200 {
        Some(response.json().await.unwrap())
    } else {
        None
    };
    (status, credential)
}

async fn heartbeat(cloud: &Cloud, node: &str, token: &str) -> u16 {
    http()
        .post(format!(
            "{}/internal/v1/nodes/{node}/heartbeat",
            cloud.internal_url
        ))
        .bearer_auth(token)
        .json(&Heartbeat {
            running_vms: 0,
            disk_free_bytes: 1,
        })
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_internal_api_is_served_apart_from_the_public_apis() {
    let cloud = Cloud::empty().await;
    let private = cloud
        .upload("demo", "private", "secret.bin", unique_bytes(1000, 1))
        .await;
    let hash = &private.hashes[0];
    // The control plane's key once opened the internal API on the public listener, and a
    // tenant's private block with it. The public listener now knows no internal API at
    // all, and the internal API takes no key but a node's own token.
    let key = std::fs::read_to_string(cloud.data.path().join("cluster-secret")).unwrap();
    let key = format!("Bearer {}", key.trim());
    assert_eq!(get_block(&cloud.process.url, hash, &key).await, 404);
    assert_eq!(
        get_block(&cloud.process.url, hash, "Bearer x").await,
        404,
        "/internal on the public listener must be unknown"
    );
    let response = http()
        .post(format!("{}/internal/v1/enroll", cloud.process.url))
        .json(&json!({ "join_token": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(get_block(&cloud.internal_url, hash, &key).await, 401);
    // And the internal listener serves none of the public APIs.
    let response = http()
        .get(format!("{}/identity/v3", cloud.internal_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_join_token_works_once_and_expires() {
    let cloud = Cloud::empty().await;
    let token = cloud.enroll("hv01", 60);
    let (status, credential) = join(&cloud, &token).await;
    assert_eq!(status, 200);
    let credential = credential.unwrap();
    assert_eq!(credential.node_id, "hv01");
    assert_ne!(credential.token, token);
    // Once only: a second exchange, by whoever copied the token, is refused.
    assert_eq!(join(&cloud, &token).await.0, 401);
    // The node's token works; the join token is no node token.
    assert_eq!(heartbeat(&cloud, "hv01", &credential.token).await, 404);
    assert_eq!(heartbeat(&cloud, "hv01", &token).await, 401);

    // An expired token is refused, and a node started with it says why.
    let expired = cloud.enroll("hv02", 0);
    let node_dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(common::binary())
        .args(["node", "--data", node_dir.path().to_str().unwrap()])
        .args(["--control-plane", &cloud.internal_url])
        .args(["--join-token", &expired, "--accelerator", "tcg"])
        .args(["--listen", &format!("127.0.0.1:{}", common::free_port())])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("refused the join token"), "{stderr}");
    assert!(!node_dir.path().join("credential.json").exists());
    assert_eq!(join(&cloud, &expired).await.0, 401);

    // A node that was never enrolled cannot start.
    let output = std::process::Command::new(common::binary())
        .args(["node", "--data", node_dir.path().to_str().unwrap()])
        .args([
            "--control-plane",
            &cloud.internal_url,
            "--accelerator",
            "tcg",
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("nefos admin node enroll"), "{stderr}");
}

#[tokio::test]
async fn a_revoked_node_is_refused_at_once_and_alone() {
    let cloud = Cloud::empty().await;
    let a = Node::start(&cloud, "node-a").await;
    let b = Node::start(&cloud, "node-b").await;
    let (a_credential, b_credential) = (a.credential(), b.credential());
    let mode = std::fs::metadata(a.dir.path().join("credential.json"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert_eq!(heartbeat(&cloud, "node-a", &a_credential.token).await, 204);

    let out = common::admin_ok(&[
        "node",
        "revoke",
        "node-a",
        "--data",
        cloud.data.path().to_str().unwrap(),
    ]);
    assert!(out.contains("revoked"), "{out}");
    assert_eq!(heartbeat(&cloud, "node-a", &a_credential.token).await, 401);
    let bearer = format!("Bearer {}", a_credential.token);
    assert_eq!(
        get_block(&cloud.internal_url, &"0".repeat(64), &bearer).await,
        401
    );
    // Node B carries on.
    assert_eq!(heartbeat(&cloud, "node-b", &b_credential.token).await, 204);
    let list = common::admin_ok(&[
        "node",
        "list",
        "--data",
        cloud.data.path().to_str().unwrap(),
    ]);
    assert!(
        !list.contains("node-a") && list.contains("node-b"),
        "{list}"
    );
    // The revoked agent's own heartbeats fail from now on and it does not come back.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let list = common::admin_ok(&[
        "node",
        "list",
        "--data",
        cloud.data.path().to_str().unwrap(),
    ]);
    assert!(!list.contains("node-a"), "{list}");
    // A revoked name can be enrolled again, with a new credential.
    let token = cloud.enroll("node-a", 60);
    let (status, again) = join(&cloud, &token).await;
    assert_eq!(status, 200);
    let again = again.unwrap();
    assert_ne!(again.token, a_credential.token);
    assert_ne!(again.rpc_key, a_credential.rpc_key);
}

#[tokio::test]
async fn one_node_cannot_act_for_or_drive_another() {
    let cloud = Cloud::empty().await;
    let a = Node::start(&cloud, "node-a").await;
    let b = Node::start(&cloud, "node-b").await;
    let a_credential = a.credential();

    // A's RPC key opens A's RPC and not B's; the control plane's key opens neither.
    let a_key = Secret::new(a_credential.rpc_key.clone());
    assert!(
        NodeClient::new(&a.url(), a_key.clone())
            .unwrap()
            .list_vms()
            .await
            .is_ok()
    );
    let refused = NodeClient::new(&b.url(), a_key)
        .unwrap()
        .list_vms()
        .await
        .unwrap_err();
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(401), "{refused}");
    let raw = std::fs::read_to_string(cloud.data.path().join("cluster-secret")).unwrap();
    let with_key = NodeClient::new(&b.url(), Secret::new(raw.trim())).unwrap();
    assert_eq!(
        with_key
            .list_vms()
            .await
            .unwrap_err()
            .status()
            .map(|s| s.as_u16()),
        Some(401)
    );
    // What the control plane derives for B opens B.
    assert!(b.rpc.list_vms().await.is_ok());

    // A's token cannot heartbeat for B, nor register as B to draw B's calls to itself.
    assert_eq!(heartbeat(&cloud, "node-b", &a_credential.token).await, 403);
    let mut b_info = b.rpc.node_info().await.unwrap();
    let b_url = b_info.rpc_url.clone();
    b_info.rpc_url = a.url();
    let response = http()
        .put(format!("{}/internal/v1/nodes/node-b", cloud.internal_url))
        .bearer_auth(&a_credential.token)
        .json(&b_info)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let registered = cloud.nodes.registry().get("node-b").await.unwrap();
    assert_eq!(registered.info.rpc_url, b_url);
}

#[tokio::test]
async fn control_plane_and_nodes_speak_api_versions_one_apart_at_most() {
    let cloud = Cloud::empty().await;
    let a = Node::start(&cloud, "node-a").await;
    let credential = a.credential();
    let version = nefos_node_api::API_VERSION;
    let registered = cloud.nodes.registry().get("node-a").await.unwrap();
    assert_eq!(registered.info.api_version, version);

    // The node's RPC: a caller one version older (or one without the header, version 1
    // releases) or newer is served; two apart is refused, saying why.
    let rpc = format!("{}/rpc/v1/vms", a.url());
    let key = Secret::new(credential.rpc_key.clone());
    for (header, served) in [
        (Some(version - 1), true),
        (Some(version + 1), true),
        (None, true),
        (Some(version + 2), false),
    ] {
        let mut request = http().get(&rpc).header("authorization", key.bearer());
        if let Some(header) = header {
            request = request.header(nefos_node_api::API_VERSION_HEADER, header.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().is_success(), served, "{header:?}");
        if !served {
            assert_eq!(response.status(), 400);
            let text = response.text().await.unwrap();
            assert!(text.contains("one version older or newer"), "{text}");
        }
    }

    // The internal API likewise, and a registration of an agent two versions away.
    let heartbeat = json!({"running_vms": 0, "disk_free_bytes": 1});
    let url = format!("{}/internal/v1/nodes/node-a/heartbeat", cloud.internal_url);
    let refused = http()
        .post(&url)
        .bearer_auth(&credential.token)
        .header(
            nefos_node_api::API_VERSION_HEADER,
            (version + 2).to_string(),
        )
        .json(&heartbeat)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let mut info = a.rpc.node_info().await.unwrap();
    info.api_version = version + 2;
    let refused = http()
        .put(format!("{}/internal/v1/nodes/node-a", cloud.internal_url))
        .bearer_auth(&credential.token)
        .json(&info)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(
        refused.text().await.unwrap().contains("API version"),
        "registration of an incompatible agent"
    );
    let registered = cloud.nodes.registry().get("node-a").await.unwrap();
    assert_eq!(registered.info.api_version, version);
}

fn spec_of(image: &ImageContent, ram_mib: u64) -> EnsureVm {
    EnsureVm {
        generation: 1,
        spec: VmSpec {
            name: "grant".to_owned(),
            vcpus: 1,
            ram_mib,
            disk_bytes: 1 << 30,
            image: image.clone(),
            guest: GuestConfig {
                hostname: "grant".to_owned(),
                ..GuestConfig::default()
            },
            nics: Vec::new(),
            cpu_model: None,
        },
        power: PowerState::Running,
    }
}

#[tokio::test]
async fn a_node_reads_only_the_blocks_of_images_it_was_asked_to_run() {
    let cloud = Cloud::empty().await;
    // Two blocks each: 4 MiB and a tail.
    let size = (4 << 20) + 4096;
    let image_a = cloud
        .upload("admin", "images", "a.raw", unique_bytes(size, 2))
        .await;
    let image_b = cloud
        .upload("admin", "images", "b.raw", unique_bytes(size, 3))
        .await;
    let private = cloud
        .upload("demo", "private", "secret.bin", unique_bytes(1000, 4))
        .await;
    let a = Node::start(&cloud, "node-a").await;
    let b = Node::start(&cloud, "node-b").await;
    let a_bearer = format!("Bearer {}", a.credential().token);
    let b_bearer = format!("Bearer {}", b.credential().token);

    // Called directly, without a grant, node A cannot fetch image A's blocks.
    let refused = a.rpc.ensure_vm("vm-direct", &spec_of(&image_a, 128)).await;
    let refused = refused.unwrap_err();
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(502), "{refused}");
    assert!(refused.to_string().contains("no block"), "{refused}");
    for hash in &image_a.hashes {
        assert_eq!(get_block(&cloud.internal_url, hash, &a_bearer).await, 404);
    }

    // Asked through the control plane's way, node A is granted image A's blocks and fills
    // its cache; the VM then fails only because QEMU cannot have that much memory.
    let started = Instant::now();
    let failed = a.ensure_vm("vm-granted", &spec_of(&image_a, 1 << 40)).await;
    let failed = failed.unwrap_err();
    assert_eq!(failed.status().map(|s| s.as_u16()), Some(500), "{failed}");
    assert!(
        failed.to_string().contains("QEMU failed to start"),
        "{failed}"
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    let cached: Vec<_> = std::fs::read_dir(a.dir.path().join("images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".raw"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    for hash in &image_a.hashes {
        assert_eq!(get_block(&cloud.internal_url, hash, &a_bearer).await, 200);
        assert_eq!(get_block(&cloud.internal_url, hash, &b_bearer).await, 404);
    }

    // Image B, granted to node B only, and a tenant's private object, granted to nobody,
    // read as missing to node A — as a block that does not exist does.
    cloud
        .nodes
        .registry()
        .grant_image("node-b", &image_b.hashes)
        .await
        .unwrap();
    for hash in &image_b.hashes {
        assert_eq!(get_block(&cloud.internal_url, hash, &b_bearer).await, 200);
        assert_eq!(get_block(&cloud.internal_url, hash, &a_bearer).await, 404);
    }
    for hash in &private.hashes {
        assert_eq!(get_block(&cloud.internal_url, hash, &a_bearer).await, 404);
        assert_eq!(get_block(&cloud.internal_url, hash, &b_bearer).await, 404);
    }
    let response = http()
        .get(format!(
            "{}/internal/v1/blocks/{}",
            cloud.internal_url, private.hashes[0]
        ))
        .header("authorization", &a_bearer)
        .send()
        .await
        .unwrap();
    let missing = http()
        .get(format!(
            "{}/internal/v1/blocks/{}",
            cloud.internal_url,
            "ab".repeat(32)
        ))
        .header("authorization", &a_bearer)
        .send()
        .await
        .unwrap();
    let message = |text: String| {
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        body["error"]["message"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        message(response.text().await.unwrap()),
        message(missing.text().await.unwrap())
    );
}
