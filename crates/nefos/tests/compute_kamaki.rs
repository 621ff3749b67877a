//! Servers through kamaki 0.16 (Synnefo's CLI) and Cyclades' API at `/compute/v2.0`:
//! the tiny guest uploaded with `kamaki file upload` and registered with `kamaki image
//! register` boots a server kamaki creates; kamaki lists, shows, stops, starts and
//! reboots it, opens its VNC console (a VNC client logs in with the one-time password
//! and sees the guest's screen), and deletes it, after which it shows as DELETED.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::account::create_user;
use common::vms::{Cloud, Node, guest_image};
use common::*;
use nefos_test_utils::{Kamaki, vnc_login};
use serde_json::Value;

/// Waits until the node's only VM has printed the guest's ready marker `count` times.
async fn wait_for_boots(node: &Node, count: usize) {
    let started = Instant::now();
    loop {
        let vms = node.rpc.list_vms().await.unwrap();
        let console = match vms.first() {
            Some(vm) => node.rpc.console(&vm.id, 1 << 20).await.unwrap().output,
            None => String::new(),
        };
        if console.matches("NEFOS-GUEST-READY").count() >= count {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the guest did not boot {count} times: {console}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn kamaki_runs_servers_from_an_image_it_registered() {
    let cloud = Cloud::empty().await;
    let node = Node::start(&cloud, "node-k").await;
    let url = cloud.process.url.clone();
    let client = http();
    let password = read_credentials(cloud.data.path())["demo"].clone();
    let (demo_token, _) = token(&client, &url, "demo", &password, Some("demo")).await;
    let token = demo_token;
    let kamaki = Kamaki::new(&url, &token);

    let flavors = kamaki.ok(&["flavor", "list"]);
    assert!(flavors.contains("m1.nano"), "{flavors}");

    // The guest, uploaded and registered with kamaki: an image of the object, no copy.
    let guest = guest_image();
    kamaki.ok(&["container", "create", "images"]);
    kamaki.ok(&[
        "file",
        "upload",
        guest.to_str().unwrap(),
        "/images/tiny.raw",
    ]);
    kamaki.ok(&[
        "image",
        "register",
        "--name",
        "tiny",
        "--location",
        "/images/tiny.raw",
        "-p",
        "OS=nefos",
        "-p",
        "USERS=root",
    ]);
    let images = get_json(&client, &format!("{url}/image/v2/images?name=tiny"), &token).await;
    let image = images["images"][0]["id"].as_str().unwrap().to_owned();

    // Created from it, waited for, and booted; kamaki copied the image's os and users.
    let created = kamaki.json(&[
        "server",
        "create",
        "--name",
        "kappa",
        "--flavor-id",
        "6",
        "--image-id",
        &image,
    ]);
    assert_eq!(created["status"], "BUILD", "{created}");
    assert!(created["adminPass"].as_str().is_some(), "{created}");
    let id = created["id"].as_i64().unwrap().to_string();
    kamaki.ok(&["server", "wait", &id, "--timeout", "120"]);
    let info = kamaki.json(&["server", "info", &id]);
    assert_eq!(info["status"], "ACTIVE", "{info}");
    assert_eq!(info["flavor"]["id"], 6, "{info}");
    assert_eq!(info["image"]["id"], image.as_str(), "{info}");
    assert_eq!(info["metadata"]["os"], "nefos", "{info}");
    assert_eq!(info["metadata"]["users"], "root", "{info}");
    assert_eq!(info["SNF:task_state"], "", "{info}");
    wait_for_boots(&node, 1).await;
    let listed = kamaki.ok(&["server", "list"]);
    assert!(listed.contains("kappa") && listed.contains(&id), "{listed}");

    // Power: each waited for as kamaki waits, the state the node reported.
    kamaki.ok(&["server", "shutdown", &id, "-w"]);
    assert_eq!(kamaki.json(&["server", "info", &id])["status"], "STOPPED");
    assert!(node.qemu_pids().is_empty());
    kamaki.ok(&["server", "start", &id, "-w"]);
    assert_eq!(kamaki.json(&["server", "info", &id])["status"], "ACTIVE");
    wait_for_boots(&node, 2).await;
    kamaki.ok(&["server", "reboot", &id, "-w"]);
    wait_for_boots(&node, 3).await;
    let diagnostics = kamaki.ok(&["server", "info", &id, "--diagnostics"]);
    assert!(diagnostics.contains("reboot"), "{diagnostics}");

    // The console: a VNC client logs in with the one-time password and sees the guest.
    let console = kamaki.json(&["server", "console", &id]);
    assert_eq!(console["type"], "vnc", "{console}");
    let host = console["host"].as_str().unwrap();
    let port = u16::try_from(console["port"].as_u64().unwrap()).unwrap();
    let password = console["password"].as_str().unwrap().to_owned();
    // VNC keys on the first 8 bytes only: a wrong password differs within them.
    let wrong: String = std::iter::once(if password.starts_with('A') { 'B' } else { 'A' })
        .chain(password.chars().skip(1))
        .collect();
    let host_owned = host.to_owned();
    let refused = tokio::task::spawn_blocking(move || vnc_login(&host_owned, port, &wrong))
        .await
        .unwrap();
    assert_eq!(refused, Err("Authentication failed".to_owned()));
    // Each console is one connection: a new one for the right password.
    let console = kamaki.json(&["server", "console", &id]);
    let port = u16::try_from(console["port"].as_u64().unwrap()).unwrap();
    let password = console["password"].as_str().unwrap().to_owned();
    let host_owned = host.to_owned();
    let screen = tokio::task::spawn_blocking(move || vnc_login(&host_owned, port, &password))
        .await
        .unwrap()
        .unwrap();
    assert!(screen.width > 0 && screen.height > 0, "{screen:?}");
    assert!(screen.name.contains("kappa"), "{screen:?}");

    // Another project's user sees nothing of it.
    let admin = admin_token(&client, &url, cloud.data.path()).await;
    let bob = create_user(&client, &url, &admin, "bob").await;
    let (bob_token, _) = common::token(&client, &url, "bob", &bob.password, Some("bob")).await;
    let bob_kamaki = kamaki.with_token(&url, &bob_token);
    assert!(!bob_kamaki.run(&["server", "info", &id]).status.success());
    let bobs: Value = get_json(&client, &format!("{url}/compute/v2.0/servers"), &bob_token).await;
    assert_eq!(bobs["servers"], serde_json::json!([]));

    // Deleted, and still shown, as DELETED.
    kamaki.ok(&["server", "delete", &id, "-w"]);
    let deleted = kamaki.json(&["server", "info", &id]);
    assert_eq!(deleted["status"], "DELETED", "{deleted}");
    assert_eq!(deleted["deleted"], true, "{deleted}");
    assert!(node.qemu_pids().is_empty());
    assert!(node.vm_dirs().is_empty(), "{:?}", node.vm_dirs());
    let listed = kamaki.ok(&["server", "list"]);
    assert!(!listed.contains("kappa"), "{listed}");
}
