//! What the binary checks and fixes before it serves: private files at rest, one `nefos up`
//! per data directory, databases only created by the commands that set a cloud up, a
//! database server that does not answer, a block store that cannot work, and logs without
//! colour codes when nobody reads them on a terminal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{NefosProcess, admin_err, admin_ok};
use nefos_test_utils::{serve_args, toml_str};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn path_str(path: &Path) -> String {
    toml_str(path.to_str().unwrap())
}

/// What a start of an older release left: the data directory, its database and its block
/// store readable by everyone.
#[tokio::test]
async fn up_makes_the_data_directory_private_and_tightens_an_open_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = common::up(&data);
    common::stop(&mut first);
    for path in [
        data.clone(),
        data.join("blocks"),
        data.join("nefos.db"),
        data.join("credentials"),
    ] {
        let open = if path.is_dir() { 0o755 } else { 0o644 };
        fs::set_permissions(&path, fs::Permissions::from_mode(open)).unwrap();
    }
    // What nefos did not put there is not nefos's to change.
    let foreign = data.join("notes-of-the-operator.txt");
    fs::write(&foreign, "mine").unwrap();
    fs::set_permissions(&foreign, fs::Permissions::from_mode(0o644)).unwrap();

    let nefos = common::up(&data);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&foreign), 0o644);
    for entry in fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path == foreign {
            continue;
        }
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
    // The database's WAL and shared memory, written while it serves.
    for name in ["nefos.db-wal", "nefos.db-shm"] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    let blocks = data.join("blocks");
    for sub in ["blocks", "tmp", "trash"] {
        assert_eq!(mode(&blocks.join(sub)), 0o700, "blocks/{sub}");
    }
    drop(nefos);
}

#[tokio::test]
async fn serve_creates_a_private_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("var/lib/nefos");
    let port = common::free_port();
    let args = serve_args(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:{port}\"\ninternal_listen = \"127.0.0.1:0\"\ndata_dir = {}\n",
            path_str(&data)
        ),
    );
    let _nefos = NefosProcess::spawn(
        &common::binary(),
        &args,
        &format!("http://127.0.0.1:{port}"),
    );
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("nefos.db")), 0o600);
    assert_eq!(mode(&data.join("blocks")), 0o700);
}

#[tokio::test]
async fn a_second_up_on_the_same_data_directory_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = common::up(&data);
    let clouds = fs::read(data.join("clouds.yaml")).unwrap();
    let credentials = fs::read(data.join("credentials")).unwrap();

    let port = common::free_port();
    let mut second = NefosProcess::up_unchecked(&common::binary(), &data, port);
    let status = second.wait_exit(Duration::from_secs(20));
    let output = second.output();
    assert!(!status.success(), "the second nefos up ran:\n{output}");
    assert!(
        output.contains("in use by another nefos")
            && output.contains(&format!("PID {}", first.pid())),
        "{output}"
    );
    assert_eq!(fs::read(data.join("clouds.yaml")).unwrap(), clouds);
    assert_eq!(fs::read(data.join("credentials")).unwrap(), credentials);
    let health = common::http()
        .get(format!("{}/healthz", first.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the second nefos up listened"
    );

    // The lock goes with its process, even killed.
    let mut first = first;
    first.kill9();
    let _third = common::up(&data);
}

#[test]
fn admin_commands_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.db");
    let url = format!("sqlite://{}", typo.display());
    let err = admin_err(&["--database", &url, "user", "list"]);
    assert!(
        err.contains(&format!("no database at {}", typo.display()))
            && err.contains("nefos admin db migrate"),
        "{err}"
    );
    assert!(!typo.exists(), "nefos admin created {}", typo.display());

    // `db migrate` is the one admin command that creates a database.
    let out = admin_ok(&["--database", &url, "db", "migrate"]);
    assert!(out.contains("schema at version"), "{out}");
    assert_eq!(mode(&typo), 0o600);
    admin_ok(&["--database", &url, "user", "list"]);
}

