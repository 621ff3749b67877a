//! The node's nftables: one table, `bridge nefos`, replaced whole and atomically each
//! time the node's ports change, so that no moment has half a ruleset.
//!
//! Anti-spoofing: a frame a guest sends into its bridge must come from its port's MAC,
//! and its ARP, IPv4 and IPv6 from the port's addresses with that MAC (or an allowed
//! address pair's address with the pair's MAC);
//! guests may not answer DHCP or advertise routes. Filtering at the bridge's prerouting
//! hook covers both what the bridge forwards and what it delivers to the node itself.
//!
//! Security groups are stateful, and the bridge family has no connection tracking on
//! this kernel: bridged IP traffic goes through the `inet` hooks instead
//! (`br_netfilter`, switched on by [`apply`]), where conntrack runs, in one zone per
//! network (networks may share addresses). There the bridge ports are not visible, so the
//! bridge table marks each packet with the guarded port it comes from (the mark's low 16
//! bits) and the one it goes to (the high 16): `table inet nefos` sends a new connection
//! through the egress rules of the first and the ingress rules of the second, and lets
//! what belongs to an allowed connection pass.

use std::fmt::Write;
use std::net::{IpAddr, Ipv6Addr};

use nefos_node_api::{
    IpFamily, NetworkSpec, PortSpec, RuleDirection, RuleSpec, bridge_name, tap_name,
};

use super::NetError;

/// The tables' families and names.
pub const TABLES: [&str; 2] = ["bridge nefos", "inet nefos"];

/// The whole ruleset for `ports` on `networks`: anti-spoofing for the ports with port
/// security, security groups for those with rules. `None` when no port needs any, so the
/// tables are removed.
pub fn ruleset(networks: &[NetworkSpec], ports: &[PortSpec]) -> Option<String> {
    let guarded: Vec<&PortSpec> = ports.iter().filter(|p| p.port_security).collect();
    if guarded.is_empty() {
        return None;
    }
    // Marks for the ports whose groups filter them: 1, 2, … in the order of their ids.
    let mut filtered: Vec<&PortSpec> = guarded
        .iter()
        .copied()
        .filter(|p| p.security_rules.is_some())
        .collect();
    filtered.sort_by(|a, b| a.id.cmp(&b.id));
    let mark_of = |port: &PortSpec| {
        filtered
            .iter()
            .position(|p| p.id == port.id)
            .and_then(|i| u32::try_from(i + 1).ok())
            .filter(|m| *m <= 0xffff)
    };
    let mut text = String::new();
    let _ = writeln!(text, "table bridge nefos {{");
    let _ = writeln!(text, "  chain prerouting {{");
    let _ = writeln!(
        text,
        "    type filter hook prerouting priority -200; policy accept;"
    );
    let jumps: Vec<String> = guarded
        .iter()
        .map(|port| {
            let tap = tap_name(&port.id);
            format!("\"{tap}\" : jump from_{tap}")
        })
        .collect();
    let _ = writeln!(text, "    iifname vmap {{ {} }}", jumps.join(", "));
    let _ = writeln!(text, "  }}");
    let marked: Vec<(String, u32)> = filtered
        .iter()
        .filter_map(|p| Some((tap_name(&p.id), mark_of(p)?)))
        .collect();
    if !marked.is_empty() {
        // The port a packet goes to, once the bridge has chosen it.
        let _ = writeln!(text, "  chain forward {{");
        let _ = writeln!(
            text,
            "    type filter hook forward priority -100; policy accept;"
        );
        let jumps: Vec<String> = marked
            .iter()
            .map(|(tap, _)| format!("\"{tap}\" : jump to_{tap}"))
            .collect();
        let _ = writeln!(text, "    oifname vmap {{ {} }}", jumps.join(", "));
        let _ = writeln!(text, "  }}");
        for (tap, mark) in &marked {
            let _ = writeln!(text, "  chain to_{tap} {{");
            let _ = writeln!(text, "    meta mark set meta mark or 0x{:08x}", mark << 16);
            let _ = writeln!(text, "  }}");
        }
    }
    for port in &guarded {
        port_chain(&mut text, port, mark_of(port));
    }
    let _ = writeln!(text, "}}");
    if !marked.is_empty() {
        security_table(&mut text, networks, &filtered);
    }
    Some(text)
}

