//! TCP throughput through a node's datapath against a bare veth pair, in one run.
//!
//! Two "hosts" (network namespaces joined by a veth underlay) each get their half of one
//! private network from the node's own code (`nefos_node::net::NetworkManager`, run inside
//! the host's namespace): a bridge, a VXLAN device flooding to the other host, and the
//! nftables of a port with port security and a security group that allows everything —
//! anti-spoofing, conntrack zones and the stateful rule path all on. The port's tap is then
//! swapped for a veth of the same name (the rules match names) whose other end is a "guest"
//! namespace: a guest stands in for a VM without QEMU's own copying. A TCP stream runs
//! guest to guest across the hosts; the baseline is the same stream over a bare veth pair
//! between two namespaces. Prints each round, the medians, and the ratio (goal ≥ 0.7).
//!
//! Run as root: `cargo build --release -p nefos-bench && target/release/datapath-bench`.
//! Every namespace it makes (`nfbench<pid>-…`) is deleted when it ends.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use nefos_node::net::{DEFAULT_LEASE_SECONDS, NetSettings, NetworkManager};
use nefos_node_api::{
    IpFamily, NetworkSpec, NodeNetworks, PortAddress, PortSpec, RuleDirection, RuleSpec,
    SubnetSpec, tap_name,
};

#[derive(Debug, Parser)]
struct Args {
    #[command(subcommand)]
    role: Option<Role>,
    /// Seconds each stream runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds of each measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// The port without port security and security groups: no nftables, to tell what
    /// filtering costs.
    #[arg(long)]
    no_filter: bool,
}

/// What the program does when it runs itself inside a namespace.
#[derive(Debug, Subcommand)]
enum Role {
    /// Realises a host's half of the network with the node's code.
    Host {
        data: String,
        tunnel: String,
        peer: String,
        port: String,
        address: String,
        #[arg(long)]
        no_filter: bool,
    },
    /// Accepts one stream and prints the bytes per second it received.
    Sink { port: u16 },
    /// Sends to ADDRESS for SECONDS.
    Source { address: String, seconds: u64 },
}

const VNI: u32 = 4242;
const CHUNK: usize = 128 * 1024;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.role {
        Some(Role::Host {
            data,
            tunnel,
            peer,
            port,
            address,
            no_filter,
        }) => host(&data, &tunnel, &peer, &port, &address, !no_filter),
        Some(Role::Sink { port }) => sink(port),
        Some(Role::Source { address, seconds }) => source(&address, seconds),
        None => run(&args),
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("ip").args(args).status().context("run ip")?;
    if !status.success() {
        bail!("ip {} failed", args.join(" "));
    }
    Ok(())
}

