//! A project's whole life through the end-user client (`nefos project …`, `nefos quota
//! show`) and the operator's commands: user A applies for a project granting storage to
//! each member, the administrator approves, B asks to join and A accepts, B stores in the
//! project's account up to its grant and no more, B leaves and can store nothing there,
//! and the usage report shows what B used in that project.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::account::{MIB, create_user};
use common::*;
use serde_json::Value;

/// `nefos ARGS` as `user` (scoped to its personal project), which must succeed; stdout.
async fn client(url: &str, user: &str, password: &str, args: &[&str]) -> String {
    let output = run_client(url, user, password, args).await;
    assert!(
        output.0,
        "nefos {args:?} as {user} failed:\n{}\n{}",
        output.1, output.2
    );
    output.1
}

/// `nefos ARGS` as `user`: (success, stdout, stderr).
async fn run_client(
    url: &str,
    user: &str,
    password: &str,
    args: &[&str],
) -> (bool, String, String) {
    let (url, user, password) = (url.to_owned(), user.to_owned(), password.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let output = Command::new(binary())
            .args(&args)
            .env("OS_AUTH_URL", format!("{url}/identity/v3"))
            .env("OS_USERNAME", &user)
            .env("OS_PASSWORD", &password)
            .env("OS_PROJECT_NAME", &user)
            .env_remove("OS_CLOUD")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

async fn put(client: &reqwest::Client, url: &str, token: &str, size: usize) -> u16 {
    client
        .put(url)
        .header("x-auth-token", token)
        .body(vec![5u8; size])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_project_from_application_to_usage_report_through_the_clients() {
    let data = tempfile::tempdir().unwrap();
    let cloud = up(data.path());
    let url = cloud.url.clone();
    let data_arg = data.path().to_str().unwrap();
    let http = http();
    let admin = admin_token(&http, &url, data.path()).await;
    let alice = create_user(&http, &url, &admin, "alice").await;
    let bob = create_user(&http, &url, &admin, "bob").await;

    // A applies; the administrator approves.
    let applied = client(
        &url,
        "alice",
        &alice.password,
        &[
            "project",
            "apply",
            "--name",
            "lab",
            "--end-date",
            "2099-12-31",
            "--join-policy",
            "moderated",
            "--resource",
            "pithos.diskspace=8MiB,16MiB",
            "--comments",
            "a course",
        ],
    )
    .await;
    assert!(applied.contains("applied for"), "{applied}");
    let applications: Value = serde_json::from_str(&admin_ok(&[
        "--data",
        data_arg,
        "project",
        "application",
        "list",
        "--state",
        "pending",
        "--json",
    ]))
    .unwrap();
    let application = applications
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "lab")
        .unwrap_or_else(|| panic!("no pending application for lab: {applications}"));
    let project = application["project_id"].as_str().unwrap().to_owned();
    admin_ok(&[
        "--data",
        data_arg,
        "project",
        "application",
        "approve",
        application["id"].as_str().unwrap(),
        "--reason",
        "fine",
    ]);
    let shown = client(
        &url,
        "alice",
        &alice.password,
        &["project", "show", &project, "-f", "json"],
    )
    .await;
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown[0]["state"], "active", "{shown}");

    // B asks; the project is moderated, so A accepts.
    let joined = client(&url, "bob", &bob.password, &["project", "join", &project]).await;
    assert!(joined.contains("requested"), "{joined}");
    let members = client(
        &url,
        "alice",
        &alice.password,
        &["project", "members", &project, "-f", "json"],
    )
    .await;
    let members: Value = serde_json::from_str(&members).unwrap();
    let membership = members[0]["id"].as_i64().unwrap().to_string();
    let accepted = client(
        &url,
        "alice",
        &alice.password,
        &["project", "accept", &membership],
    )
    .await;
    assert!(accepted.contains("accepted"), "{accepted}");

    // B's token scoped to the project stores up to its 8 MiB there, and no more.
    let (scoped, _) = token(&http, &url, "bob", &bob.password, Some("lab")).await;
    let objects = format!("{url}/object/v1/AUTH_{project}/data");
    assert_eq!(put(&http, &objects, &scoped, 0).await, 201);
    assert_eq!(
        put(&http, &format!("{objects}/one"), &scoped, 6 << 20).await,
        201
    );
    assert_eq!(
        put(&http, &format!("{objects}/two"), &scoped, 3 << 20).await,
        413
    );
    let quotas = client(&url, "bob", &bob.password, &["quota", "show", "-f", "json"]).await;
    let quotas: Value = serde_json::from_str(&quotas).unwrap();
    let in_lab = quotas
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["project"] == project.as_str() && q["resource"] == "pithos.diskspace")
        .unwrap_or_else(|| panic!("no lab quota for bob: {quotas}"));
    assert_eq!(
        (in_lab["limit"].as_i64(), in_lab["usage"].as_i64()),
        (Some(8 * MIB), Some(6 * MIB))
    );

    // B leaves (the leave policy is auto): its scoped token is revoked, it cannot get
    // another, and what it stored stays, over its now zero limit.
    let left = client(&url, "bob", &bob.password, &["project", "leave", &project]).await;
    assert!(left.contains("left"), "{left}");
    assert_eq!(
        put(&http, &format!("{objects}/three"), &scoped, 1).await,
        401
    );
    assert_keystone_error(
        request_token(&http, &url, "bob", &bob.password, Some("lab")).await,
        401,
    )
    .await;
    let (failed, _, stderr) =
        run_client(&url, "bob", &bob.password, &["project", "leave", &project]).await;
    assert!(!failed && stderr.contains("not a member"), "{stderr}");

    // The usage report: B used 6 MiB in the lab from the upload until now.
    let report: Value = serde_json::from_str(&admin_ok(&[
        "--data",
        data_arg,
        "usage",
        "report",
        "--from",
        "2020-01-01",
        "--to",
        "2099-01-01",
        "--by",
        "project",
        "--format",
        "json",
    ]))
    .unwrap();
    let line = report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["holder_id"] == project.as_str() && l["resource"] == "pithos.diskspace")
        .unwrap_or_else(|| panic!("no line for the lab: {report}"));
    assert_eq!(line["unit"], "GiB-months");
    assert_eq!(line["usage_at_end"], 6 * MIB);
    // Charged from the upload (a moment ago) to the report's end, in months of 730.5 h.
    let end = 4_070_908_800.0; // 2099-01-01T00:00:00Z
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let expected = 6.0 / 1024.0 * (end - now) / (730.5 * 3600.0);
    let amount = line["amount"].as_f64().unwrap();
    assert!(
        (amount / expected - 1.0).abs() < 0.001,
        "expected {expected}: {line}"
    );
    let by_user: Value = serde_json::from_str(&admin_ok(&[
        "--data",
        data_arg,
        "usage",
        "report",
        "--from",
        "2020-01-01",
        "--to",
        "2099-01-01",
        "--by",
        "user",
        "--format",
        "json",
    ]))
    .unwrap();
    assert!(
        by_user["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["holder_id"] == bob.id.as_str()),
        "{by_user}"
    );
}
