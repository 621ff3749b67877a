//! Networks, subnets and ports on both databases: quota charged and released with what
//! exists, addresses that are never given twice (200 concurrent ports on one pool), a
//! full pool's 409 and `pool add` ending it with no restart, the IP history, SLAAC
//! addresses, Neutron's refusals, and what another project sees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::net::IpAddr;

use common::{Cloud, ip};
use nefos_identity::Caller;
use nefos_network::{
    FixedIpRequest, NetworkError, NewNetwork, NewPort, NewSubnet, PortUpdate, SubnetUpdate,
};
use nefos_test_utils::each_backend;
use nefos_test_utils::identity::{cloud_admin, member};

#[tokio::test]
async fn a_network_with_a_subnet_and_ports_is_charged_used_and_given_back() {
    for t in each_backend().await {
        let cloud = Cloud::new(t).await;
        let label = cloud.label;
        let alice = member(&cloud.identity, "alice").await;
        let net = cloud.network(&alice, "lab").await;
        let subnet = cloud.subnet(&alice, &net, "10.0.0.0/24").await;
        let shown = cloud.networks.subnet(&alice, &subnet).await.unwrap();
        assert_eq!(shown.gateway_ip, Some(ip("10.0.0.1")), "{label}");
        let port = cloud.port(&alice, &net).await.unwrap();
        assert_eq!(port.fixed_ips.len(), 1, "{label}");
        assert!(shown.cidr.contains(port.fixed_ips[0].ip_address), "{label}");
        assert_ne!(port.fixed_ips[0].ip_address, ip("10.0.0.1"), "{label}");
        assert!(port.mac_address.starts_with("fa:16:3e:"), "{label}");
        assert_eq!(
            cloud.usage(&alice, "cyclades.network.private").await,
            1,
            "{label}"
        );
        assert_eq!(cloud.usage(&alice, "cyclades.port").await, 1, "{label}");

        // In use: neither the network nor the subnet goes while the port holds an address.
        let in_use = cloud
            .networks
            .delete_network(&alice, &net)
            .await
            .unwrap_err();
        assert_eq!(in_use.kind(), "NetworkInUse", "{label}");
        let in_use = cloud
            .networks
            .delete_subnet(&alice, &subnet)
            .await
            .unwrap_err();
        assert_eq!(in_use.kind(), "SubnetInUse", "{label}");

        cloud.networks.delete_port(&alice, &port.id).await.unwrap();
        cloud.networks.delete_network(&alice, &net).await.unwrap();
        assert_eq!(
            cloud.usage(&alice, "cyclades.network.private").await,
            0,
            "{label}"
        );
        assert_eq!(cloud.usage(&alice, "cyclades.port").await, 0, "{label}");
        let gone = cloud.networks.subnet(&alice, &subnet).await.unwrap_err();
        assert_eq!(gone.kind(), "SubnetNotFound", "{label}");

        // The base project allows two private networks: the third is Neutron's 409.
        cloud.network(&alice, "one").await;
        cloud.network(&alice, "two").await;
        let over = cloud
            .networks
            .create_network(&alice, NewNetwork::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                over,
                NetworkError::OverQuota {
                    resource: "network"
                }
            ),
            "{label}: {over}"
        );
        assert_eq!(
            cloud.usage(&alice, "cyclades.network.private").await,
            2,
            "{label}"
        );
    }
}

