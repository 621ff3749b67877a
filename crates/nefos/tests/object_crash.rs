//! kill -9 of the server during 100 concurrent uploads: after a restart every upload that
//! got its 201 reads back intact, nothing half-written is visible, and every block file
//! still hashes to its name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use md5::{Digest, Md5};

/// The bytes of upload `i`: sizes from 64 KiB to about 6 MiB, contents all different.
fn content(i: u64) -> Vec<u8> {
    let size = 64 * 1024 + (i * 61 * 1024 + i * i * 977) % (6 * 1024 * 1024);
    let mut seed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed.to_le_bytes()[0]
        })
        .collect()
}

async fn object_url(
    client: &reqwest::Client,
    url: &str,
    data: &std::path::Path,
) -> (String, String) {
    let password = read_credentials(data)["demo"].clone();
    let (token, body) = token(client, url, "demo", &password, Some("demo")).await;
    let storage = body["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "object-store")
        .expect("object-store in the catalog")["endpoints"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    (token, storage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_acknowledged_before_a_crash_survive_it_intact() {
    let data = tempfile::tempdir().unwrap();
    let mut server = up(data.path());
    let client = http();
    let (token, storage) = object_url(&client, &server.url, data.path()).await;
    let response = client
        .put(format!("{storage}/crash"))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());

    let acknowledged = Arc::new(AtomicUsize::new(0));
    let mut uploads = Vec::new();
    for i in 0..100u64 {
        let (client, token, storage, acknowledged) = (
            client.clone(),
            token.clone(),
            storage.clone(),
            acknowledged.clone(),
        );
        uploads.push(tokio::spawn(async move {
            let body = content(i);
            let result = client
                .put(format!("{storage}/crash/object-{i:03}"))
                .header("X-Auth-Token", &token)
                .body(body)
                .send()
                .await;
            match result {
                Ok(r) if r.status() == 201 => {
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                    Some(i)
                }
                Ok(r) => panic!("upload {i} answered {} before the crash", r.status()),
                Err(_) => None,
            }
        }));
    }
    // Kill once some uploads are acknowledged and others are surely in flight.
    while acknowledged.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    let mut done = Vec::new();
    for upload in uploads {
        if let Some(i) = upload.await.unwrap() {
            done.push(i);
        }
    }
    assert!(
        done.len() >= 20 && done.len() < 100,
        "{} acknowledged: the crash must cut some uploads",
        done.len()
    );

    let server = up(data.path());
    let (token, storage) = object_url(&client, &server.url, data.path()).await;
    let listing: Vec<serde_json::Value> = client
        .get(format!("{storage}/crash?format=json"))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: HashMap<String, (u64, String)> = listing
        .iter()
        .map(|o| {
            let name = o["name"].as_str().unwrap().to_owned();
            (
                name,
                (
                    o["bytes"].as_u64().unwrap(),
                    o["hash"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    for i in &done {
        assert!(
            listed.contains_key(&format!("object-{i:03}")),
            "acknowledged upload {i} is gone"
        );
    }
    // Every object that is visible, acknowledged or not, is whole and correct.
    for (name, (bytes, etag)) in &listed {
        let i: u64 = name.trim_start_matches("object-").parse().unwrap();
        let expected = content(i);
        assert_eq!(*bytes, expected.len() as u64, "{name} has the wrong size");
        assert_eq!(
            *etag,
            hex::encode(Md5::digest(&expected)),
            "{name} lists the wrong ETag"
        );
        let response = client
            .get(format!("{storage}/crash/{name}"))
            .header("X-Auth-Token", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.unwrap();
        assert!(body[..] == expected[..], "{name} does not read back intact");
    }
    drop(server);

    // Every block on disk still hashes to its name.
    let verify = admin(&["--data", data.path().to_str().unwrap(), "blocks", "verify"]);
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "blocks verify failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
