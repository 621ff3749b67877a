//! Images through the real `openstack` CLI against `nefos up`: create from raw and qcow2
//! files, list with filters, sorting and limits, show, set, save (the bytes come back
//! whole), sharing with another project that then lists and uses the image, delete; the
//! same bytes uploaded twice storing no new block; unsafe images refused with the reason;
//! and another project's private image a JSON 404 on every endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::account::create_user;
use nefos_test_utils::OpenStack;
use rand::{RngCore, SeedableRng};
use serde_json::Value;

const DEMO: &str = "nefos-demo";
const BOB: &str = "nefos-bob";

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

/// The names of a listing, but the demo guest `nefos up` may have published.
fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["Name"].as_str().unwrap_or("").to_owned())
        .filter(|name| name != "nefos-tiny")
        .collect()
}

#[tokio::test]
async fn openstack_cli_manages_images() {
    let os = OpenStack::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let nefos = common::up(&data);
    let client = common::http();
    let admin = common::admin_token(&client, &nefos.url, &data).await;
    let bob = create_user(&client, &nefos.url, &admin, "bob").await;
    // A clouds.yaml with bob beside the users `nefos up` wrote.
    let clouds = dir.path().join("clouds.yaml");
    let mut text = std::fs::read_to_string(data.join("clouds.yaml")).unwrap();
    text.push_str(&format!(
        "  {BOB}:\n    auth:\n      auth_url: {}/identity/v3\n      username: bob\n      password: \"{}\"\n      project_name: bob\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n",
        nefos.url, bob.password
    ));
    std::fs::write(&clouds, text).unwrap();

    // --- raw and qcow2 images from files ------------------------------------------------
    let raw = random(9 << 20, 1);
    let raw_file = dir.path().join("disk.raw");
    std::fs::write(&raw_file, &raw).unwrap();
    let raw_path = raw_file.to_str().unwrap();
    let created = os.json(
        &clouds,
        DEMO,
        &[
            "image",
            "create",
            "alpha",
            "--file",
            raw_path,
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "--property",
            "os=debian",
            "--tag",
            "base",
        ],
    );
    assert_eq!(created["status"], "active", "{created}");
    assert_eq!(created["size"], raw.len());
    let alpha = created["id"].as_str().unwrap().to_owned();

    let qcow2_file = dir.path().join("disk.qcow2");
    let status = Command::new("qemu-img")
        .args([
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            raw_path,
            qcow2_file.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let created = os.json(
        &clouds,
        DEMO,
        &[
            "image",
            "create",
            "beta",
            "--file",
            qcow2_file.to_str().unwrap(),
            "--disk-format",
            "qcow2",
            "--container-format",
            "bare",
            "--min-disk",
            "1",
        ],
    );
    assert_eq!(created["status"], "active", "{created}");
    assert_eq!(
        created["virtual_size"],
        raw.len(),
        "a qcow2's disk is its header's size"
    );

    // --- list, show, set, save ---------------------------------------------------------
    let all = os.json(&clouds, DEMO, &["image", "list"]);
    let mut listed = names(&all);
    listed.sort();
    assert_eq!(listed, ["alpha", "beta"]);
    assert_eq!(
        names(&os.json(&clouds, DEMO, &["image", "list", "--property", "os=debian"])),
        ["alpha"]
    );
    assert_eq!(
        names(&os.json(&clouds, DEMO, &["image", "list", "--tag", "base"])),
        ["alpha"]
    );
    assert_eq!(
        names(&os.json(&clouds, DEMO, &["image", "list", "--sort", "name:desc"])),
        ["beta", "alpha"]
    );
    assert_eq!(
        os.json(&clouds, DEMO, &["image", "list", "--limit", "1"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    os.ok(
        &clouds,
        DEMO,
        &[
            "image",
            "set",
            "alpha",
            "--property",
            "users=root",
            "--name",
            "alpha2",
        ],
    );
    let shown = os.json(&clouds, DEMO, &["image", "show", "alpha2"]);
    assert_eq!(shown["properties"]["users"], "root", "{shown}");
    assert_eq!(shown["properties"]["os"], "debian", "{shown}");
    let saved = dir.path().join("saved.raw");
    os.ok(
        &clouds,
        DEMO,
        &["image", "save", "alpha2", "--file", saved.to_str().unwrap()],
    );
    assert!(
        std::fs::read(&saved).unwrap() == raw,
        "the downloaded image differs"
    );

    // --- the same bytes again store no new block ---------------------------------------
    let before = common::blocks_in(&data);
    os.ok(
        &clouds,
        DEMO,
        &[
            "image",
            "create",
            "alpha-copy",
            "--file",
            raw_path,
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
        ],
    );
    assert_eq!(
        common::blocks_in(&data),
        before,
        "a second upload of the same bytes stored blocks"
    );

    // --- unsafe images are refused with the reason --------------------------------------
    let backed = dir.path().join("backed.qcow2");
    let status = Command::new("qemu-img")
        .args([
            "create",
            "-f",
            "qcow2",
            "-b",
            "/etc/passwd",
            "-F",
            "raw",
            backed.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let refused = os.run(
        &clouds,
        DEMO,
        &[
            "image",
            "create",
            "evil",
            "--file",
            backed.to_str().unwrap(),
            "--disk-format",
            "qcow2",
            "--container-format",
            "bare",
        ],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("/etc/passwd"), "{stderr}");

    // --- sharing: bob lists the image only once he accepts, then uses it ------------------
    let private = os.json(&clouds, BOB, &["image", "list"]);
    assert!(names(&private).is_empty(), "{private}");
    os.ok(
        &clouds,
        DEMO,
        &["image", "add", "project", "alpha2", &bob.base_project],
    );
    assert!(names(&os.json(&clouds, BOB, &["image", "list"])).is_empty());
    os.ok(&clouds, BOB, &["image", "set", "--accept", &alpha]);
    assert_eq!(
        names(&os.json(&clouds, BOB, &["image", "list"])),
        ["alpha2"]
    );
    let bobs_copy = dir.path().join("bob.raw");
    os.ok(
        &clouds,
        BOB,
        &[
            "image",
            "save",
            &alpha,
            "--file",
            bobs_copy.to_str().unwrap(),
        ],
    );
    assert!(std::fs::read(&bobs_copy).unwrap() == raw);
    // He may use it, not change or delete it.
    assert!(
        !os.run(&clouds, BOB, &["image", "delete", &alpha])
            .status
            .success()
    );

    // --- another project's private image is a JSON 404 everywhere -------------------------
    os.ok(&clouds, DEMO, &["image", "set", "beta", "--private"]);
    let beta = os.json(&clouds, DEMO, &["image", "show", "beta"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("{}/image/v2/images/{beta}", nefos.url);
    // A fresh client: the server closes connections idle for longer than its header
    // timeout, which the CLI steps above may have outlasted.
    let client = common::http();
    for (method, url) in [
        ("GET", base.clone()),
        ("GET", format!("{base}/file")),
        ("PATCH", base.clone()),
        ("DELETE", base.clone()),
        ("PUT", format!("{base}/file")),
        ("GET", format!("{base}/members")),
        ("POST", format!("{base}/members")),
        ("PUT", format!("{base}/tags/x")),
        ("POST", format!("{base}/actions/deactivate")),
    ] {
        let response = client
            .request(method.parse().unwrap(), &url)
            .header("X-Auth-Token", &bob.token)
            .header(
                "Content-Type",
                match method {
                    "PATCH" => "application/openstack-images-v2.1-json-patch",
                    "PUT" => "application/octet-stream",
                    _ => "application/json",
                },
            )
            .body(match method {
                "PATCH" => "[]",
                "POST" => "{\"member\": \"x\"}",
                _ => "",
            })
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method} {url}");
        let body: Value = response.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains(&beta), "{body}");
    }

    // --- delete ---------------------------------------------------------------------------
    os.ok(&clouds, DEMO, &["image", "delete", "alpha-copy"]);
    let left = names(&os.json(&clouds, DEMO, &["image", "list"]));
    assert!(!left.contains(&"alpha-copy".to_owned()), "{left:?}");
    // The other image with the same bytes is whole.
    os.ok(
        &clouds,
        DEMO,
        &["image", "save", "alpha2", "--file", saved.to_str().unwrap()],
    );
    assert!(std::fs::read(&saved).unwrap() == raw);
}