#[tokio::test]
async fn concurrent_ports_never_share_an_address_and_pool_add_ends_exhaustion() {
    for t in each_backend().await {
        let cloud = Cloud::new(t).await;
        let label = cloud.label;
        cloud
            .quotas
            .set_resource_defaults(Caller::Operator, "cyclades.port", Some(1000), None)
            .await
            .unwrap();
        let alice = member(&cloud.identity, "alice").await;
        let net = cloud.network(&alice, "big").await;
        let new = NewSubnet {
            network_id: net.clone(),
            ip_version: 4,
            cidr: "10.9.0.0/24".to_owned(),
            allocation_pools: Some(vec![(ip("10.9.0.10"), ip("10.9.0.209"))]),
            ..NewSubnet::default()
        };
        let subnet = cloud.networks.create_subnet(&alice, new).await.unwrap();

        let creates = (0..200).map(|_| cloud.port(&alice, &net));
        let ports = futures::future::join_all(creates).await;
        let addresses: HashSet<IpAddr> = ports
            .iter()
            .map(|p| p.as_ref().unwrap().fixed_ips[0].ip_address)
            .collect();
        assert_eq!(addresses.len(), 200, "{label}: an address was given twice");
        for address in &addresses {
            assert!(
                subnet.allocation_pools[0].contains(nefos_network::address::to_number(*address)),
                "{label}: {address}"
            );
        }

        // The pool is full: a 409, and nothing written (no port, no quota).
        let full = cloud.port(&alice, &net).await.unwrap_err();
        assert_eq!(full.kind(), "IpAddressGenerationFailure", "{label}");
        assert_eq!(
            full.to_string(),
            format!("No more IP addresses available on network {net}.")
        );
        assert_eq!(cloud.usage(&alice, "cyclades.port").await, 200, "{label}");
        assert_eq!(
            cloud
                .networks
                .ports(&alice, Some(&net), None)
                .await
                .unwrap()
                .len(),
            200
        );

        // A range of the same block, then a new block: ports come again, no restart.
        let added = cloud
            .networks
            .add_pool(
                &net,
                "10.9.0.0/24",
                Some((ip("10.9.0.210"), ip("10.9.0.210"))),
                None,
            )
            .await
            .unwrap();
        assert!(!added.created, "{label}");
        let port = cloud.port(&alice, &net).await.unwrap();
        assert_eq!(port.fixed_ips[0].ip_address, ip("10.9.0.210"), "{label}");
        let added = cloud
            .networks
            .add_pool(&net, "10.9.1.0/24", None, None)
            .await
            .unwrap();
        assert!(added.created, "{label}");
        let port = cloud.port(&alice, &net).await.unwrap();
        assert_eq!(port.fixed_ips[0].subnet_id, added.subnet.id, "{label}");
        let overlapping = cloud
            .networks
            .add_pool(&net, "10.9.0.0/23", None, None)
            .await;
        assert_eq!(overlapping.unwrap_err().kind(), "InvalidInput", "{label}");
    }
}

