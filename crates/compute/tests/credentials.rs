//! Node enrolment, credentials and block grants on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use nefos_compute::{ComputeError, NodeRegistry, NodeRpc};
use nefos_node_api::{Accelerator, ClusterSecret, NodeInfo, Secret};

const HOUR: Duration = Duration::from_secs(3600);

fn info(id: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        rpc_url: "http://127.0.0.1:1".into(),
        cpus: 2,
        ram_mib: 1024,
        disk_free_bytes: 1 << 30,
        disk_total_bytes: 1 << 31,
        guest_cpu_model: "qemu64".into(),
        host_cpu: "Some CPU".into(),
        accelerator: Accelerator::Tcg,
        qemu_version: "10.0.2".into(),
        agent_version: "0.1.0".into(),
        api_version: nefos_node_api::API_VERSION,
        heartbeat_seconds: 10,
        tunnel_address: None,
        public_network: false,
        cpu_features: Vec::new(),
    }
}

#[tokio::test]
async fn a_join_token_works_once_and_the_node_token_until_revoked() {
    for t in nefos_test_utils::each_backend().await {
        let label = t.label;
        let nodes = NodeRegistry::new(t.db.clone());
        let enrolment = nodes.enroll("hv01", HOUR).await.unwrap();
        // The join token is no node token.
        assert_eq!(
            nodes.authenticate(&enrolment.join_token).await.unwrap(),
            None,
            "{label}"
        );
        let joined = nodes.join(&enrolment.join_token).await.unwrap();
        assert_eq!(joined.node_id, "hv01", "{label}");
        assert_eq!(
            nodes.authenticate(&joined.token).await.unwrap().as_deref(),
            Some("hv01"),
            "{label}"
        );
        // Once only.
        assert!(
            matches!(
                nodes.join(&enrolment.join_token).await,
                Err(ComputeError::JoinRefused)
            ),
            "{label}"
        );
        assert!(
            matches!(
                nodes.join(&Secret::generate()).await,
                Err(ComputeError::JoinRefused)
            ),
            "{label}"
        );
        // A joined node keeps its credential until it is revoked.
        assert!(
            matches!(
                nodes.enroll("hv01", HOUR).await,
                Err(ComputeError::AlreadyEnrolled { .. })
            ),
            "{label}"
        );

        // Revoking one node leaves the others be.
        let other = nodes.enroll("hv02", HOUR).await.unwrap();
        let other = nodes.join(&other.join_token).await.unwrap();
        nodes.register(&info("hv01")).await.unwrap();
        nodes.revoke("hv01").await.unwrap();
        assert_eq!(nodes.authenticate(&joined.token).await.unwrap(), None);
        assert!(
            matches!(
                nodes.get("hv01").await,
                Err(ComputeError::UnknownNode { .. })
            ),
            "{label}"
        );
        assert_eq!(
            nodes.authenticate(&other.token).await.unwrap().as_deref(),
            Some("hv02"),
            "{label}"
        );
        assert!(
            matches!(
                nodes.revoke("hv01").await,
                Err(ComputeError::UnknownNode { .. })
            ),
            "{label}"
        );

        // Enrolled anew, the name gets a new token and a new credential id.
        let again = nodes.enroll("hv01", HOUR).await.unwrap();
        let again = nodes.join(&again.join_token).await.unwrap();
        assert_ne!(again.credential_id, joined.credential_id, "{label}");
        assert_eq!(nodes.authenticate(&joined.token).await.unwrap(), None);

        assert!(
            matches!(
                nodes.enroll("bad/name", HOUR).await,
                Err(ComputeError::InvalidNode { .. })
            ),
            "{label}"
        );
    }
}

#[tokio::test]
async fn racing_joins_with_one_token_make_one_credential() {
    for t in nefos_test_utils::each_backend().await {
        let label = t.label;
        let nodes = NodeRegistry::new(t.db.clone());
        let enrolment = nodes.enroll("hv01", HOUR).await.unwrap();
        let joins = (0..8).map(|_| {
            let (nodes, token) = (nodes.clone(), enrolment.join_token.clone());
            tokio::spawn(async move { nodes.join(&token).await })
        });
        let mut joined = Vec::new();
        for join in joins {
            match join.await.unwrap() {
                Ok(credential) => joined.push(credential),
                Err(ComputeError::JoinRefused) => {}
                Err(error) => panic!("{label}: {error}"),
            }
        }
        assert_eq!(joined.len(), 1, "{label}");
        assert_eq!(
            nodes
                .authenticate(&joined[0].token)
                .await
                .unwrap()
                .as_deref(),
            Some("hv01"),
            "{label}"
        );
    }
}

