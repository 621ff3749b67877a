//! `nefos object`, the end-user client, run as a subprocess against a real cloud: the
//! hashmap protocol (a file the cloud already holds does not travel again), names that
//! survive URLs and never escape a download directory, skipped unchanged files, listings
//! for scripts, sharing, and clear failures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::{Value, json};

const MIB: usize = 1024 * 1024;

/// Writes `mib` MiB whose 4 MiB blocks all differ.
fn write_file(path: &Path, mib: usize) {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut block: Vec<u8> = (0..4 * MIB)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed.to_le_bytes()[0]
        })
        .collect();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..mib / 4 {
        block[..8].copy_from_slice(&(i as u64).to_le_bytes());
        file.write_all(&block).unwrap();
    }
    file.flush().unwrap();
}

/// The bytes an upload reports sending.
fn sent(output: &str) -> u64 {
    output
        .split("sent ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {output:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploading_a_stored_gib_again_sends_under_one_percent_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = up(&data);
    let password = read_credentials(&data)["demo"].clone();
    let file = dir.path().join("big.bin");
    let size = 1024 * MIB;
    write_file(&file, 1024);
    let path = file.to_str().unwrap();

    let first = object_cli(
        &server.url,
        &password,
        &["upload", "big", path, "--name", "one"],
    )
    .await;
    assert!(
        sent(&first) >= size as u64,
        "the first upload sends the file: {first}"
    );
    let again = object_cli(
        &server.url,
        &password,
        &["upload", "big", path, "--name", "two"],
    )
    .await;
    let sent_again = sent(&again);
    assert!(
        (sent_again as f64) < size as f64 * 0.01,
        "the second upload sent {sent_again} bytes of {size}: {again}"
    );

    // Both names read back as the file.
    let out = dir.path().join("two.out");
    object_cli(
        &server.url,
        &password,
        &["download", "big", "two", "--output", out.to_str().unwrap()],
    )
    .await;
    let (a, b) = (std::fs::read(&file).unwrap(), std::fs::read(&out).unwrap());
    assert!(a == b, "the second name does not read back as the file");
}

/// `nefos object ARGS` as `user`, with no `OS_*` setting from the test's environment but
/// the password ones given here; `extra` adds or overrides settings.
fn object_command(url: &str, user: &str, password: &str, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command.arg("object").args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OS_") {
            command.env_remove(name);
        }
    }
    command
        .env("OS_AUTH_URL", keystone(url))
        .env("OS_USERNAME", user)
        .env("OS_PASSWORD", password)
        .env("OS_PROJECT_NAME", user)
        .env("NO_COLOR", "1");
    command
}

