//! Networks realised by nodes, with real guests: every host is a network namespace (the
//! control plane, two nodes) on a switch of its own, and nothing is made in the machine's
//! own namespace. Through the real `openstack` CLI: two VMs of one project on one private
//! network, on two nodes, ping each other and talk HTTP over the nodes' VXLAN; a VM of
//! another project on its own network with the same CIDR (and the very same address as
//! one of them) reaches neither, and neither reaches it; a VM that forges its source
//! address or MAC gets nothing through. Every VM takes its address from the node's DHCP
//! server, and keeps it across a kill of its node's agent, of the control plane, a lease
//! time and a reboot, and follows a renumbering of its network within a lease time.
//! A port is plugged into a running VM and out again. Security groups allow and deny, ingress and egress. A router takes
//! VMs out to a host outside the cloud, and a floating IP lets that host in. Deleting the
//! servers deletes the ports they made, frees those the project gave them, and leaves no
//! bridge, VXLAN device, tap, router namespace or nftables rule on the nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nefos_test_utils::{Kamaki, Lab, NefosProcess, OpenStack, read_credentials};
use serde_json::Value;

const BOOT: Duration = Duration::from_secs(180);

/// vm-e's port's MAC, given so that the SLAAC address vm-a watches is known before the
/// port is made.
const PE_MAC: &str = "fa:16:3e:0a:00:15";
const PE_V6: &str = "fd00:a::f816:3eff:fe0a:15";

/// The shell functions the guests' probes use: `reach NAME CMD…` retries until CMD works
/// (a peer may still be booting), `never NAME CMD…` tries a few times and says whether
/// anything got through. Each prints one line the test reads on the serial console.
const PROBES: &str = r#"#!/bin/sh
reach() {
    n=$1; shift; i=0
    while [ $i -lt 120 ]; do
        if "$@" >/dev/null 2>&1; then echo "PROBE $n ok" >/dev/ttyS0; return 0; fi
        i=$((i+1)); sleep 1
    done
    echo "PROBE $n fail" >/dev/ttyS0
    "$@" >/dev/ttyS0 2>&1
    return 1
}
never() {
    n=$1; shift; i=0
    while [ $i -lt 6 ]; do
        if "$@" >/dev/null 2>&1; then echo "PROBE $n reached" >/dev/ttyS0; return 1; fi
        i=$((i+1)); sleep 1
    done
    echo "PROBE $n blocked" >/dev/ttyS0
}
page_of() { timeout 5 wget -q -O - "http://$1/" | grep "nefos-tiny $2"; }
watch() {
    n=$1; shift; last=
    while :; do
        if "$@" >/dev/null 2>&1; then s=up; else s=down; fi
        [ "$s" != "$last" ] && echo "STATE $n $s" >/dev/ttyS0
        last=$s; sleep 1
    done
}
"#;

struct Node {
    id: String,
    namespace: String,
    url: String,
    args: Vec<String>,
    dir: tempfile::TempDir,
    process: NefosProcess,
}

struct Cloud {
    os: OpenStack,
    clouds: PathBuf,
    nodes: Vec<Node>,
}

impl Cloud {
    fn json(&self, cloud: &str, args: &[&str]) -> Value {
        self.os.json(&self.clouds, cloud, args)
    }

    fn ok(&self, cloud: &str, args: &[&str]) -> String {
        self.os.ok(&self.clouds, cloud, args)
    }

    fn port(&self, cloud: &str, network: &str, address: &str, name: &str) -> String {
        let port = self.json(
            cloud,
            &[
                "port",
                "create",
                "--network",
                network,
                "--fixed-ip",
                &format!("ip-address={address}"),
                name,
            ],
        );
        port["id"].as_str().unwrap().to_owned()
    }

    /// The IPv6 address of port `port`.
    fn ipv6_address(&self, port: &str) -> String {
        let shown = self.json("nefos-demo", &["port", "show", port]);
        shown["fixed_ips"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|fixed| fixed["ip_address"].as_str())
            .find(|address| address.contains(':'))
            .unwrap_or_else(|| panic!("no IPv6 address: {shown}"))
            .to_owned()
    }

