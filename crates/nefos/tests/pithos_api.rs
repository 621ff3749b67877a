//! The Pithos extensions of the object-store API against `nefos up`: the hashmap protocol
//! (an object that shares all but one block with a stored one stores exactly one new
//! block; 409 with the missing hashes, POST of the blocks, PUT again → 201), partial
//! updates, versions, `until=`, MOVE, and the isolation of accounts with Swift's status
//! codes: 403 for another project's token whether or not the object exists, 401 without a
//! token, except as sharing grants; a public URL exposes only its object.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use md5::{Digest, Md5};
use nefos_blocks::{BLOCK_SIZE, BlockHash, hash_block};
use rand::{RngCore, SeedableRng};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// Block files of the `fs` store of a `nefos up` data directory.
fn block_files(data: &Path) -> usize {
    fn count(dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .map(|e| e.unwrap())
            .map(|e| {
                if e.file_type().unwrap().is_dir() {
                    count(&e.path())
                } else {
                    1
                }
            })
            .sum()
    }
    count(&data.join("blocks").join("blocks"))
}

/// A user's token and the URL of their account (from the catalog), and their project.
struct Login {
    token: String,
    account: String,
    project: String,
}

async fn login(client: &reqwest::Client, url: &str, user: &str, password: &str) -> Login {
    let (token, body) = token(client, url, user, password, Some(user)).await;
    let account = body["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "object-store")
        .expect("object-store in the catalog")["endpoints"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let project = body["token"]["project"]["id"].as_str().unwrap().to_owned();
    assert!(account.ends_with(&format!("/AUTH_{project}")), "{account}");
    Login {
        token,
        account,
        project,
    }
}

/// Creates a user (whose base project is named after them) as the administrator.
async fn add_user(client: &reqwest::Client, url: &str, admin: &str, name: &str) -> Login {
    let password = format!("{name}'s password");
    let response = client
        .post(format!("{url}/identity/v3/users"))
        .header("X-Auth-Token", admin)
        .json(&json!({ "user": { "name": name, "password": password } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    login(client, url, name, &password).await
}

/// A request with a token (or none).
fn request(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    let builder = client.request(method, url);
    match token {
        Some(token) => builder.header("X-Auth-Token", token),
        None => builder,
    }
}

async fn expect(response: Response, status: u16, what: &str) -> Response {
    let got = response.status().as_u16();
    if got != status {
        let text = response.text().await.unwrap_or_default();
        panic!("{what}: expected {status}, got {got}: {text}");
    }
    response
}

fn hashmap_body(data: &[u8]) -> (Vec<BlockHash>, Value) {
    let hashes: Vec<BlockHash> = data.chunks(BLOCK_SIZE).map(hash_block).collect();
    let body = json!({
        "block_hash": "sha256",
        "block_size": BLOCK_SIZE,
        "bytes": data.len(),
        "hashes": hashes.iter().map(BlockHash::to_hex).collect::<Vec<_>>(),
    });
    (hashes, body)
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The ETag of an object once the digest job has computed it (versions made from a
/// hashmap or by a partial update are stored without their MD5 and answer without one).
async fn etag_once_computed(client: &reqwest::Client, url: &str, token: Option<&str>) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let head = request(client, Method::HEAD, url, token)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "HEAD {url}");
        if let Some(etag) = head.headers().get("etag") {
            return etag.to_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no ETag for {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashmap_protocol_partial_updates_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = up(&data);
    let client = http();
    let password = read_credentials(&data)["demo"].clone();
    let demo = login(&client, &server.url, "demo", &password).await;
    let t = Some(demo.token.as_str());
    let container = format!("{}/c", demo.account);
    expect(
        request(&client, Method::PUT, &container, t)
            .send()
            .await
            .unwrap(),
        201,
        "create the container",
    )
    .await;
    let head = expect(
        request(&client, Method::HEAD, &container, t)
            .send()
            .await
            .unwrap(),
        204,
        "HEAD the container",
    )
    .await;
    assert_eq!(
        header(&head, "x-container-block-size"),
        BLOCK_SIZE.to_string()
    );
    assert_eq!(header(&head, "x-container-block-hash"), "sha256");

    // --- an object of three and a bit blocks, uploaded the plain way -------------------
    let original = random(3 * BLOCK_SIZE + 100, 1);
    expect(
        request(&client, Method::PUT, &format!("{container}/first"), t)
            .body(original.clone())
            .send()
            .await
            .unwrap(),
        201,
        "PUT first",
    )
    .await;
    let stored = block_files(&data);
    assert_eq!(stored, 4);

    // --- the same but one block, by hashmap: 409 with exactly that block missing --------
    let mut changed = original.clone();
    changed[2 * BLOCK_SIZE..3 * BLOCK_SIZE].copy_from_slice(&random(BLOCK_SIZE, 2));
    let (hashes, body) = hashmap_body(&changed);
    let put_hashmap = |name: &str, body: &Value| {
        request(
            &client,
            Method::PUT,
            &format!("{container}/{name}?hashmap&format=json"),
            t,
        )
        .header("Content-Type", "application/octet-stream")
        .body(body.to_string())
        .send()
    };
    let conflict = expect(
        put_hashmap("second", &body).await.unwrap(),
        409,
        "PUT ?hashmap",
    )
    .await;
    let missing: Vec<String> = conflict.json().await.unwrap();
    assert_eq!(missing, vec![hashes[2].to_hex()]);
    assert_eq!(
        block_files(&data),
        stored,
        "a refused hashmap stores nothing"
    );
    expect(
        request(&client, Method::GET, &format!("{container}/second"), t)
            .send()
            .await
            .unwrap(),
        404,
        "GET an object whose hashmap was refused",
    )
    .await;

    // --- POST the missing block to the container, PUT the hashmap again: 201 ------------
    let posted = expect(
        request(
            &client,
            Method::POST,
            &format!("{container}?format=json"),
            t,
        )
        .header("Content-Type", "application/octet-stream")
        .body(changed[2 * BLOCK_SIZE..3 * BLOCK_SIZE].to_vec())
        .send()
        .await
        .unwrap(),
        202,
        "POST a block to the container",
    )
    .await;
    let posted: Vec<String> = posted.json().await.unwrap();
    assert_eq!(posted, vec![hashes[2].to_hex()]);
    let created = expect(
        put_hashmap("second", &body).await.unwrap(),
        201,
        "PUT ?hashmap",
    )
    .await;
    // The request did not read the object back: the MD5 comes from the digest job.
    assert!(created.headers().get("etag").is_none());
    assert!(created.headers().get("x-object-hash").is_some());
    assert_eq!(
        etag_once_computed(&client, &format!("{container}/second"), t).await,
        md5_hex(&changed)
    );
    assert_eq!(
        block_files(&data),
        stored + 1,
        "an object sharing all but one block with another stores exactly one new block"
    );
    let got = expect(
        request(&client, Method::GET, &format!("{container}/second"), t)
            .send()
            .await
            .unwrap(),
        200,
        "GET second",
    )
    .await;
    assert_eq!(header(&got, "etag"), md5_hex(&changed));
    assert!(got.bytes().await.unwrap() == changed, "second reads back");
    let map: Value = expect(
        request(
            &client,
            Method::GET,
            &format!("{container}/second?hashmap&format=json"),
            t,
        )
        .send()
        .await
        .unwrap(),
        200,
        "GET ?hashmap",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(map["hashes"], body["hashes"]);
    assert_eq!(map["bytes"], changed.len());

    // The same hashmap under a third name: nothing to send, nothing stored.
    expect(
        put_hashmap("third", &body).await.unwrap(),
        201,
        "PUT ?hashmap again",
    )
    .await;
    assert_eq!(block_files(&data), stored + 1);
    // A hashmap whose size does not match its hashes, or with another block size: 400.
    let mut wrong = body.clone();
    wrong["bytes"] = json!(10);
    expect(
        put_hashmap("bad", &wrong).await.unwrap(),
        400,
        "bytes vs hashes",
    )
    .await;
    let mut wrong = body.clone();
    wrong["block_size"] = json!(131_072);
    expect(put_hashmap("bad", &wrong).await.unwrap(), 400, "block size").await;
    expect(
        request(
            &client,
            Method::PUT,
            &format!("{container}/bad?hashmap&format=json"),
            t,
        )
        .body("not json")
        .send()
        .await
        .unwrap(),
        400,
        "a hashmap that is not JSON",
    )
    .await;
    // kamaki's form: only bytes and hashes.
    let small = random(1000, 3);
    let (small_hashes, _) = hashmap_body(&small);
    let kamaki = json!({ "bytes": 1000, "hashes": [small_hashes[0].to_hex()] });
    expect(
        put_hashmap("small", &kamaki).await.unwrap(),
        409,
        "kamaki-style hashmap",
    )
    .await;

    // --- partial updates: append, overwrite a range, truncate --------------------------
    let object = format!("{container}/second");
    let before = block_files(&data);
    let post_data = |range: &str, data: Vec<u8>| {
        request(&client, Method::POST, &object, t)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", range.to_owned())
            .body(data)
            .send()
    };
    let mut expected = changed.clone();
    let appended = expect(
        post_data("bytes */*", b"appended".to_vec()).await.unwrap(),
        204,
        "append",
    )
    .await;
    expected.extend_from_slice(b"appended");
    assert!(appended.headers().get("etag").is_none());
    assert_eq!(
        etag_once_computed(&client, &object, t).await,
        md5_hex(&expected)
    );
    assert_eq!(
        block_files(&data),
        before + 1,
        "append rewrites only the last block"
    );
    let overwritten = expect(
        post_data("bytes 10-13/*", b"ABCD".to_vec()).await.unwrap(),
        204,
        "overwrite a range",
    )
    .await;
    expected[10..14].copy_from_slice(b"ABCD");
    assert!(overwritten.headers().get("etag").is_none());
    assert_eq!(
        etag_once_computed(&client, &object, t).await,
        md5_hex(&expected)
    );
    assert_eq!(
        block_files(&data),
        before + 2,
        "an overwrite stores one block"
    );
    expect(
        post_data("bytes 10-13/*", b"too long".to_vec())
            .await
            .unwrap(),
        400,
        "data longer than its range",
    )
    .await;
    expect(
        post_data(&format!("bytes {}-/*", expected.len() + 5), b"x".to_vec())
            .await
            .unwrap(),
        416,
        "an offset past the end",
    )
    .await;
    let truncated = expect(
        request(&client, Method::POST, &object, t)
            .header("X-Object-Bytes", "20")
            .send()
            .await
            .unwrap(),
        204,
        "truncate",
    )
    .await;
    expected.truncate(20);
    assert!(truncated.headers().get("etag").is_none());
    assert_eq!(
        etag_once_computed(&client, &object, t).await,
        md5_hex(&expected)
    );
    let got = expect(
        request(&client, Method::GET, &object, t)
            .send()
            .await
            .unwrap(),
        200,
        "GET after the updates",
    )
    .await;
    assert_eq!(got.bytes().await.unwrap(), expected);

    // --- versions: every update made one; each reads back -------------------------------
    let versions: Value = expect(
        request(
            &client,
            Method::GET,
            &format!("{object}?version=list&format=json"),
            t,
        )
        .send()
        .await
        .unwrap(),
        200,
        "version list",
    )
    .await
    .json()
    .await
    .unwrap();
    let versions = versions["versions"].as_array().unwrap().clone();
    assert_eq!(versions.len(), 4, "{versions:?}");
    let first_version = versions[0][0].as_i64().unwrap();
    let old = expect(
        request(
            &client,
            Method::GET,
            &format!("{object}?version={first_version}"),
            t,
        )
        .send()
        .await
        .unwrap(),
        200,
        "GET ?version=N",
    )
    .await;
    assert!(
        old.bytes().await.unwrap() == changed,
        "the first version reads back"
    );

    // --- until=: the container and the account as they were ---------------------------
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before_move = now_seconds();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let blocks_before_move = block_files(&data);
    expect(
        request(
            &client,
            Method::from_bytes(b"MOVE").unwrap(),
            &format!("{container}/third"),
            t,
        )
        .header("Destination", "/moved/third")
        .send()
        .await
        .unwrap(),
        404,
        "MOVE into a missing container",
    )
    .await;
    expect(
        request(&client, Method::PUT, &format!("{}/moved", demo.account), t)
            .send()
            .await
            .unwrap(),
        201,
        "create another container",
    )
    .await;
    expect(
        request(
            &client,
            Method::from_bytes(b"MOVE").unwrap(),
            &format!("{container}/third"),
            t,
        )
        .header("Destination", "/moved/third")
        .send()
        .await
        .unwrap(),
        201,
        "MOVE",
    )
    .await;
    assert_eq!(
        block_files(&data),
        blocks_before_move,
        "a move copies no data"
    );
    expect(
        request(&client, Method::GET, &format!("{container}/third"), t)
            .send()
            .await
            .unwrap(),
        404,
        "the source of a move",
    )
    .await;
    let names = |response: Value| -> Vec<String> {
        response
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let list_now: Value = request(&client, Method::GET, &format!("{container}?format=json"), t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(names(list_now), vec!["first", "second"]);
    let list_then: Value = request(
        &client,
        Method::GET,
        &format!("{container}?format=json&until={before_move:.6}"),
        t,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(names(list_then), vec!["first", "second", "third"]);
    let third_then = expect(
        request(
            &client,
            Method::GET,
            &format!("{container}/third?until={before_move:.6}"),
            t,
        )
        .send()
        .await
        .unwrap(),
        200,
        "GET a moved object as it was",
    )
    .await;
    assert!(third_then.bytes().await.unwrap() == changed);
    let account_then: Value = request(
        &client,
        Method::GET,
        &format!("{}?format=json&until={before_move:.6}", demo.account),
        t,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(names(account_then.clone()), vec!["c"], "{account_then}");
    assert_eq!(account_then[0]["count"], 3, "{account_then}");
    let account_now: Value = request(
        &client,
        Method::GET,
        &format!("{}?format=json", demo.account),
        t,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(names(account_now), vec!["c", "moved"]);
    let head_then = expect(
        request(
            &client,
            Method::HEAD,
            &format!("{container}?until={before_move:.6}"),
            t,
        )
        .send()
        .await
        .unwrap(),
        204,
        "HEAD the container as it was",
    )
    .await;
    assert_eq!(header(&head_then, "x-container-object-count"), "3");

    // A container without versioning keeps only the current version.
    let flat = format!("{}/flat", demo.account);
    expect(
        request(&client, Method::PUT, &flat, t)
            .header("X-Container-Policy-Versioning", "none")
            .send()
            .await
            .unwrap(),
        201,
        "create an unversioned container",
    )
    .await;
    for body in ["one", "two"] {
        expect(
            request(&client, Method::PUT, &format!("{flat}/o"), t)
                .body(body)
                .send()
                .await
                .unwrap(),
            201,
            "PUT into the unversioned container",
        )
        .await;
    }
    let versions: Value = request(
        &client,
        Method::GET,
        &format!("{flat}/o?version=list&format=json"),
        t,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "{versions}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_isolated_except_as_shared_or_published() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = up(&data);
    let client = http();
    let admin = admin_token(&client, &server.url, &data).await;
    let alice = add_user(&client, &server.url, &admin, "alice").await;
    let bob = add_user(&client, &server.url, &admin, "bob").await;
    let (a, b) = (Some(alice.token.as_str()), Some(bob.token.as_str()));
    let container = format!("{}/c", alice.account);
    expect(
        request(&client, Method::PUT, &container, a)
            .send()
            .await
            .unwrap(),
        201,
        "alice creates a container",
    )
    .await;
    for (name, body) in [("secret", "alice's secret"), ("doc", "alice's doc")] {
        expect(
            request(&client, Method::PUT, &format!("{container}/{name}"), a)
                .body(body)
                .send()
                .await
                .unwrap(),
            201,
            "alice uploads",
        )
        .await;
    }

    // --- bob's token (403) and no token (401), whether or not the thing exists ----------
    let missing_container = format!("{}/nope", alice.account);
    let targets = [
        (Method::GET, alice.account.clone()),
        (Method::HEAD, alice.account.clone()),
        (Method::POST, alice.account.clone()),
        (Method::GET, container.clone()),
        (Method::HEAD, container.clone()),
        (Method::GET, format!("{container}?shared")),
        (Method::GET, format!("{container}/secret?version=list")),
        (Method::PUT, container.clone()),
        (Method::DELETE, container.clone()),
        (Method::GET, missing_container.clone()),
        (Method::HEAD, missing_container.clone()),
        (Method::GET, format!("{container}/secret")),
        (Method::HEAD, format!("{container}/secret")),
        (
            Method::GET,
            format!("{container}/secret?hashmap&format=json"),
        ),
        (Method::GET, format!("{container}/absent")),
        (Method::HEAD, format!("{container}/absent")),
        (Method::GET, format!("{missing_container}/absent")),
        (Method::PUT, format!("{container}/secret")),
        (Method::PUT, format!("{container}/absent")),
        (Method::PUT, format!("{missing_container}/absent")),
        (Method::POST, format!("{container}/secret")),
        (Method::DELETE, format!("{container}/secret")),
        (Method::DELETE, format!("{container}/absent")),
    ];
    for (method, url) in &targets {
        for (token, status) in [(b, 403), (None, 401)] {
            let response = request(&client, method.clone(), url, token)
                .send()
                .await
                .unwrap();
            expect(response, status, &format!("{method} {url} with {token:?}")).await;
        }
    }
    // The Pithos writes are refused too: hashmaps, blocks, partial updates, copies.
    let (hashes, body) = hashmap_body(b"alice's secret");
    let _ = hashes;
    let refused = [
        request(
            &client,
            Method::PUT,
            &format!("{container}/absent?hashmap&format=json"),
            b,
        )
        .body(body.to_string()),
        request(
            &client,
            Method::POST,
            &format!("{container}?format=json"),
            b,
        )
        .header("Content-Type", "application/octet-stream")
        .body("a block"),
        request(&client, Method::POST, &format!("{container}/secret"), b)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", "bytes */*")
            .body("more"),
        request(&client, Method::POST, &format!("{container}/secret"), b)
            .header("X-Object-Public", "true"),
        request(
            &client,
            Method::PUT,
            &format!("{}/stolen/x", bob.account),
            b,
        )
        .header("X-Copy-From", "/c/secret")
        .header("X-Copy-From-Account", format!("AUTH_{}", alice.project)),
        request(
            &client,
            Method::from_bytes(b"COPY").unwrap(),
            &format!("{container}/secret"),
            b,
        )
        .header("Destination", "/mine/secret")
        .header("Destination-Account", format!("AUTH_{}", bob.project)),
    ];
    for builder in refused {
        let response = builder.send().await.unwrap();
        let url = response.url().to_string();
        expect(response, 403, &format!("bob's Pithos write to {url}")).await;
    }
    expect(
        request(
            &client,
            Method::GET,
            &format!("{}/object/v1", server.url),
            b,
        )
        .send()
        .await
        .unwrap(),
        204,
        "nobody shares with bob yet",
    )
    .await;
    expect(
        request(
            &client,
            Method::GET,
            &format!("{}/object/v1", server.url),
            None,
        )
        .send()
        .await
        .unwrap(),
        401,
        "the sharing accounts of nobody",
    )
    .await;

    // --- alice shares doc with bob for reading -----------------------------------------
    expect(
        request(&client, Method::POST, &format!("{container}/doc"), a)
            .header("X-Object-Sharing", "read=bob")
            .send()
            .await
            .unwrap(),
        202,
        "share doc",
    )
    .await;
    let got = expect(
        request(&client, Method::GET, &format!("{container}/doc"), b)
            .send()
            .await
            .unwrap(),
        200,
        "bob reads the shared doc",
    )
    .await;
    assert_eq!(header(&got, "x-object-sharing"), "read=bob");
    assert_eq!(got.text().await.unwrap(), "alice's doc");
    for (method, url) in [
        (Method::PUT, format!("{container}/doc")),
        (Method::DELETE, format!("{container}/doc")),
        (Method::POST, format!("{container}/doc")),
        (Method::GET, format!("{container}/secret")),
    ] {
        let response = request(&client, method.clone(), &url, b)
            .send()
            .await
            .unwrap();
        expect(
            response,
            403,
            &format!("bob's {method} {url} after the share"),
        )
        .await;
    }
    // What bob sees of alice's account and container: only what is shared with him.
    let listing: Value = expect(
        request(&client, Method::GET, &format!("{container}?format=json"), b)
            .send()
            .await
            .unwrap(),
        200,
        "bob lists alice's container",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(listing.as_array().unwrap().len(), 1, "{listing}");
    assert_eq!(listing[0]["name"], "doc", "{listing}");
    let listing = expect(
        request(&client, Method::GET, &alice.account, b)
            .send()
            .await
            .unwrap(),
        200,
        "bob lists alice's account",
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(listing, "c\n");
    let accounts: Value = expect(
        request(
            &client,
            Method::GET,
            &format!("{}/object/v1?format=json", server.url),
            b,
        )
        .send()
        .await
        .unwrap(),
        200,
        "the accounts sharing with bob",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        accounts,
        json!([{ "name": format!("AUTH_{}", alice.project) }])
    );
    // alice's own `?shared` listings.
    let shared = request(
        &client,
        Method::GET,
        &format!("{}?shared", alice.account),
        a,
    )
    .send()
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert_eq!(shared, "c\n");
    let shared = request(&client, Method::GET, &format!("{container}?shared"), a)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(shared, "doc\n");

    // --- write through a group -----------------------------------------------------------
    expect(
        request(&client, Method::POST, &alice.account, a)
            .header("X-Account-Group-Team", "bob")
            .send()
            .await
            .unwrap(),
        204,
        "alice makes a group",
    )
    .await;
    expect(
        request(&client, Method::POST, &format!("{container}/doc"), a)
            .header("X-Object-Sharing", format!("write={}:team", alice.project))
            .send()
            .await
            .unwrap(),
        202,
        "share doc for writing with the group",
    )
    .await;
    expect(
        request(&client, Method::PUT, &format!("{container}/doc"), b)
            .body("bob's doc")
            .send()
            .await
            .unwrap(),
        201,
        "bob writes through the group",
    )
    .await;
    let got = request(&client, Method::GET, &format!("{container}/doc"), a)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(got, "bob's doc");

    // --- a public URL exposes only its object, until it is revoked ----------------------
    let published = expect(
        request(&client, Method::POST, &format!("{container}/secret"), a)
            .header("X-Object-Public", "true")
            .send()
            .await
            .unwrap(),
        202,
        "publish secret",
    )
    .await;
    let public_url = header(&published, "x-object-public");
    assert!(public_url.contains("/public/"), "{public_url}");
    let head = request(&client, Method::HEAD, &format!("{container}/secret"), a)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&head, "x-object-public"), public_url);
    let got = expect(
        client.get(&public_url).send().await.unwrap(),
        200,
        "GET the public URL without a token",
    )
    .await;
    assert!(got.headers().get("x-object-sharing").is_none());
    assert_eq!(got.text().await.unwrap(), "alice's secret");
    // Nothing else of alice's becomes reachable without a token.
    for url in [
        alice.account.clone(),
        container.clone(),
        format!("{container}/secret"),
        format!("{container}/doc"),
    ] {
        expect(
            client.get(&url).send().await.unwrap(),
            401,
            &format!("GET {url} without a token, after publishing"),
        )
        .await;
    }
    for suffix in ["/../doc", "x", "/doc"] {
        let url = format!("{public_url}{suffix}");
        let status = client.get(&url).send().await.unwrap().status();
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
            "GET {url}: {status}"
        );
    }
    // A sharee reads the object but does not learn its public URL.
    expect(
        request(&client, Method::POST, &format!("{container}/secret"), a)
            .header("X-Object-Sharing", "read=bob")
            .send()
            .await
            .unwrap(),
        202,
        "share the published secret",
    )
    .await;
    let head = expect(
        request(&client, Method::HEAD, &format!("{container}/secret"), b)
            .send()
            .await
            .unwrap(),
        200,
        "bob's HEAD of the shared, published secret",
    )
    .await;
    assert!(head.headers().get("x-object-public").is_none());
    expect(
        request(&client, Method::POST, &format!("{container}/secret"), a)
            .header("X-Object-Public", "false")
            .send()
            .await
            .unwrap(),
        202,
        "unpublish secret",
    )
    .await;
    expect(
        client.get(&public_url).send().await.unwrap(),
        404,
        "GET a revoked public URL",
    )
    .await;
}

/// `nefos object ARGS` as demo, against `url`; its output, which must say success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_client_sends_only_the_blocks_the_cloud_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = up(&data);
    let password = read_credentials(&data)["demo"].clone();
    let first = random(2 * BLOCK_SIZE + 4321, 11);
    let mut second = first.clone();
    second[BLOCK_SIZE..BLOCK_SIZE + 10].copy_from_slice(b"0123456789");
    let (first_path, second_path) = (dir.path().join("first"), dir.path().join("second"));
    std::fs::write(&first_path, &first).unwrap();
    std::fs::write(&second_path, &second).unwrap();

    object_cli(
        &server.url,
        &password,
        &[
            "upload",
            "files",
            first_path.to_str().unwrap(),
            "--name",
            "a",
        ],
    )
    .await;
    let stored = block_files(&data);
    assert_eq!(stored, 3);
    // The same content again, then all but one block: one new block in all.
    object_cli(
        &server.url,
        &password,
        &[
            "upload",
            "files",
            first_path.to_str().unwrap(),
            "--name",
            "a-again",
        ],
    )
    .await;
    assert_eq!(block_files(&data), stored);
    object_cli(
        &server.url,
        &password,
        &[
            "upload",
            "files",
            second_path.to_str().unwrap(),
            "--name",
            "b",
        ],
    )
    .await;
    assert_eq!(block_files(&data), stored + 1);

    let out = dir.path().join("downloaded");
    object_cli(
        &server.url,
        &password,
        &["download", "files", "b", "--output", out.to_str().unwrap()],
    )
    .await;
    assert!(std::fs::read(&out).unwrap() == second, "b round-trips");
    let client = http();
    let demo = login(&client, &server.url, "demo", &password).await;
    let etag = etag_once_computed(
        &client,
        &format!("{}/files/a-again", demo.account),
        Some(&demo.token),
    )
    .await;
    assert_eq!(etag, md5_hex(&first));
}
