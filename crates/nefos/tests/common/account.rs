//! The account API (`/account/v1.0`, Synnefo's Astakos) for the integration tests: users
//! to act as, its requests, and checks of its error bodies.

use nefos_account_api::{Applied, PREFIX};
use serde_json::{Value, json};

use super::{get_json, token};

pub const MIB: i64 = 1 << 20;
pub const GIB: i64 = 1 << 30;

/// A user of a running cloud: its id, password and a token scoped to its personal
/// project.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub name: String,
    pub password: String,
    pub token: String,
    /// Its personal project.
    pub base_project: String,
}

/// Creates a user through Keystone as the administrator, and logs it in.
pub async fn create_user(client: &reqwest::Client, url: &str, admin: &str, name: &str) -> Person {
    let password = format!("{name}'s password");
    let response = client
        .post(format!("{url}/identity/v3/users"))
        .header("X-Auth-Token", admin)
        .json(&json!({"user": {
            "name": name, "password": password, "email": format!("{name}@example.org")
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    login(client, url, name, &password).await
}

/// A user's token scoped to its personal project.
pub async fn login(client: &reqwest::Client, url: &str, name: &str, password: &str) -> Person {
    let (token, body) = token(client, url, name, password, Some(name)).await;
    Person {
        id: body["token"]["user"]["id"].as_str().unwrap().to_owned(),
        name: name.to_owned(),
        password: password.to_owned(),
        token,
        base_project: body["token"]["project"]["id"].as_str().unwrap().to_owned(),
    }
}

/// `URL/account/v1.0PATH`.
pub fn account(url: &str, path: &str) -> String {
    format!("{url}{PREFIX}{path}")
}

/// A GET of the account API that must answer 200; its body.
pub async fn account_get(client: &reqwest::Client, url: &str, token: &str, path: &str) -> Value {
    get_json(client, &account(url, path), token).await
}

/// A POST of the account API; the raw answer.
pub async fn account_post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    client
        .post(account(url, path))
        .header("X-Auth-Token", token)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A POST of the account API that must answer `status`; its body (`null` when empty).
pub async fn account_post_ok(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    path: &str,
    body: &Value,
    status: u16,
) -> Value {
    let response = account_post(client, url, token, path, body).await;
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "POST {path} {body}: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// Checks that `response` is an Astakos error `{"<name>": {"code", "message"}}`; its
/// fault.
pub async fn assert_astakos_error(response: reqwest::Response, code: u16, name: &str) -> Value {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(
        status, code,
        "expected a {code} {name}, got {status}: {text}"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the {code} answer is not JSON ({e}): {text}"));
    let fault = &body[name];
    assert_eq!(fault["code"], code, "{body}");
    assert!(
        fault["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    fault.clone()
}

/// An application for a project that grants each member `member` bytes of
/// `pithos.diskspace` (and the project twice that), joined with the owner's consent.
pub fn project_spec(name: &str, member: i64) -> Value {
    json!({
        "name": name,
        "description": format!("the {name} project"),
        "end_date": "2035-01-01T00:00:00+00:00",
        "join_policy": "moderated",
        "leave_policy": "auto",
        "resources": {
            "pithos.diskspace": {"member_capacity": member, "project_capacity": 2 * member}
        }
    })
}

/// Applies for a project; its id and the application's.
pub async fn apply(client: &reqwest::Client, url: &str, token: &str, spec: &Value) -> Applied {
    let body = account_post_ok(client, url, token, "/projects", spec, 201).await;
    serde_json::from_value(body).unwrap()
}

/// The administrator approves an application, in kamaki's shape.
pub async fn approve(client: &reqwest::Client, url: &str, admin: &str, applied: &Applied) {
    let body = json!({"approve": {"reasons": "fine", "app_id": applied.application}});
    let path = format!("/projects/{}/action", applied.id);
    account_post_ok(client, url, admin, &path, &body, 200).await;
}
