//! The real `swift` CLI (python-swiftclient from PyPI) against `nefos up`: a large file,
//! a tree of 1,000 small ones, segmented uploads as static (SLO) and dynamic (DLO) large
//! objects, metadata, and deletion of everything including segments, every byte compared.
//! Then the same features over plain HTTP for what the CLI does not reach: manifest edge
//! cases, ranges over segments, segment access checks, bulk delete and expiry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use md5::{Digest, Md5};
use nefos_blocks::{BLOCK_SIZE, hash_block};
use rand::{RngCore, SeedableRng};
use reqwest::{Method, Response};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------------------

/// The `swift` executable; the test command puts it in the repo's venv.
fn swift_cli() -> PathBuf {
    match std::env::var_os("NEFOS_SWIFT_CLI") {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "NEFOS_SWIFT_CLI is not set: run the tests with scripts/test, which installs \
             python-swiftclient in .venv and sets it, or point NEFOS_SWIFT_CLI at a `swift` \
             executable"
        ),
    }
}

/// `swift` as the demo user of a `nefos up`, through Keystone v3, in a clean environment
/// (no `OS_*`/`ST_*` variables of the caller's, a home of its own).
struct Swift {
    exe: PathBuf,
    url: String,
    password: String,
    home: tempfile::TempDir,
}

impl Swift {
    fn new(url: &str, data: &Path) -> Swift {
        Swift {
            exe: swift_cli(),
            url: url.to_owned(),
            password: read_credentials(data)["demo"].clone(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Output {
        let mut command = Command::new(&self.exe);
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("OS_") || name.starts_with("ST_") {
                command.env_remove(&*name);
            }
        }
        command
            .current_dir(dir)
            .env("HOME", self.home.path())
            .args(["--os-auth-url", &keystone(&self.url), "--auth-version", "3"])
            .args(["--os-username", "demo", "--os-password", &self.password])
            .args(["--os-project-name", "demo"])
            .args(["--os-user-domain-name", "Default"])
            .args(["--os-project-domain-name", "Default"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.exe.display()))
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let started = Instant::now();
        let output = self.run(dir, args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && !stderr.contains("Error"),
            "swift {} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
            args.join(" "),
            output.status,
        );
        eprintln!("swift {}: {:.1?}", args.join(" "), started.elapsed());
        stdout
    }

    /// `swift stat CONTAINER OBJECT` as header → value.
    fn stat(&self, dir: &Path, container: &str, object: &str) -> Vec<(String, String)> {
        self.ok(dir, &["stat", container, object])
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect()
    }

    /// `swift list ARGS` as names.
    fn list(&self, dir: &Path, args: &[&str]) -> Vec<String> {
        let mut all = vec!["list"];
        all.extend(args);
        self.ok(dir, &all).lines().map(str::to_owned).collect()
    }
}

fn field<'a>(stat: &'a [(String, String)], name: &str) -> &'a str {
    stat.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {stat:?}"))
}

/// Writes `len` bytes quickly: a 16 MiB random buffer repeated, with a counter at the start
/// of every 4 MiB block so that no two blocks are the same.
fn write_test_file(path: &Path, len: u64, seed: u64) {
    let mut buffer = vec![0u8; 16 * 1024 * 1024];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut buffer);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut block = 0u64;
    while written < len {
        for offset in (0..buffer.len()).step_by(BLOCK_SIZE) {
            buffer[offset..offset + 8].copy_from_slice(&block.to_le_bytes());
            block += 1;
        }
        let take = usize::try_from((len - written).min(buffer.len() as u64)).unwrap();
        file.write_all(&buffer[..take]).unwrap();
        written += take as u64;
    }
    file.flush().unwrap();
}

