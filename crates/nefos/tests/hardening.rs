//! What an attacker or a careless client throws at a running cloud, on SQLite and on
//! PostgreSQL: floods of failed logins, egregious ranges, far-future expiry, NUL in names.
//! Each answer is a 4xx in the API's own convention, never a 5xx, and loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

/// `nefos up` on SQLite in `data`, or on a fresh PostgreSQL database.
async fn clouds(
    data: &tempfile::TempDir,
) -> Vec<(
    &'static str,
    NefosProcess,
    Option<nefos_test_utils::TestDatabase>,
)> {
    let sqlite = up(&data.path().join("sqlite"));
    let postgres = nefos_test_utils::postgres().await;
    let on_postgres = NefosProcess::up(
        &binary(),
        &data.path().join("postgres"),
        &["--database", &postgres.url],
    );
    vec![
        ("sqlite", sqlite, None),
        ("postgres", on_postgres, Some(postgres)),
    ]
}

struct Demo {
    token: String,
    account: String,
}

async fn demo(client: &reqwest::Client, url: &str, data: &std::path::Path) -> Demo {
    let password = read_credentials(data)["demo"].clone();
    let (token, body) = token(client, url, "demo", &password, Some("demo")).await;
    let project = body["token"]["project"]["id"].as_str().unwrap();
    Demo {
        token,
        account: format!("{url}/object/v1/AUTH_{project}"),
    }
}

#[tokio::test]
async fn failed_logins_are_throttled_with_429_and_never_fail_the_server() {
    let data = tempfile::tempdir().unwrap();
    for (label, cloud, _db) in clouds(&data).await {
        let client = http();
        let url = cloud.url.clone();
        let dir = data.path().join(label);

        // Ten wrong passwords for demo are refused as such; then demo's logins wait.
        for attempt in 0..10 {
            let wrong = request_token(&client, &url, "demo", "wrong", None).await;
            assert_eq!(wrong.status(), 401, "{label}: attempt {attempt}");
        }
        let throttled = request_token(&client, &url, "demo", "wrong", None).await;
        let retry_after: u64 = throttled
            .headers()
            .get("retry-after")
            .expect("Retry-After on 429")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{label}: {retry_after}");
        assert_keystone_error(throttled, 429).await;
        // Even the right password waits: the throttle does not tell which was right.
        let password = read_credentials(&dir)["demo"].clone();
        let response = request_token(&client, &url, "demo", &password, None).await;
        assert_eq!(response.status(), 429, "{label}");
        // Other users are not affected.
        admin_token(&client, &url, &dir).await;

        // A flood of made-up users from one address: 401 until the address's budget is
        // spent, then 429; nothing else, and the server keeps serving.
        let attempts = (0..64).map(|n| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                request_token(&client, &url, &format!("nobody-{n}"), "wrong", None)
                    .await
                    .status()
            }
        });
        let statuses = join_all(attempts).await;
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS),
            "{label}: {statuses:?}"
        );
        assert!(
            statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
            "{label}: fifty failures from one address must throttle it"
        );
        // The Swift v1 login answers in its own convention, with the same throttle.
        let swift = client
            .get(format!("{url}/auth/v1.0"))
            .header("X-Auth-User", "demo:demo")
            .header("X-Auth-Key", &password)
            .send()
            .await
            .unwrap();
        assert_eq!(swift.status(), 429, "{label}");
        assert!(swift.headers().get("retry-after").is_some(), "{label}");
    }
}

#[tokio::test]
async fn small_requests_cannot_ask_for_large_work_or_lose_data() {
    let data = tempfile::tempdir().unwrap();
    for (label, cloud, _db) in clouds(&data).await {
        let client = http();
        let demo = demo(&client, &cloud.url, &data.path().join(label)).await;
        let container = format!("{}/c", demo.account);
        let put = |path: String| client.put(path).header("X-Auth-Token", &demo.token);
        assert!(
            put(container.clone())
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        );
        let object = format!("{container}/o");
        let created = put(object.clone())
            .header("X-Delete-After", i64::MAX.to_string())
            .body(vec![7u8; 1000])
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201, "{label}");

        // Overlapping, many and backwards ranges are refused, as Swift does.
        let range = |spec: String| {
            client
                .get(&object)
                .header("X-Auth-Token", &demo.token)
                .header("Range", spec)
                .send()
        };
        let overlapping = format!("bytes={}", vec!["0-"; 50].join(","));
        for spec in [
            overlapping,
            "bytes=-0".to_owned(),
            "bytes=0-1,0-2,0-3".to_owned(),
        ] {
            let answer = range(spec.clone()).await.unwrap();
            assert_eq!(answer.status(), 416, "{label}: {spec}");
        }
        let two = range("bytes=0-1,5-6".to_owned()).await.unwrap();
        assert_eq!(two.status(), 206, "{label}");

        // A huge X-Delete-After is "practically never", not "at once": the expirer (every
        // two seconds) leaves the object alone.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let head = client
            .head(&object)
            .header("X-Auth-Token", &demo.token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.status(),
            200,
            "{label}: the object must still be there"
        );
        assert_eq!(
            head.headers().get("x-delete-at").unwrap(),
            "9999999999",
            "{label}"
        );
    }
}

#[tokio::test]
async fn nul_in_names_is_refused_the_same_on_both_databases() {
    let data = tempfile::tempdir().unwrap();
    for (label, cloud, _db) in clouds(&data).await {
        let client = http();
        let demo = demo(&client, &cloud.url, &data.path().join(label)).await;
        let container = format!("{}/c", demo.account);
        let send = |method: reqwest::Method, url: String| {
            client
                .request(method, url)
                .header("X-Auth-Token", &demo.token)
        };
        assert!(
            send(reqwest::Method::PUT, container.clone())
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        );
        send(reqwest::Method::PUT, format!("{container}/source"))
            .body("data")
            .send()
            .await
            .unwrap();
        let swift_refusals = [
            send(reqwest::Method::PUT, format!("{container}/a%00b")).body("x"),
            send(reqwest::Method::PUT, format!("{}/c%00d", demo.account)),
            send(reqwest::Method::GET, format!("{container}?prefix=%00")),
            send(reqwest::Method::GET, format!("{container}?marker=a%00")),
            send(reqwest::Method::PUT, format!("{container}/copy"))
                .header("X-Copy-From", "c/so%00urce"),
            send(reqwest::Method::GET, format!("{container}/%FF")),
        ];
        for request in swift_refusals {
            let answer = request.send().await.unwrap();
            let status = answer.status();
            let text = answer.text().await.unwrap();
            assert_eq!(status, 412, "{label}: {text}");
            assert!(
                text.contains("Invalid UTF8 or contains NULL"),
                "{label}: {text}"
            );
        }
        // Nothing was stored under such a name.
        let listing = send(reqwest::Method::GET, container.clone())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(listing, "source\n", "{label}");

        // Keystone: a NUL anywhere in a JSON body or a path is a 400.
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "demo\u{0}", "domain": {"id": "default"}, "password": "x"}}}}});
        let answer = client
            .post(format!("{}/auth/tokens", keystone(&cloud.url)))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_keystone_error(answer, 400).await;
        let answer = get(
            &client,
            &format!("{}/projects/a%00b", keystone(&cloud.url)),
            &demo.token,
        )
        .await;
        assert_keystone_error(answer, 400).await;
    }
}
