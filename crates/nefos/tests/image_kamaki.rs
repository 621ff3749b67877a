//! Images through kamaki 0.16 (Synnefo's CLI) against `nefos up`: a file uploaded with
//! `kamaki file upload` is registered as an image (no byte copied), listed, shown,
//! modified and unregistered through Plankton, and the same image is one of Glance's;
//! deleting the object unregisters it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use nefos_test_utils::Kamaki;
use rand::{RngCore, SeedableRng};
use serde_json::Value;

/// An image listing through Glance, as the demo user.
async fn glance_images(client: &reqwest::Client, url: &str, token: &str) -> Vec<Value> {
    let body = get_json(client, &format!("{url}/image/v2/images"), token).await;
    body["images"].as_array().unwrap().clone()
}

#[tokio::test]
async fn kamaki_registers_and_lists_images() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cloud = up(&data);
    let url = cloud.url.clone();
    let client = http();
    let password = read_credentials(&data)["demo"].clone();
    let (token, _) = token(&client, &url, "demo", &password, Some("demo")).await;
    let kamaki = Kamaki::new(&url, &token);

    let mut disk = vec![0u8; 6 << 20];
    rand::rngs::StdRng::seed_from_u64(7).fill_bytes(&mut disk);
    let file = dir.path().join("debian.raw");
    std::fs::write(&file, &disk).unwrap();
    kamaki.ok(&["container", "create", "images"]);
    kamaki.ok(&[
        "file",
        "upload",
        file.to_str().unwrap(),
        "/images/debian.raw",
    ]);
    let blocks = blocks_in(&data);

    // Registered with Synnefo's properties, and a metafile kamaki writes beside it.
    let registered = kamaki.ok(&[
        "image",
        "register",
        "--name",
        "Debian Base",
        "--location",
        "/images/debian.raw",
        "-p",
        "OS=debian",
        "-p",
        "OSFAMILY=linux",
        "-p",
        "USERS=root",
    ]);
    assert!(registered.contains("Debian Base"), "{registered}");
    // The metafile kamaki uploads beside the image is one small block more.
    assert!(
        blocks_in(&data) <= blocks + 1,
        "registration must not copy the image"
    );

    let images = glance_images(&client, &url, &token).await;
    let image = images
        .iter()
        .find(|i| i["name"] == "Debian Base")
        .unwrap_or_else(|| panic!("the registered image is not in Glance's list: {images:?}"));
    let id = image["id"].as_str().unwrap().to_owned();
    assert_eq!(image["status"], "active");
    assert_eq!(image["size"], disk.len());
    assert_eq!(image["os"], "debian", "{image}");
    assert_eq!(image["osfamily"], "linux", "{image}");
    assert_eq!(image["disk_format"], "raw");

    let listed = kamaki.ok(&["image", "list"]);
    assert!(
        listed.contains(&id) && listed.contains("Debian Base"),
        "{listed}"
    );
    let detailed = kamaki.ok(&["image", "list", "-l"]);
    assert!(detailed.contains("osfamily"), "{detailed}");
    let info = kamaki.ok(&["image", "info", &id]);
    assert!(
        info.contains("debian") && info.contains("pithos://"),
        "{info}"
    );

    kamaki.ok(&[
        "image",
        "modify",
        &id,
        "--name",
        "Debian 12",
        "-p",
        "ROOT_PARTITION=1",
    ]);
    let shown = get_json(&client, &format!("{url}/image/v2/images/{id}"), &token).await;
    assert_eq!(shown["name"], "Debian 12", "{shown}");
    assert_eq!(shown["root_partition"], "1", "{shown}");
    assert_eq!(
        shown["os"], "debian",
        "properties survive a modify: {shown}"
    );

    // The image's bytes are the object's.
    let downloaded = client
        .get(format!("{url}/image/v2/images/{id}/file"))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(downloaded.as_ref() == disk.as_slice());

    // Unregistering keeps the file; registering again and deleting the file drops it.
    kamaki.ok(&["image", "unregister", &id]);
    assert!(
        !glance_images(&client, &url, &token)
            .await
            .iter()
            .any(|i| i["id"] == id.as_str())
    );
    assert!(
        kamaki
            .ok(&["file", "list", "/images"])
            .contains("debian.raw")
    );
    kamaki.ok(&[
        "image",
        "register",
        "--name",
        "again",
        "--location",
        "/images/debian.raw",
        "--no-metafile-upload",
    ]);
    assert!(
        glance_images(&client, &url, &token)
            .await
            .iter()
            .any(|i| i["name"] == "again")
    );
    kamaki.ok(&["file", "delete", "/images/debian.raw", "--yes"]);
    assert!(
        !glance_images(&client, &url, &token)
            .await
            .iter()
            .any(|i| i["name"] == "again"),
        "an image outlived its object"
    );
    assert!(!kamaki.ok(&["image", "list"]).contains("again"));
}
