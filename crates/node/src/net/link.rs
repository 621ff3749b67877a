//! The node's network devices through iproute2 (`ip`, `bridge`): bridges, VXLAN devices
//! with their flooding entries, and taps. Taps are made with `ip tuntap`, which uses the
//! TUNSETIFF ioctl: the kernel refuses to create taps over rtnetlink.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use super::NetError;

/// The UDP port of VXLAN (IANA's).
pub const VXLAN_PORT: u16 = 4789;

/// What a device is, as far as the node cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bridge,
    Vxlan,
    Tap,
    Veth,
    Other,
}

/// A network device of the node's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub kind: Kind,
    pub master: Option<String>,
    pub mtu: u32,
    pub up: bool,
}

#[derive(Deserialize)]
struct IpLink {
    ifname: String,
    #[serde(default)]
    master: Option<String>,
    #[serde(default)]
    mtu: u32,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    linkinfo: Option<LinkInfo>,
}

#[derive(Deserialize)]
struct LinkInfo {
    #[serde(default)]
    info_kind: Option<String>,
}

#[derive(Deserialize)]
struct FdbEntry {
    mac: String,
    #[serde(default)]
    dst: Option<String>,
}

/// Runs `program args…`; its standard output, or its standard error as the failure.
async fn run(program: &str, args: &[&str]) -> Result<String, NetError> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| NetError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(NetError::Command {
            command: format!("{program} {}", args.join(" ")),
            message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

async fn ip(args: &[&str]) -> Result<String, NetError> {
    run("ip", args).await
}

/// Runs `program args…` with `input` on its standard input.
pub async fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<(), NetError> {
    use tokio::io::AsyncWriteExt;
    let spawn_error = |source| NetError::Spawn {
        program: program.to_owned(),
        source,
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_error)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(spawn_error)?;
    }
    let output = child.wait_with_output().await.map_err(spawn_error)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NetError::Command {
            command: format!("{program} {}", args.join(" ")),
            message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Every device whose name starts with `prefix`, by name.
pub async fn list(prefix: &str) -> Result<BTreeMap<String, Link>, NetError> {
    let text = ip(&["-j", "-d", "link", "show"]).await?;
    let links: Vec<IpLink> = serde_json::from_str(&text).map_err(|source| NetError::Parse {
        what: "ip -j link show",
        source,
    })?;
    Ok(links
        .into_iter()
        .filter(|link| link.ifname.starts_with(prefix))
        .map(|link| {
            let kind = match link.linkinfo.and_then(|info| info.info_kind).as_deref() {
                Some("bridge") => Kind::Bridge,
                Some("vxlan") => Kind::Vxlan,
                Some("tun") => Kind::Tap,
                Some("veth") => Kind::Veth,
                _ => Kind::Other,
            };
            let up = link.flags.iter().any(|flag| flag == "UP");
            let name = link.ifname;
            (
                name.clone(),
                Link {
                    name,
                    kind,
                    master: link.master,
                    mtu: link.mtu,
                    up,
                },
            )
        })
        .collect())
}

pub async fn add_bridge(name: &str, mtu: u32) -> Result<(), NetError> {
    let mtu = mtu.to_string();
    // No STP (a bridge per network, no loops) and no forwarding delay.
    ip(&[
        "link",
        "add",
        name,
        "mtu",
        &mtu,
        "type",
        "bridge",
        "stp_state",
        "0",
        "forward_delay",
        "0",
    ])
    .await?;
    Ok(())
}

/// A VXLAN device for `vni` from `local`; it learns where remote MACs are from what
/// arrives, and floods the rest to the peers of its all-zeros entries ([`add_peer`]).
pub async fn add_vxlan(name: &str, vni: u32, local: IpAddr, mtu: u32) -> Result<(), NetError> {
    let (vni, local, mtu, port) = (
        vni.to_string(),
        local.to_string(),
        mtu.to_string(),
        VXLAN_PORT.to_string(),
    );
    ip(&[
        "link", "add", name, "mtu", &mtu, "type", "vxlan", "id", &vni, "local", &local, "dstport",
        &port,
    ])
    .await?;
    Ok(())
}

/// A persistent tap (it stays when QEMU closes it, so a restarted guest finds it on its
/// bridge).
pub async fn add_tap(name: &str) -> Result<(), NetError> {
    ip(&["tuntap", "add", "dev", name, "mode", "tap"]).await?;
    Ok(())
}

pub async fn set_master(name: &str, bridge: &str) -> Result<(), NetError> {
    ip(&["link", "set", "dev", name, "master", bridge]).await?;
    Ok(())
}

pub async fn set_mtu(name: &str, mtu: u32) -> Result<(), NetError> {
    ip(&["link", "set", "dev", name, "mtu", &mtu.to_string()]).await?;
    Ok(())
}

pub async fn set_up(name: &str) -> Result<(), NetError> {
    ip(&["link", "set", "dev", name, "up"]).await?;
    Ok(())
}

pub async fn delete(name: &str) -> Result<(), NetError> {
    ip(&["link", "del", "dev", name]).await?;
    Ok(())
}

/// The peers VXLAN device `name` floods to.
pub async fn peers(name: &str) -> Result<Vec<IpAddr>, NetError> {
    let text = run("bridge", &["-j", "fdb", "show", "dev", name]).await?;
    let entries: Vec<FdbEntry> = serde_json::from_str(&text).map_err(|source| NetError::Parse {
        what: "bridge -j fdb show",
        source,
    })?;
    Ok(entries
        .into_iter()
        .filter(|entry| entry.mac == "00:00:00:00:00:00")
        .filter_map(|entry| entry.dst?.parse().ok())
        .collect())
}

pub async fn add_peer(name: &str, peer: IpAddr) -> Result<(), NetError> {
    let peer = peer.to_string();
    run(
        "bridge",
        &[
            "fdb",
            "append",
            "00:00:00:00:00:00",
            "dev",
            name,
            "dst",
            &peer,
        ],
    )
    .await?;
    Ok(())
}

pub async fn remove_peer(name: &str, peer: IpAddr) -> Result<(), NetError> {
    let peer = peer.to_string();
    run(
        "bridge",
        &["fdb", "del", "00:00:00:00:00:00", "dev", name, "dst", &peer],
    )
    .await?;
    Ok(())
}

/// The named network namespaces whose names start with `prefix`.
pub async fn namespaces(prefix: &str) -> Result<Vec<String>, NetError> {
    let text = ip(&["netns", "list"]).await?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect())
}

/// A new network namespace, its loopback up and IP forwarding on.
pub async fn add_namespace(name: &str) -> Result<(), NetError> {
    ip(&["netns", "add", name]).await?;
    ip(&["-n", name, "link", "set", "lo", "up"]).await?;
    let forwarding = "echo 1 > /proc/sys/net/ipv4/ip_forward && \
                      echo 1 > /proc/sys/net/ipv6/conf/all/forwarding";
    run("ip", &["netns", "exec", name, "sh", "-c", forwarding]).await?;
    Ok(())
}

/// Removes a namespace; the devices in it go with it (and the veths' other ends).
pub async fn delete_namespace(name: &str) -> Result<(), NetError> {
    ip(&["netns", "del", name]).await?;
    Ok(())
}

/// A veth pair: `name` here, `peer` in namespace `namespace` (any device there by that
/// name, left from an interrupted attempt, is removed first).
pub async fn add_veth(name: &str, peer: &str, namespace: &str) -> Result<(), NetError> {
    let _ = ip(&["-n", namespace, "link", "del", "dev", peer]).await;
    ip(&[
        "link", "add", name, "type", "veth", "peer", "name", peer, "netns", namespace,
    ])
    .await?;
    Ok(())
}

/// Device `name` of namespace `namespace` with MAC `mac` and MTU `mtu`, up.
pub async fn set_up_in(namespace: &str, name: &str, mac: &str, mtu: u32) -> Result<(), NetError> {
    let mtu = mtu.to_string();
    ip(&[
        "-n", namespace, "link", "set", "dev", name, "address", mac, "mtu", &mtu, "up",
    ])
    .await?;
    Ok(())
}

/// The devices of namespace `namespace` whose names start with `prefix`.
pub async fn list_in(namespace: &str, prefix: &str) -> Result<Vec<String>, NetError> {
    let text = ip(&["-n", namespace, "-j", "link", "show"]).await?;
    let links: Vec<IpLink> = serde_json::from_str(&text).map_err(|source| NetError::Parse {
        what: "ip -j link show",
        source,
    })?;
    Ok(links
        .into_iter()
        .map(|link| link.ifname)
        .filter(|name| name.starts_with(prefix))
        .collect())
}

pub async fn delete_in(namespace: &str, name: &str) -> Result<(), NetError> {
    ip(&["-n", namespace, "link", "del", "dev", name]).await?;
    Ok(())
}

#[derive(Deserialize)]
struct IpAddresses {
    #[serde(default)]
    addr_info: Vec<AddressInfo>,
}

#[derive(Deserialize)]
struct AddressInfo {
    local: IpAddr,
    prefixlen: u8,
    #[serde(default)]
    scope: String,
}

/// The global addresses of device `name` in namespace `namespace`, as `address/len`.
pub async fn addresses_in(namespace: &str, name: &str) -> Result<Vec<String>, NetError> {
    let text = ip(&["-n", namespace, "-j", "address", "show", "dev", name]).await?;
    let devices: Vec<IpAddresses> =
        serde_json::from_str(&text).map_err(|source| NetError::Parse {
            what: "ip -j address show",
            source,
        })?;
    Ok(devices
        .into_iter()
        .flat_map(|device| device.addr_info)
        .filter(|info| info.scope == "global")
        .map(|info| format!("{}/{}", info.local, info.prefixlen))
        .collect())
}

pub async fn add_address_in(namespace: &str, name: &str, address: &str) -> Result<(), NetError> {
    // No duplicate address detection: the address is the control plane's to give.
    let mut args = vec!["-n", namespace, "address", "add", address, "dev", name];
    if address.contains(':') {
        args.push("nodad");
    }
    ip(&args).await?;
    Ok(())
}

pub async fn delete_address_in(namespace: &str, name: &str, address: &str) -> Result<(), NetError> {
    ip(&["-n", namespace, "address", "del", address, "dev", name]).await?;
    Ok(())
}

/// Namespace `namespace`'s default route (IPv4 or IPv6 by `via`) through `via` on `name`.
pub async fn replace_default_route_in(
    namespace: &str,
    name: &str,
    via: IpAddr,
) -> Result<(), NetError> {
    let via = via.to_string();
    let family = if via.contains(':') { "-6" } else { "-4" };
    ip(&[
        "-n", namespace, family, "route", "replace", "default", "via", &via, "dev", name,
    ])
    .await?;
    Ok(())
}
