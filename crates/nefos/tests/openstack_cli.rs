//! The real `openstack` CLI (python-openstackclient from PyPI) against `nefos up`, with the
//! `clouds.yaml` that `nefos up` writes: what a user of the cloud would type.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use nefos_test_utils::OpenStack;
use serde_json::Value;

fn rows(value: &Value) -> &Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
}

#[tokio::test]
async fn openstack_cli_works_against_nefos_up() {
    let os = OpenStack::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let nefos = common::up(&data);
    let clouds = data.join("clouds.yaml");
    let keystone = common::keystone(&nefos.url);

    // --- as demo, with the clouds.yaml `nefos up` wrote ----------------------------------
    let token = os.json(&clouds, "nefos-demo", &["token", "issue"]);
    assert!(
        token["id"].as_str().is_some_and(|t| t.len() >= 32),
        "{token}"
    );
    assert!(token["expires"].is_string(), "{token}");
    let demo_id = token["user_id"].as_str().unwrap().to_owned();
    let demo_project_id = token["project_id"].as_str().unwrap().to_owned();

    let catalog = os.json(&clouds, "nefos-demo", &["catalog", "list"]);
    let identity = rows(&catalog)
        .iter()
        .find(|s| s["Type"] == "identity")
        .unwrap_or_else(|| panic!("no identity service in the catalog: {catalog}"));
    let endpoints = rows(&identity["Endpoints"]);
    assert!(
        endpoints.iter().any(|e| e["interface"] == "public"
            && e["region"] == "RegionOne"
            && e["url"] == keystone.as_str()),
        "no public identity endpoint {keystone} in RegionOne: {catalog}"
    );

    let projects = os.json(&clouds, "nefos-demo", &["project", "list"]);
    let projects = rows(&projects);
    assert_eq!(projects.len(), 1, "demo sees other projects: {projects:?}");
    assert_eq!(projects[0]["Name"], "demo");
    assert_eq!(projects[0]["ID"], demo_project_id.as_str());

    // --- as admin: users, projects, roles ------------------------------------------------
    let bob_password = "correct horse battery staple";
    let bob = os.json(
        &clouds,
        "nefos-admin",
        &["user", "create", "--password", bob_password, "bob"],
    );
    assert_eq!(bob["name"], "bob", "{bob}");
    assert_eq!(bob["enabled"], true, "{bob}");
    assert_eq!(bob["domain_id"], "default", "{bob}");
    let bob_id = bob["id"].as_str().unwrap().to_owned();
    let bob_base_project = bob["default_project_id"].as_str().unwrap().to_owned();

    let shown = os.json(&clouds, "nefos-admin", &["user", "show", "bob"]);
    assert_eq!(shown["id"], bob_id.as_str(), "{shown}");
    assert_eq!(shown["name"], "bob", "{shown}");
    assert_eq!(shown["default_project_id"], bob_base_project.as_str());

    let users = os.json(&clouds, "nefos-admin", &["user", "list"]);
    let mut names: Vec<&str> = rows(&users)
        .iter()
        .map(|u| u["Name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["admin", "bob", "demo"], "{users}");
    assert!(
        rows(&users)
            .iter()
            .any(|u| u["Name"] == "demo" && u["ID"] == demo_id.as_str()),
        "{users}"
    );

    let physics = os.json(&clouds, "nefos-admin", &["project", "create", "physics"]);
    assert_eq!(physics["name"], "physics", "{physics}");
    assert_eq!(physics["enabled"], true, "{physics}");
    let physics_id = physics["id"].as_str().unwrap().to_owned();

    os.ok(
        &clouds,
        "nefos-admin",
        &[
            "role",
            "add",
            "--project",
            "physics",
            "--user",
            "bob",
            "member",
        ],
    );

    let assignments = os.json(
        &clouds,
        "nefos-admin",
        &["role", "assignment", "list", "--user", "bob", "--names"],
    );
    let mut held: Vec<(&str, &str, &str)> = rows(&assignments)
        .iter()
        .map(|a| {
            (
                a["Role"].as_str().unwrap(),
                a["User"].as_str().unwrap(),
                a["Project"].as_str().unwrap(),
            )
        })
        .collect();
    held.sort_unstable();
    assert_eq!(
        held,
        [
            ("member", "bob@Default", "bob@Default"),
            ("member", "bob@Default", "physics@Default"),
        ],
        "bob holds member on his base project and on physics: {assignments}"
    );

    // --- bob, with a clouds.yaml of his own, scoped to physics ---------------------------
    let bob_clouds = dir.path().join("bob-clouds.yaml");
    let quote = |s: &str| Value::String(s.to_owned()).to_string();
    std::fs::write(
        &bob_clouds,
        format!(
            "clouds:\n  nefos-bob:\n    auth:\n      auth_url: {}\n      username: bob\n      \
             password: {}\n      project_name: physics\n      user_domain_name: Default\n      \
             project_domain_name: Default\n    region_name: RegionOne\n    \
             identity_api_version: 3\n",
            quote(&keystone),
            quote(bob_password)
        ),
    )
    .unwrap();
    let bob_token = os.json(&bob_clouds, "nefos-bob", &["token", "issue"]);
    assert_eq!(bob_token["user_id"], bob_id.as_str(), "{bob_token}");
    assert_eq!(bob_token["project_id"], physics_id.as_str(), "{bob_token}");
    // What that token grants, as the server sees it.
    let client = common::http();
    let bob_token = bob_token["id"].as_str().unwrap();
    let validated = client
        .get(format!("{keystone}/auth/tokens"))
        .header("X-Auth-Token", bob_token)
        .header("X-Subject-Token", bob_token)
        .send()
        .await
        .unwrap();
    assert_eq!(validated.status(), 200);
    let validated: Value = validated.json().await.unwrap();
    assert_eq!(validated["token"]["project"]["name"], "physics");
    assert_eq!(validated["token"]["roles"][0]["name"], "member");

    // --- a wrong password ----------------------------------------------------------------
    let refused = os.run(
        &clouds,
        "nefos-demo",
        &["--os-password", "not-the-password", "token", "issue"],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "the CLI accepted a wrong password:\n{}",
        String::from_utf8_lossy(&refused.stdout)
    );
    assert!(
        stderr.contains("401"),
        "no HTTP 401 in the CLI's error: {stderr}"
    );
    let response = common::request_token(
        &client,
        &nefos.url,
        "demo",
        "not-the-password",
        Some("demo"),
    )
    .await;
    assert!(response.headers().get("x-subject-token").is_none());
    common::assert_keystone_error(response, 401).await;
}