/// The namespaces of this run, deleted when dropped.
struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    fn add(&mut self, name: String) -> anyhow::Result<String> {
        ip(&["netns", "add", &name])?;
        self.names.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// A veth pair: `a` in namespace `na` with `address_a`, `b` in `nb` with `address_b`.
fn veth(
    na: &str,
    a: &str,
    nb: &str,
    b: &str,
    addresses: Option<(&str, &str)>,
) -> anyhow::Result<()> {
    ip(&[
        "-n", na, "link", "add", a, "type", "veth", "peer", "name", b, "netns", nb,
    ])?;
    if let Some((address_a, address_b)) = addresses {
        ip(&["-n", na, "addr", "add", address_a, "dev", a])?;
        ip(&["-n", nb, "addr", "add", address_b, "dev", b])?;
    }
    ip(&["-n", na, "link", "set", a, "up"])?;
    ip(&["-n", nb, "link", "set", b, "up"])?;
    Ok(())
}

fn in_namespace(namespace: &str) -> anyhow::Result<Command> {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", namespace])
        .arg(std::env::current_exe().context("find this program")?);
    Ok(command)
}

/// One stream from `from` to `to_address` in `to`: bytes per second.
fn stream(from: &str, to: &str, to_address: &str, seconds: u64) -> anyhow::Result<f64> {
    let mut sink = in_namespace(to)?
        .args(["sink", "5201"])
        .stdout(Stdio::piped())
        .spawn()
        .context("start the sink")?;
    std::thread::sleep(Duration::from_millis(300));
    let status = in_namespace(from)?
        .args([
            "source",
            &format!("{to_address}:5201"),
            &seconds.to_string(),
        ])
        .status()
        .context("run the source")?;
    if !status.success() {
        let _ = sink.kill();
        bail!("the source failed");
    }
    let mut out = String::new();
    if let Some(mut stdout) = sink.stdout.take() {
        stdout.read_to_string(&mut out)?;
    }
    sink.wait()?;
    out.trim().parse().context("read the sink's figure")
}

fn run(args: &Args) -> anyhow::Result<()> {
    let prefix = format!("nfbench{}", std::process::id());
    let mut namespaces = Namespaces { names: Vec::new() };
    let work = tempfile::tempdir()?;

    // The baseline: a bare veth pair.
    let left = namespaces.add(format!("{prefix}-left"))?;
    let right = namespaces.add(format!("{prefix}-right"))?;
    veth(
        &left,
        "eth0",
        &right,
        "eth0",
        Some(("10.99.0.1/24", "10.99.0.2/24")),
    )?;

    // Two hosts on an underlay, a guest on each.
    let host_a = namespaces.add(format!("{prefix}-host-a"))?;
    let host_b = namespaces.add(format!("{prefix}-host-b"))?;
    let guest_a = namespaces.add(format!("{prefix}-guest-a"))?;
    let guest_b = namespaces.add(format!("{prefix}-guest-b"))?;
    veth(
        &host_a,
        "under",
        &host_b,
        "under",
        Some(("10.88.0.1/24", "10.88.0.2/24")),
    )?;
    for (host, tunnel, peer, port, address, guest) in [
        (
            &host_a,
            "10.88.0.1",
            "10.88.0.2",
            "aaaaaaaa-0001",
            "10.0.0.11",
            &guest_a,
        ),
        (
            &host_b,
            "10.88.0.2",
            "10.88.0.1",
            "bbbbbbbb-0002",
            "10.0.0.12",
            &guest_b,
        ),
    ] {
        let data = work.path().join(host.as_str());
        std::fs::create_dir_all(&data)?;
        let mut command = in_namespace(host)?;
        command.args([
            "host",
            data.to_str().context("a path")?,
            tunnel,
            peer,
            port,
            address,
        ]);
        if args.no_filter {
            command.arg("--no-filter");
        }
        let status = command.status()?;
        if !status.success() {
            bail!("the node's network code failed in {host}");
        }
        // The port's tap becomes a veth to the guest, under the same name.
        let tap = tap_name(port);
        ip(&["-n", host, "link", "del", &tap])?;
        veth(host, &tap, guest, "eth0", None)?;
        ip(&[
            "-n",
            host,
            "link",
            "set",
            &tap,
            "mtu",
            "1450",
            "master",
            &format!("nfb{VNI}"),
        ])?;
        ip(&["-n", guest, "link", "set", "eth0", "mtu", "1450"])?;
        ip(&["-n", guest, "link", "set", "eth0", "address", &mac_of(port)])?;
        ip(&[
            "-n",
            guest,
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            "eth0",
        ])?;
    }

    println!(
        "TCP, {} s per stream, {} KiB writes, {} rounds{}",
        args.seconds,
        CHUNK / 1024,
        args.rounds,
        if args.no_filter {
            ", the port unfiltered"
        } else {
            ""
        }
    );
    let path = if args.no_filter {
        "bridge+VXLAN"
    } else {
        "bridge+VXLAN+nftables"
    };
    let mut bare = Vec::new();
    let mut nefos = Vec::new();
    for round in 1..=args.rounds {
        let b = stream(&left, &right, "10.99.0.2", args.seconds)?;
        let n = stream(&guest_a, &guest_b, "10.0.0.12", args.seconds)?;
        println!(
            "round {round}: bare veth {:.0} Mbit/s, nefos {path} {:.0} Mbit/s",
            b * 8.0 / 1e6,
            n * 8.0 / 1e6
        );
        bare.push(b);
        nefos.push(n);
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (b, n) = (median(&mut bare), median(&mut nefos));
    println!(
        "median: bare veth {:.0} Mbit/s, nefos {:.0} Mbit/s; ratio nefos/bare {:.2} (goal >= 0.7)",
        b * 8.0 / 1e6,
        n * 8.0 / 1e6,
        n / b
    );
    Ok(())
}

fn mac_of(port: &str) -> String {
    if port.starts_with('a') {
        "fa:16:3e:00:00:0a".to_owned()
    } else {
        "fa:16:3e:00:00:0b".to_owned()
    }
}

/// Inside a host's namespace: its half of the network, as a node realises it.
fn host(
    data: &str,
    tunnel: &str,
    peer: &str,
    port: &str,
    address: &str,
    filter: bool,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let settings = NetSettings {
            tunnel: Some(tunnel.parse()?),
            public_interface: None,
            lease_seconds: DEFAULT_LEASE_SECONDS,
        };
        let manager = NetworkManager::open(std::path::Path::new(data), settings).await?;
        let allow = |direction| RuleSpec {
            direction,
            family: IpFamily::V4,
            protocol: None,
            port_min: None,
            port_max: None,
            remotes: None,
        };
        let description = NodeNetworks {
            generation: 1,
            networks: vec![NetworkSpec {
                id: "net".to_owned(),
                vni: VNI,
                mtu: 1450,
                subnets: vec![SubnetSpec {
                    id: "subnet".to_owned(),
                    cidr: "10.0.0.0/24".to_owned(),
                    gateway: None,
                    dhcp: false,
                    dns_servers: Vec::new(),
                    host_routes: Vec::new(),
                    ipv6_mode: None,
                    gateway_mac: None,
                }],
                peers: vec![peer.parse()?],
                external: false,
            }],
            ports: vec![PortSpec {
                id: port.to_owned(),
                network_id: "net".to_owned(),
                mac: mac_of(port),
                fixed_ips: vec![PortAddress {
                    subnet_id: "subnet".to_owned(),
                    address: address.parse()?,
                }],
                port_security: filter,
                allowed_address_pairs: Vec::new(),
                hostname: None,
                security_rules: filter
                    .then(|| vec![allow(RuleDirection::Ingress), allow(RuleDirection::Egress)]),
            }],
            routers: Vec::new(),
        };
        manager.apply(description).await?;
        anyhow::Ok(())
    })
}

fn sink(port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    let (mut stream, _) = listener.accept()?;
    let mut buffer = vec![0u8; CHUNK];
    let mut total = 0u64;
    let mut started = None;
    loop {
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        started.get_or_insert_with(Instant::now);
        total += n as u64;
    }
    let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
    println!("{}", total as f64 / elapsed.as_secs_f64().max(1e-9));
    Ok(())
}

fn source(address: &str, seconds: u64) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(address)?;
    let buffer = vec![0x5au8; CHUNK];
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        stream.write_all(&buffer)?;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    Ok(())
}