#[tokio::test]
async fn admin_commands_refuse_a_schema_behind_the_binary_except_db_status_and_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nefos.db");
    let url = format!("sqlite://{}", path.display());
    // A database file that exists but was never migrated (schema version 0), as an older
    // release's database is behind this binary.
    let db = nefos_db::Database::connect(&url, &Default::default())
        .await
        .unwrap();
    db.close().await;
    let latest = nefos_db::MIGRATIONS.last().unwrap().version;

    let err = admin_err(&["--database", &url, "user", "list"]);
    assert!(
        err.contains("behind this binary") && err.contains("nefos admin db migrate"),
        "{err}"
    );
    let out = admin_ok(&["--database", &url, "db", "status"]);
    assert!(out.contains("database schema version: 0"), "{out}");
    assert!(
        out.contains(&format!("binary schema version:   {latest}")),
        "{out}"
    );
    admin_ok(&["--database", &url, "db", "migrate"]);
    admin_ok(&["--database", &url, "user", "list"]);
}

#[test]
fn an_unreachable_postgres_is_reported_within_seconds_by_host_and_port() {
    let port = common::free_port();
    let url = format!("postgres://nefos:pg-secret-pw@127.0.0.1:{port}/nefos");
    let started = Instant::now();
    let err = admin_err(&["--database", &url, "user", "list"]);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}: {err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("pg-secret-pw"), "{err}");
}

/// A `[blocks]` section for the test S3 server's `bucket`.
fn s3_blocks(endpoint: &str, bucket: &str, allow_http: bool) -> String {
    format!(
        "[blocks]\nbackend = \"s3\"\nbucket = {}\nendpoint = {}\naccess_key_id = \"testing\"\n\
         secret_access_key = \"testing\"\nprefix = \"blocks\"\nallow_http = {allow_http}\n",
        toml_str(bucket),
        toml_str(endpoint),
    )
}

#[tokio::test]
async fn serve_checks_the_block_store_before_it_serves() {
    let (endpoint, bucket) = nefos_test_utils::s3_bucket().await;
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let head = format!(
        "listen = \"127.0.0.1:{port}\"\ninternal_listen = \"127.0.0.1:0\"\ndata_dir = {}\n\n",
        path_str(&dir.path().join("data"))
    );

    // Plain HTTP without allow_http: refused at start, saying what to set.
    let args = serve_args(
        dir.path(),
        &format!("{head}{}", s3_blocks(&endpoint, &bucket, false)),
    );
    let mut refused = NefosProcess::start(&common::binary(), &args, &url);
    let status = refused.wait_exit(Duration::from_secs(20));
    let output = refused.output();
    assert!(!status.success(), "{output}");
    assert!(output.contains("allow_http = true"), "{output}");

    // A bucket that does not exist: refused at start by the probe.
    let args = serve_args(
        dir.path(),
        &format!(
            "{head}{}",
            s3_blocks(&endpoint, "nefos-no-such-bucket", true)
        ),
    );
    let mut refused = NefosProcess::start(&common::binary(), &args, &url);
    let status = refused.wait_exit(Duration::from_secs(30));
    let output = refused.output();
    assert!(!status.success(), "{output}");
    assert!(output.contains("failed its start-up check"), "{output}");
    assert!(
        !dir.path().join("data/nefos.db").exists(),
        "a start refused for its block store created the database"
    );

    // A store that works: serves.
    let args = serve_args(
        dir.path(),
        &format!("{head}{}", s3_blocks(&endpoint, &bucket, true)),
    );
    let _nefos = NefosProcess::spawn(&common::binary(), &args, &url);
}

#[tokio::test]
async fn logs_carry_no_colour_codes_when_stderr_is_no_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = common::free_port();
    let mut command = NefosProcess::command(&common::binary(), &NefosProcess::up_args(&data, port));
    command.env_remove("NO_COLOR");
    let mut nefos = NefosProcess::start_command(command, &format!("http://127.0.0.1:{port}"));
    nefos.wait_serving();
    let output = common::wait_for_output(&nefos, "serving");
    assert!(
        !output.contains('\u{1b}'),
        "colour codes in a pipe:\n{output}"
    );
}