#[tokio::test]
async fn fixed_ips_are_taken_as_asked_and_the_history_keeps_who_held_them() {
    for t in each_backend().await {
        let cloud = Cloud::new(t).await;
        let label = cloud.label;
        let alice = member(&cloud.identity, "alice").await;
        let net = cloud.network(&alice, "lab").await;
        let subnet = cloud.subnet(&alice, &net, "192.168.5.0/24").await;
        let asked = |address: &str| NewPort {
            network_id: net.clone(),
            device_id: "vm-1".to_owned(),
            fixed_ips: Some(vec![FixedIpRequest {
                subnet_id: None,
                ip_address: Some(ip(address)),
            }]),
            ..NewPort::default()
        };
        let port = cloud
            .networks
            .create_port(&alice, asked("192.168.5.77"))
            .await
            .unwrap();
        assert_eq!(port.fixed_ips[0].ip_address, ip("192.168.5.77"), "{label}");
        let taken = cloud
            .networks
            .create_port(&alice, asked("192.168.5.77"))
            .await
            .unwrap_err();
        assert_eq!(taken.kind(), "IpAddressAlreadyAllocated", "{label}");
        let gateway = cloud
            .networks
            .create_port(&alice, asked("192.168.5.1"))
            .await
            .unwrap_err();
        assert_eq!(gateway.kind(), "IpAddressAlreadyAllocated", "{label}");
        let broadcast = cloud
            .networks
            .create_port(&alice, asked("192.168.5.255"))
            .await
            .unwrap_err();
        assert_eq!(broadcast.kind(), "InvalidIpForSubnet", "{label}");
        let elsewhere = cloud
            .networks
            .create_port(&alice, asked("10.1.1.1"))
            .await
            .unwrap_err();
        assert_eq!(elsewhere.kind(), "InvalidIpForNetwork", "{label}");
        assert_eq!(
            cloud.usage(&alice, "cyclades.port").await,
            1,
            "{label}: refusals charged"
        );

        // The port moves to another device, then changes address, then goes.
        let moved = PortUpdate {
            device_id: Some("vm-2".to_owned()),
            ..PortUpdate::default()
        };
        cloud
            .networks
            .update_port(&alice, &port.id, moved)
            .await
            .unwrap();
        let renumbered = PortUpdate {
            fixed_ips: Some(vec![FixedIpRequest {
                subnet_id: Some(subnet.clone()),
                ip_address: Some(ip("192.168.5.78")),
            }]),
            ..PortUpdate::default()
        };
        let port = cloud
            .networks
            .update_port(&alice, &port.id, renumbered)
            .await
            .unwrap();
        assert_eq!(port.fixed_ips[0].ip_address, ip("192.168.5.78"), "{label}");
        cloud.networks.delete_port(&alice, &port.id).await.unwrap();

        let history = cloud
            .networks
            .address_history("192.168.5.77")
            .await
            .unwrap();
        let devices: Vec<(&str, bool)> = history
            .iter()
            .map(|h| (h.device_id.as_str(), h.released_at.is_some()))
            .collect();
        assert_eq!(devices, [("vm-2", true), ("vm-1", true)], "{label}");
        assert!(
            history
                .iter()
                .all(|h| h.port_id == port.id && h.project_id == alice.project_id().unwrap())
        );
        let later = cloud
            .networks
            .address_history("192.168.5.78")
            .await
            .unwrap();
        assert_eq!(later.len(), 1, "{label}");
        assert_eq!(later[0].device_id, "vm-2", "{label}");
        assert!(later[0].released_at.is_some(), "{label}");
        // The address is free again.
        cloud
            .networks
            .create_port(&alice, asked("192.168.5.77"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn subnets_are_checked_as_neutron_checks_them() {
    for t in each_backend().await {
        let cloud = Cloud::new(t).await;
        let label = cloud.label;
        let alice = member(&cloud.identity, "alice").await;
        let net = cloud.network(&alice, "lab").await;
        cloud.subnet(&alice, &net, "10.0.0.0/16").await;
        let subnet = |cidr: &str, version| NewSubnet {
            network_id: net.clone(),
            ip_version: version,
            cidr: cidr.to_owned(),
            ..NewSubnet::default()
        };
        for (new, kind) in [
            (subnet("10.0.5.0/24", 4), "InvalidInput"),
            (subnet("10.1.0.1/24", 4), "InvalidInput"),
            (subnet("10.1.0.0/24", 6), "InvalidInput"),
            (subnet("10.1.0.0/24", 5), "InvalidInput"),
        ] {
            let refused = cloud.networks.create_subnet(&alice, new).await.unwrap_err();
            assert_eq!(refused.kind(), kind, "{label}: {refused}");
        }
        let host_bits = cloud
            .networks
            .create_subnet(&alice, subnet("10.1.0.1/24", 4))
            .await;
        assert!(
            host_bits
                .unwrap_err()
                .to_string()
                .contains("'10.1.0.0/24' is recommended")
        );

        // SLAAC: a port's IPv6 address is its MAC's EUI-64 in the /64; a port made before
        // the subnet gets its address with the subnet.
        let earlier = cloud
            .networks
            .create_port(
                &alice,
                NewPort {
                    network_id: net.clone(),
                    mac_address: Some("fa:16:3e:12:34:50".to_owned()),
                    ..NewPort::default()
                },
            )
            .await
            .unwrap();
        let v6 = NewSubnet {
            ipv6_address_mode: Some("slaac".to_owned()),
            ipv6_ra_mode: Some("slaac".to_owned()),
            ..subnet("2001:db8:5::/64", 6)
        };
        cloud.networks.create_subnet(&alice, v6).await.unwrap();
        let earlier = cloud.networks.port(&alice, &earlier.id).await.unwrap();
        assert!(
            earlier
                .fixed_ips
                .iter()
                .any(|f| f.ip_address.to_string() == "2001:db8:5:0:f816:3eff:fe12:3450"),
            "{label}: {:?}",
            earlier.fixed_ips
        );
        let port = cloud
            .networks
            .create_port(
                &alice,
                NewPort {
                    network_id: net.clone(),
                    mac_address: Some("FA:16:3E:12:34:56".to_owned()),
                    ..NewPort::default()
                },
            )
            .await
            .unwrap();
        let addresses: Vec<String> = port
            .fixed_ips
            .iter()
            .map(|f| f.ip_address.to_string())
            .collect();
        assert_eq!(addresses.len(), 2, "{label}: {addresses:?}");
        assert!(
            addresses.contains(&"2001:db8:5:0:f816:3eff:fe12:3456".to_owned()),
            "{label}: {addresses:?}"
        );
        let same_mac = cloud
            .networks
            .create_port(
                &alice,
                NewPort {
                    network_id: net.clone(),
                    mac_address: Some("fa:16:3e:12:34:56".to_owned()),
                    ..NewPort::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(same_mac.kind(), "MacAddressInUse", "{label}");
        // A port that names only an IPv4 address has its SLAAC address too, as Neutron's.
        let named = cloud
            .networks
            .create_port(
                &alice,
                NewPort {
                    network_id: net.clone(),
                    mac_address: Some("fa:16:3e:12:34:57".to_owned()),
                    fixed_ips: Some(vec![FixedIpRequest {
                        subnet_id: None,
                        ip_address: Some(ip("10.0.0.77")),
                    }]),
                    ..NewPort::default()
                },
            )
            .await
            .unwrap();
        let addresses: Vec<String> = named
            .fixed_ips
            .iter()
            .map(|f| f.ip_address.to_string())
            .collect();
        assert_eq!(
            addresses,
            ["10.0.0.77", "2001:db8:5:0:f816:3eff:fe12:3457"],
            "{label}"
        );

        // A gateway may not move into a pool (far from the addresses ports were given).
        let first = cloud.networks.subnets(&alice).await.unwrap()[0].id.clone();
        let into_pool = SubnetUpdate {
            gateway_ip: Some(Some(ip("10.0.100.9"))),
            ..SubnetUpdate::default()
        };
        let refused = cloud
            .networks
            .update_subnet(&alice, &first, into_pool)
            .await
            .unwrap_err();
        assert_eq!(
            refused.kind(),
            "GatewayConflictWithAllocationPools",
            "{label}"
        );
        // Nor to an address a port holds.
        let held = cloud.port(&alice, &net).await.unwrap();
        let held = held
            .fixed_ips
            .iter()
            .find(|f| f.subnet_id == first)
            .unwrap()
            .ip_address;
        let onto_port = SubnetUpdate {
            gateway_ip: Some(Some(held)),
            allocation_pools: Some(vec![(ip("10.0.200.1"), ip("10.0.200.9"))]),
            ..SubnetUpdate::default()
        };
        let refused = cloud
            .networks
            .update_subnet(&alice, &first, onto_port)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), "GatewayIpInUse", "{label}");
    }
}

#[tokio::test]
async fn projects_see_their_own_the_shared_and_the_external() {
    for t in each_backend().await {
        let cloud = Cloud::new(t).await;
        let label = cloud.label;
        let alice = member(&cloud.identity, "alice").await;
        let bob = member(&cloud.identity, "bob").await;
        let admin = cloud_admin(&cloud.identity, "operator").await;
        let private = cloud.network(&alice, "mine").await;
        cloud.subnet(&alice, &private, "10.0.0.0/24").await;
        let public = cloud
            .networks
            .create_network(
                &admin,
                NewNetwork {
                    name: "public".to_owned(),
                    external: Some(true),
                    shared: Some(true),
                    ..NewNetwork::default()
                },
            )
            .await
            .unwrap();
        cloud.subnet(&admin, &public.id, "198.51.100.0/24").await;

        // Bob sees the public network, not Alice's; Alice's is a 404 on every route.
        let seen: Vec<String> = cloud
            .networks
            .networks(&bob)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(seen, std::slice::from_ref(&public.id), "{label}");
        assert_eq!(
            cloud.networks.subnets(&bob).await.unwrap().len(),
            1,
            "{label}"
        );
        for refused in [
            cloud.networks.network(&bob, &private).await.unwrap_err(),
            cloud
                .networks
                .delete_network(&bob, &private)
                .await
                .unwrap_err(),
            cloud.port(&bob, &private).await.unwrap_err(),
        ] {
            assert_eq!(refused.kind(), "NetworkNotFound", "{label}");
        }
        // Only administrators share or make external networks; nobody else changes them.
        let shared = NewNetwork {
            shared: Some(true),
            ..NewNetwork::default()
        };
        let refused = cloud
            .networks
            .create_network(&bob, shared)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), "PolicyNotAuthorized", "{label}");
        let refused = cloud
            .networks
            .delete_network(&bob, &public.id)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), "PolicyNotAuthorized", "{label}");

        // A port on the shared network is Bob's: Alice does not see it; the admin does.
        let port = cloud.port(&bob, &public.id).await.unwrap();
        assert_eq!(
            cloud
                .networks
                .port(&alice, &port.id)
                .await
                .unwrap_err()
                .kind(),
            "PortNotFound"
        );
        assert!(
            cloud.networks.port(&admin, &port.id).await.is_ok(),
            "{label}"
        );
        assert_eq!(
            cloud
                .networks
                .ports(&alice, None, None)
                .await
                .unwrap()
                .len(),
            0,
            "{label}"
        );
        assert_eq!(cloud.usage(&bob, "cyclades.port").await, 1, "{label}");
        // The public network charged nobody.
        assert_eq!(
            cloud.usage(&admin, "cyclades.network.private").await,
            0,
            "{label}"
        );

        // Port security stays on for whoever does not own the network.
        let unguarded = NewPort {
            network_id: public.id.clone(),
            port_security_enabled: Some(false),
            ..NewPort::default()
        };
        let refused = cloud
            .networks
            .create_port(&bob, unguarded)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), "PolicyNotAuthorized", "{label}");
        let off = PortUpdate {
            port_security_enabled: Some(false),
            ..PortUpdate::default()
        };
        let refused = cloud
            .networks
            .update_port(&bob, &port.id, off)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), "PolicyNotAuthorized", "{label}");

        // A port an administrator made for Bob on Alice's network: Alice sees it and may
        // delete it, but does not change it.
        let placed = NewPort {
            network_id: private.clone(),
            project_id: Some(bob.project_id().unwrap().to_owned()),
            ..NewPort::default()
        };
        let placed = cloud.networks.create_port(&admin, placed).await.unwrap();
        let renamed = PortUpdate {
            name: Some("mine now".to_owned()),
            ..PortUpdate::default()
        };
        let refused = cloud
            .networks
            .update_port(&alice, &placed.id, renamed)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), "PolicyNotAuthorized", "{label}");
        cloud
            .networks
            .delete_port(&alice, &placed.id)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_ports_of_a_page_of_devices_are_read_at_once_and_only_the_callers() {
    for t in each_backend().await {
        let cloud = Cloud::new(t).await;
        let label = cloud.label;
        let alice = member(&cloud.identity, "alice").await;
        let bob = member(&cloud.identity, "bob").await;
        let net = cloud.network(&alice, "devices").await;
        cloud.subnet(&alice, &net, "10.7.0.0/24").await;
        for device in ["vm-1", "vm-2", "vm-3"] {
            let new = NewPort {
                network_id: net.clone(),
                device_id: device.to_owned(),
                device_owner: "compute:nova".to_owned(),
                ..NewPort::default()
            };
            cloud.networks.create_port(&alice, new).await.unwrap();
        }
        let wanted = vec!["vm-1".to_owned(), "vm-3".to_owned()];
        let ports = cloud
            .networks
            .ports_of_devices(&alice, &wanted)
            .await
            .unwrap();
        let mut devices: Vec<&str> = ports.iter().map(|p| p.device_id.as_str()).collect();
        devices.sort_unstable();
        assert_eq!(devices, ["vm-1", "vm-3"], "{label}");
        assert!(ports.iter().all(|p| p.fixed_ips.len() == 1), "{label}");
        let theirs = cloud
            .networks
            .ports_of_devices(&bob, &wanted)
            .await
            .unwrap();
        assert!(theirs.is_empty(), "{label}");
        let none = cloud.networks.ports_of_devices(&alice, &[]).await.unwrap();
        assert!(none.is_empty(), "{label}");
    }
}