/// `table inet nefos`: conntrack zones per network and each filtered port's rules.
fn security_table(text: &mut String, networks: &[NetworkSpec], filtered: &[&PortSpec]) {
    let _ = writeln!(text, "table inet nefos {{");
    // Each network's connections apart, before conntrack sees them (priority raw).
    let zones: Vec<String> = networks
        .iter()
        .map(|n| format!("\"{}\" : {}", bridge_name(n.vni), (n.vni & 0xffff).max(1)))
        .collect();
    if !zones.is_empty() {
        let _ = writeln!(text, "  chain zones {{");
        let _ = writeln!(
            text,
            "    type filter hook prerouting priority raw; policy accept;"
        );
        let _ = writeln!(
            text,
            "    ct zone set iifname map {{ {} }}",
            zones.join(", ")
        );
        let _ = writeln!(text, "  }}");
    }
    let _ = writeln!(text, "  chain forward {{");
    let _ = writeln!(
        text,
        "    type filter hook forward priority filter; policy accept;"
    );
    let _ = writeln!(text, "    meta mark 0 accept");
    let _ = writeln!(text, "    ct state established,related accept");
    let _ = writeln!(text, "    ct state invalid drop");
    let egress: Vec<String> = (1..=filtered.len())
        .map(|mark| format!("{mark} : jump egress_{mark}"))
        .collect();
    let ingress: Vec<String> = (1..=filtered.len())
        .map(|mark| format!("0x{:08x} : jump ingress_{mark}", mark << 16))
        .collect();
    let _ = writeln!(
        text,
        "    meta mark and 0x0000ffff vmap {{ {} }}",
        egress.join(", ")
    );
    let _ = writeln!(
        text,
        "    meta mark and 0xffff0000 vmap {{ {} }}",
        ingress.join(", ")
    );
    let _ = writeln!(text, "  }}");
    for (index, port) in filtered.iter().enumerate() {
        let mark = index + 1;
        let rules = port.security_rules.as_deref().unwrap_or_default();
        // What leaves the port goes on to the ingress rules of where it goes: `return`.
        let _ = writeln!(text, "  chain egress_{mark} {{");
        let _ = writeln!(
            text,
            "    icmpv6 type {{ nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert }} return"
        );
        for rule in rules
            .iter()
            .filter(|r| r.direction == RuleDirection::Egress)
        {
            if let Some(statement) = rule_statement(rule, "return") {
                let _ = writeln!(text, "    {statement}");
            }
        }
        let _ = writeln!(text, "    drop");
        let _ = writeln!(text, "  }}");
        let _ = writeln!(text, "  chain ingress_{mark} {{");
        let _ = writeln!(
            text,
            "    icmpv6 type {{ nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert }} accept"
        );
        for rule in rules
            .iter()
            .filter(|r| r.direction == RuleDirection::Ingress)
        {
            if let Some(statement) = rule_statement(rule, "accept") {
                let _ = writeln!(text, "    {statement}");
            }
        }
        let _ = writeln!(text, "    drop");
        let _ = writeln!(text, "  }}");
    }
    let _ = writeln!(text, "}}");
}

