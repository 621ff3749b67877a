//! The real kamaki 0.16 (Synnefo's CLI, from PyPI) against `nefos up`: it logs in at
//! `/identity/v2.0/tokens` and finds the account API in the catalog, and its quota,
//! resource, project and membership commands work as they do against Astakos.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::account::*;
use common::*;
use nefos_test_utils::Kamaki;
use serde_json::Value;

/// The membership id kamaki prints after `project join` (`{u'id': 5}`).
fn printed_id(output: &str) -> i64 {
    let digits: String = output
        .split("id")
        .nth(1)
        .unwrap_or_else(|| panic!("no id in {output:?}"))
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no id in {output:?}"))
}

/// How many logins the cloud has served so far (its access log).
fn logins(cloud: &NefosProcess) -> usize {
    cloud
        .output()
        .lines()
        .filter(|l| l.contains("/identity/v2.0/tokens"))
        .count()
}

/// The logins once the access log has caught up with one more than `before` (it is
/// written by a background thread), and a moment more for any further one.
fn logins_after(cloud: &NefosProcess, before: usize) -> usize {
    let started = std::time::Instant::now();
    while logins(cloud) <= before && started.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    logins(cloud)
}

#[tokio::test]
async fn kamaki_lists_quotas_and_projects_and_joins_one() {
    let data = tempfile::tempdir().unwrap();
    let cloud = up(data.path());
    let url = cloud.url.clone();
    let client = http();
    let admin = admin_token(&client, &url, data.path()).await;
    let demo_password = read_credentials(data.path())["demo"].clone();
    let demo = login(&client, &url, "demo", &demo_password).await;
    let alice = create_user(&client, &url, &admin, "alice").await;

    // Alice's project, applied for and approved over the API.
    let applied = apply(
        &client,
        &url,
        &alice.token,
        &project_spec("physics.example.org", GIB),
    )
    .await;
    approve(&client, &url, &admin, &applied).await;
    let project = applied.id.clone();

    let kamaki = Kamaki::new(&url, &demo.token);

    // Quotas: sizes formatted for people, and the numbers as JSON; one login per command,
    // because the login gives kamaki back the token it sent.
    let before = logins(&cloud);
    let listed = kamaki.ok(&["quota", "list"]);
    assert!(listed.contains("pithos.diskspace"), "{listed}");
    assert!(listed.contains(&demo.base_project), "{listed}");
    assert_eq!(
        logins_after(&cloud, before),
        before + 1,
        "{}",
        cloud.output()
    );
    let quotas = kamaki.json(&["quota", "list"]);
    assert_eq!(
        quotas[&demo.base_project]["pithos.diskspace"]["limit"],
        20 * GIB,
        "{quotas}"
    );
    let resources = kamaki.ok(&["resource", "list"]);
    assert!(resources.contains("cyclades.vm"), "{resources}");

    // Projects: Alice's own list and details; the demo user sees it too, being active.
    let alices = Kamaki::new(&url, &alice.token);
    let listed = alices.ok(&["project", "list"]);
    assert!(listed.contains(&project), "{listed}");
    assert!(listed.contains("physics.example.org"), "{listed}");
    let info = kamaki.json(&["project", "info", &project]);
    assert_eq!(info["state"], "active", "{info}");
    assert_eq!(info["name"], "physics.example.org", "{info}");
    assert_eq!(
        info["resources"]["pithos.diskspace"]["member_capacity"], GIB,
        "{info}"
    );
    let missing = kamaki.run(&["project", "info", "0123456789abcdef0123456789abcdef"]);
    assert!(!missing.status.success());

    // The demo user joins; Alice accepts; the demo user's quotas then show the project.
    let joined = kamaki.ok(&["project", "join", &project]);
    let membership = printed_id(&joined).to_string();
    let shown = kamaki.json(&["membership", "info", &membership]);
    assert_eq!(shown["state"], "requested", "{shown}");
    alices.ok(&["membership", "accept", &membership]);
    let shown = account_get(
        &client,
        &url,
        &demo.token,
        &format!("/projects/memberships/{membership}"),
    )
    .await;
    assert_eq!(shown["state"], "accepted", "{shown}");
    let quotas = kamaki.json(&["quota", "list", "--project-id", &project]);
    assert_eq!(
        quotas[&project]["pithos.diskspace"]["limit"], GIB,
        "{quotas}"
    );
    let memberships = kamaki.json(&["membership", "list"]);
    assert!(
        memberships
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["project"] == project.as_str()),
        "{memberships}"
    );

    // kamaki's own application, approved with kamaki's --app-id.
    let created = alices.run(&[
        "project",
        "create",
        "--name",
        "chemistry.example.org",
        "--end-date",
        "2035-01-01T00:00:00+00:00",
        "--resource",
        "pithos.diskspace=1048576,2097152",
        "--output-format",
        "json",
    ]);
    let stdout = String::from_utf8_lossy(&created.stdout);
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(created.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("submitted successfully"), "{stderr}");
    let created: Value = serde_json::from_str(&stdout).unwrap();
    let chemistry = created["id"].as_str().unwrap().to_owned();
    let app = created["application"].as_str().unwrap().to_owned();
    let admins = Kamaki::new(&url, &admin);
    admins.ok(&["project", "approve", &chemistry, "--app-id", &app]);
    let info = alices.json(&["project", "info", &chemistry]);
    assert_eq!(info["state"], "active", "{info}");
    assert_eq!(info["last_application"]["state"], "approved", "{info}");

    // The demo user leaves the first project again.
    kamaki.ok(&["membership", "leave", &membership]);
    let shown = account_get(
        &client,
        &url,
        &demo.token,
        &format!("/projects/memberships/{membership}"),
    )
    .await;
    assert_eq!(shown["state"], "removed", "{shown}");
    let quotas = kamaki.json(&["quota", "list"]);
    assert!(quotas.get(&project).is_none(), "{quotas}");
}
