//! Helpers shared by the integration tests of the `nefos` binary: the binary itself, an HTTP
//! client, token requests, Keystone error checks, and `nefos admin` as a subprocess.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod account;
pub mod compute;
pub mod vms;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use nefos_test_utils::{NefosProcess, free_port, read_credentials};
use serde_json::{Value, json};

/// The `nefos` binary cargo built for these tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nefos"))
}

/// `nefos up --data DATA` on a free loopback port, once it serves.
pub fn up(data: &Path) -> NefosProcess {
    NefosProcess::up(&binary(), data, &[])
}

/// Stops `process` the way an operator would (SIGTERM) and checks that it exits cleanly.
pub fn stop(process: &mut NefosProcess) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(process.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM {} failed", process.pid());
    let status = process.wait();
    assert!(
        status.success(),
        "nefos exited with {status} after SIGTERM:\n{}",
        process.output()
    );
}

/// Waits until `process` has printed `needle` (its output is read by background threads).
pub fn wait_for_output(process: &NefosProcess, needle: &str) -> String {
    let started = Instant::now();
    loop {
        let output = process.output();
        if output.contains(needle) {
            return output;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nefos never printed {needle:?}:\n{output}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP client with a timeout, so a hung server fails the test instead of hanging it.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The Keystone v3 base URL of a server.
pub fn keystone(url: &str) -> String {
    format!("{url}/identity/v3")
}

/// The body of a password authentication, scoped to a project by name when one is given.
pub fn password_auth(user: &str, password: &str, project: Option<&str>) -> Value {
    let mut body = json!({
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": { "name": user, "domain": { "id": "default" }, "password": password }
                }
            }
        }
    });
    if let Some(project) = project {
        body["auth"]["scope"] = json!({
            "project": { "name": project, "domain": { "name": "Default" } }
        });
    }
    body
}

/// `POST /identity/v3/auth/tokens` with a password; the raw answer.
pub async fn request_token(
    client: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
    project: Option<&str>,
) -> reqwest::Response {
    client
        .post(format!("{}/auth/tokens", keystone(url)))
        .json(&password_auth(user, password, project))
        .send()
        .await
        .unwrap()
}

/// A token for `user`, which must be issued (201): the token and the answer's body.
pub async fn token(
    client: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
    project: Option<&str>,
) -> (String, Value) {
    let response = request_token(client, url, user, password, project).await;
    let status = response.status();
    let token = response
        .headers()
        .get("x-subject-token")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        status, 201,
        "token for {user} scoped to {project:?} refused: {body}"
    );
    (token.expect("X-Subject-Token header"), body)
}

/// A token of the cloud administrator of a `nefos up` data directory, scoped to `admin`.
pub async fn admin_token(client: &reqwest::Client, url: &str, data: &Path) -> String {
    let password = read_credentials(data)["admin"].clone();
    token(client, url, "admin", &password, Some("admin"))
        .await
        .0
}

/// Checks that `response` is a Keystone error with `code`, and returns its body.
pub async fn assert_keystone_error(response: reqwest::Response, code: u16) -> Value {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert_eq!(status, code, "expected a {code}, got {status}: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "error answer is {content_type:?}, not JSON: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["title"].is_string(), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

/// A GET with `X-Auth-Token`.
pub async fn get(client: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    client
        .get(url)
        .header("X-Auth-Token", token)
        .send()
        .await
        .unwrap()
}

/// A GET with `X-Auth-Token` that must answer 200; its JSON body.
pub async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Value {
    let response = get(client, url, token).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "GET {url}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// `nefos admin ARGS` (the caller passes `--data`, `--config` or `--database`).
pub fn admin(args: &[&str]) -> Output {
    Command::new(binary())
        .arg("admin")
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        // Tests give `bootstrap` its password on the command line when they mean to.
        .env_remove("NEFOS_ADMIN_PASSWORD")
        .output()
        .unwrap()
}

/// `nefos admin ARGS`, which must succeed; its stdout.
pub fn admin_ok(args: &[&str]) -> String {
    let output = admin(args);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        output.status.success(),
        "nefos admin {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout
}

/// `nefos admin ARGS`, which must fail; its stderr.
pub fn admin_err(args: &[&str]) -> String {
    let output = admin(args);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        !output.status.success(),
        "nefos admin {args:?} should have failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stderr
}

/// `nefos object ARGS` as the demo user, which must succeed; its stdout.
pub async fn object_cli(url: &str, password: &str, args: &[&str]) -> String {
    let (url, password) = (url.to_owned(), password.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let output = Command::new(binary())
            .arg("object")
            .args(&args)
            .env("OS_AUTH_URL", format!("{url}/identity/v3"))
            .env("OS_USERNAME", "demo")
            .env("OS_PASSWORD", &password)
            .env("OS_PROJECT_NAME", "demo")
            .env_remove("OS_CLOUD")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "nefos object {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    })
    .await
    .unwrap()
}

/// How many blocks the `fs` block store of a data directory holds.
pub fn blocks_in(data: &Path) -> usize {
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let path = e.path();
                        if path.is_dir() { count(&path) } else { 1 }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    count(&data.join("blocks"))
}
