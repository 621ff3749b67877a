//! Security groups on both databases: one default group per project however many
//! requests make it at once, ports put in their project's default group, Neutron's
//! refusals of rules (a duplicate, a prefix of the wrong family, ports without a
//! protocol), a group in use or a default group kept, another project's group unseen,
//! and the quota of groups charged and given back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Cloud;
use nefos_network::{
    Direction, IpVersion, NetworkError, NewPort, NewSecurityGroup, NewSecurityGroupRule, PortUpdate,
};
use nefos_test_utils::each_backend;
use nefos_test_utils::identity::member;

fn rule(group: &str, direction: Direction) -> NewSecurityGroupRule {
    NewSecurityGroupRule {
        security_group_id: group.to_owned(),
        direction,
        ethertype: IpVersion::V4,
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: None,
        description: String::new(),
    }
}

fn kind(error: NetworkError) -> &'static str {
    error.kind()
}

#[tokio::test]
async fn each_project_has_one_default_group_and_its_ports_are_in_it() {
    for t in each_backend().await {
        let cloud = Cloud::new(t).await;
        let label = cloud.label;
        let alice = member(&cloud.identity, "alice").await;
        // Twenty listings at once still make one default group.
        let listings = (0..20).map(|_| cloud.networks.security_groups(&alice));
        for listed in futures::future::join_all(listings).await {
            let groups = listed.unwrap();
            assert_eq!(groups.len(), 1, "{label}");
        }
        let groups = cloud.networks.security_groups(&alice).await.unwrap();
        let default = &groups[0];
        assert_eq!(default.name, "default", "{label}");
        // Anything out, and in from its own members.
        assert_eq!(default.rules.len(), 4, "{label}");
        let from_members = default
            .rules
            .iter()
            .filter(|r| r.remote_group_id.as_deref() == Some(default.id.as_str()))
            .count();
        assert_eq!(from_members, 2, "{label}");

        let net = cloud.network(&alice, "lab").await;
        cloud.subnet(&alice, &net, "10.0.0.0/24").await;
        let port = cloud.port(&alice, &net).await.unwrap();
        assert_eq!(
            port.security_groups,
            std::slice::from_ref(&default.id),
            "{label}"
        );
        // Without port security a port is in no group, and may not be put in one.
        let open = NewPort {
            network_id: net.clone(),
            port_security_enabled: Some(false),
            ..NewPort::default()
        };
        let open = cloud.networks.create_port(&alice, open).await.unwrap();
        assert!(open.security_groups.is_empty(), "{label}");
        let refused = cloud
            .networks
            .update_port(
                &alice,
                &open.id,
                PortUpdate {
                    security_groups: Some(vec![default.id.clone()]),
                    ..PortUpdate::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(
            kind(refused),
            "PortSecurityAndIPRequiredForSecurityGroups",
            "{label}"
        );
        // Turning port security off while in a group is refused; with the groups
        // emptied it is allowed.
        let refused = cloud
            .networks
            .update_port(
                &alice,
                &port.id,
                PortUpdate {
                    port_security_enabled: Some(false),
                    ..PortUpdate::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(kind(refused), "PortSecurityPortHasSecurityGroup", "{label}");
        let opened = cloud
            .networks
            .update_port(
                &alice,
                &port.id,
                PortUpdate {
                    port_security_enabled: Some(false),
                    security_groups: Some(Vec::new()),
                    ..PortUpdate::default()
                },
            )
            .await
            .unwrap();
        assert!(opened.security_groups.is_empty(), "{label}");
        // The default group cannot go.
        let refused = cloud
            .networks
            .delete_security_group(&alice, &default.id)
            .await
            .unwrap_err();
        assert_eq!(kind(refused), "SecurityGroupCannotRemoveDefault", "{label}");
    }
}

#[tokio::test]
async fn rules_are_checked_and_groups_in_use_are_kept() {
    for t in each_backend().await {
        let cloud = Cloud::new(t).await;
        let label = cloud.label;
        let alice = member(&cloud.identity, "alice").await;
        let bob = member(&cloud.identity, "bob").await;
        let web = cloud
            .networks
            .create_security_group(
                &alice,
                NewSecurityGroup {
                    name: "web".to_owned(),
                    ..NewSecurityGroup::default()
                },
            )
            .await
            .unwrap();
        // A new group lets anything out.
        assert_eq!(web.rules.len(), 2, "{label}");
        assert!(web.rules.iter().all(|r| r.direction == Direction::Egress));
        assert_eq!(
            cloud.usage(&alice, "cyclades.security_group").await,
            1,
            "{label}"
        );

        let http = NewSecurityGroupRule {
            protocol: Some("tcp".to_owned()),
            port_range_min: Some(80),
            port_range_max: Some(80),
            remote_ip_prefix: Some("10.0.0.7/24".to_owned()),
            ..rule(&web.id, Direction::Ingress)
        };
        let made = cloud
            .networks
            .create_security_group_rule(&alice, http.clone())
            .await
            .unwrap();
        // The prefix loses its host bits, as Neutron normalises it.
        assert_eq!(made.remote_ip_prefix.as_deref(), Some("10.0.0.0/24"));
        // The same rule again (the protocol by its number) is a duplicate.
        let again = NewSecurityGroupRule {
            protocol: Some("6".to_owned()),
            ..http.clone()
        };
        let refused = cloud
            .networks
            .create_security_group_rule(&alice, again)
            .await
            .unwrap_err();
        assert_eq!(kind(refused), "SecurityGroupRuleExists", "{label}");
        for (bad, expected) in [
            (
                NewSecurityGroupRule {
                    remote_ip_prefix: Some("2001:db8::/64".to_owned()),
                    ..http.clone()
                },
                "SecurityGroupRuleParameterConflict",
            ),
            (
                NewSecurityGroupRule {
                    protocol: None,
                    ..http.clone()
                },
                "SecurityGroupInvalidPortValue",
            ),
            (
                NewSecurityGroupRule {
                    port_range_min: Some(90),
                    ..http.clone()
                },
                "SecurityGroupInvalidPortRange",
            ),
            (
                NewSecurityGroupRule {
                    remote_group_id: Some(web.id.clone()),
                    ..http.clone()
                },
                "SecurityGroupRemoteGroupAndRemoteIpPrefix",
            ),
            (
                NewSecurityGroupRule {
                    protocol: Some("icmpv6".to_owned()),
                    port_range_min: None,
                    port_range_max: None,
                    ..http.clone()
                },
                "SecurityGroupEthertypeConflictWithProtocol",
            ),
            (
                NewSecurityGroupRule {
                    protocol: Some("carrier-pigeon".to_owned()),
                    ..http.clone()
                },
                "SecurityGroupRuleInvalidProtocol",
            ),
        ] {
            let refused = cloud
                .networks
                .create_security_group_rule(&alice, bad)
                .await
                .unwrap_err();
            assert_eq!(kind(refused), expected, "{label}");
        }
        // Another project sees nothing of it, and cannot add to it.
        let unseen = cloud
            .networks
            .security_group(&bob, &web.id)
            .await
            .unwrap_err();
        assert_eq!(kind(unseen), "SecurityGroupNotFound", "{label}");
        let refused = cloud
            .networks
            .create_security_group_rule(&bob, rule(&web.id, Direction::Egress))
            .await
            .unwrap_err();
        assert_eq!(kind(refused), "SecurityGroupNotFound", "{label}");
        assert!(
            cloud
                .networks
                .security_group_rules(&bob)
                .await
                .unwrap()
                .iter()
                .all(|r| r.project_id != made.project_id),
            "{label}"
        );

        // In use by a port, it stays; freed, it goes and its quota comes back.
        let net = cloud.network(&alice, "lab").await;
        cloud.subnet(&alice, &net, "10.0.0.0/24").await;
        let port = NewPort {
            network_id: net.clone(),
            security_groups: Some(vec![web.id.clone()]),
            ..NewPort::default()
        };
        let port = cloud.networks.create_port(&alice, port).await.unwrap();
        assert_eq!(
            port.security_groups,
            std::slice::from_ref(&web.id),
            "{label}"
        );
        let refused = cloud
            .networks
            .delete_security_group(&alice, &web.id)
            .await
            .unwrap_err();
        assert_eq!(kind(refused), "SecurityGroupInUse", "{label}");
        cloud.networks.delete_port(&alice, &port.id).await.unwrap();
        cloud
            .networks
            .delete_security_group(&alice, &web.id)
            .await
            .unwrap();
        assert_eq!(
            cloud.usage(&alice, "cyclades.security_group").await,
            0,
            "{label}"
        );
        let gone = cloud
            .networks
            .security_group_rule(&alice, &made.id)
            .await
            .unwrap_err();
        assert_eq!(kind(gone), "SecurityGroupRuleNotFound", "{label}");
    }
}
