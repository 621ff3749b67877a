//! Networks through the real `openstack` CLI against `nefos up`: networks, subnets and
//! ports as a user makes them, Neutron's refusals as the CLI shows them, and the
//! operator's `nefos admin network pool add` ending a full pool while the cloud runs,
//! then `ip-history` naming who held an address.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use nefos_test_utils::OpenStack;
use serde_json::{Value, json};

fn ids(listing: &Value) -> Vec<&str> {
    listing
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {listing}"))
        .iter()
        .map(|row| row["ID"].as_str().unwrap())
        .collect()
}

/// The limit `quota show` prints for `resource`.
fn limit(quota: &Value, resource: &str) -> Option<Value> {
    quota
        .as_array()?
        .iter()
        .find(|row| row["Resource"] == resource)
        .map(|row| row["Limit"].clone())
}

fn address(port: &Value) -> String {
    port["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap_or_else(|| panic!("no fixed IP: {port}"))
        .to_owned()
}

#[tokio::test]
async fn networks_subnets_and_ports_through_the_openstack_cli() {
    let os = OpenStack::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _nefos = common::up(&data);
    let clouds = data.join("clouds.yaml");
    let demo = |args: &[&str]| os.json(&clouds, "nefos-demo", args);

    let network = demo(&["network", "create", "lab"]);
    let network_id = network["id"].as_str().unwrap().to_owned();
    assert_eq!(network["status"], "ACTIVE", "{network}");
    assert_eq!(network["mtu"], 1450, "{network}");
    let subnet = demo(&[
        "subnet",
        "create",
        "--network",
        "lab",
        "--subnet-range",
        "10.20.0.0/24",
        "--dns-nameserver",
        "192.0.2.53",
        "lab-v4",
    ]);
    assert_eq!(subnet["gateway_ip"], "10.20.0.1", "{subnet}");
    assert_eq!(
        subnet["allocation_pools"][0]["start"], "10.20.0.2",
        "{subnet}"
    );
    assert_eq!(subnet["dns_nameservers"][0], "192.0.2.53", "{subnet}");

    // Names resolve (the CLI lists with ?name= after a 404), addresses are given.
    let any = demo(&["port", "create", "--network", "lab", "p1"]);
    let p1 = address(&any);
    assert!(p1.starts_with("10.20.0."), "{any}");
    let asked = demo(&[
        "port",
        "create",
        "--network",
        "lab",
        "--fixed-ip",
        "subnet=lab-v4,ip-address=10.20.0.50",
        "p2",
    ]);
    assert_eq!(address(&asked), "10.20.0.50", "{asked}");
    let taken = os.run(
        &clouds,
        "nefos-demo",
        &[
            "port",
            "create",
            "--network",
            "lab",
            "--fixed-ip",
            "ip-address=10.20.0.50",
            "p3",
        ],
    );
    assert!(!taken.status.success());
    let said = String::from_utf8_lossy(&taken.stderr);
    assert!(
        said.contains("IP address 10.20.0.50 already allocated"),
        "{said}"
    );
    // Allowed address pairs: the port's own MAC unless another is named; they need
    // port security, which they loosen.
    os.ok(
        &clouds,
        "nefos-demo",
        &[
            "port",
            "set",
            "--allowed-address",
            "ip-address=10.20.0.200",
            "--allowed-address",
            "ip-address=10.21.0.0/24,mac-address=fa:16:3e:00:00:aa",
            "p2",
        ],
    );
    let shown = demo(&["port", "show", "p2"]);
    let pairs = &shown["allowed_address_pairs"];
    assert_eq!(pairs[0]["ip_address"], "10.20.0.200", "{shown}");
    assert_eq!(pairs[0]["mac_address"], shown["mac_address"], "{shown}");
    assert_eq!(pairs[1]["ip_address"], "10.21.0.0/24", "{shown}");
    assert_eq!(pairs[1]["mac_address"], "fa:16:3e:00:00:aa", "{shown}");
    let unguarded = os.run(
        &clouds,
        "nefos-demo",
        &["port", "set", "--disable-port-security", "p2"],
    );
    assert!(!unguarded.status.success());
    let said = String::from_utf8_lossy(&unguarded.stderr);
    assert!(
        said.contains("Port Security must be enabled in order to have allowed address pairs"),
        "{said}"
    );
    let bad = os.run(
        &clouds,
        "nefos-demo",
        &[
            "port",
            "set",
            "--allowed-address",
            "ip-address=10.20.0.1/24",
            "p2",
        ],
    );
    assert!(!bad.status.success());
    os.ok(
        &clouds,
        "nefos-demo",
        &["port", "set", "--no-allowed-address", "p2"],
    );
    let shown = demo(&["port", "show", "p2"]);
    assert_eq!(shown["allowed_address_pairs"], json!([]), "{shown}");

    let listed = demo(&["port", "list", "--network", "lab"]);
    assert_eq!(ids(&listed).len(), 2, "{listed}");
    let shown = demo(&["network", "show", "lab"]);
    assert_eq!(shown["id"], network_id.as_str(), "{shown}");
    assert_eq!(
        shown["subnets"].as_array().map(Vec::len),
        Some(1),
        "{shown}"
    );

    // Quotas come from the quota engine: two private networks, eight ports.
    let quota = demo(&["quota", "show"]);
    assert_eq!(limit(&quota, "networks"), Some(Value::from(2)), "{quota}");
    assert_eq!(limit(&quota, "ports"), Some(Value::from(8)), "{quota}");
    assert_eq!(
        limit(&quota, "floating_ips"),
        Some(Value::from(1)),
        "{quota}"
    );
    // An administrator sets them through Neutron's quota API, a member may not.
    os.ok(
        &clouds,
        "nefos-admin",
        &["quota", "set", "--networks", "3", "--ports", "12", "demo"],
    );
    let quota = demo(&["quota", "show"]);
    assert_eq!(limit(&quota, "networks"), Some(Value::from(3)), "{quota}");
    assert_eq!(limit(&quota, "ports"), Some(Value::from(12)), "{quota}");
    let refused = os.run(
        &clouds,
        "nefos-demo",
        &["quota", "set", "--networks", "30", "demo"],
    );
    assert!(!refused.status.success());
    // With --check-limit no limit goes below what is in use (the lab network).
    let below = os.run(
        &clouds,
        "nefos-admin",
        &["quota", "set", "--check-limit", "--networks", "0", "demo"],
    );
    let said = String::from_utf8_lossy(&below.stderr);
    assert!(
        said.contains("must be greater than or equal to already used and reserved 1"),
        "{said}"
    );

    // An administrator finds it by its project.
    let admin_sees = os.json(
        &clouds,
        "nefos-admin",
        &["network", "list", "--project", "demo"],
    );
    assert!(
        ids(&admin_sees).contains(&network_id.as_str()),
        "{admin_sees}"
    );

    // In use: the network stays while ports hold it.
    let refused = os.run(&clouds, "nefos-demo", &["network", "delete", "lab"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("ports still in use"), "{said}");

    // A small pool runs out; the operator adds addresses while the cloud runs.
    let small = demo(&[
        "subnet",
        "create",
        "--network",
        "lab",
        "--subnet-range",
        "10.20.1.0/24",
        "--allocation-pool",
        "start=10.20.1.10,end=10.20.1.10",
        "small",
    ]);
    assert_eq!(small["allocation_pools"][0]["end"], "10.20.1.10", "{small}");
    demo(&[
        "port",
        "create",
        "--network",
        "lab",
        "--fixed-ip",
        "subnet=small",
        "s1",
    ]);
    let full = os.run(
        &clouds,
        "nefos-demo",
        &[
            "port",
            "create",
            "--network",
            "lab",
            "--fixed-ip",
            "subnet=small",
            "s2",
        ],
    );
    assert!(!full.status.success());
    let said = String::from_utf8_lossy(&full.stderr);
    assert!(said.contains("No more IP addresses available"), "{said}");
    let data_arg = data.to_str().unwrap();
    let grew = common::admin_ok(&[
        "network",
        "pool",
        "add",
        "--data",
        data_arg,
        &network_id,
        "10.20.1.0/24",
        "--range",
        "10.20.1.11-10.20.1.11",
    ]);
    assert!(
        grew.contains("grew") && grew.contains("10.20.1.11"),
        "{grew}"
    );
    let s2 = demo(&[
        "port",
        "create",
        "--network",
        "lab",
        "--fixed-ip",
        "subnet=small",
        "s2",
    ]);
    assert_eq!(address(&s2), "10.20.1.11", "{s2}");

    // Everything goes; the history keeps who held 10.20.0.50.
    for port in ["p1", "p2", "s1", "s2"] {
        os.ok(&clouds, "nefos-demo", &["port", "delete", port]);
    }
    os.ok(&clouds, "nefos-demo", &["network", "delete", "lab"]);
    assert!(ids(&demo(&["network", "list"])).is_empty());
    let history = common::admin_ok(&[
        "network",
        "ip-history",
        "--data",
        data_arg,
        "10.20.0.50",
        "--json",
    ]);
    let history: Value = serde_json::from_str(&history).unwrap();
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");
    assert_eq!(history[0]["port_id"], asked["id"], "{history}");
    assert!(history[0]["released_at"].is_string(), "{history}");
}
