//! The Keystone v3 and Synnefo v2.0 identity APIs of a real `nefos up`, over HTTP:
//! shapes the OpenStack clients rely on, error conventions, and isolation between users.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

struct Cloud {
    _data: tempfile::TempDir,
    process: NefosProcess,
    client: reqwest::Client,
    admin_password: String,
    demo_password: String,
}

impl Cloud {
    fn start() -> Cloud {
        let data = tempfile::tempdir().unwrap();
        let process = up(data.path());
        let credentials = read_credentials(data.path());
        Cloud {
            process,
            client: http(),
            admin_password: credentials["admin"].clone(),
            demo_password: credentials["demo"].clone(),
            _data: data,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.process.url)
    }

    async fn admin(&self) -> (String, Value) {
        token(
            &self.client,
            &self.process.url,
            "admin",
            &self.admin_password,
            Some("admin"),
        )
        .await
    }

    async fn demo(&self) -> (String, Value) {
        token(
            &self.client,
            &self.process.url,
            "demo",
            &self.demo_password,
            Some("demo"),
        )
        .await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.header("X-Auth-Token", token);
        }
        request.send().await.unwrap()
    }

    async fn subject(
        &self,
        method: reqwest::Method,
        auth: &str,
        subject: &str,
    ) -> reqwest::Response {
        self.client
            .request(method, self.url("/identity/v3/auth/tokens"))
            .header("X-Auth-Token", auth)
            .header("X-Subject-Token", subject)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn version_discovery_answers_like_keystone() {
    let cloud = Cloud::start();
    let response = cloud
        .client
        .get(cloud.url("/identity"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 300);
    let body: Value = response.json().await.unwrap();
    let v3 = &body["versions"]["values"][0];
    assert_eq!(v3["id"], "v3.14");
    assert_eq!(v3["status"], "stable");
    assert_eq!(v3["links"][0]["href"], cloud.url("/identity/v3/"));

    let response = cloud
        .client
        .get(cloud.url("/identity/v3"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-openstack-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["version"]["id"], "v3.14");
}

#[tokio::test]
async fn a_password_token_carries_what_clients_read() {
    let cloud = Cloud::start();
    let (_, body) = cloud.demo().await;
    let token = &body["token"];
    assert_eq!(token["methods"], json!(["password"]));
    assert_eq!(token["user"]["name"], "demo");
    assert_eq!(token["user"]["domain"]["id"], "default");
    assert_eq!(token["project"]["name"], "demo");
    assert_eq!(token["project"]["domain"]["name"], "Default");
    assert_eq!(
        token["roles"],
        json!([{ "id": "member", "name": "member" }])
    );
    for field in ["issued_at", "expires_at"] {
        let stamp = token[field].as_str().unwrap();
        assert!(chrono_like(stamp), "{field} = {stamp}");
    }
    let identity = token["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "identity")
        .expect("identity in the catalog");
    let endpoint = &identity["endpoints"][0];
    assert_eq!(endpoint["interface"], "public");
    assert_eq!(endpoint["region"], "RegionOne");
    assert_eq!(endpoint["region_id"], "RegionOne");
    assert_eq!(endpoint["url"], cloud.url("/identity/v3"));
}

/// `2026-11-25T09:28:15.000000Z`.
fn chrono_like(stamp: &str) -> bool {
    stamp.len() == 27
        && stamp.ends_with('Z')
        && stamp.as_bytes()[10] == b'T'
        && stamp.as_bytes()[19] == b'.'
}

#[tokio::test]
async fn tokens_scope_by_id_or_name_rescope_and_skip_the_catalog_on_request() {
    let cloud = Cloud::start();
    let (scoped, body) = cloud.demo().await;
    let project_id = body["token"]["project"]["id"].as_str().unwrap().to_owned();

    // Unscoped: no project, no roles.
    let (unscoped, body) = token(
        &cloud.client,
        &cloud.process.url,
        "demo",
        &cloud.demo_password,
        None,
    )
    .await;
    assert!(body["token"].get("project").is_none(), "{body}");
    assert!(body["token"].get("roles").is_none(), "{body}");

    // Token method, scoped by project id, without catalog.
    let request = json!({"auth": {
        "identity": {"methods": ["token"], "token": {"id": unscoped}},
        "scope": {"project": {"id": project_id}},
    }});
    let response = cloud
        .post("/identity/v3/auth/tokens?nocatalog", None, &request)
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token"]["methods"], json!(["token", "password"]));
    assert_eq!(body["token"]["project"]["id"], project_id.as_str());
    assert!(body["token"].get("catalog").is_none(), "{body}");

    // The scoped token validates itself, with GET and HEAD.
    let response = cloud.subject(reqwest::Method::GET, &scoped, &scoped).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-subject-token"], scoped.as_str());
    let response = cloud.subject(reqwest::Method::HEAD, &scoped, &scoped).await;
    assert_eq!(response.status(), 200);

    // Scoping to a project without a role is refused.
    let response = request_token(
        &cloud.client,
        &cloud.process.url,
        "demo",
        &cloud.demo_password,
        Some("admin"),
    )
    .await;
    assert_keystone_error(response, 401).await;
}

#[tokio::test]
async fn revoked_and_wrong_credentials_are_401_with_a_keystone_body() {
    let cloud = Cloud::start();
    let response = request_token(
        &cloud.client,
        &cloud.process.url,
        "demo",
        "not-the-password",
        Some("demo"),
    )
    .await;
    assert_eq!(response.headers()["www-authenticate"], "Keystone");
    let wrong_password = assert_keystone_error(response, 401).await;
    let response = request_token(
        &cloud.client,
        &cloud.process.url,
        "nobody",
        "not-the-password",
        None,
    )
    .await;
    let unknown_user = assert_keystone_error(response, 401).await;
    assert_eq!(
        wrong_password["error"]["message"], unknown_user["error"]["message"],
        "the answer must not tell which of user and password was wrong"
    );

    let (demo, _) = cloud.demo().await;
    let (other, _) = cloud.demo().await;
    let response = cloud.subject(reqwest::Method::DELETE, &demo, &other).await;
    assert_eq!(response.status(), 204);
    assert_keystone_error(
        get(
            &cloud.client,
            &cloud.url("/identity/v3/auth/projects"),
            &other,
        )
        .await,
        401,
    )
    .await;
    // Validating a revoked subject is "not found", as in Keystone.
    assert_keystone_error(
        cloud.subject(reqwest::Method::GET, &demo, &other).await,
        404,
    )
    .await;
    // A token that never existed, and no token at all.
    assert_keystone_error(
        get(&cloud.client, &cloud.url("/identity/v3/users"), "bogus").await,
        401,
    )
    .await;
    let response = cloud
        .client
        .get(cloud.url("/identity/v3/users"))
        .send()
        .await
        .unwrap();
    assert_keystone_error(response, 401).await;
}

#[tokio::test]
async fn malformed_requests_get_4xx_never_500() {
    let mut cloud = Cloud::start();
    // Refusals of oversized requests close their connection; a fresh one per request keeps
    // the client from racing that close.
    cloud.client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let (admin, _) = cloud.admin().await;
    let tokens_url = cloud.url("/identity/v3/auth/tokens");

    let response = cloud
        .client
        .post(&tokens_url)
        .header("content-type", "application/json")
        .body("{\"auth\": ")
        .send()
        .await
        .unwrap();
    assert_keystone_error(response, 400).await;

    let wrong_types = json!({"auth": {"identity": {"methods": "password"}}});
    assert_keystone_error(
        cloud
            .post("/identity/v3/auth/tokens", None, &wrong_types)
            .await,
        400,
    )
    .await;

    let response = cloud
        .client
        .post(&tokens_url)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_keystone_error(response, 415).await;

    let huge = json!({"user": {"name": "x".repeat(2 * 1024 * 1024)}});
    assert_keystone_error(
        cloud.post("/identity/v3/users", Some(&admin), &huge).await,
        413,
    )
    .await;

    let response = cloud
        .client
        .get(cloud.url("/identity/v3"))
        .header("X-Padding", "y".repeat(100 * 1024))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_client_error(),
        "oversized headers: {}",
        response.status()
    );

    assert_keystone_error(
        get(
            &cloud.client,
            &cloud.url("/identity/v3/nothing-here"),
            &admin,
        )
        .await,
        404,
    )
    .await;
    assert_keystone_error(
        get(&cloud.client, &cloud.url("/no/such/api"), &admin).await,
        404,
    )
    .await;

    // A corpus of bad bodies on every endpoint that takes one: each is a 4xx.
    let bad_bodies = [
        json!(null),
        json!([]),
        json!("text"),
        json!({}),
        json!({"user": null}),
        json!({"user": {"name": 7}}),
        json!({"user": {"name": ""}}),
        json!({"user": {"name": "a\u{0}b", "password": "p"}}),
        json!({"user": {"name": "ok", "password": ""}}),
        json!({"user": {"name": "ok", "email": "not-an-address"}}),
        json!({"project": {"name": ["x"]}}),
        json!({"project": {"name": "p", "enabled": "yes"}}),
        json!({"auth": {"identity": {"methods": ["password"]}}}),
        json!({"auth": {"identity": {"methods": ["password", "token"]}}}),
        json!({"auth": {"identity": {"methods": ["totp"]}}}),
        json!({"auth": {"identity": {"methods": ["token"], "token": {"id": 1}}}}),
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"password": "p"}}}}}),
        json!({"auth": {"scope": "everything", "identity": {"methods": ["token"], "token": {"id": "t"}}}}),
        json!({"auth": {"passwordCredentials": {"username": 1}}}),
    ];
    let (demo_token, demo_body) = cloud.demo().await;
    let demo_id = demo_body["token"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let endpoints = [
        (reqwest::Method::POST, "/identity/v3/auth/tokens".to_owned()),
        (reqwest::Method::POST, "/identity/v3/users".to_owned()),
        (
            reqwest::Method::PATCH,
            format!("/identity/v3/users/{demo_id}"),
        ),
        (
            reqwest::Method::POST,
            format!("/identity/v3/users/{demo_id}/password"),
        ),
        (reqwest::Method::POST, "/identity/v3/projects".to_owned()),
        (reqwest::Method::POST, "/identity/v2.0/tokens".to_owned()),
    ];
    for (method, path) in &endpoints {
        for body in &bad_bodies {
            let response = cloud
                .client
                .request(method.clone(), cloud.url(path))
                .header("X-Auth-Token", &admin)
                .json(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(
                status.is_client_error(),
                "{method} {path} with {body} answered {status}: {text}"
            );
            assert!(
                serde_json::from_str::<Value>(&text).is_ok(),
                "not JSON: {text}"
            );
        }
    }
    // The demo user still works: nothing above changed it.
    assert_eq!(
        get(
            &cloud.client,
            &cloud.url("/identity/v3/auth/projects"),
            &demo_token
        )
        .await
        .status(),
        200
    );
}

#[tokio::test]
async fn a_user_cannot_see_another_users_identity_unless_admin() {
    let cloud = Cloud::start();
    let (admin, admin_body) = cloud.admin().await;
    let (demo, demo_body) = cloud.demo().await;
    let admin_id = admin_body["token"]["user"]["id"].as_str().unwrap();
    let admin_project = admin_body["token"]["project"]["id"].as_str().unwrap();
    let demo_id = demo_body["token"]["user"]["id"].as_str().unwrap();
    let demo_project = demo_body["token"]["project"]["id"].as_str().unwrap();
    let base = cloud.url("/identity/v3");

    for path in [
        format!("/users/{admin_id}"),
        format!("/users/{admin_id}/projects"),
        format!("/projects/{admin_project}/users/{admin_id}/roles"),
        "/users/0123456789abcdef0123456789abcdef".to_owned(),
    ] {
        assert_keystone_error(
            get(&cloud.client, &format!("{base}{path}"), &demo).await,
            404,
        )
        .await;
    }
    // A project the caller may not see is Keystone's 403, existing or not (the openstack
    // CLI then uses the id as given).
    for path in [
        format!("/projects/{admin_project}"),
        "/projects/0123456789abcdef0123456789abcdef".to_owned(),
    ] {
        assert_keystone_error(
            get(&cloud.client, &format!("{base}{path}"), &demo).await,
            403,
        )
        .await;
    }
    assert_keystone_error(
        cloud.subject(reqwest::Method::GET, &demo, &admin).await,
        404,
    )
    .await;
    assert_keystone_error(
        cloud.subject(reqwest::Method::DELETE, &demo, &admin).await,
        404,
    )
    .await;
    // The admin token survived the attempt.
    assert_eq!(
        cloud
            .subject(reqwest::Method::HEAD, &admin, &admin)
            .await
            .status(),
        200
    );

    let users = get_json(&cloud.client, &format!("{base}/users"), &demo).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 1, "{users}");
    let projects = get_json(&cloud.client, &format!("{base}/projects"), &demo).await;
    assert_eq!(projects["projects"][0]["id"], demo_project, "{projects}");
    assert_eq!(
        projects["projects"].as_array().unwrap().len(),
        1,
        "{projects}"
    );
    let assignments = get_json(&cloud.client, &format!("{base}/role_assignments"), &demo).await;
    for a in assignments["role_assignments"].as_array().unwrap() {
        assert_eq!(a["user"]["id"], demo_id, "{assignments}");
    }

    let create = json!({"user": {"name": "mallory", "password": "pw"}});
    assert_keystone_error(
        cloud.post("/identity/v3/users", Some(&demo), &create).await,
        403,
    )
    .await;
    let response = cloud
        .client
        .put(format!(
            "{base}/projects/{admin_project}/users/{demo_id}/roles/admin"
        ))
        .header("X-Auth-Token", &demo)
        .send()
        .await
        .unwrap();
    assert_keystone_error(response, 403).await;

    // The administrator sees everything.
    get_json(&cloud.client, &format!("{base}/users/{demo_id}"), &admin).await;
    get_json(
        &cloud.client,
        &format!("{base}/projects/{demo_project}"),
        &admin,
    )
    .await;
    assert_eq!(
        cloud
            .subject(reqwest::Method::GET, &admin, &demo)
            .await
            .status(),
        200
    );
    let users = get_json(&cloud.client, &format!("{base}/users"), &admin).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2, "{users}");
}

