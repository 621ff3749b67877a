//! Routers and floating IPs on both databases: a router's interface takes its subnet's
//! gateway address and its gateway an address of the external network; a floating IP
//! is charged to quota, associates only through a router joining its port's subnet to
//! its network, and is freed with the port it served; the service's own ports are not the
//! port API's to delete; a router with interfaces or a gateway in use stays.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cloud, ip};
use nefos_identity::AuthContext;
use nefos_network::{
    FLOATING_IP_RESOURCE, FloatingIpUpdate, GatewayRequest, NewFloatingIp, NewNetwork, NewRouter,
    NewSubnet, RouterUpdate,
};
use nefos_test_utils::each_backend;
use nefos_test_utils::identity::{cloud_admin, member};

/// The provider's public network, 203.0.113.0/24 with addresses .10 to .12 to give.
async fn public_network(cloud: &Cloud, admin: &AuthContext) -> String {
    let network = cloud
        .networks
        .create_network(
            admin,
            NewNetwork {
                name: "public".to_owned(),
                external: Some(true),
                ..NewNetwork::default()
            },
        )
        .await
        .unwrap()
        .id;
    cloud
        .networks
        .create_subnet(
            admin,
            NewSubnet {
                network_id: network.clone(),
                ip_version: 4,
                cidr: "203.0.113.0/24".to_owned(),
                gateway_ip: Some(Some(ip("203.0.113.1"))),
                allocation_pools: Some(vec![(ip("203.0.113.10"), ip("203.0.113.12"))]),
                enable_dhcp: Some(false),
                ..NewSubnet::default()
            },
        )
        .await
        .unwrap();
    network
}

#[tokio::test]
async fn floating_ips_reach_ports_through_routers() {
    for t in each_backend().await {
        let cloud = Cloud::new(t).await;
        let label = cloud.label;
        let admin = cloud_admin(&cloud.identity, "root").await;
        let alice = member(&cloud.identity, "alice").await;
        let public = public_network(&cloud, &admin).await;
        let net = cloud.network(&alice, "lab").await;
        let subnet = cloud.subnet(&alice, &net, "10.0.0.0/24").await;
        let vm_port = cloud.port(&alice, &net).await.unwrap();

        // A floating IP is charged, and without a router it cannot reach the port.
        let floating = cloud
            .networks
            .create_floating_ip(
                &alice,
                NewFloatingIp {
                    floating_network_id: public.clone(),
                    ..NewFloatingIp::default()
                },
            )
            .await
            .unwrap();
        let pool = ["203.0.113.10", "203.0.113.11", "203.0.113.12"];
        assert!(
            pool.contains(&floating.floating_ip_address.as_str()),
            "{label}: {floating:?}"
        );
        assert_eq!(floating.status(), "DOWN", "{label}");
        assert_eq!(
            cloud.usage(&alice, FLOATING_IP_RESOURCE).await,
            1,
            "{label}"
        );
        let associate = FloatingIpUpdate {
            port_id: Some(Some(vm_port.id.clone())),
            ..FloatingIpUpdate::default()
        };
        let refused = cloud
            .networks
            .update_floating_ip(&alice, &floating.id, associate.clone())
            .await
            .unwrap_err();
        assert_eq!(
            refused.kind(),
            "ExternalGatewayForFloatingIPNotFound",
            "{label}"
        );
        // Its base quota is one floating IP.
        let refused = cloud
            .networks
            .create_floating_ip(
                &alice,
                NewFloatingIp {
                    floating_network_id: public.clone(),
                    ..NewFloatingIp::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), "OverQuota", "{label}");

        // A router: its interface holds the subnet's gateway, its gateway a public
        // address.
        let router = cloud
            .networks
            .create_router(
                &alice,
                NewRouter {
                    name: "r1".to_owned(),
                    ..NewRouter::default()
                },
            )
            .await
            .unwrap();
        let interface = cloud
            .networks
            .add_router_interface(&alice, &router.id, Some(&subnet), None)
            .await
            .unwrap();
        let interface_port = cloud
            .networks
            .port(&alice, &interface.port_id)
            .await
            .unwrap();
        assert_eq!(
            interface_port.fixed_ips[0].ip_address,
            ip("10.0.0.1"),
            "{label}"
        );
        let twice = cloud
            .networks
            .add_router_interface(&alice, &router.id, Some(&subnet), None)
            .await
            .unwrap_err();
        assert_eq!(twice.kind(), "BadRequest", "{label}");
        // An interface but no gateway: still no way in.
        let refused = cloud
            .networks
            .update_floating_ip(&alice, &floating.id, associate.clone())
            .await
            .unwrap_err();
        assert_eq!(
            refused.kind(),
            "ExternalGatewayForFloatingIPNotFound",
            "{label}"
        );
        let gateway = Some(Some(GatewayRequest {
            network_id: public.clone(),
            enable_snat: None,
        }));
        let router = cloud
            .networks
            .update_router(
                &alice,
                &router.id,
                RouterUpdate {
                    external_gateway: gateway,
                    ..RouterUpdate::default()
                },
            )
            .await
            .unwrap();
        let external = router.external_gateway.clone().unwrap();
        assert!(external.enable_snat, "{label}");
        let gateway_address = external.fixed_ips[0].ip_address.to_string();
        assert!(pool.contains(&gateway_address.as_str()), "{label}");
        assert_ne!(gateway_address, floating.floating_ip_address, "{label}");

        let (associated, routers) = cloud
            .networks
            .update_floating_ip(&alice, &floating.id, associate)
            .await
            .unwrap();
        assert_eq!(routers, vec![router.id.clone()], "{label}");
        assert_eq!(associated.status(), "ACTIVE", "{label}");
        assert_eq!(
            associated.fixed_ip_address.as_deref(),
            Some(vm_port.fixed_ips[0].ip_address.to_string().as_str()),
            "{label}"
        );

        // What the router serves stays while it serves it.
        let refused = cloud
            .networks
            .delete_port(&alice, &interface.port_id)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), "L3PortInUse", "{label}");
        let refused = cloud
            .networks
            .remove_router_interface(&alice, &router.id, Some(&subnet), None)
            .await
            .unwrap_err();
        assert_eq!(
            refused.kind(),
            "RouterInterfaceInUseByFloatingIP",
            "{label}"
        );
        let refused = cloud
            .networks
            .update_router(
                &alice,
                &router.id,
                RouterUpdate {
                    external_gateway: Some(None),
                    ..RouterUpdate::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(
            refused.kind(),
            "RouterExternalGatewayInUseByFloatingIp",
            "{label}"
        );
        let refused = cloud
            .networks
            .delete_router(&alice, &router.id)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), "RouterInUse", "{label}");

        // Another project sees none of it.
        let bob = member(&cloud.identity, "bob").await;
        let unseen = cloud
            .networks
            .floating_ip(&bob, &floating.id)
            .await
            .unwrap_err();
        assert_eq!(unseen.kind(), "FloatingIPNotFound", "{label}");
        assert!(
            cloud.networks.routers(&bob).await.unwrap().is_empty(),
            "{label}"
        );

        // The port's deletion ends the association; the floating IP stays allocated.
        cloud
            .networks
            .delete_port(&alice, &vm_port.id)
            .await
            .unwrap();
        let left = cloud
            .networks
            .floating_ip(&alice, &floating.id)
            .await
            .unwrap();
        assert_eq!(left.port_id, None, "{label}");
        assert_eq!(left.router_id, None, "{label}");

        // Released, its address and quota come back; then the router goes.
        cloud
            .networks
            .delete_floating_ip(&alice, &floating.id)
            .await
            .unwrap();
        assert_eq!(
            cloud.usage(&alice, FLOATING_IP_RESOURCE).await,
            0,
            "{label}"
        );
        let again = cloud
            .networks
            .create_floating_ip(
                &alice,
                NewFloatingIp {
                    floating_network_id: public.clone(),
                    ..NewFloatingIp::default()
                },
            )
            .await
            .unwrap();
        assert_ne!(again.floating_ip_address, gateway_address, "{label}");
        cloud
            .networks
            .delete_floating_ip(&alice, &again.id)
            .await
            .unwrap();
        cloud
            .networks
            .remove_router_interface(&alice, &router.id, Some(&subnet), None)
            .await
            .unwrap();
        cloud
            .networks
            .delete_router(&alice, &router.id)
            .await
            .unwrap();
        // Everything it held is free: the network and the public one can go.
        cloud.networks.delete_network(&alice, &net).await.unwrap();
        cloud
            .networks
            .delete_network(&admin, &public)
            .await
            .unwrap();
    }
}

