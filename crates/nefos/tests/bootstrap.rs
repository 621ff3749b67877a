//! `nefos admin bootstrap`: the cloud administrator for a cloud run by `nefos serve`,
//! created once, reported and left alone afterwards, and the same as `nefos up`'s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{NefosProcess, admin_err, admin_ok};
use nefos_test_utils::{serve_args, toml_str};

fn bootstrap(data: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--data".to_owned(),
        data.display().to_string(),
        "bootstrap".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn bootstrap_creates_the_administrator_once_and_resets_it_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    admin_ok(&["--data", data.to_str().unwrap(), "db", "migrate"]);

    // First run: created, with a generated password that is printed and saved 0600.
    let out = admin_ok(&refs(&bootstrap(&data, &[])));
    assert!(out.contains("created the cloud administrator"), "{out}");
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no generated password printed:\n{out}"))
        .trim()
        .to_owned();
    let saved = data.join("admin-password");
    assert_eq!(std::fs::read_to_string(&saved).unwrap().trim(), password);
    assert_eq!(
        std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Again, with or without the password: nothing changes, and it says so.
    for extra in [&[][..], &["--admin-password", password.as_str()]] {
        let out = admin_ok(&refs(&bootstrap(&data, extra)));
        assert!(out.contains("exists; nothing changed"), "{extra:?}: {out}");
        assert!(!out.contains("password:"), "{out}");
    }
    assert_eq!(std::fs::read_to_string(&saved).unwrap().trim(), password);

    // Another password is not set unless asked.
    let err = admin_err(&refs(&bootstrap(
        &data,
        &["--admin-password", "another one"],
    )));
    assert!(
        err.contains("exists with another password") && err.contains("--reset-password"),
        "{err}"
    );
    let out = admin_ok(&refs(&bootstrap(
        &data,
        &["--admin-password", password.as_str()],
    )));
    assert!(
        out.contains("nothing changed"),
        "the password was changed: {out}"
    );

    // Asked, with the password from the environment.
    let output = Command::new(common::binary())
        .arg("admin")
        .args(bootstrap(&data, &["--reset-password"]))
        .env("NEFOS_ADMIN_PASSWORD", "the new one")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.contains("password of admin reset"), "{out}");
    assert!(
        !out.contains("the new one"),
        "printed a password it was given: {out}"
    );

    // `nefos serve` on that database: the administrator administers the cloud.
    let port = common::free_port();
    let args = serve_args(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:{port}\"\ninternal_listen = \"127.0.0.1:0\"\ndata_dir = {}\n",
            toml_str(data.to_str().unwrap())
        ),
    );
    let nefos = NefosProcess::spawn(
        &common::binary(),
        &args,
        &format!("http://127.0.0.1:{port}"),
    );
    let client = common::http();
    let refused =
        common::request_token(&client, &nefos.url, "admin", &password, Some("admin")).await;
    common::assert_keystone_error(refused, 401).await;
    let (token, body) =
        common::token(&client, &nefos.url, "admin", "the new one", Some("admin")).await;
    let roles: Vec<&str> = body["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["admin"], "{body}");
    let users = format!("{}/users", common::keystone(&nefos.url));
    common::get_json(&client, &users, &token).await;
}

#[tokio::test]
async fn bootstrap_on_a_cloud_nefos_up_made_finds_its_administrator() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _nefos = common::up(&data);
    let password = common::read_credentials(&data)["admin"].clone();
    let out = admin_ok(&refs(&bootstrap(
        &data,
        &["--admin-password", password.as_str()],
    )));
    assert!(out.contains("exists; nothing changed"), "{out}");
    assert!(!data.join("admin-password").exists());
}

#[test]
fn bootstrap_refuses_a_database_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let err = admin_err(&refs(&bootstrap(&data, &[])));
    assert!(err.contains("no database at"), "{err}");
    assert!(!data.exists(), "bootstrap made {}", data.display());
}
