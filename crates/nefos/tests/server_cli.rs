//! `nefos server …` against a control plane and a real node agent: create with --wait (the
//! guest boots), list in a table and in JSON, console, stop and start with --wait, delete
//! with --wait; a name that is not a server's, and a flavor that does not exist, are clear
//! errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};

use common::vms::{Cloud, Node};
use serde_json::Value;

/// `nefos server ARGS` as the demo user.
async fn server(cloud: &Cloud, args: &[&str]) -> Output {
    let url = cloud.process.url.clone();
    let password = nefos_test_utils::read_credentials(cloud.data.path())["demo"].clone();
    let mut all = vec!["server".to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    tokio::task::spawn_blocking(move || {
        Command::new(common::binary())
            .args(&all)
            .env("OS_AUTH_URL", format!("{url}/identity/v3"))
            .env("OS_USERNAME", "demo")
            .env("OS_PASSWORD", &password)
            .env("OS_PROJECT_NAME", "demo")
            .env_remove("OS_CLOUD")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

async fn ok(cloud: &Cloud, args: &[&str]) -> String {
    let output = server(cloud, args).await;
    assert!(
        output.status.success(),
        "nefos server {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn nefos_server_creates_runs_and_deletes_servers() {
    let cloud = Cloud::with_public_guest().await;
    let node = Node::start(&cloud, "node-a").await;

    let created: Value = serde_json::from_str(
        &ok(
            &cloud,
            &[
                "create",
                "web",
                "--image",
                "nefos-tiny",
                "--flavor",
                "m1.nano",
                "--wait",
                "-f",
                "json",
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(created["status"], "ACTIVE", "{created}");
    assert_eq!(created["name"], "web");

    let table = ok(&cloud, &["list"]).await;
    assert!(
        table.contains("web") && table.contains("ACTIVE") && table.contains("m1.nano"),
        "{table}"
    );
    let listed: Value = serde_json::from_str(&ok(&cloud, &["list", "-f", "json"]).await).unwrap();
    assert_eq!(listed[0]["id"], created["id"]);

    let started = std::time::Instant::now();
    loop {
        let console = ok(&cloud, &["console", "web"]).await;
        if console.contains("NEFOS-GUEST-READY hostname=web") {
            break;
        }
        assert!(started.elapsed().as_secs() < 60, "{console}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }

    ok(&cloud, &["stop", "--wait", "web"]).await;
    assert!(
        ok(&cloud, &["list", "-f", "value"])
            .await
            .contains("SHUTOFF")
    );
    assert!(node.qemu_pids().is_empty());
    ok(&cloud, &["start", "--wait", "web"]).await;
    assert!(
        ok(&cloud, &["list", "-f", "value"])
            .await
            .contains("ACTIVE")
    );

    let missing = server(&cloud, &["show", "nope"]).await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no server nope"));
    let bad_flavor = server(
        &cloud,
        &["create", "x", "--image", "nefos-tiny", "--flavor", "huge"],
    )
    .await;
    assert!(String::from_utf8_lossy(&bad_flavor.stderr).contains("no flavor huge"));

    ok(&cloud, &["delete", "--wait", "web"]).await;
    assert_eq!(ok(&cloud, &["list", "-f", "value"]).await, "");
    assert!(node.vm_dirs().is_empty());
}
