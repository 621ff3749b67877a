//! Renumbering on both databases: every address of a subnet moves to the new block,
//! keeping its place where the block has room and taking a free address where it has
//! not; the gateway and the pools follow; the IP history closes the old addresses and
//! opens the new; a block that overlaps another subnet, or has no room, is refused with
//! nothing changed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cloud, ip};
use nefos_network::{FixedIpRequest, NewPort};
use nefos_test_utils::each_backend;
use nefos_test_utils::identity::member;

#[tokio::test]
async fn a_subnet_moves_to_another_block_with_every_port() {
    for t in each_backend().await {
        let cloud = Cloud::new(t).await;
        let label = cloud.label;
        let alice = member(&cloud.identity, "alice").await;
        let net = cloud.network(&alice, "lab").await;
        let subnet = cloud.subnet(&alice, &net, "10.0.0.0/24").await;
        let mut ports = Vec::new();
        for address in ["10.0.0.11", "10.0.0.12", "10.0.0.200"] {
            let port = cloud
                .networks
                .create_port(
                    &alice,
                    NewPort {
                        network_id: net.clone(),
                        device_id: format!("vm-{address}"),
                        fixed_ips: Some(vec![FixedIpRequest {
                            subnet_id: None,
                            ip_address: Some(ip(address)),
                        }]),
                        ..NewPort::default()
                    },
                )
                .await
                .unwrap();
            ports.push(port.id);
        }

        // Into a /24: every address keeps its place, and so does the gateway.
        let done = cloud
            .networks
            .renumber(&net, "10.9.0.0/24", None)
            .await
            .unwrap();
        assert_eq!(done.subnet_id, subnet, "{label}");
        assert_eq!(done.gateway, Some(ip("10.9.0.1")), "{label}");
        let moved: Vec<(String, String)> = done
            .moves
            .iter()
            .map(|m| (m.from.to_string(), m.to.to_string()))
            .collect();
        assert_eq!(
            moved,
            [
                ("10.0.0.11", "10.9.0.11"),
                ("10.0.0.12", "10.9.0.12"),
                ("10.0.0.200", "10.9.0.200")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned())),
            "{label}"
        );
        let shown = cloud.networks.subnet(&alice, &subnet).await.unwrap();
        assert_eq!(shown.cidr.to_string(), "10.9.0.0/24", "{label}");
        let port = cloud.networks.port(&alice, &ports[0]).await.unwrap();
        assert_eq!(port.fixed_ips[0].ip_address, ip("10.9.0.11"), "{label}");
        // The history: the old address released, the new one held.
        let old = cloud.networks.address_history("10.0.0.11").await.unwrap();
        assert!(old[0].released_at.is_some(), "{label}: {old:?}");
        let new = cloud.networks.address_history("10.9.0.11").await.unwrap();
        assert_eq!(new[0].port_id, ports[0], "{label}");
        assert!(new[0].released_at.is_none(), "{label}");
        // The freed addresses are the pool's again; the moved ones are not.
        let fresh = cloud.port(&alice, &net).await.unwrap();
        let fresh_address = fresh.fixed_ips[0].ip_address;
        assert!(
            fresh_address.to_string().starts_with("10.9.0."),
            "{label}: {fresh_address}"
        );
        assert!(
            ![
                ip("10.9.0.1"),
                ip("10.9.0.11"),
                ip("10.9.0.12"),
                ip("10.9.0.200")
            ]
            .contains(&fresh_address),
            "{label}"
        );
        cloud.networks.delete_port(&alice, &fresh.id).await.unwrap();

        // Into a /27: .200 has no place there and takes a free address.
        let done = cloud
            .networks
            .renumber(&net, "192.0.2.0/27", None)
            .await
            .unwrap();
        let far = done
            .moves
            .iter()
            .find(|m| m.from == ip("10.9.0.200"))
            .unwrap();
        assert!(far.to.to_string().starts_with("192.0.2."), "{label}");
        assert!(
            ![ip("192.0.2.1"), ip("192.0.2.11"), ip("192.0.2.12")].contains(&far.to),
            "{label}: {far:?}"
        );

        // No room for three ports in a /30 (two hosts, one of them the gateway): refused,
        // and nothing moved.
        let refused = cloud
            .networks
            .renumber(&net, "198.51.100.0/30", None)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), "IpAddressGenerationFailure", "{label}");
        let port = cloud.networks.port(&alice, &ports[1]).await.unwrap();
        assert_eq!(port.fixed_ips[0].ip_address, ip("192.0.2.12"), "{label}");
        // A block overlapping another subnet of the network.
        cloud.subnet(&alice, &net, "172.16.0.0/24").await;
        let refused = cloud
            .networks
            .renumber(&net, "172.16.0.0/16", Some(&subnet))
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), "InvalidInput", "{label}");
        // Two IPv4 subnets: which one must be said.
        let refused = cloud
            .networks
            .renumber(&net, "10.7.0.0/24", None)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), "InvalidInput", "{label}");
    }
}