/// One rule as an nftables statement ending in `verdict`; `None` for a rule that can
/// match nothing (a remote group with no addresses of its family).
fn rule_statement(rule: &RuleSpec, verdict: &str) -> Option<String> {
    let mut parts = Vec::new();
    let (family, address) = match rule.family {
        IpFamily::V4 => ("ipv4", "ip"),
        IpFamily::V6 => ("ipv6", "ip6"),
    };
    parts.push(format!("meta nfproto {family}"));
    if let Some(remotes) = &rule.remotes {
        let mine: Vec<&String> = remotes
            .iter()
            .filter(|r| r.contains(':') == (rule.family == IpFamily::V6))
            .collect();
        if mine.is_empty() {
            return None;
        }
        let end = match rule.direction {
            RuleDirection::Ingress => "saddr",
            RuleDirection::Egress => "daddr",
        };
        let list: Vec<&str> = mine.iter().map(|r| r.as_str()).collect();
        parts.push(format!("{address} {end} {{ {} }}", list.join(", ")));
    }
    match (rule.protocol, rule.port_min, rule.port_max) {
        (None, ..) => {}
        (Some(protocol @ (6 | 17 | 132 | 136)), min, max) => {
            let name = match protocol {
                6 => "tcp",
                17 => "udp",
                132 => "sctp",
                _ => "udplite",
            };
            match (min, max) {
                (Some(min), Some(max)) if min == max => {
                    parts.push(format!("{name} dport {min}"));
                }
                (Some(min), Some(max)) => parts.push(format!("{name} dport {min}-{max}")),
                _ => parts.push(format!("meta l4proto {protocol}")),
            }
        }
        (Some(protocol @ (1 | 58)), kind, code) => {
            let name = if protocol == 1 { "icmp" } else { "icmpv6" };
            parts.push(format!("meta l4proto {protocol}"));
            if let Some(kind) = kind {
                parts.push(format!("{name} type {kind}"));
                if let Some(code) = code {
                    parts.push(format!("{name} code {code}"));
                }
            }
        }
        (Some(protocol), ..) => parts.push(format!("meta l4proto {protocol}")),
    }
    parts.push(verdict.to_owned());
    Some(parts.join(" "))
}

/// What one port may send; the port's mark (see the module's comment) on what it sends.
fn port_chain(text: &mut String, port: &PortSpec, mark: Option<u32>) {
    let tap = tap_name(&port.id);
    let own = port.mac.to_ascii_lowercase();
    // Each address with the MAC it may be sent from: the port's own addresses from its
    // MAC, each allowed address pair's from the pair's MAC (its own when none), as
    // Neutron binds them.
    let mut v4: Vec<(String, String)> = Vec::new();
    let mut v6: Vec<(String, String)> = vec![(own.clone(), "::".to_owned())];
    if let Some(local) = link_local(&port.mac) {
        v6.push((own.clone(), local.to_string()));
    }
    for fixed in &port.fixed_ips {
        match fixed.address {
            IpAddr::V4(a) => v4.push((own.clone(), a.to_string())),
            IpAddr::V6(a) => v6.push((own.clone(), a.to_string())),
        }
    }
    let mut macs = vec![own.clone()];
    for pair in &port.allowed_address_pairs {
        let mac = pair
            .mac_address
            .as_deref()
            .map_or_else(|| own.clone(), str::to_ascii_lowercase);
        macs.push(mac.clone());
        if pair.ip_address.contains(':') {
            v6.push((mac, pair.ip_address.clone()));
        } else {
            v4.push((mac, pair.ip_address.clone()));
        }
    }
    macs.sort();
    macs.dedup();
    let set = |items: &[String]| format!("{{ {} }}", items.join(", "));
    let bound = |items: &[(String, String)]| {
        let joined: Vec<String> = items.iter().map(|(m, a)| format!("{m} . {a}")).collect();
        format!("{{ {} }}", joined.join(", "))
    };
    let _ = writeln!(text, "  chain from_{tap} {{");
    let _ = writeln!(text, "    ether saddr != {} drop", set(&macs));
    let _ = writeln!(text, "    arp saddr ether != {} drop", set(&macs));
    // A DHCP client has no address yet: it may broadcast to the servers only.
    let _ = writeln!(
        text,
        "    ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 return"
    );
    if v4.is_empty() {
        let _ = writeln!(text, "    arp saddr ip != 0.0.0.0 drop");
        let _ = writeln!(text, "    ether type ip drop");
    } else {
        // ARP probes (from 0.0.0.0) from any of the port's MACs.
        let mut arp = v4.clone();
        arp.extend(macs.iter().map(|m| (m.clone(), "0.0.0.0".to_owned())));
        let _ = writeln!(
            text,
            "    arp saddr ether . arp saddr ip != {} drop",
            bound(&arp)
        );
        let _ = writeln!(text, "    ether saddr . ip saddr != {} drop", bound(&v4));
    }
    let _ = writeln!(text, "    ether saddr . ip6 saddr != {} drop", bound(&v6));
    // No rogue DHCP or DHCPv6 servers, router advertisements or redirects.
    let _ = writeln!(text, "    udp sport {{ 67, 547 }} drop");
    let _ = writeln!(
        text,
        "    icmpv6 type {{ nd-router-advert, nd-redirect }} drop"
    );
    // RARP too: QEMU announces a guest that arrived by live migration with it (from the
    // guest's own MAC, checked above), so that bridges and tunnels learn where it is.
    let _ = writeln!(text, "    ether type != {{ ip, ip6, arp, 0x8035 }} drop");
    if let Some(mark) = mark {
        let _ = writeln!(text, "    meta mark set 0x{mark:08x}");
    }
    let _ = writeln!(text, "  }}");
}

