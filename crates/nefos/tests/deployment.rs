//! The deployment of docs/deployment.md, on loopback: two `nefos serve` on one PostgreSQL
//! database with their blocks in S3 (moto), an administrator made by `nefos admin
//! bootstrap`, one node enrolled through one control plane and joining through the other,
//! and both public endpoints driven by the real `openstack` and `swift` CLIs: what one
//! process writes, the other serves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use nefos_test_utils::toml_str;

const ADMIN_PASSWORD: &str = "an administrator's password";
const ALICE_PASSWORD: &str = "alice's password";

/// A `nefos serve` of the cloud: its configuration file and its process.
struct ControlPlane {
    config: PathBuf,
    internal_url: String,
    process: NefosProcess,
}

fn write_config(dir: &Path, name: &str, shared: &Shared) -> (PathBuf, String, String) {
    let (port, internal) = (free_port(), free_port());
    let text = format!(
        "listen = \"127.0.0.1:{port}\"\n\
         internal_listen = \"127.0.0.1:{internal}\"\n\
         data_dir = {data}\n\
         database = {database}\n\
         cluster_secret_file = {secret}\n\
         [blocks]\n\
         backend = \"s3\"\n\
         bucket = {bucket}\n\
         endpoint = {endpoint}\n\
         access_key_id = \"testing\"\n\
         secret_access_key = \"testing\"\n\
         allow_http = true\n",
        data = toml_str(dir.join(name).to_str().unwrap()),
        database = toml_str(&shared.database),
        secret = toml_str(shared.secret.to_str().unwrap()),
        bucket = toml_str(&shared.bucket),
        endpoint = toml_str(&shared.endpoint),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    (
        path,
        format!("http://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{internal}"),
    )
}

/// What the control planes share: the database, the bucket and the control plane's key.
struct Shared {
    database: String,
    endpoint: String,
    bucket: String,
    secret: PathBuf,
}

fn start(dir: &Path, name: &str, shared: &Shared) -> ControlPlane {
    let (config, url, internal_url) = write_config(dir, name, shared);
    let args = vec![
        "serve".to_owned(),
        "--config".to_owned(),
        config.display().to_string(),
    ];
    ControlPlane {
        config,
        internal_url,
        process: NefosProcess::spawn(&binary(), &args, &url),
    }
}

/// `nefos admin --config CONFIG ARGS`, which must succeed; its stdout.
fn admin_with(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend(args);
    admin_ok(&all)
}

/// A real client from the venv, in a clean environment: none of the caller's `OS_*` or
/// `ST_*` variables, a home of its own.
fn client(env: &str, home: &Path, args: &[&str]) -> Output {
    let exe = std::env::var_os(env).unwrap_or_else(|| {
        panic!("{env} is not set: run the tests with scripts/test, which installs the CLIs")
    });
    let mut command = Command::new(exe);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("OS_") || name.starts_with("ST_") {
            command.env_remove(&*name);
        }
    }
    command
        .current_dir(home)
        .env("HOME", home)
        .args(args)
        .output()
        .unwrap()
}

fn must(output: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The Keystone v3 password options of `user`, scoped to the project named like them.
fn keystone_options(url: &str, user: &str, password: &str) -> Vec<String> {
    [
        "--os-auth-url",
        &keystone(url),
        "--os-username",
        user,
        "--os-password",
        password,
        "--os-project-name",
        user,
        "--os-user-domain-name",
        "Default",
        "--os-project-domain-name",
        "Default",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn openstack(home: &Path, url: &str, user: &str, password: &str, args: &[&str]) -> String {
    let mut all = keystone_options(url, user, password);
    all.extend(args.iter().map(|s| (*s).to_owned()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    must(
        client("NEFOS_OPENSTACK_CLI", home, &all),
        &format!("openstack {args:?} at {url}"),
    )
}

fn swift(home: &Path, url: &str, args: &[&str]) -> String {
    let mut all = keystone_options(url, "alice", ALICE_PASSWORD);
    all.extend(["--auth-version".to_owned(), "3".to_owned()]);
    all.extend(args.iter().map(|s| (*s).to_owned()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    must(
        client("NEFOS_SWIFT_CLI", home, &all),
        &format!("swift {args:?} at {url}"),
    )
}

#[tokio::test]
async fn two_control_planes_on_postgres_and_s3_with_a_node_serve_one_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let database = nefos_test_utils::postgres().await;
    let (endpoint, bucket) = nefos_test_utils::s3_bucket().await;
    let shared = Shared {
        database: database.url.clone(),
        endpoint,
        bucket,
        secret: dir.path().join("cluster-secret"),
    };

    // The first control plane creates the control plane's key; the second reads it.
    let a = start(dir.path(), "a", &shared);
    let b = start(dir.path(), "b", &shared);
    let bootstrap = admin_with(
        &a.config,
        &["bootstrap", "--admin-password", ADMIN_PASSWORD],
    );
    assert!(bootstrap.contains("admin"), "{bootstrap}");

    // A node enrolled through one control plane joins through the other's internal API.
    let enrolled = admin_with(&a.config, &["node", "enroll", "hv1"]);
    let join_token = enrolled
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("no join token in:\n{enrolled}"))
        .trim()
        .to_owned();
    let (node_dir, node_port) = vms::node_dir_and_port();
    let node_args = vms::node_args(node_dir.path(), node_port, &b.internal_url, &join_token);
    let _node = NefosProcess::spawn(
        &binary(),
        &node_args,
        &format!("http://127.0.0.1:{node_port}"),
    );
    let started = Instant::now();
    loop {
        let listed = admin_with(&b.config, &["node", "list"]);
        if listed.contains("hv1") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "hv1 never registered:\n{listed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = &a.internal_url;

    // The real openstack CLI: the administrator made by bootstrap works at both endpoints,
    // and a user created through one logs in through the other.
    let home = tempfile::tempdir().unwrap();
    let (url_a, url_b) = (a.process.url.clone(), b.process.url.clone());
    for url in [&url_a, &url_b] {
        let token = openstack(
            home.path(),
            url,
            "admin",
            ADMIN_PASSWORD,
            &["token", "issue", "-f", "value", "-c", "id"],
        );
        assert!(!token.trim().is_empty());
    }
    openstack(
        home.path(),
        &url_a,
        "admin",
        ADMIN_PASSWORD,
        &["user", "create", "--password", ALICE_PASSWORD, "alice"],
    );
    openstack(
        home.path(),
        &url_b,
        "alice",
        ALICE_PASSWORD,
        &["token", "issue"],
    );

    // The real swift CLI: uploaded through one control plane into S3, listed and
    // downloaded through the other.
    let payload: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(home.path().join("data.bin"), &payload).unwrap();
    swift(home.path(), &url_a, &["upload", "files", "data.bin"]);
    let listed = swift(home.path(), &url_b, &["list", "files"]);
    assert_eq!(listed.trim(), "data.bin");
    std::fs::remove_file(home.path().join("data.bin")).unwrap();
    swift(home.path(), &url_b, &["download", "files", "data.bin"]);
    assert!(
        std::fs::read(home.path().join("data.bin")).unwrap() == payload,
        "the object read through b differs from what was written through a"
    );

    // The blocks are in the bucket, not on either control plane's disk.
    let keys = http()
        .get(format!("{}/{}?list-type=2", shared.endpoint, shared.bucket))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(keys.contains("<Key>"), "no blocks in the bucket:\n{keys}");
    for name in ["a", "b"] {
        assert!(
            !dir.path().join(name).join("blocks").exists(),
            "control plane {name} stored blocks locally"
        );
    }
}