    /// Creates a server on `port` running `script` as its user data, and waits for it to
    /// be ACTIVE; its id and node.
    fn server(&self, cloud: &str, name: &str, port: &str, script: &str) -> (String, String) {
        let file = self.clouds.with_file_name(format!("{name}.sh"));
        std::fs::write(&file, format!("{PROBES}\n{script}")).unwrap();
        let created = self.json(
            cloud,
            &[
                "server",
                "create",
                "--flavor",
                "m1.nano",
                "--image",
                "nefos-tiny",
                "--nic",
                &format!("port-id={port}"),
                "--user-data",
                file.to_str().unwrap(),
                name,
            ],
        );
        let id = created["id"].as_str().unwrap().to_owned();
        let started = Instant::now();
        loop {
            let server = self.json("nefos-admin", &["server", "show", &id]);
            if server["status"] == "ACTIVE" {
                let node = server["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_owned();
                return (server["id"].as_str().unwrap().to_owned(), node);
            }
            assert_ne!(server["status"], "ERROR", "{server}");
            assert!(
                started.elapsed() < BOOT,
                "{name} never became ACTIVE: {server}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits until the last state server `server` reported for `name` (its `watch`) is
    /// `state`.
    fn wait_state(&self, server: &str, name: &str, state: &str) {
        self.wait_state_within(server, name, state, Duration::from_secs(60));
    }

    fn wait_state_within(&self, server: &str, name: &str, state: &str, limit: Duration) {
        let prefix = format!("STATE {name} ");
        let started = Instant::now();
        loop {
            let console = self.console(server);
            let last = console
                .lines()
                .rev()
                .find_map(|line| line.trim().strip_prefix(&prefix))
                .map(str::to_owned);
            if last.as_deref() == Some(state) {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "{server}'s {name} stayed {last:?}, not {state}:\n{console}\n{}",
                self.rulesets()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Kills node `id`'s agent and starts it again on its data directory; its VMs run on.
    fn restart_node(&mut self, id: &str) {
        let node = self.nodes.iter_mut().find(|n| n.id == id).unwrap();
        let guests = qemus(&node.namespace);
        assert!(!guests.is_empty(), "no guest runs on {id}");
        node.process.kill9();
        node.process = NefosProcess::start_command(
            NefosProcess::command_in(&node.namespace, &common::binary(), &node.args),
            &node.url,
        );
        node.process
            .wait_printed("serving its RPC API", Duration::from_secs(120));
        assert_eq!(qemus(&node.namespace), guests, "the guests run on");
    }

    /// Every node's nftables, for a failure's message.
    fn rulesets(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("{}:\n{}", node.namespace, Lab::ruleset(&node.namespace)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn console(&self, server: &str) -> String {
        self.nodes
            .iter()
            .map(|node| node.dir.path().join("vms").join(server).join("console.log"))
            .find_map(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    }

    /// Waits until server `server` has printed every probe line in `names`; the outcome
    /// of each.
    fn probes(&self, server: &str, names: &[&str]) -> Vec<String> {
        let started = Instant::now();
        loop {
            let console = self.console(server);
            let outcomes: Vec<Option<String>> = names
                .iter()
                .map(|name| {
                    let prefix = format!("PROBE {name} ");
                    console
                        .lines()
                        .find_map(|line| line.trim().strip_prefix(&prefix).map(str::to_owned))
                })
                .collect();
            if outcomes.iter().all(Option::is_some) {
                return outcomes.into_iter().flatten().collect();
            }
            assert!(
                started.elapsed() < BOOT,
                "{server} did not print all of {names:?}:\n{console}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn node_args(dir: &Path, address: &str, token: &str, id: &str) -> Vec<String> {
    [
        "node",
        "--data",
        dir.to_str().unwrap(),
        "--listen",
        &format!("{address}:8081"),
        "--control-plane",
        "http://10.77.0.1:8082",
        "--join-token",
        token,
        "--id",
        id,
        "--accelerator",
        "tcg",
        "--tunnel-address",
        address,
        "--dhcp-lease-seconds",
        "60",
        "--public-interface",
        "eth1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn enroll(data: &Path, name: &str) -> String {
    let out = common::admin_ok(&["node", "enroll", name, "--data", data.to_str().unwrap()]);
    out.lines().nth(1).unwrap().trim().to_owned()
}

#[test]
fn networks_span_nodes_keep_tenants_apart_and_let_the_outside_in_by_floating_ips() {
    let mut lab = Lab::new();
    let cp = lab.host("cp", "10.77.0.1/24");
    let hosts = [
        (lab.host("n1", "10.77.0.2/24"), "10.77.0.2", "n1"),
        (lab.host("n2", "10.77.0.3/24"), "10.77.0.3", "n2"),
    ];
    // The provider's public network: the nodes' eth1, and a host outside the cloud that
    // is the public subnet's gateway.
    for (namespace, _, _) in &hosts {
        lab.join_public(namespace, "eth1", None);
    }
    let outside = lab.outside("out", "203.0.113.1/24");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let image = common::vms::guest_image();
    // The control plane's configuration, empty until the restart below gives it one.
    let config = dir.path().join("nefos.toml");
    std::fs::write(&config, "").unwrap();
    let args: Vec<String> = [
        "up",
        "--no-node",
        "--config",
        config.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "10.77.0.1:8080",
        "--internal-listen",
        "10.77.0.1:8082",
        "--guest-image",
        image.to_str().unwrap(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let start_control_plane = || {
        let mut process = NefosProcess::start_command(
            NefosProcess::command_in(&cp, &common::binary(), &args),
            "http://10.77.0.1:8080",
        );
        process.wait_printed("nefos is up", Duration::from_secs(120));
        process
    };
    let mut control_plane = start_control_plane();
    let mut nodes = Vec::new();
    for (namespace, address, id) in &hosts {
        let token = enroll(&data, id);
        let node_dir = tempfile::Builder::new()
            .prefix("nfn")
            .tempdir_in("/tmp")
            .unwrap();
        let args = node_args(node_dir.path(), address, &token, id);
        let url = format!("http://{address}:8081");
        let mut process = NefosProcess::start_command(
            NefosProcess::command_in(namespace, &common::binary(), &args),
            &url,
        );
        process.wait_printed("serving its RPC API", Duration::from_secs(120));
        nodes.push(Node {
            id: (*id).to_owned(),
            namespace: namespace.clone(),
            url,
            args,
            dir: node_dir,
            process,
        });
    }

    // A second project's user, in a clouds.yaml of the test's own.
    let mut cloud = Cloud {
        os: OpenStack::in_namespace(&cp),
        clouds: data.join("clouds.yaml"),
        nodes,
    };
    let started = Instant::now();
    while cloud
        .json("nefos-admin", &["hypervisor", "list"])
        .as_array()
        .map_or(0, Vec::len)
        < 2
    {
        assert!(started.elapsed() < BOOT, "the nodes never registered");
        std::thread::sleep(Duration::from_millis(300));
    }
    cloud.ok(
        "nefos-admin",
        &["user", "create", "--password", "other-pass", "other"],
    );
    let mut yaml = std::fs::read_to_string(&cloud.clouds).unwrap();
    yaml.push_str(
        "  other:\n    auth:\n      auth_url: \"http://10.77.0.1:8080/identity/v3\"\n      \
         username: other\n      password: other-pass\n      project_name: other\n      \
         user_domain_name: Default\n      project_domain_name: Default\n    \
         region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n",
    );
    std::fs::write(&cloud.clouds, yaml).unwrap();
    assert!(read_credentials(&data).contains_key("demo"));
    // The demo project runs four VMs here.
    common::admin_ok(&[
        "quota",
        "set",
        "--user",
        "demo",
        "cyclades.vm",
        "4",
        "--data",
        data.to_str().unwrap(),
    ]);

    // One private network of the demo project, and another project's with the same CIDR.
    for (user, network) in [("nefos-demo", "net-a"), ("other", "net-c")] {
        cloud.json(user, &["network", "create", network]);
        cloud.json(
            user,
            &[
                "subnet",
                "create",
                "--network",
                network,
                "--subnet-range",
                "10.0.0.0/24",
                &format!("{network}-v4"),
            ],
        );
    }
    // net-a has IPv6 too: the nodes advertise its prefix and the guests make their
    // addresses from it and their MACs (SLAAC), as the ports were given them.
    cloud.json(
        "nefos-demo",
        &[
            "subnet",
            "create",
            "--network",
            "net-a",
            "--ip-version",
            "6",
            "--subnet-range",
            "fd00:a::/64",
            "--ipv6-ra-mode",
            "slaac",
            "--ipv6-address-mode",
            "slaac",
            "net-a-v6",
        ],
    );
    let pa = cloud.port("nefos-demo", "net-a", "10.0.0.11", "pa");
    let pa_v6 = cloud.ipv6_address(&pa);
    let pb = cloud.port("nefos-demo", "net-a", "10.0.0.12", "pb");
    let pd = cloud.port("nefos-demo", "net-a", "10.0.0.14", "pd");
    // The other project's VM has the very address of vm-b, on its own network.
    let pc = cloud.port("other", "net-c", "10.0.0.12", "pc");

    let (vm_a, node_a) = cloud.server(
        "nefos-demo",
        "vm-a",
        &pa,
        &format!(
            "(reach ping-b ping -c 1 -W 1 10.0.0.12 && reach http-b page_of 10.0.0.12 vm-b) &
             watch http-e page_of 10.0.0.15 vm-e &
             reach slaac sh -c 'ip -6 addr show dev eth0 | grep -q {pa_v6}/64' &
             watch v6route sh -c 'ip -6 route | grep -q \"^default via fe80::\"' &
             watch ping6-e ping6 -c 1 -W 1 {PE_V6} &"
        ),
    );
    let (vm_b, node_b) = cloud.server(
        "nefos-demo",
        "vm-b",
        &pb,
        "(reach ping-a ping -c 1 -W 1 10.0.0.11 && reach http-a page_of 10.0.0.11 vm-a) &
         watch snat ping -c 1 -W 1 203.0.113.1 &
         watch http-a2 page_of 10.0.0.11 vm-a &
         watch renumbered page_of 10.9.0.11 vm-a &
         (while ! ip link show eth1 >/dev/null 2>&1; do sleep 1; done; \
          udhcpc -i eth1 -s /usr/share/udhcpc/default.script -b -t 5 -T 2 -S -p /run/dhcp1; \
          reach hotplug sh -c 'ip -4 addr show eth1 | grep -q 10.5.0.5/24' && \
          while ip link show eth1 >/dev/null 2>&1; do sleep 1; done; \
          echo 'PROBE unplugged ok' >/dev/ttyS0; kill $(cat /run/dhcp1); \
          while ! ip link show eth1 >/dev/null 2>&1; do sleep 1; done; \
          udhcpc -i eth1 -s /usr/share/udhcpc/default.script -b -t 5 -T 2 -S -p /run/dhcp1; \
          reach kamaki-plug sh -c 'ip -4 addr show eth1 | grep -q 10.5.0.' && \
          while ip link show eth1 >/dev/null 2>&1; do sleep 1; done; \
          echo 'PROBE kamaki-unplugged ok' >/dev/ttyS0) &",
    );
    assert_ne!(
        node_a, node_b,
        "the scheduler spreads the two VMs over the nodes"
    );
    assert_eq!(
        cloud.probes(&vm_a, &["ping-b", "http-b", "slaac"]),
        ["ok", "ok", "ok"],
        "{}",
        cloud.console(&vm_a)
    );
    assert_eq!(cloud.probes(&vm_b, &["ping-a", "http-a"]), ["ok", "ok"]);
    let port = cloud.json("nefos-demo", &["port", "show", &pa]);
    assert_eq!(port["status"], "ACTIVE", "{port}");
    assert_eq!(port["device_id"], vm_a.as_str(), "{port}");
    assert_eq!(port["binding_host_id"], node_a.as_str(), "{port}");
    // Nova's view of the server carries its addresses, by network name.
    let shown = cloud.json("nefos-demo", &["server", "show", &vm_a]);
    let addresses = shown["addresses"].to_string();
    assert!(
        addresses.contains("net-a") && addresses.contains("10.0.0.11"),
        "{shown}"
    );

    // The other project's VM got its address by DHCP and reaches none of the demo VMs.
    let (vm_c, _) = cloud.server(
        "other",
        "vm-c",
        &pc,
        "(reach dhcp sh -c 'ip -4 addr show eth0 | grep -q 10.0.0.12/24'; \
         never ping-a ping -c 1 -W 1 10.0.0.11; never ping-d ping -c 1 -W 1 10.0.0.14) &",
    );
    // A demo VM that reaches its network, then forges its source address, then its MAC;
    // then, honest again, sends from a second address, which gets through only while
    // its port has that address as an allowed address pair.
    let (vm_d, _) = cloud.server(
        "nefos-demo",
        "vm-d",
        &pd,
        "(mac=$(cat /sys/class/net/eth0/address); \
         reach ping-a ping -c 1 -W 1 10.0.0.11 \
         && reach http-b page_of 10.0.0.12 vm-b; \
         never http-c page_of 10.0.0.12 vm-c; \
         killall udhcpc; \
         ip addr flush dev eth0; ip addr add 10.0.0.99/24 dev eth0; \
         never forged-ip ping -c 1 -W 1 10.0.0.11; \
         ip addr flush dev eth0; ip addr add 10.0.0.14/24 dev eth0; \
         reach honest-again ping -c 1 -W 1 10.0.0.11; \
         ip link set eth0 down; ip link set eth0 address fa:16:3e:99:99:99; \
         ip link set eth0 up; ip addr add 10.0.0.14/24 dev eth0 2>/dev/null; \
         never forged-mac ping -c 1 -W 1 10.0.0.11; \
         ip link set eth0 down; ip link set eth0 address $mac; ip link set eth0 up; \
         ip addr add 10.0.0.14/24 dev eth0 2>/dev/null; ip addr add 10.0.0.99/24 dev eth0; \
         watch pair-ip ping -I 10.0.0.99 -c 1 -W 1 10.0.0.11) &",
    );
    assert_eq!(
        cloud.probes(&vm_c, &["dhcp", "ping-a", "ping-d"]),
        ["ok", "blocked", "blocked"]
    );
    assert_eq!(
        cloud.probes(
            &vm_d,
            &[
                "ping-a",
                "http-b",
                "http-c",
                "forged-ip",
                "honest-again",
                "forged-mac"
            ]
        ),
        ["ok", "ok", "blocked", "blocked", "ok", "blocked"]
    );

    // Security groups: vm-e's group lets anything out and nothing in. The demo VMs'
    // default group lets in only its own members, and now ICMP from the network too.
    let group = cloud.json("nefos-demo", &["security", "group", "create", "locked"]);
    let group_id = group["id"].as_str().unwrap().to_owned();
    let pe = cloud.json(
        "nefos-demo",
        &[
            "port",
            "create",
            "--network",
            "net-a",
            "--fixed-ip",
            "ip-address=10.0.0.15",
            "--mac-address",
            PE_MAC,
            "--security-group",
            "locked",
            "pe",
        ],
    );
    assert_eq!(pe["security_group_ids"][0], group_id.as_str(), "{pe}");
    assert!(pe["fixed_ips"].to_string().contains(PE_V6), "{pe}");
    let pe = pe["id"].as_str().unwrap().to_owned();
    cloud.json(
        "nefos-demo",
        &[
            "security",
            "group",
            "rule",
            "create",
            "--ingress",
            "--protocol",
            "icmp",
            "--remote-ip",
            "10.0.0.0/24",
            "default",
        ],
    );
    let (vm_e, _) = cloud.server(
        "nefos-demo",
        "vm-e",
        &pe,
        &format!(
            "watch out-a ping -c 1 -W 1 10.0.0.11 &
             watch out6-a ping6 -c 1 -W 1 {pa_v6} &"
        ),
    );
    cloud.wait_state(&vm_e, "out-a", "up");
    cloud.wait_state(&vm_a, "http-e", "down");
    // Allowed address pairs, now that vm-a lets ICMP in from the network.
    cloud.wait_state(&vm_d, "pair-ip", "down");
    cloud.ok(
        "nefos-demo",
        &[
            "port",
            "set",
            "--allowed-address",
            "ip-address=10.0.0.99",
            &pd,
        ],
    );
    cloud.wait_state(&vm_d, "pair-ip", "up");
    cloud.ok("nefos-demo", &["port", "set", "--no-allowed-address", &pd]);
    cloud.wait_state(&vm_d, "pair-ip", "down");
    // Ingress: a rule lets HTTP in, and its removal shuts it out again.
    let web = cloud.json(
        "nefos-demo",
        &[
            "security",
            "group",
            "rule",
            "create",
            "--ingress",
            "--protocol",
            "tcp",
            "--dst-port",
            "80",
            "--remote-ip",
            "10.0.0.0/24",
            "locked",
        ],
    );
    cloud.wait_state(&vm_a, "http-e", "up");
    cloud.ok(
        "nefos-demo",
        &[
            "security",
            "group",
            "rule",
            "delete",
            web["id"].as_str().unwrap(),
        ],
    );
    cloud.wait_state(&vm_a, "http-e", "down");
    // Egress: without the group's IPv4 egress rule nothing leaves; a rule for ICMP to the
    // network lets pings out again.
    let rules = cloud.json(
        "nefos-demo",
        &["security", "group", "rule", "list", "--egress", "locked"],
    );
    let egress = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| rule["Ethertype"] == "IPv4")
        .and_then(|rule| rule["ID"].as_str())
        .unwrap_or_else(|| panic!("no IPv4 egress rule: {rules}"))
        .to_owned();
    cloud.ok(
        "nefos-demo",
        &["security", "group", "rule", "delete", &egress],
    );
    cloud.wait_state(&vm_e, "out-a", "down");
    cloud.json(
        "nefos-demo",
        &[
            "security",
            "group",
            "rule",
            "create",
            "--egress",
            "--protocol",
            "icmp",
            "--remote-ip",
            "10.0.0.0/24",
            "locked",
        ],
    );
    cloud.wait_state(&vm_e, "out-a", "up");
    ipv6_groups_allow_and_deny(&cloud, &vm_a, &vm_e);
    // A group in use stays.
    let refused = cloud.os.run(
        &cloud.clouds,
        "nefos-demo",
        &["security", "group", "delete", "locked"],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Hot-plug: a port of another network plugged into the running vm-b, which takes
    // its address by DHCP on the new NIC; then unplugged, the port kept.
    cloud.json("nefos-demo", &["network", "create", "net-x"]);
    cloud.json(
        "nefos-demo",
        &[
            "subnet",
            "create",
            "--network",
            "net-x",
            "--subnet-range",
            "10.5.0.0/24",
            "net-x-v4",
        ],
    );
    let px = cloud.port("nefos-demo", "net-x", "10.5.0.5", "px");
    cloud.ok("nefos-demo", &["server", "add", "port", &vm_b, &px]);
    let interfaces = cloud.json("nefos-demo", &["port", "list", "--server", &vm_b]);
    assert_eq!(interfaces.as_array().unwrap().len(), 2, "{interfaces}");
    assert_eq!(
        cloud.probes(&vm_b, &["hotplug"]),
        ["ok"],
        "{}",
        cloud.console(&vm_b)
    );
    cloud.ok("nefos-demo", &["server", "remove", "port", &vm_b, &px]);
    assert_eq!(cloud.probes(&vm_b, &["unplugged"]), ["ok"]);
    let shown = cloud.json("nefos-demo", &["port", "show", &px]);
    assert_eq!(shown["device_id"], "", "{shown}");
    cloud.ok("nefos-demo", &["port", "delete", &px]);
    // The same through kamaki 0.16, Synnefo's way: a port posted with the server's
    // serial as its device, and deleted to unplug it.
    let token = cloud.json("nefos-demo", &["token", "issue"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let kamaki = Kamaki::in_namespace(&cp, "http://10.77.0.1:8080", &token);
    let listed = kamaki.ok(&["network", "list"]);
    assert!(
        listed.contains("net-x") && listed.contains("net-a"),
        "{listed}"
    );
    let net_x = cloud.json("nefos-demo", &["network", "show", "net-x"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let serial_b = serial(&kamaki, "vm-b");
    kamaki.ok(&["network", "connect", &net_x, "--device-id", &serial_b]);
    assert_eq!(
        cloud.probes(&vm_b, &["kamaki-plug"]),
        ["ok"],
        "{}",
        cloud.console(&vm_b)
    );
    let info = kamaki.json(&["server", "info", &serial_b]);
    assert!(
        info["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|nic| nic["network_id"] == net_x.as_str()),
        "{info}"
    );
    kamaki.ok(&["network", "disconnect", &net_x, "--device-id", &serial_b]);
    assert_eq!(cloud.probes(&vm_b, &["kamaki-unplugged"]), ["ok"]);
    let left = cloud.json("nefos-demo", &["port", "list", "--network", "net-x"]);
    assert_eq!(left, serde_json::json!([]), "{left}");
    // A network of its own, once net-x has made room in the quota.
    cloud.ok("nefos-demo", &["network", "delete", "net-x"]);
    let made = kamaki.json(&["network", "create", "--name", "kam-net"]);
    assert_eq!(made["type"], "MAC_FILTERED", "{made}");
    let made_id = made["id"].as_str().unwrap().to_owned();
    assert_eq!(
        kamaki.json(&["network", "info", &made_id])["name"],
        "kam-net"
    );
    kamaki.ok(&["network", "delete", &made_id]);

    // Restarts: vm-a's node agent, then the control plane, each killed. vm-b watches
    // vm-a's HTTP at its address throughout, past a lease time, while the floating IPs
    // are tried; then vm-a reboots and answers there again.
    cloud.wait_state(&vm_b, "http-a2", "up");
    let restarted = Instant::now();
    let seen = cloud.console(&vm_b).matches("STATE http-a2").count();
    let net_a = cloud.json("nefos-demo", &["network", "show", "net-a"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cloud.restart_node(&node_a);
    control_plane.kill9();
    // It comes back with servers that name no network put on net-a.
    std::fs::write(&config, format!("[compute]\nauto_network = \"{net_a}\"\n")).unwrap();
    control_plane = start_control_plane();
    let server = cloud.json("nefos-admin", &["server", "show", &vm_a]);
    assert_eq!(server["status"], "ACTIVE", "{server}");

    let serial_a = serial(&kamaki, "vm-a");
    // It comes on top of the project's four servers and vCPUs.
    for resource in ["cyclades.vm", "cyclades.cpu", "cyclades.total_cpu"] {
        common::admin_ok(&[
            "quota",
            "set",
            "--user",
            "demo",
            resource,
            "5",
            "--data",
            data.to_str().unwrap(),
        ]);
    }
    let auto = cloud.json(
        "nefos-demo",
        &[
            "server",
            "create",
            "--flavor",
            "m1.nano",
            "--image",
            "nefos-tiny",
            "vm-auto",
        ],
    );
    let auto = auto["id"].as_str().unwrap().to_owned();
    let ports = cloud.json("nefos-demo", &["port", "list", "--server", &auto]);
    assert_eq!(ports.as_array().map(Vec::len), Some(1), "{ports}");
    let on = cloud.json(
        "nefos-demo",
        &["port", "show", ports[0]["ID"].as_str().unwrap()],
    );
    assert_eq!(on["network_id"], net_a.as_str(), "{on}");
    cloud.ok("nefos-demo", &["server", "delete", "--wait", &auto]);

    floating_ips_reach_vms_from_outside(&cloud, &outside, &pa, &vm_a, &vm_b, (&kamaki, &serial_a));

    let lease = Duration::from_secs(70);
    if let Some(rest) = lease.checked_sub(restarted.elapsed()) {
        std::thread::sleep(rest);
    }
    let console = cloud.console(&vm_b);
    let since: Vec<&str> = console
        .lines()
        .filter(|line| line.contains("STATE http-a2"))
        .skip(seen)
        .collect();
    assert!(
        since.iter().all(|line| !line.contains("down")),
        "vm-a stopped answering after the restarts: {since:?}"
    );
    // It boots again (its console, on the node it moved back to, began after the moves).
    let boots = cloud.console(&vm_a).matches("NEFOS-GUEST-READY").count();
    cloud.ok(
        "nefos-demo",
        &["server", "reboot", "--hard", "--wait", &vm_a],
    );
    let started = Instant::now();
    while cloud.console(&vm_a).matches("NEFOS-GUEST-READY").count() <= boots {
        assert!(started.elapsed() < BOOT, "vm-a did not boot again");
        std::thread::sleep(Duration::from_millis(300));
    }
    cloud.wait_state(&vm_b, "http-a2", "up");

    // Renumbering: net-a moves to 10.9.0.0/24 while its VMs run; they follow by DHCP
    // within a lease time (60 s here) and talk at their new addresses.
    let net_a = cloud.json("nefos-demo", &["network", "show", "net-a"]);
    let moved = common::admin_ok(&[
        "network",
        "renumber",
        net_a["id"].as_str().unwrap(),
        "--to",
        "10.9.0.0/24",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(
        moved.contains("10.0.0.11") && moved.contains("10.9.0.11"),
        "{moved}"
    );
    cloud.wait_state_within(&vm_b, "renumbered", "up", Duration::from_secs(150));
    let port = cloud.json("nefos-demo", &["port", "show", &pa]);
    assert_eq!(port["fixed_ips"][0]["ip_address"], "10.9.0.11", "{port}");

    // Deleting the servers: the ports they were given stay, unbound; the nodes keep
    // nothing of the networks.
    for server in [&vm_a, &vm_b, &vm_c, &vm_d, &vm_e] {
        cloud.ok("nefos-admin", &["server", "delete", "--wait", server]);
    }
    for port in [&pa, &pb, &pd, &pe] {
        let shown = cloud.json("nefos-demo", &["port", "show", port]);
        assert_eq!(shown["device_id"], "", "{shown}");
        assert_eq!(shown["status"], "DOWN", "{shown}");
        assert!(
            shown["binding_host_id"].is_null() || shown["binding_host_id"] == "",
            "{shown}"
        );
    }
    let started = Instant::now();
    for node in &cloud.nodes {
        loop {
            let devices: Vec<String> = Lab::devices(&node.namespace)
                .into_iter()
                .filter(|d| d.starts_with("nf"))
                .collect();
            let ruleset = Lab::ruleset(&node.namespace);
            if devices.is_empty() && !ruleset.contains("nefos") {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} keeps {devices:?} and:\n{ruleset}",
                node.namespace
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // Only the agent itself runs there: no QEMU is left.
        assert_eq!(Lab::pids(&node.namespace).len(), 1, "{}", node.namespace);
    }
    assert_eq!(router_namespaces(), Vec::<String>::new());
    for port in [&pa, &pb, &pd, &pe] {
        cloud.ok("nefos-demo", &["port", "delete", port]);
    }
    cloud.ok("nefos-demo", &["security", "group", "delete", "locked"]);
    drop(control_plane);
    drop(lab);
}

/// The router namespaces on the machine (only this test makes routers).
fn router_namespaces() -> Vec<String> {
    let output = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with("nfr-"))
        .map(str::to_owned)
        .collect()
}

/// What host `outside` gets from `address`'s TCP port `port` (HTTP's page or SSH's
/// banner), if it gets through.
fn fetch_from(outside: &str, address: &str, port: u16) -> Option<String> {
    let script = format!(
        "exec 3<>/dev/tcp/{address}/{port} || exit 1; \
         [ {port} = 80 ] && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; \
         head -c 300 <&3"
    );
    let output = Lab::run(outside, "timeout", &["3", "bash", "-c", &script]);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (!text.is_empty()).then_some(text)
}

/// Waits until `outside` reaching `address`:`port` is `wanted` (the page or banner
/// containing `expect`, or nothing getting through).
fn wait_reach(outside: &str, address: &str, port: u16, expect: &str, wanted: bool) {
    let started = Instant::now();
    loop {
        let got = fetch_from(outside, address, port);
        if got.as_deref().is_some_and(|text| text.contains(expect)) == wanted {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{address}:{port} from outside: wanted reachable={wanted}, got {got:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A router joins net-a to the provider's public network: vm-b (no floating IP) reaches
/// the outside host through SNAT; a floating IP on vm-a's port lets the outside reach
/// its SSH and HTTP once its security group allows them, and disassociating it shuts the
/// way in again.
fn floating_ips_reach_vms_from_outside(
    cloud: &Cloud,
    outside: &str,
    pa: &str,
    vm_a: &str,
    vm_b: &str,
    (kamaki, serial_a): (&Kamaki, &str),
) {
    cloud.ok(
        "nefos-admin",
        &["network", "create", "--external", "public"],
    );
    cloud.ok(
        "nefos-admin",
        &[
            "subnet",
            "create",
            "--network",
            "public",
            "--subnet-range",
            "203.0.113.0/24",
            "--gateway",
            "203.0.113.1",
            "--allocation-pool",
            "start=203.0.113.10,end=203.0.113.50",
            "--no-dhcp",
            "public-v4",
        ],
    );
    cloud.ok("nefos-demo", &["router", "create", "r1"]);
    cloud.ok("nefos-demo", &["router", "add", "subnet", "r1", "net-a-v4"]);
    cloud.ok(
        "nefos-demo",
        &["router", "set", "r1", "--external-gateway", "public"],
    );
    let router = cloud.json("nefos-demo", &["router", "show", "r1"]);
    assert_eq!(
        router["external_gateway_info"]["network_id"],
        cloud.json("nefos-demo", &["network", "show", "public"])["id"],
        "{router}"
    );
    cloud.wait_state(vm_b, "snat", "up");
    // On net-a's IPv6 subnet too, the router is the guests' default, as the nodes'
    // advertisements now say.
    cloud.wait_state(vm_a, "v6route", "down");
    cloud.ok("nefos-demo", &["router", "add", "subnet", "r1", "net-a-v6"]);
    cloud.wait_state(vm_a, "v6route", "up");

    let floating = cloud.json("nefos-demo", &["floating", "ip", "create", "public"]);
    let address = floating["floating_ip_address"].as_str().unwrap().to_owned();
    assert!(address.starts_with("203.0.113."), "{floating}");
    // A port with no router to the public network cannot have one.
    let refused = cloud.os.run(
        &cloud.clouds,
        "other",
        &["floating", "ip", "create", "public", "--port", "pc"],
    );
    assert!(!refused.status.success());
    cloud.ok(
        "nefos-demo",
        &["floating", "ip", "set", "--port", pa, &address],
    );
    let shown = cloud.json("nefos-demo", &["floating", "ip", "show", &address]);
    assert_eq!(shown["status"], "ACTIVE", "{shown}");
    assert_eq!(shown["fixed_ip_address"], "10.0.0.11", "{shown}");
    // The default group lets nothing in from outside yet.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fetch_from(outside, &address, 80), None);
    let mut rules = Vec::new();
    for port in ["22", "80"] {
        let rule = cloud.json(
            "nefos-demo",
            &[
                "security",
                "group",
                "rule",
                "create",
                "--ingress",
                "--protocol",
                "tcp",
                "--dst-port",
                port,
                "--remote-ip",
                "0.0.0.0/0",
                "default",
            ],
        );
        rules.push(rule["id"].as_str().unwrap().to_owned());
    }
    wait_reach(outside, &address, 80, "nefos-tiny vm-a", true);
    wait_reach(outside, &address, 22, "SSH-2.0", true);
    // The rule's removal shuts HTTP out; SSH stays.
    cloud.ok(
        "nefos-demo",
        &["security", "group", "rule", "delete", &rules[1]],
    );
    wait_reach(outside, &address, 80, "nefos-tiny vm-a", false);
    wait_reach(outside, &address, 22, "SSH-2.0", true);
    vm_a_moves_with_its_port_and_floating_ip(cloud, outside, pa, vm_a, &address);
    // Disassociated, nothing gets in.
    cloud.ok(
        "nefos-demo",
        &["floating", "ip", "unset", "--port", &address],
    );
    wait_reach(outside, &address, 22, "SSH-2.0", false);
    let shown = cloud.json("nefos-demo", &["floating", "ip", "show", &address]);
    assert_eq!(shown["status"], "DOWN", "{shown}");
    // kamaki's way, with a second floating IP (the quota raised through Neutron's API):
    // `ip create` picks the public network, `ip attach` gives the server the address,
    // `ip detach` takes it away again.
    cloud.ok(
        "nefos-admin",
        &["quota", "set", "--floating-ips", "2", "demo"],
    );
    let made = kamaki.json(&["ip", "create"]);
    let kamaki_ip = made["floating_ip_address"].as_str().unwrap().to_owned();
    let kamaki_ip_id = made["id"].as_str().unwrap().to_owned();
    assert!(kamaki.ok(&["ip", "list"]).contains(&kamaki_ip));
    kamaki.ok(&["ip", "attach", &kamaki_ip, "--server-id", serial_a]);
    let info = kamaki.json(&["ip", "info", &kamaki_ip_id]);
    assert_eq!(info["instance_id"], serial_a, "{info}");
    wait_reach(outside, &kamaki_ip, 22, "SSH-2.0", true);
    kamaki.ok(&["ip", "detach", &kamaki_ip]);
    wait_reach(outside, &kamaki_ip, 22, "SSH-2.0", false);
    kamaki.ok(&["ip", "delete", &kamaki_ip_id]);
    cloud.ok(
        "nefos-demo",
        &["security", "group", "rule", "delete", &rules[0]],
    );

    // The router's ports are its own: the port API refuses them.
    let ports = cloud.json(
        "nefos-demo",
        &["port", "list", "--device-owner", "network:router_interface"],
    );
    let interface = ports[0]["ID"].as_str().unwrap().to_owned();
    let refused = cloud
        .os
        .run(&cloud.clouds, "nefos-demo", &["port", "delete", &interface]);
    assert!(!refused.status.success());
    cloud.ok("nefos-demo", &["floating", "ip", "delete", &address]);
    cloud.ok(
        "nefos-demo",
        &["router", "unset", "--external-gateway", "r1"],
    );
    cloud.ok(
        "nefos-demo",
        &["router", "remove", "subnet", "r1", "net-a-v4"],
    );
    cloud.ok(
        "nefos-demo",
        &["router", "remove", "subnet", "r1", "net-a-v6"],
    );
    // Without the router the advertisements name none, and guests drop the route.
    cloud.wait_state(vm_a, "v6route", "down");
    cloud.ok("nefos-demo", &["router", "delete", "r1"]);
    cloud.ok("nefos-admin", &["network", "delete", "public"]);
}

/// Live migration: vm-a moves to the other node and back while it runs, its port, its
/// floating IP and its security groups with it. The outside reaches its SSH at the
/// floating IP throughout but for the switch's short gap (measured, and printed); vm-b
/// keeps reaching its HTTP at its private address (the caller's check of vm-b's watch);
/// the node it left keeps no tap of it.
fn vm_a_moves_with_its_port_and_floating_ip(
    cloud: &Cloud,
    outside: &str,
    pa: &str,
    vm_a: &str,
    floating: &str,
) {
    let ticked = nefos_test_utils::ticks(&cloud.console(vm_a));
    let tap = nefos_node_api::tap_name(pa);
    for _ in 0..2 {
        let from = cloud.json("nefos-admin", &["server", "show", vm_a])["OS-EXT-SRV-ATTR:host"]
            .as_str()
            .unwrap()
            .to_owned();
        let to = cloud.nodes.iter().find(|n| n.id != from).unwrap();
        let gap = longest_gap(outside, floating, 22, || {
            cloud.ok(
                "nefos-admin",
                &[
                    "--os-compute-api-version",
                    "2.30",
                    "server",
                    "migrate",
                    "--live-migration",
                    "--host",
                    &to.id,
                    "--wait",
                    vm_a,
                ],
            );
        });
        eprintln!(
            "vm-a moved from {from} to {}: SSH at its floating IP unanswered for at most {gap:?}",
            to.id
        );
        assert!(gap < Duration::from_secs(5), "{gap:?}");
        let server = cloud.json("nefos-admin", &["server", "show", vm_a]);
        if server["OS-EXT-SRV-ATTR:host"] != to.id.as_str() {
            let data = cloud.clouds.parent().unwrap().to_str().unwrap().to_owned();
            let moves = common::admin_ok(&["server", "migrations", vm_a, "--data", &data]);
            panic!("vm-a did not move to {}:\n{moves}\n{server}", to.id);
        }
        assert_eq!(server["status"], "ACTIVE", "{server}");
        let port = cloud.json("nefos-admin", &["port", "show", pa]);
        assert_eq!(port["binding_host_id"], to.id.as_str(), "{port}");
        let left = cloud.nodes.iter().find(|n| n.id == from).unwrap();
        let started = Instant::now();
        while Lab::devices(&left.namespace).contains(&tap) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{from} keeps {tap}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(Lab::devices(&to.namespace).contains(&tap));
    }
    // Its console is the one its last node keeps: only the ticks, going on from where
    // they were, and no boot.
    let console = cloud.console(vm_a);
    assert!(
        !console.contains("NEFOS-GUEST-READY"),
        "vm-a booted again:\n{console}"
    );
    let after = nefos_test_utils::ticks(&console);
    assert!(after.first() > ticked.last(), "{ticked:?} then {after:?}");
}

/// The longest time `outside` could not open `address`:`port`, tried every 50 ms while
/// `during` runs and for three seconds after.
fn longest_gap(outside: &str, address: &str, port: u16, during: impl FnOnce()) -> Duration {
    let script = format!(
        "while :; do if timeout 0.5 bash -c 'exec 3<>/dev/tcp/{address}/{port}' \
         2>/dev/null; then date +%s.%N; fi; sleep 0.05; done"
    );
    let mut probe = Lab::command(outside, "bash")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = probe.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| line.trim().parse::<f64>().ok())
            .collect::<Vec<f64>>()
    });
    during();
    std::thread::sleep(Duration::from_secs(3));
    let _ = probe.kill();
    let _ = probe.wait();
    let answered = reader.join().unwrap();
    assert!(answered.len() > 10, "the probe hardly ever got through");
    let longest = answered
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .fold(0.0, f64::max);
    Duration::from_secs_f64(longest)
}

/// The Cyclades serial of server `name`, as kamaki names servers.
fn serial(kamaki: &Kamaki, name: &str) -> String {
    let servers = kamaki.json(&["server", "list"]);
    servers
        .as_array()
        .unwrap()
        .iter()
        .find(|server| server["name"] == name)
        .and_then(|server| server["id"].as_i64())
        .unwrap_or_else(|| panic!("kamaki lists no {name}: {servers}"))
        .to_string()
}

/// The QEMU processes running in `namespace`.
fn qemus(namespace: &str) -> Vec<u32> {
    Lab::pids(namespace)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.starts_with("qemu"))
        })
        .collect()
}

/// A security group rule for ICMPv6 within net-a's IPv6 subnet, in `group`.
fn icmp6_rule(cloud: &Cloud, direction: &str, group: &str) -> String {
    let rule = cloud.json(
        "nefos-demo",
        &[
            "security",
            "group",
            "rule",
            "create",
            direction,
            "--ethertype",
            "IPv6",
            "--protocol",
            "ipv6-icmp",
            "--remote-ip",
            "fd00:a::/64",
            group,
        ],
    );
    rule["id"].as_str().unwrap().to_owned()
}

/// The same both ways over IPv6: vm-e (group `locked`) is let in by a rule and shut out
/// by its removal; it gets out while its group's IPv6 egress rule is there, not after,
/// and again with a narrower one.
fn ipv6_groups_allow_and_deny(cloud: &Cloud, vm_a: &str, vm_e: &str) {
    // vm-a's default group lets in only its members until ICMPv6 from the subnet is allowed.
    cloud.wait_state(vm_e, "out6-a", "down");
    icmp6_rule(cloud, "--ingress", "default");
    cloud.wait_state(vm_e, "out6-a", "up");
    // Ingress to vm-e.
    cloud.wait_state(vm_a, "ping6-e", "down");
    let inbound = icmp6_rule(cloud, "--ingress", "locked");
    cloud.wait_state(vm_a, "ping6-e", "up");
    cloud.ok(
        "nefos-demo",
        &["security", "group", "rule", "delete", &inbound],
    );
    cloud.wait_state(vm_a, "ping6-e", "down");
    // Egress from vm-e.
    let rules = cloud.json(
        "nefos-demo",
        &["security", "group", "rule", "list", "--egress", "locked"],
    );
    let egress = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| rule["Ethertype"] == "IPv6" && rule["IP Protocol"].is_null())
        .and_then(|rule| rule["ID"].as_str())
        .unwrap_or_else(|| panic!("no IPv6 egress rule: {rules}"))
        .to_owned();
    cloud.ok(
        "nefos-demo",
        &["security", "group", "rule", "delete", &egress],
    );
    cloud.wait_state(vm_e, "out6-a", "down");
    icmp6_rule(cloud, "--egress", "locked");
    cloud.wait_state(vm_e, "out6-a", "up");
}