/// The IPv6 link-local address a guest forms from its MAC (modified EUI-64).
pub fn link_local(mac: &str) -> Option<Ipv6Addr> {
    Some(link_local_of(&super::parse_mac(mac)?))
}

/// [`link_local`] of a MAC's bytes.
pub fn link_local_of(mac: &[u8; 6]) -> Ipv6Addr {
    let [a, b, c, d, e, f] = *mac;
    Ipv6Addr::from([
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([a ^ 0x02, b]),
        u16::from_be_bytes([c, 0xff]),
        u16::from_be_bytes([0xfe, d]),
        u16::from_be_bytes([e, f]),
    ])
}

/// Replaces the tables with `ruleset` (or removes them) in one transaction of `nft`.
pub async fn apply(ruleset: Option<&str>) -> Result<(), NetError> {
    if ruleset.is_some_and(|rules| rules.contains("table inet nefos")) {
        bridged_traffic_through_inet_hooks().await?;
    }
    // Declaring a table first makes its deletion valid when it does not exist yet.
    let mut script = String::new();
    for table in TABLES {
        script.push_str(&format!("table {table}\ndelete table {table}\n"));
    }
    if let Some(rules) = ruleset {
        script.push_str(rules);
    }
    super::link::run_with_input("nft", &["-f", "-"], &script).await
}