/// A node as it registers: realising networks, with or without a public interface.
fn node(id: &str, public: bool) -> nefos_db::compute::NodeRow {
    nefos_db::compute::NodeRow {
        id: id.to_owned(),
        rpc_url: format!("http://{id}:8081"),
        cpus: 2,
        ram_mib: 4096,
        disk_free_bytes: 1 << 30,
        disk_total_bytes: 1 << 30,
        guest_cpu_model: "x86-64-v2".to_owned(),
        host_cpu: "test".to_owned(),
        cpu_features: "[]".to_owned(),
        tunnel_address: Some(format!("10.99.0.{}", id.len())),
        public_network: i64::from(public),
        accelerator: "tcg".to_owned(),
        qemu_version: "10.0".to_owned(),
        agent_version: "test".to_owned(),
        api_version: 2,
        running_vms: 0,
        registered_at: 0,
        heartbeat_at: 0,
        heartbeat_seconds: 10,
        drained: 0,
        drained_reason: None,
    }
}

#[tokio::test]
async fn routers_run_on_nodes_with_a_public_interface() {
    for t in each_backend().await {
        let db = t.db.clone();
        let cloud = Cloud::new(t).await;
        let alice = member(&cloud.identity, "alice").await;
        let router = |name: &str| NewRouter {
            name: name.to_owned(),
            ..NewRouter::default()
        };
        // With no node that has one, any node that realises networks will do.
        nefos_db::compute::upsert_node(db.pool(), &node("inner", false))
            .await
            .unwrap();
        let first = cloud
            .networks
            .create_router(&alice, router("r1"))
            .await
            .unwrap();
        let admin = cloud_admin(&cloud.identity, "root").await;
        let shown = cloud.networks.router(&admin, &first.id).await.unwrap();
        assert_eq!(shown.node.as_deref(), Some("inner"), "{}", cloud.label);
        // Once nodes with a public interface exist, routers go only there, the least
        // loaded first.
        for id in ["edge-a", "edge-bb"] {
            nefos_db::compute::upsert_node(db.pool(), &node(id, true))
                .await
                .unwrap();
        }
        let mut placed = Vec::new();
        for name in ["r2", "r3", "r4"] {
            let made = cloud
                .networks
                .create_router(&alice, router(name))
                .await
                .unwrap();
            let shown = cloud.networks.router(&admin, &made.id).await.unwrap();
            placed.push(shown.node.unwrap());
        }
        placed.sort();
        assert_eq!(placed, ["edge-a", "edge-a", "edge-bb"], "{}", cloud.label);
    }
}
