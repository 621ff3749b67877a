//! `nefos up` on a data directory it made before: it serves within 2 s, keeps every user and
//! token, leaves the credentials alone and prints no new passwords.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn assert_private(data: &Path) {
    assert_eq!(mode(data), 0o700, "data directory {}", data.display());
    for file in ["credentials", "clouds.yaml"] {
        let path = data.join(file);
        assert_eq!(
            mode(&path),
            0o600,
            "{} is readable by others",
            path.display()
        );
    }
}

#[tokio::test]
async fn up_again_is_fast_and_keeps_users_tokens_and_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let client = common::http();

    // --- first start: creates the users and prints their passwords, once ---------------
    let mut first = common::up(&data);
    let credentials = common::read_credentials(&data);
    let (admin_password, demo_password) =
        (credentials["admin"].clone(), credentials["demo"].clone());
    assert!(admin_password.len() >= 16 && demo_password.len() >= 16);
    let printed = common::wait_for_output(&first, "clouds.yaml:");
    assert!(printed.contains(&admin_password) && printed.contains(&demo_password));
    assert_private(&data);
    let credentials_before = fs::read(data.join("credentials")).unwrap();
    let credentials_mtime = fs::metadata(data.join("credentials"))
        .unwrap()
        .modified()
        .unwrap();

    let keystone = common::keystone(&first.url);
    let admin = common::admin_token(&client, &first.url, &data).await;
    let created = client
        .post(format!("{keystone}/users"))
        .header("X-Auth-Token", &admin)
        .json(&json!({ "user": { "name": "carol", "password": "carol's password" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let listed = common::get_json(&client, &format!("{keystone}/users"), &admin).await;
    let users_before = ids_by_name(&listed);
    assert_eq!(users_before.len(), 3, "{listed}");
    let (demo_token, _) =
        common::token(&client, &first.url, "demo", &demo_password, Some("demo")).await;
    common::stop(&mut first);

    // --- second start -----------------------------------------------------------------
    let started = Instant::now();
    let second = common::up(&data);
    let startup = started.elapsed();
    assert!(
        startup < Duration::from_secs(2),
        "nefos up on an existing data directory took {startup:?} to serve"
    );
    eprintln!("second start served after {startup:?}");
    let health = client
        .get(format!("{}/healthz", second.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // Every user is there, with the same id and password.
    let keystone = common::keystone(&second.url);
    let admin = common::admin_token(&client, &second.url, &data).await;
    let listed = common::get_json(&client, &format!("{keystone}/users"), &admin).await;
    assert_eq!(ids_by_name(&listed), users_before);
    common::token(&client, &second.url, "demo", &demo_password, Some("demo")).await;
    common::token(
        &client,
        &second.url,
        "carol",
        "carol's password",
        Some("carol"),
    )
    .await;

    // The token issued before the restart still validates.
    let validated = client
        .get(format!("{keystone}/auth/tokens"))
        .header("X-Auth-Token", &demo_token)
        .header("X-Subject-Token", &demo_token)
        .send()
        .await
        .unwrap();
    assert_eq!(validated.status(), 200);
    let validated: Value = validated.json().await.unwrap();
    assert_eq!(validated["token"]["user"]["name"], "demo", "{validated}");
    assert_eq!(validated["token"]["project"]["name"], "demo", "{validated}");

    // Credentials untouched, no password printed, files still private.
    let printed = common::wait_for_output(&second, "clouds.yaml:");
    assert!(
        !printed.contains(&admin_password) && !printed.contains(&demo_password),
        "the second start printed a password:\n{printed}"
    );
    assert!(!printed.contains("new users"), "{printed}");
    assert_eq!(
        fs::read(data.join("credentials")).unwrap(),
        credentials_before
    );
    assert_eq!(
        fs::metadata(data.join("credentials"))
            .unwrap()
            .modified()
            .unwrap(),
        credentials_mtime,
        "the credentials file was rewritten"
    );
    assert_eq!(common::read_credentials(&data), credentials);
    assert_private(&data);
    // clouds.yaml follows the address the cloud serves at now, with the same passwords.
    let clouds = fs::read_to_string(data.join("clouds.yaml")).unwrap();
    assert!(clouds.contains(&format!("{keystone}\"")), "{clouds}");
    assert!(clouds.contains(&admin_password) && clouds.contains(&demo_password));
}

fn ids_by_name(listed: &Value) -> Vec<(String, String)> {
    let mut users: Vec<(String, String)> = listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_owned(),
                u["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    users.sort();
    users
}
