//! `nefos up` as the all-in-one cloud: it runs a node agent beside the control plane, and
//! uploads the demo guest image into the object store once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{NefosProcess, binary, free_port, http};

fn up_with_node(data: &std::path::Path, port: u16) -> NefosProcess {
    let args: Vec<String> = [
        "up",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--accelerator",
        "tcg",
        "--guest-image",
        common::vms::guest_image().to_str().unwrap(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    NefosProcess::spawn(&binary(), &args, &format!("http://127.0.0.1:{port}"))
}

/// Waits until `nefos admin node list` shows the local node up.
fn wait_for_node(data: &std::path::Path) -> String {
    let started = Instant::now();
    loop {
        let list = common::admin_ok(&["node", "list", "--data", data.to_str().unwrap()]);
        if list.contains("local") && list.contains(" up ") {
            return list;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the node never registered:\n{list}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test]
async fn up_runs_a_node_and_imports_the_guest_image_once() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cloud = up_with_node(data.path(), port);
    common::wait_for_output(&cloud, "guest image:            images/nefos-tiny.raw");
    let list = wait_for_node(data.path());
    assert!(list.contains("tcg"), "{list}");
    // `nefos up` enrolled its node: it holds its own credential, not the control plane's
    // key, and the internal API listens on loopback apart from the public APIs.
    let credential_file = data.path().join("node").join("credential.json");
    let credential = std::fs::read_to_string(&credential_file).unwrap();
    let key = std::fs::read_to_string(data.path().join("cluster-secret")).unwrap();
    assert!(
        credential.contains("\"node_id\": \"local\""),
        "{credential}"
    );
    assert!(!credential.contains(key.trim()));
    let banner = common::wait_for_output(&cloud, "internal API (nodes):   http://127.0.0.1:");
    assert!(!banner.contains(&format!("internal API (nodes):   {}", cloud.url)));

    let client = http();
    let token = common::admin_token(&client, &cloud.url, data.path()).await;
    let tokens = client
        .get(format!("{}/identity/v3/auth/projects", cloud.url))
        .header("x-auth-token", &token)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let project = tokens["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let object = format!(
        "{}/object/v1/AUTH_{project}/images/nefos-tiny.raw",
        cloud.url
    );
    let head = |client: reqwest::Client, token: String| {
        let object = object.clone();
        async move {
            let response = client
                .head(&object)
                .header("x-auth-token", token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
            (header("content-length"), header("x-object-version"))
        }
    };
    let (length, version) = head(client.clone(), token.clone()).await;
    let size = std::fs::metadata(common::vms::guest_image()).unwrap().len();
    assert_eq!(length, size.to_string());

    // A restart finds the image in place and does not upload it again.
    common::stop(&mut cloud);
    let cloud = up_with_node(data.path(), port);
    common::wait_for_output(&cloud, "guest image:            images/nefos-tiny.raw");
    // A new client: the old one's pooled connection went with the old process.
    let client = http();
    let token = common::admin_token(&client, &cloud.url, data.path()).await;
    assert_eq!(head(client, token).await, (length, version));
    wait_for_node(data.path());
    // The restarted node kept its credential: no new enrolment.
    assert_eq!(
        std::fs::read_to_string(&credential_file).unwrap(),
        credential
    );
}
