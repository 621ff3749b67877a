//! `nefos admin` as a subprocess on the data directory of a running `nefos up`: both open the
//! same SQLite file (WAL, busy timeout), and what the operator changes is what the API serves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{admin_err, admin_ok};

/// `["--data", DATA, args...]`.
fn with_data<'a>(data: &'a Path, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--data", data.to_str().unwrap()];
    all.extend_from_slice(args);
    all
}

/// The table row that mentions `needle`.
fn row<'a>(table: &'a str, needle: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.split(['│', '┆']).any(|cell| cell.trim() == needle))
        .unwrap_or_else(|| panic!("no row with {needle:?} in:\n{table}"))
}

fn cells(row: &str) -> Vec<&str> {
    row.split(['│', '┆'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// How long the running server may go on trusting a token it validated before another
/// process (`nefos admin`) revoked it: its token cache lifetime (5 s by default, see
/// docs/configuration.md), plus slack for a loaded machine.
const CROSS_PROCESS_REVOCATION: Duration = Duration::from_secs(5 + 2);

/// Polls `url` with `token` until the server refuses it with a Keystone 401.
async fn refused_soon(client: &reqwest::Client, url: &str, token: &str) {
    let started = Instant::now();
    loop {
        let response = common::get(client, url, token).await;
        if response.status() != 200 {
            common::assert_keystone_error(response, 401).await;
            return;
        }
        assert!(
            started.elapsed() < CROSS_PROCESS_REVOCATION,
            "a revoked token still works after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn admin_user_commands_beside_a_running_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let nefos = common::up(&data);
    let client = common::http();
    let url = nefos.url.as_str();
    let a = |args: &[&str]| admin_ok(&with_data(&data, args));
    let fail = |args: &[&str]| admin_err(&with_data(&data, args));

    // create, with a password and an address
    let out = a(&[
        "user",
        "create",
        "carol",
        "--email",
        "carol@example.org",
        "--password",
        "first password",
    ]);
    let carol = cells(row(&out, "carol"));
    assert_eq!(carol[1..4], ["carol", "carol@example.org", "true"], "{out}");
    let carol_id = carol[0].to_owned();
    assert_eq!(carol_id.len(), 32, "{out}");
    assert!(
        !out.contains("password:"),
        "printed a password it was given:\n{out}"
    );

    // create with a generated password, printed once
    let out = a(&["user", "create", "dave"]);
    row(&out, "dave");
    let dave_password = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no generated password printed:\n{out}"))
        .trim()
        .to_owned();
    assert!(dave_password.len() >= 16, "{out}");
    common::token(&client, url, "dave", &dave_password, Some("dave")).await;

    // list
    let out = a(&["user", "list"]);
    for name in ["admin", "carol", "dave", "demo"] {
        row(&out, name);
    }
    assert_eq!(cells(row(&out, "carol"))[0], carol_id);

    // show, by name and by id: the user and its base project role
    for who in ["carol", carol_id.as_str()] {
        let out = a(&["user", "show", who]);
        assert_eq!(cells(row(&out, "carol"))[0], carol_id, "{out}");
        assert!(row(&out, "carol").contains("carol@example.org"));
        let role_row = out
            .lines()
            .filter(|l| l.contains("member"))
            .map(cells)
            .find(|c| c == &["carol", "member"]);
        assert!(
            role_row.is_some(),
            "no member role on carol's project:\n{out}"
        );
    }

    // The API sees the user the admin command made.
    let (old_token, _) =
        common::token(&client, url, "carol", "first password", Some("carol")).await;
    let projects = format!("{}/auth/projects", common::keystone(url));
    common::get_json(&client, &projects, &old_token).await;

    // set-password: the old password and the tokens it got stop working
    let out = a(&[
        "user",
        "set-password",
        "carol",
        "--password",
        "second password",
    ]);
    assert!(out.contains("password of carol changed"), "{out}");
    assert!(!out.contains("second password"), "{out}");
    let refused =
        common::request_token(&client, url, "carol", "first password", Some("carol")).await;
    common::assert_keystone_error(refused, 401).await;
    refused_soon(&client, &projects, &old_token).await;
    let (token, _) = common::token(&client, url, "carol", "second password", Some("carol")).await;
    common::get_json(&client, &projects, &token).await;

    // set-password with a generated password
    let out = a(&["user", "set-password", "dave"]);
    let new_dave = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no generated password printed:\n{out}"))
        .trim()
        .to_owned();
    assert_ne!(new_dave, dave_password);
    let refused = common::request_token(&client, url, "dave", &dave_password, None).await;
    common::assert_keystone_error(refused, 401).await;
    common::token(&client, url, "dave", &new_dave, None).await;

    // disable: no new token, and the one held is revoked
    let out = a(&["user", "disable", "carol"]);
    assert_eq!(cells(row(&out, "carol"))[3], "false", "{out}");
    let refused =
        common::request_token(&client, url, "carol", "second password", Some("carol")).await;
    common::assert_keystone_error(refused, 401).await;
    refused_soon(&client, &projects, &token).await;
    let out = a(&["user", "show", "carol"]);
    assert_eq!(cells(row(&out, "carol"))[3], "false", "{out}");

    // enable: tokens again
    let out = a(&["user", "enable", "carol"]);
    assert_eq!(cells(row(&out, "carol"))[3], "true", "{out}");
    let (token, _) = common::token(&client, url, "carol", "second password", Some("carol")).await;
    let listed = common::get_json(&client, &projects, &token).await;
    assert_eq!(listed["projects"][0]["name"], "carol", "{listed}");

    // errors: non-zero exit, a message on stderr that says what is wrong
    for args in [
        &["user", "show", "nobody"][..],
        &["user", "set-password", "nobody", "--password", "x"],
        &["user", "disable", "nobody"],
        &["user", "enable", "nobody"],
    ] {
        let err = fail(args);
        assert!(
            err.contains("could not find user nobody"),
            "{args:?}: {err}"
        );
    }
    let err = fail(&["user", "create", "carol", "--password", "x"]);
    assert!(
        err.contains("a user with this name already exists"),
        "{err}"
    );
    let err = fail(&["user", "create", "bad/name", "--password", "x"]);
    assert!(err.contains("invalid name"), "{err}");
    let err = fail(&["user", "create", "erin", "--password", ""]);
    assert!(err.contains("password"), "{err}");
    let err = fail(&["user", "frobnicate"]);
    assert!(err.contains("frobnicate"), "{err}");
    // Nothing of the failed creations was left behind.
    let out = a(&["user", "list"]);
    assert!(!out.contains("erin") && !out.contains("bad/name"), "{out}");
}

#[tokio::test]
async fn admin_project_commands_beside_a_running_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let nefos = common::up(&data);
    let client = common::http();
    let url = nefos.url.as_str();
    let a = |args: &[&str]| admin_ok(&with_data(&data, args));
    let fail = |args: &[&str]| admin_err(&with_data(&data, args));
    a(&["user", "create", "carol", "--password", "carol's password"]);

    // create
    let out = a(&[
        "project",
        "create",
        "chem",
        "--description",
        "Chemistry department",
    ]);
    let chem = cells(row(&out, "chem"));
    assert_eq!(
        chem[1..],
        ["chem", "regular", "true", "active", "Chemistry department"],
        "{out}"
    );
    let chem_id = chem[0].to_owned();

    // list: every project, with its kind
    let out = a(&["project", "list"]);
    for (name, kind) in [
        ("admin", "system"),
        ("demo", "base"),
        ("carol", "base"),
        ("chem", "regular"),
    ] {
        assert_eq!(cells(row(&out, name))[2], kind, "{out}");
    }

    // show, by name and by id: no members yet
    for which in ["chem", chem_id.as_str()] {
        let out = a(&["project", "show", which]);
        assert_eq!(cells(row(&out, "chem"))[0], chem_id, "{out}");
        assert!(!out.contains("carol"), "{out}");
    }
    // carol cannot scope to a project she is not a member of
    let refused =
        common::request_token(&client, url, "carol", "carol's password", Some("chem")).await;
    common::assert_keystone_error(refused, 401).await;

    // add-member with the default role, then another role
    let out = a(&["project", "add-member", "chem", "carol"]);
    assert!(out.contains("carol is member of chem"), "{out}");
    let out = a(&["project", "add-member", "chem", "carol", "--role", "reader"]);
    assert!(out.contains("carol is reader of chem"), "{out}");
    let out = a(&["project", "show", "chem"]);
    let members: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.contains("carol"))
        .map(cells)
        .collect();
    assert_eq!(members, [["carol", "member"], ["carol", "reader"]], "{out}");
    let (_, body) = common::token(&client, url, "carol", "carol's password", Some("chem")).await;
    let mut roles: Vec<&str> = body["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    roles.sort_unstable();
    assert_eq!(roles, ["member", "reader"], "{body}");
    assert_eq!(body["token"]["project"]["id"], chem_id.as_str());

    // remove-member of one role, then of the rest
    let out = a(&[
        "project",
        "remove-member",
        "chem",
        "carol",
        "--role",
        "reader",
    ]);
    assert!(out.contains("removed carol from chem"), "{out}");
    let out = a(&["project", "show", "chem"]);
    assert_eq!(cells(row(&out, "carol")), ["carol", "member"], "{out}");
    a(&["project", "remove-member", "chem", "carol"]);
    let out = a(&["project", "show", "chem"]);
    assert!(!out.contains("carol"), "{out}");
    let refused =
        common::request_token(&client, url, "carol", "carol's password", Some("chem")).await;
    common::assert_keystone_error(refused, 401).await;

    // errors
    let err = fail(&["project", "create", "chem"]);
    assert!(
        err.contains("a project with this name already exists"),
        "{err}"
    );
    // A user's base project holds its name, so a project cannot take it either way.
    let err = fail(&["project", "create", "carol"]);
    assert!(
        err.contains("a project with this name already exists"),
        "{err}"
    );
    let err = fail(&["user", "create", "chem", "--password", "x"]);
    assert!(
        err.contains("a project with this name already exists"),
        "{err}"
    );
    let err = fail(&["project", "show", "nothing"]);
    assert!(err.contains("could not find project nothing"), "{err}");
    let err = fail(&["project", "add-member", "nothing", "carol"]);
    assert!(err.contains("could not find project nothing"), "{err}");
    let err = fail(&["project", "add-member", "chem", "nobody"]);
    assert!(err.contains("could not find user nobody"), "{err}");
    let err = fail(&["project", "add-member", "chem", "carol", "--role", "boss"]);
    assert!(err.contains("roles are admin, member and reader"), "{err}");
    let err = fail(&["project", "remove-member", "chem", "carol"]);
    assert!(err.contains("could not find role assignment"), "{err}");
    let err = fail(&["project", "remove-member", "carol", "carol"]);
    assert!(
        err.contains("cannot be removed from its own personal project"),
        "{err}"
    );
    // and carol still holds her own project
    common::token(&client, url, "carol", "carol's password", Some("carol")).await;
}

#[test]
fn a_data_directory_without_a_cloud_is_refused_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("nefos-dta");
    let stderr = admin_err(&["--data", typo.to_str().unwrap(), "user", "list"]);
    assert!(
        stderr.contains(&format!(
            "no database at {}",
            typo.join("nefos.db").display()
        )),
        "{stderr}"
    );
    assert!(
        !typo.join("nefos.db").exists(),
        "an empty database was created"
    );
}
