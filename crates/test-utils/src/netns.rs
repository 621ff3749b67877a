//! Hosts as network namespaces, for tests of nefos's networks: a "switch" namespace holds
//! a bridge, and each host is a namespace of its own with an `eth0` joined to that bridge
//! by a veth pair. Nothing is made in the machine's own namespace and no traffic leaves
//! these namespaces. Dropping the lab ends every process still in its namespaces (QEMUs
//! the test's node agents started) and deletes the namespaces, and with them every
//! device in them.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static LABS: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
pub struct Lab {
    prefix: String,
    switch: String,
    hosts: Vec<String>,
    /// How many veth pairs the switches have.
    ports: u32,
}

/// Runs `ip ARGS`, which must succeed.
fn ip(args: &[&str]) -> String {
    let output = Command::new("ip").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Lab {
    pub fn new() -> Lab {
        let prefix = format!(
            "nfl{}x{}",
            std::process::id(),
            LABS.fetch_add(1, Ordering::Relaxed)
        );
        let switch = format!("{prefix}-switch");
        ip(&["netns", "add", &switch]);
        ip(&["-n", &switch, "link", "add", "switch", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "switch", "up"]);
        Lab {
            prefix,
            switch,
            hosts: Vec::new(),
            ports: 0,
        }
    }

    /// A host on the switch with `address` (a CIDR) on its `eth0`; its namespace's name.
    pub fn host(&mut self, name: &str, address: &str) -> String {
        let namespace = self.namespace(name);
        let switch = self.switch.clone();
        self.plug(&switch, &namespace, "eth0", Some(address));
        namespace
    }

    /// Gives host `namespace` a device `device` on the public switch (the provider's
    /// network, made at its first use), with `address` if given.
    pub fn join_public(&mut self, namespace: &str, device: &str, address: Option<&str>) {
        let switch = self.public_switch();
        self.plug(&switch, namespace, device, address);
    }

    /// A host on the public switch only (the world outside the cloud), with `address` on
    /// its `eth0`.
    pub fn outside(&mut self, name: &str, address: &str) -> String {
        let namespace = self.namespace(name);
        let switch = self.public_switch();
        self.plug(&switch, &namespace, "eth0", Some(address));
        namespace
    }

    fn namespace(&mut self, name: &str) -> String {
        let namespace = format!("{}-{name}", self.prefix);
        ip(&["netns", "add", &namespace]);
        self.hosts.push(namespace.clone());
        ip(&["-n", &namespace, "link", "set", "lo", "up"]);
        namespace
    }

    fn public_switch(&mut self) -> String {
        let switch = format!("{}-public", self.prefix);
        if !self.hosts.contains(&switch) {
            ip(&["netns", "add", &switch]);
            self.hosts.push(switch.clone());
            ip(&["-n", &switch, "link", "add", "switch", "type", "bridge"]);
            ip(&["-n", &switch, "link", "set", "switch", "up"]);
        }
        switch
    }

    /// A veth pair from `switch`'s bridge to `device` in `namespace`.
    fn plug(&mut self, switch: &str, namespace: &str, device: &str, address: Option<&str>) {
        self.ports += 1;
        let port = format!("port{}", self.ports);
        ip(&[
            "-n", switch, "link", "add", &port, "type", "veth", "peer", "name", device, "netns",
            namespace,
        ]);
        ip(&["-n", switch, "link", "set", &port, "master", "switch", "up"]);
        if let Some(address) = address {
            ip(&["-n", namespace, "addr", "add", address, "dev", device]);
        }
        ip(&["-n", namespace, "link", "set", device, "up"]);
    }

    /// `program` to run inside `namespace`.
    pub fn command(namespace: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", namespace]).arg(program);
        command
    }

    /// Runs `program ARGS` inside `namespace`.
    pub fn run(namespace: &str, program: &str, args: &[&str]) -> Output {
        Lab::command(namespace, program)
            .args(args)
            .output()
            .unwrap()
    }

    /// The names of the network devices in `namespace`.
    pub fn devices(namespace: &str) -> Vec<String> {
        let text = ip(&["-n", namespace, "-o", "link", "show"]);
        text.lines()
            .filter_map(|line| line.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_owned())
            .collect()
    }

    /// The nftables ruleset of `namespace`.
    pub fn ruleset(namespace: &str) -> String {
        let output = Lab::run(namespace, "nft", &["list", "ruleset"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The processes still running in `namespace`.
    pub fn pids(namespace: &str) -> Vec<u32> {
        ip(&["netns", "pids", namespace])
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for namespace in self.hosts.iter().chain([&self.switch]) {
            for pid in Lab::pids(namespace) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .status();
        }
    }
}