/// Panics unless two files hold the same bytes.
fn assert_same_file(expected: &Path, actual: &Path) {
    let open = |p: &Path| {
        std::fs::File::open(p).unwrap_or_else(|e| panic!("cannot open {}: {e}", p.display()))
    };
    let (mut a, mut b) = (open(expected), open(actual));
    let (len_a, len_b) = (a.metadata().unwrap().len(), b.metadata().unwrap().len());
    assert_eq!(
        len_a,
        len_b,
        "{} and {} differ in size",
        expected.display(),
        actual.display()
    );
    let (mut buf_a, mut buf_b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut offset = 0u64;
    loop {
        let n = a.read(&mut buf_a).unwrap();
        if n == 0 {
            break;
        }
        b.read_exact(&mut buf_b[..n]).unwrap();
        assert!(
            buf_a[..n] == buf_b[..n],
            "{} and {} differ within {} bytes from {offset}",
            expected.display(),
            actual.display(),
            n
        );
        offset += n as u64;
    }
}

/// The size of the large file. 1 GiB takes about 35 s to upload with a debug build on
/// the reference machine (2 shared cores), and the whole test about 90 s.
const LARGE: u64 = 1024 * 1024 * 1024;
/// A file whose segments do not line up with blocks, for streamed SLOs and DLOs.
const MEDIUM: u64 = 150 * 1024 * 1024 + 12_345;

#[test]
fn swift_cli_round_trips_a_large_file_and_segmented_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let nefos = up(&data);
    let swift = Swift::new(&nefos.url, &data);
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();

    let started = Instant::now();
    write_test_file(&work.join("large"), LARGE, 1);
    write_test_file(&work.join("medium"), MEDIUM, 2);
    eprintln!("test files written in {:.1?}", started.elapsed());

    // --- one large object: upload (the CLI checks the MD5), stat, list, post, download ---
    swift.ok(&work, &["upload", "files", "large"]);
    let stat = swift.stat(&work, "files", "large");
    assert_eq!(field(&stat, "Content Length"), LARGE.to_string());
    let etag = field(&stat, "ETag").to_owned();
    assert!(
        etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit()),
        "{stat:?}"
    );
    let plain_hash = field(&stat, "X-Object-Hash").to_owned();
    assert_eq!(swift.list(&work, &["files"]), ["large"]);
    swift.ok(
        &work,
        &[
            "post",
            "-m",
            "colour:blue",
            "-m",
            "size:large",
            "files",
            "large",
        ],
    );
    let stat = swift.stat(&work, "files", "large");
    assert_eq!(field(&stat, "Meta Colour"), "blue");
    assert_eq!(field(&stat, "Meta Size"), "large");
    assert_eq!(field(&stat, "ETag"), etag, "metadata changed the content");
    swift.ok(&work, &["download", "files", "large", "-o", "large.out"]);
    assert_same_file(&work.join("large"), &work.join("large.out"));
    std::fs::remove_file(work.join("large.out")).unwrap();

    // --- the same file as a static large object of 128 MiB segments (the default when
    // /info advertises slo): they line up with blocks, so it is served from blocks and
    // has the same Merkle root as the plain upload ----------------------------------------
    let segment = (128 * 1024 * 1024).to_string();
    swift.ok(
        &work,
        &[
            "upload",
            "-S",
            &segment,
            "--object-name",
            "large-slo",
            "files",
            "large",
        ],
    );
    let stat = swift.stat(&work, "files", "large-slo");
    assert_eq!(field(&stat, "Content Length"), LARGE.to_string());
    assert_eq!(field(&stat, "X-Static-Large-Object"), "True");
    assert_eq!(field(&stat, "X-Object-Hash"), plain_hash);
    let segments = swift.list(&work, &["files_segments", "--prefix", "large-slo/"]);
    assert_eq!(segments.len(), 8, "{segments:?}");
    assert!(segments.iter().all(|s| s.contains("/slo/")), "{segments:?}");
    swift.ok(
        &work,
        &["download", "files", "large-slo", "-o", "large-slo.out"],
    );
    assert_same_file(&work.join("large"), &work.join("large-slo.out"));
    std::fs::remove_file(work.join("large-slo.out")).unwrap();

    // --- a file in segments that do not line up with blocks, as SLO and as DLO ----------
    let segment = "40000000";
    swift.ok(
        &work,
        &[
            "upload",
            "-S",
            segment,
            "--object-name",
            "medium-slo",
            "files",
            "medium",
        ],
    );
    swift.ok(
        &work,
        &[
            "upload",
            "-S",
            segment,
            "--use-dlo",
            "--object-name",
            "medium-dlo",
            "files",
            "medium",
        ],
    );
    let stat = swift.stat(&work, "files", "medium-slo");
    assert_eq!(field(&stat, "Content Length"), MEDIUM.to_string());
    assert_eq!(field(&stat, "X-Static-Large-Object"), "True");
    let stat = swift.stat(&work, "files", "medium-dlo");
    assert_eq!(field(&stat, "Content Length"), MEDIUM.to_string());
    assert!(
        field(&stat, "Manifest").starts_with("files_segments/medium-dlo/"),
        "{stat:?}"
    );
    // Swift's ETag of a large object: the MD5 of its segments' ETags, the same for both.
    assert_eq!(
        field(&stat, "ETag"),
        field(&swift.stat(&work, "files", "medium-slo"), "ETag")
    );
    for name in ["medium-slo", "medium-dlo"] {
        let out = format!("{name}.out");
        swift.ok(&work, &["download", "files", name, "-o", &out]);
        assert_same_file(&work.join("medium"), &work.join(&out));
    }

    // --- deleting a large object deletes its segments -----------------------------------
    for name in ["large-slo", "medium-slo", "medium-dlo"] {
        swift.ok(&work, &["delete", "files", name]);
        let prefix = format!("{name}/");
        let left = swift.list(&work, &["files_segments", "--prefix", &prefix]);
        assert!(left.is_empty(), "segments of {name} left: {left:?}");
    }
    assert_eq!(swift.list(&work, &["files"]), ["large"]);
    swift.ok(&work, &["delete", "--all"]);
    assert!(swift.list(&work, &[]).is_empty());
    eprintln!("whole test: {:.1?}", started.elapsed());
}

#[test]
fn swift_cli_round_trips_a_tree_of_1000_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let nefos = up(&data);
    let swift = Swift::new(&nefos.url, &data);
    let work = dir.path().join("work");
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for i in 0..1000 {
        let sub = work.join("tree").join(format!("d{:02}", i % 10));
        std::fs::create_dir_all(&sub).unwrap();
        let mut bytes = vec![0u8; 10 + i * 7];
        rng.fill_bytes(&mut bytes);
        let name = if i % 100 == 0 {
            format!("with space {i}.bin")
        } else {
            format!("f{i:04}.bin")
        };
        std::fs::write(sub.join(name), bytes).unwrap();
    }

    swift.ok(&work, &["upload", "tree", "tree"]);
    let listed = swift.list(&work, &["tree"]);
    assert_eq!(listed.len(), 1000);
    assert!(listed.iter().all(|n| n.starts_with("tree/d")), "{listed:?}");
    assert_eq!(
        swift.list(&work, &["tree", "--prefix", "tree/d03/"]).len(),
        100
    );
    let stat = swift.stat(&work, "tree", "tree/d00/with space 0.bin");
    assert_eq!(field(&stat, "Content Length"), "10");

    let down = dir.path().join("down");
    std::fs::create_dir(&down).unwrap();
    swift.ok(&down, &["download", "tree"]);
    for entry in walk(&work.join("tree")) {
        let relative = entry.strip_prefix(&work).unwrap();
        assert_same_file(&entry, &down.join(relative));
    }

    // More objects than the CLI deletes one by one: it uses bulk delete.
    swift.ok(&work, &["delete", "tree"]);
    assert!(swift.list(&work, &[]).is_empty());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

// ---------------------------------------------------------------------------------------
// Over HTTP
// ---------------------------------------------------------------------------------------

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// A user's token and account URL.
struct Account {
    client: reqwest::Client,
    token: Option<String>,
    url: String,
}

impl Account {
    async fn login(url: &str, user: &str, password: &str) -> Account {
        let client = http();
        let (token, body) = token(&client, url, user, password, Some(user)).await;
        let project = body["token"]["project"]["id"].as_str().unwrap();
        Account {
            client,
            token: Some(token),
            url: format!("{url}/object/v1/AUTH_{project}"),
        }
    }

