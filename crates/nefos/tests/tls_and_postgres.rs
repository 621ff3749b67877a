//! `nefos serve --config F`: over TLS with a certificate of the operator's, and on PostgreSQL
//! with a token lifetime from the configuration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use nefos_db::{Database, MIGRATIONS, PoolSettings};
use serde_json::Value;

use nefos_test_utils::toml_str;

fn path_str(path: &Path) -> String {
    toml_str(path.to_str().unwrap())
}

/// Writes `text` to `dir/nefos.toml` and returns its path and the `serve` arguments for it.
fn config(dir: &Path, text: &str) -> (String, Vec<String>) {
    let args = nefos_test_utils::serve_args(dir, text);
    (args[2].clone(), args)
}

/// A client that trusts the certificate `cert_pem` (and only the usual roots besides).
fn tls_client(cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[tokio::test]
async fn serve_over_tls_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let cert_pem = certified.cert.pem();
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let port = common::free_port();
    let internal_port = common::free_port();
    let (config_path, args) = config(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:{port}\"\ninternal_listen = \"127.0.0.1:{internal_port}\"\n\
             data_dir = {}\n\n[http]\nheader_timeout_seconds = 1\n\n\
             [tls]\ncertificate = {}\nkey = {}\n",
            path_str(&dir.path().join("data")),
            path_str(&cert),
            path_str(&key),
        ),
    );
    // `serve` creates no users: the operator does, on the same configuration, once the
    // database exists (admin commands other than `db migrate` never create one).
    common::admin_ok(&["--config", &config_path, "db", "migrate"]);
    common::admin_ok(&[
        "--config",
        &config_path,
        "user",
        "create",
        "alice",
        "--password",
        "alice's password",
    ]);

    let url = format!("https://127.0.0.1:{port}");
    let mut nefos = common::NefosProcess::start(&common::binary(), &args, &url);
    let client = tls_client(&cert_pem);
    let started = Instant::now();
    loop {
        if let Some(status) = nefos.exited() {
            panic!("nefos serve exited with {status}:\n{}", nefos.output());
        }
        match client.get(format!("{url}/healthz")).send().await {
            Ok(response) if response.status() == 200 => break,
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nefos serve did not answer over TLS:\n{}",
            nefos.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A password token over TLS, with a catalog of https endpoints.
    let (token, body) =
        common::token(&client, &url, "alice", "alice's password", Some("alice")).await;
    let catalog = body["token"]["catalog"].as_array().unwrap();
    assert!(!catalog.is_empty(), "{body}");
    for service in catalog {
        for endpoint in service["endpoints"].as_array().unwrap() {
            let endpoint_url = endpoint["url"].as_str().unwrap();
            assert!(
                endpoint_url.starts_with(&format!("{url}/")),
                "endpoint not at the https URL: {service}"
            );
        }
    }
    let projects = common::get_json(
        &client,
        &format!("{}/auth/projects", common::keystone(&url)),
        &token,
    )
    .await;
    assert_eq!(projects["projects"][0]["name"], "alice", "{projects}");

    // The internal API has its own listener, over TLS too; the public one does not serve it.
    let internal = format!("https://127.0.0.1:{internal_port}/internal/v1/enroll");
    let join = serde_json::json!({ "join_token": "not-a-join-token" });
    let response = client.post(&internal).json(&join).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = client
        .post(format!("{url}/internal/v1/enroll"))
        .json(&join)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // The certificate is really checked, and nothing is served in clear text.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_err(),
        "a client that does not trust the certificate connected"
    );
    let plain = untrusting
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP was served on the TLS port: {plain:?}"
    );

    // A client that connects and never starts the handshake is dropped at the header
    // deadline (1 s here), as a silent plain-HTTP client would be.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut silent, &mut buf),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "a connection without a TLS handshake was kept open: {read:?}"
    );
    // And the server still serves (on a new connection: the server has closed the idle
    // keep-alive ones at the same deadline).
    let health = tls_client(&cert_pem)
        .get(format!("{url}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn serve_on_postgres_migrates_issues_tokens_and_expires_them() {
    let test_db = nefos_test_utils::postgres().await;
    // The helper migrated the database; empty it so that `serve` is what applies the
    // migrations.
    sqlx::query("DROP SCHEMA public CASCADE")
        .execute(test_db.db.pool())
        .await
        .unwrap();
    sqlx::query("CREATE SCHEMA public")
        .execute(test_db.db.pool())
        .await
        .unwrap();
    test_db.db.close().await;
    let check = Database::connect(&test_db.url, &PoolSettings::default())
        .await
        .unwrap();
    assert_eq!(
        check.schema_version().await.ok(),
        Some(0),
        "schema not emptied"
    );

    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let (_, args) = config(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:{port}\"\ninternal_listen = \"127.0.0.1:0\"\n\
             data_dir = {}\ndatabase = {}\n\n\
             [identity]\ntoken_ttl_seconds = 1\n",
            path_str(&dir.path().join("data")),
            toml_str(&test_db.url),
        ),
    );
    let nefos = common::NefosProcess::spawn(&common::binary(), &args, &url);
    let latest = MIGRATIONS.last().unwrap().version;
    assert_eq!(check.schema_version().await.unwrap(), latest);
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables
         WHERE table_schema = 'public' AND table_name IN ('users', 'projects', 'tokens')",
    )
    .fetch_one(check.pool())
    .await
    .unwrap();
    assert_eq!(tables, 3);
    // No SQLite file was made on the side.
    assert!(!dir.path().join("data").join("nefos.db").exists());

    // The operator creates a user on the same database, beside the running server.
    let out = common::admin_ok(&[
        "--database",
        &test_db.url,
        "user",
        "create",
        "alice",
        "--password",
        "alice's password",
    ]);
    assert!(out.contains("alice"), "{out}");

    let client = common::http();
    let (token, body) =
        common::token(&client, &url, "alice", "alice's password", Some("alice")).await;
    assert_eq!(body["token"]["project"]["name"], "alice", "{body}");
    assert_eq!(body["token"]["roles"][0]["name"], "member", "{body}");
    let keystone = common::keystone(&url);
    let projects = format!("{keystone}/auth/projects");
    let listed = common::get_json(&client, &projects, &token).await;
    assert_eq!(listed["projects"][0]["name"], "alice", "{listed}");

    // token_ttl_seconds = 1: the token lives one second.
    let mut lifetime =
        parse_time(&body["token"]["expires_at"]) - parse_time(&body["token"]["issued_at"]);
    if lifetime < 0.0 {
        lifetime += 86_400.0; // across midnight
    }
    assert!(
        (0.9..=1.1).contains(&lifetime),
        "token lifetime {lifetime} s: {body}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let expired = common::get(&client, &projects, &token).await;
    common::assert_keystone_error(expired, 401).await;
    // Nor can it be exchanged for a fresh one.
    let exchanged = client
        .post(format!("{keystone}/auth/tokens"))
        .json(&serde_json::json!({
            "auth": { "identity": { "methods": ["token"], "token": { "id": token } } }
        }))
        .send()
        .await
        .unwrap();
    common::assert_keystone_error(exchanged, 401).await;
    drop(nefos);
    check.close().await;
}

/// Seconds since the epoch of a Keystone timestamp (`2026-11-25T09:28:15.000000Z`), enough
/// for differences within a day.
fn parse_time(value: &Value) -> f64 {
    let text = value.as_str().unwrap();
    let time = text.split_once('T').unwrap().1.trim_end_matches('Z');
    let parts: Vec<f64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}
