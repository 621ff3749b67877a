//! The node registry on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use nefos_compute::{ComputeError, NodeRegistry};
use nefos_node_api::{Accelerator, Heartbeat, NodeInfo};

fn info(id: &str, rpc_url: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        rpc_url: rpc_url.into(),
        cpus: 2,
        ram_mib: 24_000,
        disk_free_bytes: 1 << 40,
        disk_total_bytes: 2 << 40,
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
async fn nodes_register_heartbeat_and_reregister() {
    for t in nefos_test_utils::each_backend().await {
        let label = t.label;
        let nodes = NodeRegistry::new(t.db.clone());
        nodes
            .register(&info("node-b", "http://127.0.0.1:2"))
            .await
            .unwrap();
        let first = nodes
            .register(&info("node-a", "http://127.0.0.1:1"))
            .await
            .unwrap();
        assert_eq!(first.info, info("node-a", "http://127.0.0.1:1"), "{label}");

        nodes
            .heartbeat(
                "node-a",
                &Heartbeat {
                    running_vms: 3,
                    disk_free_bytes: 5,
                },
            )
            .await
            .unwrap();
        let a = nodes.get("node-a").await.unwrap();
        assert_eq!(a.running_vms, 3, "{label}");
        assert_eq!(a.info.disk_free_bytes, 5, "{label}");
        assert!(a.heartbeat_at >= first.heartbeat_at, "{label}");
        let now = nefos_db::time::now_micros();
        assert!(a.is_alive(now, Duration::from_secs(30)), "{label}");
        assert!(
            !a.is_alive(now + 31_000_000, Duration::from_secs(30)),
            "{label}"
        );

        // A node that comes back at a new address replaces its old description.
        nodes
            .register(&info("node-a", "http://127.0.0.1:9"))
            .await
            .unwrap();
        let listed = nodes.list().await.unwrap();
        let ids: Vec<_> = listed.iter().map(|n| n.info.id.as_str()).collect();
        assert_eq!(ids, ["node-a", "node-b"], "{label}");
        assert_eq!(listed[0].info.rpc_url, "http://127.0.0.1:9", "{label}");

        let unknown = nodes
            .heartbeat(
                "ghost",
                &Heartbeat {
                    running_vms: 0,
                    disk_free_bytes: 0,
                },
            )
            .await;
        assert!(
            matches!(unknown, Err(ComputeError::UnknownNode { .. })),
            "{label}"
        );
        let bad = nodes.register(&info("bad/id", "http://x")).await;
        assert!(
            matches!(bad, Err(ComputeError::InvalidNode { .. })),
            "{label}"
        );
        let bad = nodes.register(&info("ok", "file:///etc/passwd")).await;
        assert!(
            matches!(bad, Err(ComputeError::InvalidNode { .. })),
            "{label}"
        );
    }
}