#[tokio::test]
async fn admins_manage_users_projects_and_roles() {
    let cloud = Cloud::start();
    let (admin, _) = cloud.admin().await;
    let base = cloud.url("/identity/v3");

    let response = cloud
        .post(
            "/identity/v3/users",
            Some(&admin),
            &json!({"user": {"name": "alice", "password": "s3cret", "email": "alice@example.org"}}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let alice: Value = response.json().await.unwrap();
    let alice_id = alice["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(alice["user"]["domain_id"], "default");
    let duplicate = json!({"user": {"name": "alice", "password": "x"}});
    assert_keystone_error(
        cloud
            .post("/identity/v3/users", Some(&admin), &duplicate)
            .await,
        409,
    )
    .await;

    let response = cloud
        .post(
            "/identity/v3/projects",
            Some(&admin),
            &json!({"project": {"name": "physics", "description": "Lab"}}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let physics: Value = response.json().await.unwrap();
    let physics_id = physics["project"]["id"].as_str().unwrap().to_owned();

    let roles = get_json(&cloud.client, &format!("{base}/roles?name=reader"), &admin).await;
    assert_eq!(roles["roles"][0]["id"], "reader");
    let grant = format!("{base}/projects/{physics_id}/users/{alice_id}/roles/reader");
    let response = cloud
        .client
        .put(&grant)
        .header("X-Auth-Token", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = cloud
        .client
        .head(&grant)
        .header("X-Auth-Token", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    let (alice_token, body) = token(
        &cloud.client,
        &cloud.process.url,
        "alice",
        "s3cret",
        Some("physics"),
    )
    .await;
    assert_eq!(body["token"]["roles"][0]["name"], "reader");
    let projects = get_json(
        &cloud.client,
        &format!("{base}/users/{alice_id}/projects"),
        &alice_token,
    )
    .await;
    let names: Vec<_> = projects["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("alice"), json!("physics")]);

    // Revoking the role ends the token scoped through it.
    let response = cloud
        .client
        .delete(&grant)
        .header("X-Auth-Token", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_keystone_error(
        get(
            &cloud.client,
            &format!("{base}/auth/projects"),
            &alice_token,
        )
        .await,
        401,
    )
    .await;

    // Disabling the user refuses new tokens.
    let response = cloud
        .client
        .patch(format!("{base}/users/{alice_id}"))
        .header("X-Auth-Token", &admin)
        .json(&json!({"user": {"enabled": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = request_token(&cloud.client, &cloud.process.url, "alice", "s3cret", None).await;
    assert_keystone_error(response, 401).await;

    // Deleting removes the user and its personal project.
    let response = cloud
        .client
        .delete(format!("{base}/users/{alice_id}"))
        .header("X-Auth-Token", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_keystone_error(
        get(&cloud.client, &format!("{base}/users/{alice_id}"), &admin).await,
        404,
    )
    .await;
    let left = get_json(
        &cloud.client,
        &format!("{base}/projects?name=alice"),
        &admin,
    )
    .await;
    assert_eq!(left["projects"], json!([]));
}

#[tokio::test]
async fn users_change_their_own_password() {
    let cloud = Cloud::start();
    let (demo, body) = cloud.demo().await;
    let id = body["token"]["user"]["id"].as_str().unwrap();
    let path = format!("/identity/v3/users/{id}/password");
    let wrong = json!({"user": {"password": "new-password", "original_password": "wrong"}});
    assert_keystone_error(cloud.post(&path, Some(&demo), &wrong).await, 401).await;
    let right =
        json!({"user": {"password": "new-password", "original_password": cloud.demo_password}});
    assert_eq!(cloud.post(&path, Some(&demo), &right).await.status(), 204);
    // The old token and the old password are gone; the new password works.
    assert_keystone_error(
        get(
            &cloud.client,
            &cloud.url("/identity/v3/auth/projects"),
            &demo,
        )
        .await,
        401,
    )
    .await;
    let response = request_token(
        &cloud.client,
        &cloud.process.url,
        "demo",
        &cloud.demo_password,
        None,
    )
    .await;
    assert_keystone_error(response, 401).await;
    token(
        &cloud.client,
        &cloud.process.url,
        "demo",
        "new-password",
        Some("demo"),
    )
    .await;
}

#[tokio::test]
async fn synnefo_v2_tokens_answer_in_synnefos_shape() {
    let cloud = Cloud::start();
    let body = json!({"auth": {"passwordCredentials": {"username": "demo", "password": cloud.demo_password}}});
    let response = cloud.post("/identity/v2.0/tokens", None, &body).await;
    assert_eq!(response.status(), 200);
    let access: Value = response.json().await.unwrap();
    let access = &access["access"];
    let token = access["token"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        access["token"]["tenant"]["name"], "demo",
        "scoped to the personal project"
    );
    assert!(access["token"]["expires"].as_str().is_some());
    assert_eq!(access["user"]["name"], "demo");
    let identity = &access["serviceCatalog"][0];
    assert_eq!(identity["type"], "identity");
    assert_eq!(
        identity["endpoints"][0]["publicURL"],
        cloud.url("/identity/v3")
    );

    // The token works on every API, and a token body gives it back, as Astakos does.
    get_json(
        &cloud.client,
        &cloud.url("/identity/v3/auth/projects"),
        &token,
    )
    .await;
    let again = json!({"auth": {"token": {"id": token}}});
    let response = cloud.post("/identity/v2.0/tokens", None, &again).await;
    assert_eq!(response.status(), 200);
    let again: Value = response.json().await.unwrap();
    assert_eq!(again["access"]["token"]["id"], token.as_str(), "{again}");
    assert_eq!(
        again["access"]["token"]["tenant"]["name"], "demo",
        "{again}"
    );

    let wrong = json!({"auth": {"passwordCredentials": {"username": "demo", "password": "nope"}}});
    assert_keystone_error(cloud.post("/identity/v2.0/tokens", None, &wrong).await, 401).await;
}