    /// The same account, as `other` would reach it.
    fn as_seen_by(&self, other: &Account) -> Account {
        Account {
            client: other.client.clone(),
            token: other.token.clone(),
            url: self.url.clone(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{path}", self.url)
        };
        let builder = self.client.request(method, url);
        match &self.token {
            Some(token) => builder.header("X-Auth-Token", token),
            None => builder,
        }
    }

    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut builder = self.request(method, path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.send().await.unwrap()
    }

    async fn put(&self, path: &str, body: impl Into<reqwest::Body>, headers: &[(&str, &str)]) {
        let mut builder = self.request(Method::PUT, path).body(body);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        expect(
            builder.send().await.unwrap(),
            &[201, 202],
            &format!("PUT {path}"),
        )
        .await;
    }

    /// GET that must answer 200: the body.
    async fn get(&self, path: &str) -> Vec<u8> {
        let response = self.send(Method::GET, path, &[]).await;
        expect(response, &[200], &format!("GET {path}"))
            .await
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    async fn delete(&self, path: &str) {
        let response = self.send(Method::DELETE, path, &[]).await;
        expect(response, &[204], &format!("DELETE {path}")).await;
    }
}

async fn expect(response: Response, statuses: &[u16], what: &str) -> Response {
    let got = response.status().as_u16();
    if !statuses.contains(&got) {
        let text = response.text().await.unwrap_or_default();
        panic!("{what}: expected {statuses:?}, got {got}: {text}");
    }
    response
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {:?}", response.headers()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// `nefos up` with the demo user and a second user, alice (her own project).
async fn two_users(data: &Path) -> (NefosProcess, Account, Account) {
    let nefos = up(data);
    let credentials = read_credentials(data);
    let demo = Account::login(&nefos.url, "demo", &credentials["demo"]).await;
    let admin = admin_token(&http(), &nefos.url, data).await;
    let response = http()
        .post(format!("{}/identity/v3/users", nefos.url))
        .header("X-Auth-Token", admin)
        .json(&json!({ "user": { "name": "alice", "password": "alice's password" } }))
        .send()
        .await
        .unwrap();
    expect(response, &[201], "create alice").await;
    let alice = Account::login(&nefos.url, "alice", "alice's password").await;
    (nefos, demo, alice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_large_objects_concatenate_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (_nefos, demo, alice) = two_users(&dir.path().join("data")).await;
    demo.put("segs", "", &[]).await;
    demo.put("c", "", &[]).await;
    let parts = [
        random(BLOCK_SIZE + 3, 10),
        random(10, 11),
        random(1024 * 1024, 12),
    ];
    // Uploaded out of order, with neighbours that are not under the prefix.
    for index in [2, 0, 1] {
        demo.put(&format!("segs/p/{index:02}"), parts[index].clone(), &[])
            .await;
    }
    demo.put("segs/p0", "not a segment", &[]).await;
    demo.put("segs/q/00", "not a segment", &[]).await;
    demo.put("c/dlo", "", &[("X-Object-Manifest", "segs/p/")])
        .await;
    let whole = parts.concat();
    let etag = format!(
        "\"{}\"",
        md5_hex(
            parts
                .iter()
                .map(|p| md5_hex(p))
                .collect::<String>()
                .as_bytes()
        )
    );

    let response = demo.send(Method::GET, "c/dlo", &[]).await;
    let response = expect(response, &[200], "GET the DLO").await;
    assert_eq!(header(&response, "etag"), etag);
    assert_eq!(header(&response, "content-length"), whole.len().to_string());
    assert_eq!(header(&response, "x-object-manifest"), "segs/p/");
    assert!(response.headers().get("x-object-hash").is_none());
    assert!(response.bytes().await.unwrap() == whole, "DLO content");
    let head = demo.send(Method::HEAD, "c/dlo", &[]).await;
    assert_eq!(header(&head, "content-length"), whole.len().to_string());
    assert_eq!(header(&head, "etag"), etag);

    // Ranges apply to the whole, across segment boundaries.
    let (first, last) = (BLOCK_SIZE - 2, BLOCK_SIZE + 15);
    let range = format!("bytes={first}-{last}");
    let response = demo.send(Method::GET, "c/dlo", &[("Range", &range)]).await;
    let response = expect(response, &[206], "GET a range of the DLO").await;
    assert_eq!(
        header(&response, "content-range"),
        format!("bytes {first}-{last}/{}", whole.len())
    );
    assert!(response.bytes().await.unwrap() == whole[first..=last]);
    let response = demo
        .send(Method::GET, "c/dlo", &[("Range", "bytes=0-1,-2")])
        .await;
    // Several ranges of a DLO are answered with the whole, as Swift answers them.
    let response = expect(response, &[200], "GET two ranges of the DLO").await;
    assert!(response.bytes().await.unwrap() == whole, "DLO content");

    // Conditional requests see the ETag of the whole.
    let response = demo
        .send(Method::GET, "c/dlo", &[("If-None-Match", &etag)])
        .await;
    assert_eq!(response.status(), 304);
    let response = demo
        .send(Method::GET, "c/dlo", &[("If-Match", "\"nope\"")])
        .await;
    assert_eq!(response.status(), 412);

    // ?multipart-manifest=get: the manifest object itself.
    let response = demo
        .send(Method::GET, "c/dlo?multipart-manifest=get", &[])
        .await;
    let response = expect(response, &[200], "GET the DLO manifest").await;
    assert_eq!(header(&response, "x-object-manifest"), "segs/p/");
    assert!(response.bytes().await.unwrap().is_empty());

    // It is dynamic: a new segment is part of it at once.
    demo.put("segs/p/03", "more", &[]).await;
    assert_eq!(
        demo.get("c/dlo").await,
        [whole.as_slice(), b"more"].concat()
    );

    // The prefix is URL-encoded; a missing container is an empty object.
    demo.put("segs/with space/1", "spaced", &[]).await;
    demo.put(
        "c/spaced",
        "",
        &[("X-Object-Manifest", "segs/with%20space/")],
    )
    .await;
    assert_eq!(demo.get("c/spaced").await, b"spaced");
    demo.put("c/nowhere", "", &[("X-Object-Manifest", "missing/x")])
        .await;
    assert!(demo.get("c/nowhere").await.is_empty());
    let response = demo
        .request(Method::PUT, "c/bad")
        .header("X-Object-Manifest", "no-slash")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Segments are read as the caller: alice may read the manifest (shared with her), not
    // the segment container, so she gets no bytes.
    let response = demo
        .send(Method::POST, "c/dlo", &[("X-Object-Sharing", "read=alice")])
        .await;
    expect(response, &[202], "share the DLO").await;
    let response = demo
        .as_seen_by(&alice)
        .send(Method::GET, "c/dlo", &[])
        .await;
    assert_eq!(response.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_large_objects_validate_serve_and_delete_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (_nefos, demo, alice) = two_users(&dir.path().join("data")).await;
    demo.put("segs", "", &[]).await;
    demo.put("c", "", &[]).await;
    let a = random(BLOCK_SIZE, 20);
    let b = random(2 * BLOCK_SIZE, 21);
    let c = random(BLOCK_SIZE / 4 + 5, 22);
    let x = random(1000, 23);
    let y = random(3 * 1024 * 1024, 24);
    for (name, bytes) in [("a", &a), ("b", &b), ("c", &c), ("x", &x), ("y", &y)] {
        demo.put(&format!("segs/{name}"), bytes.clone(), &[]).await;
    }
    let segment = |name: &str, bytes: &[u8]| json!({ "path": format!("/segs/{name}"), "etag": md5_hex(bytes), "size_bytes": bytes.len() });

    // --- segments that line up with blocks: the manifest's hashmap is theirs -----------
    let manifest = json!([segment("a", &a), segment("b", &b), segment("c", &c)]);
    let response = demo
        .request(Method::PUT, "c/aligned?multipart-manifest=put")
        .header("X-Object-Meta-Kind", "aligned")
        .body(manifest.to_string())
        .send()
        .await
        .unwrap();
    let response = expect(response, &[201], "PUT the aligned manifest").await;
    let etag = md5_hex([md5_hex(&a), md5_hex(&b), md5_hex(&c)].concat().as_bytes());
    assert_eq!(header(&response, "etag"), format!("\"{etag}\""));
    let whole = [a.as_slice(), &b, &c].concat();
    let head = demo.send(Method::HEAD, "c/aligned", &[]).await;
    assert_eq!(header(&head, "x-static-large-object"), "True");
    assert_eq!(header(&head, "etag"), format!("\"{etag}\""));
    assert_eq!(header(&head, "content-length"), whole.len().to_string());
    assert_eq!(header(&head, "x-object-meta-kind"), "aligned");
    assert_eq!(demo.get("c/aligned").await, whole);
    let hashmap: Value =
        serde_json::from_slice(&demo.get("c/aligned?hashmap&format=json").await).unwrap();
    let expected: Vec<String> = whole
        .chunks(BLOCK_SIZE)
        .map(|block| hash_block(block).to_hex())
        .collect();
    assert_eq!(hashmap["hashes"], json!(expected));
    assert_eq!(
        header(&head, "x-object-hash"),
        nefos_blocks::merkle_root(&whole.chunks(BLOCK_SIZE).map(hash_block).collect::<Vec<_>>())
            .to_hex()
    );
    // Published, it is served to anyone: its bytes are its own blocks.
    let response = demo
        .send(Method::POST, "c/aligned", &[("X-Object-Public", "true")])
        .await;
    let public = header(
        &expect(response, &[202], "publish").await,
        "x-object-public",
    );
    let response = http().get(&public).send().await.unwrap();
    let response = expect(response, &[200], "GET the public SLO").await;
    assert!(response.bytes().await.unwrap() == whole);
    // Served from its own blocks, it outlives a deleted segment.
    demo.delete("segs/a").await;
    assert_eq!(demo.get("c/aligned").await, whole);

    // --- segments that do not line up, one of them a range: streamed from the segments --
    let mut ranged = segment("y", &y);
    ranged["range"] = json!("-100");
    let manifest = json!([segment("x", &x), ranged, segment("c", &c)]);
    let response = demo
        .request(Method::PUT, "c/streamed?multipart-manifest=put")
        .body(manifest.to_string())
        .send()
        .await
        .unwrap();
    let response = expect(response, &[201], "PUT the streamed manifest").await;
    let y_range = format!("{}-{}", y.len() - 100, y.len() - 1);
    let etag =
        md5_hex(format!("{}{}:{y_range};{}", md5_hex(&x), md5_hex(&y), md5_hex(&c)).as_bytes());
    assert_eq!(header(&response, "etag"), format!("\"{etag}\""));
    let whole = [x.as_slice(), &y[y.len() - 100..], &c].concat();
    assert_eq!(demo.get("c/streamed").await, whole);
    let head = demo.send(Method::HEAD, "c/streamed", &[]).await;
    assert_eq!(header(&head, "etag"), format!("\"{etag}\""));
    assert_eq!(header(&head, "content-length"), whole.len().to_string());
    assert!(
        head.headers().get("x-object-hash").is_none(),
        "no hashmap of its own"
    );
    // Published, its segments are still read as the (anonymous) caller, who may not.
    let response = demo
        .send(Method::POST, "c/streamed", &[("X-Object-Public", "true")])
        .await;
    let public = header(
        &expect(response, &[202], "publish").await,
        "x-object-public",
    );
    assert_eq!(http().get(&public).send().await.unwrap().status(), 403);
    let response = demo
        .send(Method::GET, "c/streamed", &[("Range", "bytes=990-1110")])
        .await;
    let response = expect(response, &[206], "GET a range of the SLO").await;
    assert!(response.bytes().await.unwrap() == whole[990..=1110]);

    // ?multipart-manifest=get: Swift's stored format; &format=raw: the uploaded one.
    let stored: Value =
        serde_json::from_slice(&demo.get("c/streamed?multipart-manifest=get").await).unwrap();
    assert_eq!(stored[0]["name"], "/segs/x");
    assert_eq!(stored[0]["hash"], md5_hex(&x));
    assert_eq!(stored[0]["bytes"], x.len());
    assert!(stored[0]["content_type"].is_string() && stored[0]["last_modified"].is_string());
    assert_eq!(stored[1]["range"], y_range);
    assert_eq!(stored[1]["bytes"], y.len());
    assert!(stored[0].get("range").is_none());
    let raw: Value = serde_json::from_slice(
        &demo
            .get("c/streamed?multipart-manifest=get&format=raw")
            .await,
    )
    .unwrap();
    assert_eq!(raw[1]["path"], "/segs/y");
    assert_eq!(raw[1]["size_bytes"], y.len());

    // A manifest may list another: the nested one is expanded.
    let manifest = json!([{ "path": "/c/streamed" }, { "path": "/segs/x" }]);
    demo.put("c/nested?multipart-manifest=put", manifest.to_string(), &[])
        .await;
    assert_eq!(
        demo.get("c/nested").await,
        [whole.as_slice(), x.as_slice()].concat()
    );
    let stored: Value =
        serde_json::from_slice(&demo.get("c/nested?multipart-manifest=get").await).unwrap();
    assert_eq!(stored[0]["sub_slo"], true);

    // Segments are read as the caller: the shared manifest alone gives alice nothing.
    let share = |path: &'static str| {
        let demo = &demo;
        async move {
            let response = demo
                .send(Method::POST, path, &[("X-Object-Sharing", "read=alice")])
                .await;
            expect(response, &[202], &format!("share {path}")).await;
        }
    };
    share("c/streamed").await;
    let as_alice = demo.as_seen_by(&alice);
    assert_eq!(
        as_alice.send(Method::GET, "c/streamed", &[]).await.status(),
        403
    );
    for path in ["segs/x", "segs/y", "segs/c"] {
        share(path).await;
    }
    assert_eq!(as_alice.get("c/streamed").await, whole);

    // --- invalid manifests: 400 with every problem listed --------------------------------
    let mut wrong_etag = segment("x", &x);
    wrong_etag["etag"] = json!("0123456789abcdef0123456789abcdef");
    let mut wrong_size = segment("c", &c);
    wrong_size["size_bytes"] = json!(1);
    let mut bad_range = segment("x", &x);
    bad_range["range"] = json!("5000-6000");
    let manifest = json!([wrong_etag, wrong_size, { "path": "/segs/nope" }, bad_range]);
    let response = demo
        .request(Method::PUT, "c/invalid?multipart-manifest=put")
        .body(manifest.to_string())
        .send()
        .await
        .unwrap();
    let response = expect(response, &[400], "PUT an invalid manifest").await;
    let text = response.text().await.unwrap();
    for line in [
        "Errors:",
        "/segs/x, Etag Mismatch",
        "/segs/c, Size Mismatch",
        "/segs/nope, 404 Not Found",
        "/segs/x, Unsatisfiable Range",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    let response = demo
        .request(Method::PUT, "c/invalid?multipart-manifest=put")
        .header("Accept", "application/json")
        .body(json!([{ "path": "/segs/nope" }]).to_string())
        .send()
        .await
        .unwrap();
    let body: Value = expect(response, &[400], "PUT a manifest of a missing segment")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["Errors"], json!([["/segs/nope", "404 Not Found"]]));
    for (body, needle) in [
        ("not json", "valid JSON"),
        ("[]", "at least one segment"),
        (r#"[{"path": "/segs"}]"#, "Index 0"),
        (
            r#"[{"path": "/segs/x", "etag": null, "extra": 1}]"#,
            "extraneous keys",
        ),
    ] {
        let response = demo
            .request(Method::PUT, "c/invalid?multipart-manifest=put")
            .body(body)
            .send()
            .await
            .unwrap();
        let text = expect(response, &[400], body).await.text().await.unwrap();
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert_eq!(
        demo.send(Method::HEAD, "c/invalid", &[]).await.status(),
        404
    );

    // A missing segment: 409 before any byte is sent.
    demo.delete("segs/y").await;
    let response = demo.send(Method::GET, "c/streamed", &[]).await;
    assert_eq!(response.status(), 409);

    // --- DELETE ?multipart-manifest=delete: the segments, then the manifest --------------
    let response = demo
        .request(Method::DELETE, "c/streamed?multipart-manifest=delete")
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let body: Value = expect(response, &[200], "delete the SLO")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["Number Deleted"], 3, "{body}");
    assert_eq!(body["Number Not Found"], 1, "{body}");
    assert_eq!(body["Response Status"], "200 OK", "{body}");
    for gone in ["c/streamed", "segs/x", "segs/c"] {
        assert_eq!(
            demo.send(Method::HEAD, gone, &[]).await.status(),
            404,
            "{gone}"
        );
    }
    assert_eq!(demo.send(Method::HEAD, "segs/b", &[]).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_delete_removes_objects_and_empty_containers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let nefos = up(&data);
    let demo = Account::login(&nefos.url, "demo", &read_credentials(&data)["demo"]).await;
    for container in ["c", "c x", "full"] {
        demo.put(&container.replace(' ', "%20"), "", &[]).await;
    }
    demo.put("c/a", "a", &[]).await;
    demo.put("c%20x/b%20c", "b", &[]).await;
    demo.put("full/keep", "k", &[]).await;
    let body = "/c/a\n/c/nope\n\n/c%20x/b%20c\n/c%20x\n/full\n";
    let response = demo
        .request(Method::POST, "?bulk-delete")
        .header("Accept", "application/json")
        .header("Content-Type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    let response = expect(response, &[200], "bulk delete").await;
    assert!(header(&response, "content-type").starts_with("application/json"));
    let result: Value = response.json().await.unwrap();
    assert_eq!(
        result,
        json!({
            "Number Deleted": 3,
            "Number Not Found": 1,
            "Response Status": "400 Bad Request",
            "Response Body": "",
            "Errors": [["/full", "409 Conflict"]],
        })
    );
    let containers = String::from_utf8(demo.get("").await).unwrap();
    assert_eq!(containers.lines().collect::<Vec<_>>(), ["c", "full"]);
    assert_eq!(
        demo.send(Method::HEAD, "full/keep", &[]).await.status(),
        200
    );

    // Plain text unless asked otherwise; a token is needed.
    let response = demo
        .request(Method::DELETE, "?bulk-delete")
        .body("/full/keep\n")
        .send()
        .await
        .unwrap();
    let text = expect(response, &[200], "bulk delete as text")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        text,
        "Number Deleted: 1\nNumber Not Found: 0\nResponse Body: \nResponse Status: 200 OK\n\
         Errors:\n"
    );
    let response = http()
        .post(format!("{}?bulk-delete", demo.url))
        .body("/c\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expirer_deletes_due_objects() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let nefos = up(&data);
    let demo = Account::login(&nefos.url, "demo", &read_credentials(&data)["demo"]).await;
    demo.put("plain", "", &[("X-Container-Policy-Versioning", "none")])
        .await;
    demo.put(
        "versioned",
        "",
        &[("X-Container-Policy-Versioning", "auto")],
    )
    .await;
    demo.put("plain/soon", "x", &[("X-Delete-After", "3")])
        .await;
    demo.put("plain/keep", "k", &[]).await;
    let at = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 4)
    .to_string();
    demo.put("versioned/soon", "v", &[("X-Delete-At", &at)])
        .await;
    let count = |container: &'static str| {
        let demo = &demo;
        async move {
            let head = demo.send(Method::HEAD, container, &[]).await;
            header(&head, "x-container-object-count")
                .parse::<u64>()
                .unwrap()
        }
    };
    assert_eq!(count("plain").await, 2);
    assert_eq!(count("versioned").await, 1);

    // Counts include due objects until the expirer has deleted them for real.
    let started = Instant::now();
    while count("plain").await != 1 || count("versioned").await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the expirer did not delete the due objects"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        demo.send(Method::GET, "plain/soon", &[]).await.status(),
        404
    );
    assert_eq!(demo.get("plain/keep").await, b"k");
    // A versioned container keeps the history, as for any delete.
    let versions: Value =
        serde_json::from_slice(&demo.get("versioned/soon?version=list&format=json").await).unwrap();
    assert_eq!(
        versions["versions"].as_array().map(Vec::len),
        Some(1),
        "{versions}"
    );
}

/// `swift tempurl ARGS` (a path with its signature), made with the CLI's own signing.
fn temp_url(swift: &Swift, dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["tempurl"];
    all.extend(args);
    swift.ok(dir, &all).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_urls_grant_one_method_on_one_object_until_they_expire() {
    let data = tempfile::tempdir().unwrap();
    let (nefos, demo, _alice) = two_users(data.path()).await;
    let swift = Swift::new(&nefos.url, data.path());
    let dir = data.path();
    let anonymous = http();
    let send = |method: Method, signed: &str| {
        anonymous
            .request(method, format!("{}{signed}", nefos.url))
            .send()
    };
    demo.put("c", Vec::new(), &[]).await;
    demo.put(
        "c/report.pdf",
        b"the report".to_vec(),
        &[
            ("X-Object-Meta-Color", "red"),
            ("X-Object-Meta-Public-Note", "for everyone"),
        ],
    )
    .await;
    // The account's key, set as the swift CLI tells its users to; only owners see it.
    swift.ok(dir, &["post", "-m", "Temp-URL-Key:account secret"]);
    let account_path = demo.url.split("/object").nth(1).unwrap().to_owned();
    let object_path = format!("{account_path}/c/report.pdf");

    // A GET URL reads the object with no token, as an attachment, without the private
    // metadata; a HEAD may use it too.
    let get_url = temp_url(&swift, dir, &["GET", "60", &object_path, "account secret"]);
    let response = expect(send(Method::GET, &get_url).await.unwrap(), &[200], "GET").await;
    assert_eq!(
        header(&response, "content-disposition"),
        "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    );
    assert!(response.headers().get("expires").is_some());
    assert!(response.headers().get("x-object-meta-color").is_none());
    assert_eq!(
        header(&response, "x-object-meta-public-note"),
        "for everyone"
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"the report");
    expect(send(Method::HEAD, &get_url).await.unwrap(), &[200], "HEAD").await;
    let inline = format!("{get_url}&inline&filename=mine.pdf");
    let response = expect(send(Method::GET, &inline).await.unwrap(), &[200], "inline").await;
    assert_eq!(
        header(&response, "content-disposition"),
        "inline; filename=\"mine.pdf\"; filename*=UTF-8''mine.pdf"
    );

    // Each way a URL can be wrong is the same 401, whatever the reason.
    let invalid = [
        get_url.replace("report.pdf", "other.pdf"),
        get_url.replace("temp_url_sig=", "temp_url_sig=0"),
        get_url.replace("temp_url_expires=", "temp_url_expires=1"),
    ];
    for url in &invalid {
        let response = send(Method::GET, url).await.unwrap();
        assert_eq!(response.status(), 401, "{url}");
        assert_eq!(
            header(&response, "www-authenticate"),
            "Swift realm=\"unknown\""
        );
        assert_eq!(
            response.text().await.unwrap(),
            "401 Unauthorized: Temp URL invalid\n"
        );
    }
    let put_with_get_url = send(Method::PUT, &get_url).await.unwrap();
    assert_eq!(put_with_get_url.status(), 401);
    let expired = temp_url(
        &swift,
        dir,
        &[
            "--absolute",
            "GET",
            "1000000000",
            &object_path,
            "account secret",
        ],
    );
    assert_eq!(send(Method::GET, &expired).await.unwrap().status(), 401);
    let wrong_key = temp_url(&swift, dir, &["GET", "60", &object_path, "guess"]);
    assert_eq!(send(Method::GET, &wrong_key).await.unwrap().status(), 401);

    // A PUT URL stores an object (charged to the account), and cannot name another.
    let upload_path = format!("{account_path}/c/upload");
    let put_url = temp_url(&swift, dir, &["PUT", "60", &upload_path, "account secret"]);
    let response = anonymous
        .put(format!("{}{put_url}", nefos.url))
        .body("uploaded")
        .send()
        .await
        .unwrap();
    expect(response, &[201], "PUT through a temp URL").await;
    assert_eq!(demo.get("c/upload").await, b"uploaded");
    let copy = anonymous
        .put(format!("{}{put_url}", nefos.url))
        .header("X-Copy-From", "c/report.pdf")
        .send()
        .await
        .unwrap();
    assert_eq!(copy.status(), 400);
    assert_eq!(
        copy.text().await.unwrap(),
        "The header 'X-Copy-From' is not allowed in this tempurl"
    );
    // Nor can it reach other objects or give more away the ways Pithos adds.
    for (name, value) in [
        ("X-Move-From", "c/report.pdf"),
        ("X-Object-Public", "true"),
        ("X-Object-Sharing", "read=*"),
    ] {
        let response = anonymous
            .put(format!("{}{put_url}", nefos.url))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{name}");
    }
    assert_eq!(demo.get("c/report.pdf").await, b"the report");

    // Other forms the CLI makes: ISO 8601 times, SHA-512, prefixes, the catalog's path.
    let forms: [&[&str]; 2] = [
        &["--iso8601", "GET", "60", &object_path, "account secret"],
        &[
            "--digest",
            "sha512",
            "GET",
            "60",
            &object_path,
            "account secret",
        ],
    ];
    for args in forms {
        let url = temp_url(&swift, dir, args);
        expect(send(Method::GET, &url).await.unwrap(), &[200], &url).await;
    }
    let prefix = format!("{account_path}/c/rep");
    let by_prefix = temp_url(
        &swift,
        dir,
        &["--prefix-based", "GET", "60", &prefix, "account secret"],
    );
    let (_, query) = by_prefix.split_once('?').unwrap();
    let url = format!("{object_path}?{query}");
    expect(send(Method::GET, &url).await.unwrap(), &[200], "prefix").await;
    let outside = format!("{account_path}/c/upload?{query}");
    assert_eq!(send(Method::GET, &outside).await.unwrap().status(), 401);
    let catalog_path = format!("/object{object_path}");
    let url = temp_url(&swift, dir, &["GET", "60", &catalog_path, "account secret"]);
    expect(
        send(Method::GET, &url).await.unwrap(),
        &[200],
        "catalog path",
    )
    .await;

    // A container's key reaches that container only: a large object whose segments lie
    // in another container cannot be read with it; with the account's key it can.
    demo.put("segments", Vec::new(), &[]).await;
    demo.put("segments/part-1", b"one ".to_vec(), &[]).await;
    demo.put("segments/part-2", b"two".to_vec(), &[]).await;
    demo.put(
        "c2",
        Vec::new(),
        &[("X-Container-Meta-Temp-URL-Key", "c2 secret")],
    )
    .await;
    demo.put(
        "c2/joined",
        Vec::new(),
        &[("X-Object-Manifest", "segments/part-")],
    )
    .await;
    demo.put("c2/plain", b"plain".to_vec(), &[]).await;
    let plain = format!("{account_path}/c2/plain");
    let url = temp_url(&swift, dir, &["GET", "60", &plain, "c2 secret"]);
    expect(
        send(Method::GET, &url).await.unwrap(),
        &[200],
        "container key",
    )
    .await;
    let elsewhere = temp_url(&swift, dir, &["GET", "60", &object_path, "c2 secret"]);
    assert_eq!(send(Method::GET, &elsewhere).await.unwrap().status(), 401);
    let joined = format!("{account_path}/c2/joined");
    let with_container_key = temp_url(&swift, dir, &["GET", "60", &joined, "c2 secret"]);
    assert_eq!(
        send(Method::GET, &with_container_key)
            .await
            .unwrap()
            .status(),
        401
    );
    let with_account_key = temp_url(&swift, dir, &["GET", "60", &joined, "account secret"]);
    let response = expect(
        send(Method::GET, &with_account_key).await.unwrap(),
        &[200],
        "DLO",
    )
    .await;
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"one two");

    // Owners see the keys (others of the account do not: see the Swift functional tests).
    let head = demo.send(Method::HEAD, "", &[]).await;
    assert_eq!(
        header(&head, "x-account-meta-temp-url-key"),
        "account secret"
    );
    let head = demo.send(Method::HEAD, "c2", &[]).await;
    assert_eq!(header(&head, "x-container-meta-temp-url-key"), "c2 secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_acls_let_other_users_and_referrers_in() {
    let data = tempfile::tempdir().unwrap();
    let (_nefos, demo, alice) = two_users(data.path()).await;
    let alice_in_demo = demo.as_seen_by(&alice);
    let anonymous = Account {
        client: http(),
        token: None,
        url: demo.url.clone(),
    };
    demo.put("c", Vec::new(), &[]).await;
    demo.put("c/o", b"hello".to_vec(), &[]).await;
    let status = |response: Response| response.status().as_u16();

    // Nobody else gets in: a user of another project is forbidden, an anonymous caller
    // told to authenticate.
    assert_eq!(status(alice_in_demo.send(Method::GET, "c", &[]).await), 403);
    assert_eq!(
        status(alice_in_demo.send(Method::GET, "c/o", &[]).await),
        403
    );
    assert_eq!(status(anonymous.send(Method::GET, "c/o", &[]).await), 401);

    // A read ACL naming alice (project and user by name; ids and * work too).
    let post = |headers: &'static [(&'static str, &'static str)]| {
        let demo = &demo;
        async move {
            let response = demo.send(Method::POST, "c", headers).await;
            expect(response, &[204], "POST c").await;
        }
    };
    post(&[("X-Container-Read", "alice:alice")]).await;
    assert_eq!(alice_in_demo.get("c/o").await, b"hello");
    let listing = alice_in_demo.get("c").await;
    assert_eq!(listing, b"o\n");
    assert_eq!(
        status(alice_in_demo.send(Method::PUT, "c/new", &[]).await),
        403
    );
    let head = alice_in_demo.send(Method::HEAD, "c", &[]).await;
    assert!(head.headers().get("x-container-read").is_none());
    let head = demo.send(Method::HEAD, "c", &[]).await;
    assert_eq!(header(&head, "x-container-read"), "alice:alice");
    // She can copy what she may read into her own account.
    alice.put("mine", Vec::new(), &[]).await;
    let account = demo.url.rsplit('/').next().unwrap();
    alice
        .put(
            "mine/copy",
            Vec::new(),
            &[("X-Copy-From", "c/o"), ("X-Copy-From-Account", account)],
        )
        .await;
    assert_eq!(alice.get("mine/copy").await, b"hello");

    // A write ACL lets her write objects and their metadata, never read them.
    post(&[
        ("X-Remove-Container-Read", "x"),
        ("X-Container-Write", "*:alice"),
    ])
    .await;
    alice_in_demo
        .put(
            "c/from-alice",
            b"hi".to_vec(),
            &[("X-Object-Meta-By", "alice")],
        )
        .await;
    let head = demo.send(Method::HEAD, "c/from-alice", &[]).await;
    assert_eq!(header(&head, "x-object-meta-by"), "alice");
    let response = alice_in_demo
        .send(
            Method::POST,
            "c/from-alice",
            &[("X-Object-Meta-Note", "mine")],
        )
        .await;
    expect(response, &[202], "POST metadata").await;
    let response = alice_in_demo
        .send(Method::POST, "c/from-alice", &[("X-Object-Public", "true")])
        .await;
    assert_eq!(status(response), 403, "publishing is the owner's");
    assert_eq!(
        status(alice_in_demo.send(Method::GET, "c/o", &[]).await),
        403
    );
    assert_eq!(demo.get("c/from-alice").await, b"hi");
    alice_in_demo.delete("c/from-alice").await;

    // Referrers: objects for pages of a domain; listings only with .rlistings; Swift's
    // rules and texts for what it refuses.
    post(&[("X-Container-Read", ".r:.example.com")]).await;
    let from = |page: &'static str| [("Referer", page)];
    let response = anonymous
        .send(Method::GET, "c/o", &from("http://www.example.com/page"))
        .await;
    assert_eq!(status(response), 200);
    let response = anonymous
        .send(Method::GET, "c/o", &from("http://elsewhere.org/"))
        .await;
    assert_eq!(status(response), 401);
    assert_eq!(status(anonymous.send(Method::GET, "c/o", &[]).await), 401);
    post(&[("X-Container-Read", ".r:*")]).await;
    assert_eq!(anonymous.get("c/o").await, b"hello");
    // The current objects only: their history stays the owner's.
    demo.put("c/o", b"hello again".to_vec(), &[]).await;
    let history = anonymous.send(Method::GET, "c/o?version=list", &[]).await;
    assert_eq!(status(history), 401);
    let listing_then = anonymous.send(Method::GET, "c?until=1", &[]).await;
    assert_eq!(status(listing_then), 401);
    assert_eq!(status(anonymous.send(Method::GET, "c", &[]).await), 401);
    post(&[("X-Container-Read", " .referrer:* , .rlistings")]).await;
    assert_eq!(anonymous.get("c").await, b"o\n");
    let head = demo.send(Method::HEAD, "c", &[]).await;
    assert_eq!(header(&head, "x-container-read"), ".r:*,.rlistings");
    let response = demo
        .send(Method::POST, "c", &[("X-Container-Write", ".r:*")])
        .await;
    assert_eq!(
        status_and_text(response).await,
        (400, "Referrers not allowed in write ACL: '.r:*'".to_owned())
    );
    let response = demo
        .send(Method::POST, "c", &[("X-Container-Read", ".r:")])
        .await;
    assert_eq!(
        status_and_text(response).await,
        (
            400,
            "No host/domain value after referrer designation in ACL: '.r:'".to_owned()
        )
    );
    post(&[("X-Container-Read", "")]).await;
    assert_eq!(status(anonymous.send(Method::GET, "c/o", &[]).await), 401);
}

async fn status_and_text(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swift_conventions_reseller_quotas_and_the_healthcheck() {
    let data = tempfile::tempdir().unwrap();
    let (nefos, demo, _alice) = two_users(data.path()).await;
    let status = |response: Response| response.status().as_u16();

    // Swift's transaction ids, on every answer, also as OpenStack's request id.
    let response = demo
        .send(Method::HEAD, "", &[("X-Trans-Id-Extra", "job 7")])
        .await;
    let id = header(&response, "x-trans-id");
    assert!(id.starts_with("tx") && id.ends_with("-job%207"), "{id}");
    assert_eq!(header(&response, "x-openstack-request-id"), id);
    assert_eq!(
        header(&response, "x-account-storage-policy-default-object-count"),
        "0"
    );
    let health = http()
        .get(format!("{}/healthcheck", nefos.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "OK");

    // Account quotas are the reseller's (the cloud administrator's) to set.
    let quota = [("X-Account-Quota-Count", "1")];
    assert_eq!(status(demo.send(Method::POST, "", &quota).await), 403);
    let admin = Account {
        client: http(),
        token: Some(admin_token(&http(), &nefos.url, data.path()).await),
        url: demo.url.clone(),
    };
    expect(
        admin.send(Method::POST, "", &quota).await,
        &[204],
        "set the quota",
    )
    .await;
    demo.put("c", Vec::new(), &[]).await;
    demo.put("c/one", b"1".to_vec(), &[]).await;
    let second = demo
        .request(Method::PUT, "c/two")
        .body("2")
        .send()
        .await
        .unwrap();
    assert_eq!(status(second), 413);
    demo.put("c/one", b"again".to_vec(), &[]).await;
    let head = demo.send(Method::HEAD, "", &[]).await;
    assert_eq!(header(&head, "x-account-quota-count"), "1");
    let remove = [("X-Remove-Account-Quota-Count", "x")];
    expect(
        admin.send(Method::POST, "", &remove).await,
        &[204],
        "remove it",
    )
    .await;
    demo.put("c/two", b"2".to_vec(), &[]).await;

    // Metadata as Swift keeps it: an empty value is a value, a removal leaves a copy's
    // metadata out; Swift's texts for what is too long.
    demo.put(
        "c/m",
        b"m".to_vec(),
        &[("X-Object-Meta-Empty", ""), ("X-Object-Meta-Keep", "k")],
    )
    .await;
    let head = demo.send(Method::HEAD, "c/m", &[]).await;
    assert_eq!(header(&head, "x-object-meta-empty"), "");
    demo.put(
        "c/m2",
        Vec::new(),
        &[("X-Copy-From", "c/m"), ("X-Remove-Object-Meta-Keep", "x")],
    )
    .await;
    let head = demo.send(Method::HEAD, "c/m2", &[]).await;
    assert!(head.headers().get("x-object-meta-keep").is_none());
    let long = "v".repeat(257);
    let response = demo
        .send(Method::POST, "c", &[("X-Container-Meta-Long", &long)])
        .await;
    assert_eq!(
        status_and_text(response).await,
        (400, "Metadata value longer than 256: long".to_owned())
    );
}