#[tokio::test]
async fn a_join_token_expires_and_a_new_enrolment_replaces_it() {
    for t in nefos_test_utils::each_backend().await {
        let label = t.label;
        let nodes = NodeRegistry::new(t.db.clone());
        let expired = nodes.enroll("hv01", Duration::ZERO).await.unwrap();
        assert!(
            matches!(
                nodes.join(&expired.join_token).await,
                Err(ComputeError::JoinRefused)
            ),
            "{label}"
        );
        // A pending enrolment may be replaced; the replaced token stops working.
        let first = nodes.enroll("hv01", HOUR).await.unwrap();
        let second = nodes.enroll("hv01", HOUR).await.unwrap();
        assert!(
            matches!(
                nodes.join(&first.join_token).await,
                Err(ComputeError::JoinRefused)
            ),
            "{label}"
        );
        nodes.join(&second.join_token).await.unwrap();
    }
}

#[tokio::test]
async fn a_node_reads_only_the_blocks_it_was_granted() {
    for t in nefos_test_utils::each_backend().await {
        let label = t.label;
        let nodes = NodeRegistry::new(t.db.clone());
        let a_blocks: Vec<String> = (0..1200).map(|i| format!("{i:064x}")).collect();
        let b_block = "B".repeat(64);
        // More than one batch, with a repeat; granting again changes nothing.
        let mut image_a = a_blocks.clone();
        image_a.push(a_blocks[0].clone());
        nodes.grant_image("node-a", &image_a).await.unwrap();
        nodes.grant_image("node-a", &image_a).await.unwrap();
        nodes
            .grant_image("node-b", std::slice::from_ref(&b_block))
            .await
            .unwrap();
        for hash in [&a_blocks[0], &a_blocks[1199]] {
            assert!(
                nodes.may_read_block("node-a", hash).await.unwrap(),
                "{label}"
            );
            assert!(
                !nodes.may_read_block("node-b", hash).await.unwrap(),
                "{label}"
            );
        }
        // Hashes are granted as the internal API names blocks: lowercase.
        let b_lower = b_block.to_ascii_lowercase();
        assert!(nodes.may_read_block("node-b", &b_lower).await.unwrap());
        assert!(!nodes.may_read_block("node-a", &b_lower).await.unwrap());

        // Revocation withdraws the grants.
        let enrolment = nodes.enroll("node-a", HOUR).await.unwrap();
        nodes.join(&enrolment.join_token).await.unwrap();
        nodes.revoke("node-a").await.unwrap();
        assert!(!nodes.may_read_block("node-a", &a_blocks[0]).await.unwrap());
        assert!(nodes.may_read_block("node-b", &b_lower).await.unwrap());
    }
}

#[tokio::test]
async fn each_node_gets_its_own_rpc_key() {
    for t in nefos_test_utils::each_backend().await {
        let label = t.label;
        let key = ClusterSecret::generate();
        let rpc = NodeRpc::new(NodeRegistry::new(t.db.clone()), key.clone());
        let mut credentials = Vec::new();
        for id in ["node-a", "node-b"] {
            let enrolment = rpc.registry().enroll(id, HOUR).await.unwrap();
            credentials.push(rpc.join(&enrolment.join_token).await.unwrap());
            rpc.registry().register(&info(id)).await.unwrap();
        }
        let [a, b] = &credentials[..] else {
            unreachable!()
        };
        assert_ne!(a.rpc_key, b.rpc_key, "{label}");
        assert_ne!(a.token, b.token, "{label}");
        // The node's token is what the registry knows it by.
        assert_eq!(
            rpc.registry()
                .authenticate(&Secret::new(a.token.clone()))
                .await
                .unwrap()
                .as_deref(),
            Some("node-a")
        );
        // A node not enrolled has no client.
        rpc.registry().register(&info("stray")).await.unwrap();
        assert!(
            matches!(
                rpc.client("stray").await,
                Err(ComputeError::NotEnrolled { .. })
            ),
            "{label}"
        );
        rpc.client("node-a").await.unwrap();
    }
}
