//! The node's nftables: one table, `bridge nefos`, replaced whole and atomically each
//! time the node's ports change, so that no moment has half a ruleset.
//!
//! Anti-spoofing: a frame a guest sends into its bridge must come from its port's MAC,
//! and its ARP, IPv4 and IPv6 from the port's addresses (or an allowed address pair);
//! guests may not answer DHCP or advertise routes. Filtering at the bridge's prerouting
//! hook covers both what the bridge forwards and what it delivers to the node itself.

use std::fmt::Write;
use std::net::{IpAddr, Ipv6Addr};

use nefos_node_api::{PortSpec, tap_name};

use super::NetError;

/// The table's family and name.
pub const TABLE: &str = "bridge nefos";

/// The whole table for `ports` (those with port security on get rules); `None` when no
/// port needs any, so the table is removed.
pub fn ruleset(ports: &[PortSpec]) -> Option<String> {
    let guarded: Vec<&PortSpec> = ports.iter().filter(|p| p.port_security).collect();
    if guarded.is_empty() {
        return None;
    }
    let mut text = String::new();
    let _ = writeln!(text, "table {TABLE} {{");
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
    for port in guarded {
        port_chain(&mut text, port);
    }
    let _ = writeln!(text, "}}");
    Some(text)
}

/// What one port may send.
fn port_chain(text: &mut String, port: &PortSpec) {
    let tap = tap_name(&port.id);
    let mut macs = vec![port.mac.to_ascii_lowercase()];
    let mut v4: Vec<String> = Vec::new();
    let mut v6: Vec<String> = vec!["::".to_owned()];
    if let Some(local) = link_local(&port.mac) {
        v6.push(local.to_string());
    }
    for fixed in &port.fixed_ips {
        match fixed.address {
            IpAddr::V4(a) => v4.push(a.to_string()),
            IpAddr::V6(a) => v6.push(a.to_string()),
        }
    }
    for pair in &port.allowed_address_pairs {
        if let Some(mac) = &pair.mac_address {
            macs.push(mac.to_ascii_lowercase());
        }
        if pair.ip_address.contains(':') {
            v6.push(pair.ip_address.clone());
        } else {
            v4.push(pair.ip_address.clone());
        }
    }
    macs.sort();
    macs.dedup();
    let set = |items: &[String]| format!("{{ {} }}", items.join(", "));
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
        let mut arp = v4.clone();
        arp.push("0.0.0.0".to_owned());
        let _ = writeln!(text, "    arp saddr ip != {} drop", set(&arp));
        let _ = writeln!(text, "    ip saddr != {} drop", set(&v4));
    }
    let _ = writeln!(text, "    ip6 saddr != {} drop", set(&v6));
    // No rogue DHCP or DHCPv6 servers, router advertisements or redirects.
    let _ = writeln!(text, "    udp sport {{ 67, 547 }} drop");
    let _ = writeln!(
        text,
        "    icmpv6 type {{ nd-router-advert, nd-redirect }} drop"
    );
    let _ = writeln!(text, "    ether type != {{ ip, ip6, arp }} drop");
    let _ = writeln!(text, "  }}");
}

/// The IPv6 link-local address a guest forms from its MAC (modified EUI-64).
pub fn link_local(mac: &str) -> Option<Ipv6Addr> {
    let bytes: Vec<u8> = mac
        .split(':')
        .map(|part| u8::from_str_radix(part, 16).ok())
        .collect::<Option<_>>()?;
    let [a, b, c, d, e, f] = <[u8; 6]>::try_from(bytes).ok()?;
    let segments = [
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([a ^ 0x02, b]),
        u16::from_be_bytes([c, 0xff]),
        u16::from_be_bytes([0xfe, d]),
        u16::from_be_bytes([e, f]),
    ];
    Some(Ipv6Addr::from(segments))
}

/// Replaces the table with `ruleset` (or removes it) in one transaction of `nft`.
pub async fn apply(ruleset: Option<&str>) -> Result<(), NetError> {
    // Declaring the table first makes its deletion valid when it does not exist yet.
    let mut script = format!("table {TABLE}\ndelete table {TABLE}\n");
    if let Some(rules) = ruleset {
        script.push_str(rules);
    }
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| NetError::Spawn {
            program: "nft".to_owned(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|source| NetError::Spawn {
                program: "nft".to_owned(),
                source,
            })?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|source| NetError::Spawn {
            program: "nft".to_owned(),
            source,
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NetError::Command {
            command: "nft -f -".to_owned(),
            message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
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
        assert_eq!(ruleset(&[port("a", false)]), None);
        assert_eq!(ruleset(&[]), None);
    }

    #[test]
    fn a_guarded_port_may_send_only_as_itself() {
        let text = ruleset(&[port("1234abcd-0000", true), port("ffff", false)]).unwrap();
        assert!(
            text.contains("iifname vmap { \"nft1234abcd000\" : jump from_nft1234abcd000 }"),
            "{text}"
        );
        assert!(!text.contains("nftffff"), "{text}");
        assert!(
            text.contains("ether saddr != { fa:16:3e:00:00:01, fa:16:3e:00:00:99 } drop"),
            "{text}"
        );
        assert!(
            text.contains("ip saddr != { 10.0.0.5, 10.0.9.0/24 } drop"),
            "{text}"
        );
        assert!(
            text.contains("arp saddr ip != { 10.0.0.5, 10.0.9.0/24, 0.0.0.0 } drop"),
            "{text}"
        );
        assert!(
            text.contains("ip6 saddr != { ::, fe80::f816:3eff:fe00:1, 2001:db8::5 } drop"),
            "{text}"
        );
    }
}