/// Runs a client command off the test's reactor.
async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// The stdout of a command that must succeed.
fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the client failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The stderr of a command that must fail.
fn failed(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "the client should have failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

/// `nefos object ARGS` as demo, which must succeed; its stdout.
async fn demo_ok(server: &NefosProcess, password: &str, args: &[&str]) -> String {
    succeeded(&run(object_command(&server.url, "demo", password, args)).await)
}

/// `nefos object ARGS` as demo, which must fail; its stderr.
async fn demo_fails(server: &NefosProcess, password: &str, args: &[&str]) -> String {
    failed(&run(object_command(&server.url, "demo", password, args)).await)
}

/// A user's token and account URL, for requests the client would not make.
struct Login {
    token: String,
    account: String,
    project: String,
}

async fn login(url: &str, user: &str, password: &str) -> Login {
    let (token, body) = token(&http(), url, user, password, Some(user)).await;
    let project = body["token"]["project"]["id"].as_str().unwrap().to_owned();
    Login {
        token,
        account: format!("{url}/object/v1/AUTH_{project}"),
        project,
    }
}

/// A raw request to `path` (already URL-encoded) under the user's account.
fn raw(login: &Login, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    http()
        .request(method, format!("{}/{path}", login.account))
        .header("X-Auth-Token", &login.token)
}

/// The names of the JSON listing `-f json` printed.
fn listed_names(json_text: &str) -> Vec<String> {
    let rows: Vec<Value> = serde_json::from_str(json_text).unwrap();
    rows.iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_dot_dot_paths_are_mapped_to_names_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = up(&data);
    let password = read_credentials(&data)["demo"].clone();
    std::fs::write(dir.path().join("hello.txt"), "hello\n").unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    std::fs::write(work.join("sub/inner.txt"), "inner").unwrap();

    // The report of issue 13: this used to create a container `hello.txt` and leave C empty.
    let mut upload = object_command(
        &server.url,
        "demo",
        &password,
        &["upload", "C", "../hello.txt", "./sub/../sub/inner.txt"],
    );
    upload.current_dir(&work);
    let out = succeeded(&run(upload).await);
    assert!(out.contains("uploaded 2 files, 11 bytes"), "{out}");
    let objects = demo_ok(&server, &password, &["list", "C", "-f", "json"]).await;
    assert_eq!(listed_names(&objects), ["hello.txt", "sub/inner.txt"]);
    let containers = demo_ok(&server, &password, &["list", "-f", "json"]).await;
    assert_eq!(listed_names(&containers), ["C"], "no container appeared");

    // A name given explicitly keeps its dot segments, and round-trips.
    let hello = dir.path().join("hello.txt");
    demo_ok(
        &server,
        &password,
        &[
            "upload",
            "C",
            hello.to_str().unwrap(),
            "--name",
            "../up/./x.txt",
        ],
    )
    .await;
    let objects = demo_ok(&server, &password, &["list", "C", "-f", "value"]).await;
    assert!(
        objects.lines().any(|l| l.starts_with("../up/./x.txt 6 ")),
        "{objects}"
    );
    let copy = dir.path().join("copy.txt");
    demo_ok(
        &server,
        &password,
        &[
            "download",
            "C",
            "../up/./x.txt",
            "-o",
            copy.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "hello\n");
    let containers = demo_ok(&server, &password, &["list", "-f", "value"]).await;
    assert_eq!(containers.lines().count(), 1, "{containers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_never_write_outside_the_target_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = up(&data);
    let password = read_credentials(&data)["demo"].clone();
    let demo = login(&server.url, "demo", &password).await;
    assert_eq!(
        raw(&demo, reqwest::Method::PUT, "C")
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    for (path, body) in [("..%2F..%2Fx", "escaped"), ("ok.txt", "fine")] {
        let response = raw(&demo, reqwest::Method::PUT, &format!("C/{path}"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "PUT {path}");
    }
    let listing = demo_ok(&server, &password, &["list", "C", "-f", "json"]).await;
    assert_eq!(listed_names(&listing), ["../../x", "ok.txt"]);

    // A whole container: the good object lands, the other is refused, the command fails.
    let target = dir.path().join("a/b/target");
    let stderr = demo_fails(
        &server,
        &password,
        &["download", "C", "-o", target.to_str().unwrap()],
    )
    .await;
    assert!(
        stderr.contains("../../x") && stderr.contains("'..'"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("ok.txt")).unwrap(),
        "fine"
    );
    assert!(!dir.path().join("a/x").exists() && !dir.path().join("a/b/x").exists());

    // One object by its name, without -o: refused too, from any directory.
    let mut alone = object_command(
        &server.url,
        "demo",
        &password,
        &["download", "C", "../../x"],
    );
    alone.current_dir(&target);
    let stderr = failed(&run(alone).await);
    assert!(stderr.contains("-o FILE"), "{stderr}");
    assert!(!dir.path().join("a/x").exists());

    // Into a directory (`-o DIR/`) it keeps only its last segment; to a file, as asked.
    let inbox = dir.path().join("inbox");
    demo_ok(
        &server,
        &password,
        &[
            "download",
            "C",
            "../../x",
            "-o",
            &format!("{}/", inbox.display()),
        ],
    )
    .await;
    assert_eq!(std::fs::read_to_string(inbox.join("x")).unwrap(), "escaped");
    let entries: Vec<_> = std::fs::read_dir(&inbox).unwrap().collect();
    assert_eq!(entries.len(), 1, "no temporary file is left: {entries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploading_again_skips_unchanged_files_and_makes_no_versions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = up(&data);
    let password = read_credentials(&data)["demo"].clone();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("deep")).unwrap();
    std::fs::write(tree.join("a.txt"), "a").unwrap();
    std::fs::write(tree.join("deep/b.bin"), vec![7u8; 5 * MIB]).unwrap();
    std::fs::write(tree.join("empty"), "").unwrap();
    let tree_arg = tree.to_str().unwrap();

    let first = demo_ok(&server, &password, &["upload", "C", tree_arg]).await;
    assert!(
        first.contains("uploaded 3 files") && first.contains("skipped 0"),
        "{first}"
    );
    let again = demo_ok(&server, &password, &["upload", "C", tree_arg]).await;
    assert!(
        again.contains("uploaded 0 files") && again.contains("skipped 3"),
        "{again}"
    );
    assert!(sent(&again) == 0, "nothing travels: {again}");
    let name = |file: &str| format!("{}/{file}", tree_arg.trim_start_matches('/'));
    assert!(
        again.contains(&format!("unchanged, skipped: C/{}", name("deep/b.bin"))),
        "{again}"
    );

    std::fs::write(tree.join("a.txt"), "A").unwrap();
    let changed = demo_ok(&server, &password, &["upload", "C", tree_arg]).await;
    assert!(
        changed.contains("uploaded 1 files, 1 bytes") && changed.contains("skipped 2"),
        "{changed}"
    );

    let demo = login(&server.url, "demo", &password).await;
    let versions = |file: String| {
        let demo = &demo;
        async move {
            let path = format!("C/{file}?version=list&format=json");
            let response = raw(demo, reqwest::Method::GET, &path).send().await.unwrap();
            let body: Value = response.json().await.unwrap();
            body["versions"].as_array().unwrap().len()
        }
    };
    assert_eq!(
        versions(name("deep/b.bin")).await,
        1,
        "unchanged: one version"
    );
    assert_eq!(versions(name("empty")).await, 1, "unchanged: one version");
    assert_eq!(
        versions(name("a.txt")).await,
        2,
        "changed: a second version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_print_for_scripts_and_downloads_go_to_stdout_or_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = up(&data);
    let password = read_credentials(&data)["demo"].clone();
    let file = dir.path().join("f.txt");
    std::fs::write(&file, "twelve bytes").unwrap();
    for name in ["docs/one.txt", "docs/two words.txt"] {
        demo_ok(
            &server,
            &password,
            &["upload", "box", file.to_str().unwrap(), "--name", name],
        )
        .await;
    }

    let containers: Value =
        serde_json::from_str(&demo_ok(&server, &password, &["list", "--format", "json"]).await)
            .unwrap();
    assert_eq!(
        containers,
        json!([{"name": "box", "count": 2, "bytes": 24}])
    );
    let values = demo_ok(
        &server,
        &password,
        &["list", "box", "-f", "value", "--prefix", "docs/t"],
    )
    .await;
    let fields: Vec<&str> = values.trim_end().splitn(4, ' ').collect();
    assert_eq!(fields[..3], ["docs/two", "words.txt", "12"], "{values}");
    let table = demo_ok(&server, &password, &["list", "box"]).await;
    assert!(
        table.contains("last_modified") && table.contains("docs/one.txt"),
        "{table}"
    );
    let accounts = demo_ok(&server, &password, &["accounts", "-f", "json"]).await;
    assert_eq!(listed_names(&accounts), Vec::<String>::new());

    let stdout = demo_ok(
        &server,
        &password,
        &["download", "box", "docs/one.txt", "-o", "-"],
    )
    .await;
    assert_eq!(stdout, "twelve bytes");
    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    demo_ok(
        &server,
        &password,
        &[
            "download",
            "box",
            "docs/two words.txt",
            "-o",
            existing.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(existing.join("two words.txt")).unwrap(),
        "twelve bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_things_and_nothing_to_delete_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = up(&data);
    let password = read_credentials(&data)["demo"].clone();
    let file = dir.path().join("f.txt");
    std::fs::write(&file, "x").unwrap();
    demo_ok(
        &server,
        &password,
        &["upload", "box", file.to_str().unwrap(), "--name", "keep"],
    )
    .await;

    let stderr = demo_fails(&server, &password, &["list", "nope"]).await;
    assert!(
        stderr.contains("listing container \"nope\": 404"),
        "{stderr}"
    );
    let stderr = demo_fails(&server, &password, &["download", "nope", "-o", "-"]).await;
    assert!(stderr.contains("one object"), "{stderr}");
    let target = dir.path().join("t");
    let stderr = demo_fails(
        &server,
        &password,
        &["download", "nope", "-o", target.to_str().unwrap()],
    )
    .await;
    assert!(stderr.contains("404"), "{stderr}");
    let stderr = demo_fails(&server, &password, &["download", "box", "gone", "-o", "-"]).await;
    assert!(stderr.contains("downloading box/gone: 404"), "{stderr}");
    let stderr = demo_fails(&server, &password, &["delete", "box"]).await;
    assert!(stderr.contains("--all"), "{stderr}");
    let stderr = demo_fails(&server, &password, &["delete", "box", "gone", "keep"]).await;
    assert!(
        stderr.contains("deleting box/gone: 404") && stderr.contains("deleted 1 objects"),
        "{stderr}"
    );
    let stderr = demo_fails(&server, &password, &["delete", "nope", "--all"]).await;
    assert!(
        stderr.contains("listing container \"nope\": 404"),
        "{stderr}"
    );
    let stderr = demo_fails(
        &server,
        &password,
        &["upload", "../c", file.to_str().unwrap()],
    )
    .await;
    assert!(stderr.contains("not a container name"), "{stderr}");
    let out = demo_ok(&server, &password, &["delete", "box", "--all"]).await;
    assert!(out.contains("deleted 0 objects and the container"), "{out}");
}

/// Creates a user (whose project is named after them) as the administrator; their password.
async fn add_user(server: &NefosProcess, data: &Path, name: &str) -> String {
    let admin = admin_token(&http(), &server.url, data).await;
    let password = format!("{name}'s password");
    let response = http()
        .post(format!("{}/users", keystone(&server.url)))
        .header("X-Auth-Token", admin)
        .json(&json!({ "user": { "name": name, "password": password } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    password
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_adds_grants_and_a_sharee_lists_and_downloads_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = up(&data);
    let password = read_credentials(&data)["demo"].clone();
    let bob = add_user(&server, &data, "bob").await;
    add_user(&server, &data, "carol").await;
    let file = dir.path().join("f.txt");
    std::fs::write(&file, "for bob").unwrap();
    for name in ["a.txt", "private.txt"] {
        demo_ok(
            &server,
            &password,
            &["upload", "C", file.to_str().unwrap(), "--name", name],
        )
        .await;
    }
    let demo = login(&server.url, "demo", &password).await;
    let response = raw(&demo, reqwest::Method::POST, "C/a.txt")
        .header("X-Object-Meta-Colour", "blue")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    let out = demo_ok(
        &server,
        &password,
        &["share", "C", "a.txt", "--read", "bob"],
    )
    .await;
    assert_eq!(out, "C/a.txt: shared read=bob\n");
    let out = demo_ok(
        &server,
        &password,
        &["share", "C", "a.txt", "--write", "carol"],
    )
    .await;
    assert_eq!(
        out, "C/a.txt: shared read=bob;write=carol\n",
        "bob keeps his grant"
    );
    let out = demo_ok(&server, &password, &["share", "C", "a.txt"]).await;
    assert_eq!(
        out, "C/a.txt: shared read=bob;write=carol\n",
        "no flags: only shown"
    );
    let head = raw(&demo, reqwest::Method::HEAD, "C/a.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.headers()["x-object-meta-colour"],
        "blue",
        "metadata survives sharing"
    );
    let stderr = demo_fails(
        &server,
        &password,
        &["share", "C", "a.txt", "--read", "x;write=y"],
    )
    .await;
    assert!(stderr.contains("not a user name"), "{stderr}");

    // Bob finds the account, lists what it shares with him, and downloads it.
    let as_bob = |args: &[&str]| object_command(&server.url, "bob", &bob, args);
    let accounts = succeeded(&run(as_bob(&["accounts", "-f", "value"])).await);
    let account = format!("AUTH_{}", demo.project);
    assert_eq!(accounts, format!("{account}\n"));
    let containers = succeeded(&run(as_bob(&["list", "--account", &account, "-f", "json"])).await);
    assert_eq!(listed_names(&containers), ["C"]);
    let objects =
        succeeded(&run(as_bob(&["list", "C", "--account", &account, "-f", "json"])).await);
    assert_eq!(listed_names(&objects), ["a.txt"], "only what is shared");
    let got = succeeded(
        &run(as_bob(&[
            "download",
            "C",
            "a.txt",
            "--account",
            &account,
            "-o",
            "-",
        ]))
        .await,
    );
    assert_eq!(got, "for bob");
    let stderr = failed(
        &run(as_bob(&[
            "download",
            "C",
            "private.txt",
            "--account",
            &account,
            "-o",
            "-",
        ]))
        .await,
    );
    assert!(stderr.contains("403"), "{stderr}");

    // Only --clear takes grants away.
    let out = demo_ok(
        &server,
        &password,
        &["share", "C", "a.txt", "--clear", "--read", "carol"],
    )
    .await;
    assert_eq!(out, "C/a.txt: shared read=carol\n");
    let stderr = failed(
        &run(as_bob(&[
            "download",
            "C",
            "a.txt",
            "--account",
            &account,
            "-o",
            "-",
        ]))
        .await,
    );
    assert!(stderr.contains("403"), "{stderr}");
    let out = demo_ok(&server, &password, &["share", "C", "a.txt", "--clear"]).await;
    assert_eq!(out, "C/a.txt: not shared\n");
    let head = raw(&demo, reqwest::Method::HEAD, "C/a.txt")
        .send()
        .await
        .unwrap();
    assert!(!head.headers().contains_key("x-object-sharing"));
    assert_eq!(head.headers()["x-object-meta-colour"], "blue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_with_an_unknown_user_fails_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = up(&data);
    let password = read_credentials(&data)["demo"].clone();
    let file = dir.path().join("f.txt");
    std::fs::write(&file, "x").unwrap();
    demo_ok(
        &server,
        &password,
        &["upload", "C", file.to_str().unwrap(), "--name", "a"],
    )
    .await;
    let stderr = demo_fails(
        &server,
        &password,
        &["share", "C", "a", "--read", "nobody-such"],
    )
    .await;
    assert!(
        stderr.contains("sharing C/a: 400") && stderr.contains("nobody-such"),
        "{stderr}"
    );
    let out = demo_ok(&server, &password, &["share", "C", "a"]).await;
    assert_eq!(out, "C/a: not shared\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openstack_settings_choose_domains_regions_and_token_logins() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = up(&data);
    let password = read_credentials(&data)["demo"].clone();
    let file = dir.path().join("f.txt");
    std::fs::write(&file, "x").unwrap();
    demo_ok(
        &server,
        &password,
        &["upload", "box", file.to_str().unwrap()],
    )
    .await;
    let demo_with = |settings: &[(&str, &str)]| {
        let mut command = object_command(&server.url, "demo", &password, &["list", "-f", "value"]);
        for (name, value) in settings {
            command.env(name, value);
        }
        command
    };
    let listed = |output: Output| {
        let stdout = succeeded(&output);
        assert!(stdout.starts_with("box 1 1"), "{stdout}");
    };

    listed(
        run(demo_with(&[
            ("OS_USER_DOMAIN_NAME", "Default"),
            ("OS_PROJECT_DOMAIN_NAME", "Default"),
            ("OS_REGION_NAME", "RegionOne"),
            ("OS_INTERFACE", "public"),
        ]))
        .await,
    );
    let stderr = failed(&run(demo_with(&[("OS_REGION_NAME", "Elsewhere")])).await);
    assert!(
        stderr.contains("no object-store endpoint in region \"Elsewhere\"; it has RegionOne"),
        "{stderr}"
    );
    let stderr = failed(&run(demo_with(&[("OS_USER_DOMAIN_NAME", "Other")])).await);
    assert!(stderr.contains("login refused (401"), "{stderr}");

    // A token instead of a password: as it is, rescoped to a project, or straight to a
    // storage URL without asking the identity service (here: an address nobody serves).
    let demo = login(&server.url, "demo", &password).await;
    let with_token = |settings: &[(&str, &str)]| {
        let mut command = demo_with(&[("OS_AUTH_TYPE", "token"), ("OS_TOKEN", &demo.token)]);
        command
            .env_remove("OS_USERNAME")
            .env_remove("OS_PASSWORD")
            .env_remove("OS_PROJECT_NAME");
        for (name, value) in settings {
            command.env(name, value);
        }
        command
    };
    listed(run(with_token(&[])).await);
    listed(run(with_token(&[("OS_PROJECT_NAME", "demo")])).await);
    listed(
        run(with_token(&[
            ("OS_AUTH_URL", "http://127.0.0.1:9/identity/v3"),
            ("OS_STORAGE_URL", &demo.account),
        ]))
        .await,
    );
    let mut flag = with_token(&[("OS_AUTH_URL", "http://127.0.0.1:9/identity/v3")]);
    flag.args(["--os-storage-url", &demo.account]);
    listed(run(flag).await);
    let stderr = failed(&run(with_token(&[("OS_TOKEN", "not-a-token")])).await);
    assert!(stderr.contains("login refused"), "{stderr}");
    let mut no_token = with_token(&[]);
    no_token.env_remove("OS_TOKEN");
    let stderr = failed(&run(no_token).await);
    assert!(
        stderr.contains("no token: give --os-token, OS_TOKEN"),
        "{stderr}"
    );
    let stderr = failed(&run(with_token(&[("OS_AUTH_TYPE", "v3oidc")])).await);
    assert!(stderr.contains("\"v3oidc\" is not supported"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn os_cacert_makes_the_client_trust_a_cloud_s_own_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let toml_path = |path: &Path| toml::Value::String(path.display().to_string()).to_string();
    let port = free_port();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let config = dir.path().join("nefos.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ninternal_listen = \"127.0.0.1:0\"\ndata_dir = {}\n\n[tls]\ncertificate = {}\nkey = {}\n",
            toml_path(&dir.path().join("data")),
            toml_path(&cert),
            toml_path(&key),
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // As the operator does: create the database, then its users (admin commands other
    // than `db migrate` never create one).
    admin_ok(&["--config", config, "db", "migrate"]);
    admin_ok(&[
        "--config",
        config,
        "user",
        "create",
        "alice",
        "--password",
        "alice pw",
    ]);
    let url = format!("https://127.0.0.1:{port}");
    let mut server = NefosProcess::start(
        &binary(),
        &["serve".to_owned(), "--config".to_owned(), config.to_owned()],
        &url,
    );
    let probe = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    while !probe
        .get(format!("{url}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        if let Some(status) = server.exited() {
            panic!("nefos serve exited with {status}:\n{}", server.output());
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "no answer over TLS:\n{}",
            server.output()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let untrusted = failed(&run(object_command(&server.url, "alice", "alice pw", &["list"])).await);
    assert!(untrusted.contains("cannot reach"), "{untrusted}");
    let mut trusted = object_command(&server.url, "alice", "alice pw", &["list", "-f", "json"]);
    trusted.env("OS_CACERT", &cert);
    assert_eq!(succeeded(&run(trusted).await), "[]\n");
    let mut not_pem = object_command(&server.url, "alice", "alice pw", &["list"]);
    not_pem.env("OS_CACERT", &key);
    let stderr = failed(&run(not_pem).await);
    assert!(stderr.contains("holds no PEM certificate"), "{stderr}");
}