/// Bridged IPv4 and IPv6 through the `inet` hooks, where conntrack runs (`br_netfilter`;
/// the switches are the node's network namespace's own).
async fn bridged_traffic_through_inet_hooks() -> Result<(), NetError> {
    for family in ["iptables", "ip6tables"] {
        let path = format!("/proc/sys/net/bridge/bridge-nf-call-{family}");
        let on = tokio::fs::read_to_string(&path)
            .await
            .is_ok_and(|value| value.trim() == "1");
        if !on {
            tokio::fs::write(&path, b"1")
                .await
                .map_err(|source| NetError::Sysctl { path, source })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nefos_node_api::{AddressPair, PortAddress};

    fn port(id: &str, security: bool) -> PortSpec {
        PortSpec {
            id: id.to_owned(),
            network_id: "net".to_owned(),
            mac: "FA:16:3E:00:00:01".to_owned(),
            fixed_ips: vec![
                PortAddress {
                    subnet_id: "s4".to_owned(),
                    address: "10.0.0.5".parse().unwrap(),
                },
                PortAddress {
                    subnet_id: "s6".to_owned(),
                    address: "2001:db8::5".parse().unwrap(),
                },
            ],
            port_security: security,
            allowed_address_pairs: vec![AddressPair {
                ip_address: "10.0.9.0/24".to_owned(),
                mac_address: Some("fa:16:3e:00:00:99".to_owned()),
            }],
            hostname: None,
            security_rules: None,
        }
    }

    #[test]
    fn link_local_is_modified_eui64() {
        assert_eq!(
            link_local("52:54:00:12:34:56").unwrap().to_string(),
            "fe80::5054:ff:fe12:3456"
        );
        assert!(link_local("nonsense").is_none());
    }

    #[test]
    fn ports_without_security_have_no_rules() {
        assert_eq!(ruleset(&[], &[port("a", false)]), None);
        assert_eq!(ruleset(&[], &[]), None);
    }

    #[test]
    fn a_guarded_port_may_send_only_as_itself() {
        let text = ruleset(&[], &[port("1234abcd-0000", true), port("ffff", false)]).unwrap();
        assert!(
            text.contains("iifname vmap { \"nft1234abcd000\" : jump from_nft1234abcd000 }"),
            "{text}"
        );
        assert!(!text.contains("nftffff"), "{text}");
        assert!(
            text.contains("ether saddr != { fa:16:3e:00:00:01, fa:16:3e:00:00:99 } drop"),
            "{text}"
        );
        // Each address only from its own MAC: the pair's from the pair's.
        assert!(
            text.contains(
                "ether saddr . ip saddr != { fa:16:3e:00:00:01 . 10.0.0.5, \
                 fa:16:3e:00:00:99 . 10.0.9.0/24 } drop"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "arp saddr ether . arp saddr ip != { fa:16:3e:00:00:01 . 10.0.0.5, \
                 fa:16:3e:00:00:99 . 10.0.9.0/24, fa:16:3e:00:00:01 . 0.0.0.0, \
                 fa:16:3e:00:00:99 . 0.0.0.0 } drop"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "ether saddr . ip6 saddr != { fa:16:3e:00:00:01 . ::, \
                 fa:16:3e:00:00:01 . fe80::f816:3eff:fe00:1, fa:16:3e:00:00:01 . 2001:db8::5 } \
                 drop"
            ),
            "{text}"
        );
    }

    #[test]
    fn security_groups_mark_ports_and_filter_new_connections() {
        let mut web = port("0000000a", true);
        web.security_rules = Some(vec![
            RuleSpec {
                direction: RuleDirection::Ingress,
                family: IpFamily::V4,
                protocol: Some(6),
                port_min: Some(80),
                port_max: Some(80),
                remotes: Some(vec!["10.0.0.0/24".to_owned()]),
            },
            RuleSpec {
                direction: RuleDirection::Egress,
                family: IpFamily::V6,
                protocol: None,
                port_min: None,
                port_max: None,
                remotes: None,
            },
            // A remote group with no IPv4 members matches nothing.
            RuleSpec {
                direction: RuleDirection::Ingress,
                family: IpFamily::V4,
                protocol: Some(1),
                port_min: Some(8),
                port_max: None,
                remotes: Some(vec!["2001:db8::5".to_owned()]),
            },
        ]);
        let network = NetworkSpec {
            id: "net".to_owned(),
            vni: 7,
            mtu: 1450,
            subnets: Vec::new(),
            peers: Vec::new(),
            external: false,
        };
        let text = ruleset(&[network], &[web, port("0000000b", true)]).unwrap();
        assert!(
            text.contains("oifname vmap { \"nft0000000a\" : jump to_nft0000000a }"),
            "{text}"
        );
        assert!(
            text.contains("meta mark set meta mark or 0x00010000"),
            "{text}"
        );
        assert!(text.contains("meta mark set 0x00000001"), "{text}");
        assert!(
            text.contains("ct zone set iifname map { \"nfb7\" : 7 }"),
            "{text}"
        );
        assert!(
            text.contains("meta nfproto ipv4 ip saddr { 10.0.0.0/24 } tcp dport 80 accept"),
            "{text}"
        );
        assert!(text.contains("meta nfproto ipv6 return"), "{text}");
        assert!(!text.contains("icmp type 8"), "{text}");
        // The port without groups is guarded against spoofing but not filtered.
        assert!(text.contains("from_nft0000000b"), "{text}");
        assert!(!text.contains("egress_2"), "{text}");
    }
}
