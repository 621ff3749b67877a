//! `nefos image`, the end-user client of the image service, run as a subprocess against a
//! real `nefos up`: the tiny guest that `nefos up` registers as a public image (once, also
//! across a restart), and a demo user's image uploaded, listed, shown, downloaded and
//! verified, shared with another project and accepted there, and deleted; an upload the
//! cloud refuses leaves no queued image behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::account::create_user;
use common::*;
use serde_json::Value;

/// The guest image `nefos up` is given: the built tiny guest when there is one, else a
/// small raw disk made here (registration does not boot it).
fn guest_image(dir: &Path) -> PathBuf {
    let built = std::env::var_os("NEFOS_TEST_GUEST_IMAGE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guest/nefos-tiny.raw"),
        PathBuf::from,
    );
    if built.exists() {
        return built;
    }
    let path = dir.join("nefos-tiny.raw");
    write_file(&path, 2 << 20, 7);
    path
}

/// Writes `size` pseudo-random bytes (a raw disk to the inspector: no format's magic).
fn write_file(path: &Path, size: usize, seed: u64) {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let bytes: Vec<u8> = (0..size)
        .map(|i| {
            if i < 512 {
                return 0;
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    let mut file = std::fs::File::create(path).unwrap();
    file.write_all(&bytes).unwrap();
}

/// `nefos ARGS` as `user`, scoped to its personal project.
async fn run(url: &str, user: &str, password: &str, args: &[&str]) -> Output {
    let (url, user, password) = (url.to_owned(), user.to_owned(), password.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(binary())
            .args(&args)
            .env("OS_AUTH_URL", format!("{url}/identity/v3"))
            .env("OS_USERNAME", &user)
            .env("OS_PASSWORD", &password)
            .env("OS_PROJECT_NAME", &user)
            .env_remove("OS_CLOUD")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// A user of the cloud, to run `nefos image …` as.
struct User<'a> {
    url: &'a str,
    name: &'a str,
    password: &'a str,
}

impl User<'_> {
    /// `nefos image ARGS`, which must succeed; its stdout, raw.
    async fn bytes(&self, args: &[&str]) -> Vec<u8> {
        let mut all = vec!["image"];
        all.extend_from_slice(args);
        let output = run(self.url, self.name, self.password, &all).await;
        assert!(
            output.status.success(),
            "nefos image {args:?} as {} failed:\n{}\n{}",
            self.name,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// `nefos image ARGS`, which must succeed; its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        String::from_utf8(self.bytes(args).await).unwrap()
    }

    /// `nefos image ARGS -f json`, which must succeed; its output.
    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-f", "json"]);
        let text = self.ok(&all).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    /// `nefos image ARGS`, which must fail; its stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let mut all = vec!["image"];
        all.extend_from_slice(args);
        let output = run(self.url, self.name, self.password, &all).await;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            !output.status.success(),
            "nefos image {args:?} as {} should have failed:\n{}\n{stderr}",
            self.name,
            String::from_utf8_lossy(&output.stdout),
        );
        stderr
    }

    /// The names of the images `list ARGS` shows.
    async fn names(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec!["list"];
        all.extend_from_slice(args);
        let listed = self.json(&all).await;
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// The id `nefos up` printed for the guest image.
fn printed_guest_id(process: &NefosProcess) -> String {
    let banner = wait_for_output(process, "guest image id:");
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("guest image id:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_through_the_client_and_the_guest_image_of_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let guest = guest_image(dir.path());
    let guest_arg = guest.to_str().unwrap();
    let mut cloud = NefosProcess::up(&binary(), &data, &["--guest-image", guest_arg]);
    let url = cloud.url.clone();
    let guest_id = printed_guest_id(&cloud);
    let demo_password = read_credentials(&data)["demo"].clone();
    let demo = User {
        url: &url,
        name: "demo",
        password: &demo_password,
    };

    // The tiny guest is a public image of the admin's that every user sees.
    let public = demo.json(&["list", "--public"]).await;
    let tiny = public
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == guest_id.as_str())
        .unwrap_or_else(|| panic!("no image {guest_id} among {public}"));
    assert_eq!(tiny["name"], "nefos-tiny", "{tiny}");
    assert_eq!(tiny["visibility"], "public", "{tiny}");
    let shown = demo.json(&["show", "nefos-tiny"]).await;
    assert_eq!(shown["id"], guest_id.as_str());
    assert_eq!(shown["status"], "active", "{shown}");
    assert_eq!(shown["disk_format"], "raw", "{shown}");
    assert_eq!(shown["min_disk"], 1, "{shown}");
    assert_eq!(shown["size"], std::fs::metadata(&guest).unwrap().len());
    for (property, value) in [
        ("os", "debian"),
        ("osfamily", "linux"),
        ("users", "root"),
        ("description", "nefos test guest (Debian, serial console)"),
    ] {
        assert_eq!(shown[property], value, "{shown}");
    }

    // Upload: a raw disk streamed into a new image, with properties and a tag.
    let file = dir.path().join("disk.img");
    let size = (5 << 20) + 123;
    write_file(&file, size, 11);
    let file_arg = file.to_str().unwrap();
    let uploaded = demo
        .json(&[
            "upload",
            file_arg,
            "--name",
            "demo-disk",
            "--property",
            "os=debian",
            "--tag",
            "lab",
            "--min-ram",
            "64",
        ])
        .await;
    let id = uploaded["id"].as_str().unwrap().to_owned();
    assert_eq!(uploaded["status"], "active", "{uploaded}");
    assert_eq!(uploaded["size"], size, "{uploaded}");
    assert_eq!(uploaded["disk_format"], "raw", "{uploaded}");
    assert_eq!(uploaded["os_hash_algo"], "sha256", "{uploaded}");
    assert_eq!(uploaded["os"], "debian", "{uploaded}");
    assert_eq!(uploaded["min_ram"], 64, "{uploaded}");

    // A file that starts as a qcow2 but is none: the cloud refuses its data, and the
    // client deletes the image it had created for it.
    let bad = dir.path().join("bad.qcow2");
    let mut bytes = b"QFI\xfb".to_vec();
    bytes.resize(1 << 20, 0xee);
    std::fs::write(&bad, bytes).unwrap();
    let refused = demo
        .fails(&["upload", bad.to_str().unwrap(), "--name", "broken"])
        .await;
    assert!(refused.contains("deleted again"), "{refused}");
    let everything = demo.names(&["--all"]).await;
    assert!(!everything.contains(&"broken".to_owned()), "{everything:?}");

    // Listings: a table for people, JSON by filter for scripts.
    let table = demo.ok(&["list"]).await;
    for needle in ["disk_format", "demo-disk", "nefos-tiny", &id, &guest_id] {
        assert!(table.contains(needle), "no {needle} in\n{table}");
    }
    assert_eq!(demo.names(&["--tag", "lab"]).await, ["demo-disk"]);
    assert_eq!(demo.names(&["--name", "demo-disk"]).await, ["demo-disk"]);
    assert_eq!(demo.names(&["--public"]).await, ["nefos-tiny"]);
    let shown = demo.ok(&["show", "demo-disk"]).await;
    for needle in [id.as_str(), "os_hash_value", "lab", "debian", "min_ram"] {
        assert!(shown.contains(needle), "no {needle} in\n{shown}");
    }

    // Downloads equal the upload, to a file and to standard output.
    let original = std::fs::read(&file).unwrap();
    let out = dir.path().join("out.img");
    demo.ok(&["download", "demo-disk", "--file", out.to_str().unwrap()])
        .await;
    assert!(std::fs::read(&out).unwrap() == original, "download differs");
    let piped = demo.bytes(&["download", &id, "--file", "-"]).await;
    assert!(piped == original, "piped download differs");

    // Shared with bob's project: listed there once bob accepts, gone when removed.
    let http = http();
    let admin = admin_token(&http, &url, &data).await;
    let bob = create_user(&http, &url, &admin, "bob").await;
    let bob_user = User {
        url: &url,
        name: "bob",
        password: &bob.password,
    };
    let offered = demo.ok(&["share", "demo-disk", &bob.base_project]).await;
    assert!(offered.contains("pending"), "{offered}");
    assert!(!bob_user.names(&[]).await.contains(&"demo-disk".to_owned()));
    assert_eq!(
        bob_user
            .names(&["--shared", "--member-status", "pending"])
            .await,
        ["demo-disk"]
    );
    let accepted = bob_user.ok(&["share", "--accept", &id]).await;
    assert!(accepted.contains("accepted"), "{accepted}");
    assert!(bob_user.names(&[]).await.contains(&"demo-disk".to_owned()));
    let members = demo.json(&["members", "demo-disk"]).await;
    assert_eq!(
        members[0]["member_id"],
        bob.base_project.as_str(),
        "{members}"
    );
    assert_eq!(members[0]["status"], "accepted", "{members}");
    let bobs = dir.path().join("bob.img");
    bob_user
        .ok(&["download", "demo-disk", "--file", bobs.to_str().unwrap()])
        .await;
    assert!(
        std::fs::read(&bobs).unwrap() == original,
        "bob's copy differs"
    );
    demo.ok(&["share", "--remove", &id, &bob.base_project])
        .await;
    assert!(
        !bob_user
            .names(&["--all"])
            .await
            .contains(&"demo-disk".to_owned())
    );

    // Registering an object of the account (Plankton), when this build serves it.
    let plankton = http
        .get(format!("{url}/image/v1.0/images/"))
        .header("x-auth-token", &bob.token)
        .send()
        .await
        .unwrap()
        .status();
    if plankton == 404 {
        eprintln!("no Plankton at /image/v1.0: `nefos image register` not tried");
    } else {
        object_cli(
            &url,
            &demo_password,
            &["upload", "disks", file_arg, "--name", "registered.img"],
        )
        .await;
        let registered = demo
            .json(&[
                "register",
                "disks/registered.img",
                "--name",
                "registered",
                "--property",
                "osfamily=linux",
            ])
            .await;
        assert_eq!(registered["status"], "active", "{registered}");
        assert_eq!(registered["size"], size, "{registered}");
        assert_eq!(registered["osfamily"], "linux", "{registered}");
        let registered_id = registered["id"].as_str().unwrap();
        demo.ok(&["delete", registered_id]).await;
    }

    // Deleted: gone for its owner.
    let deleted = demo.ok(&["delete", "demo-disk"]).await;
    assert!(deleted.contains(&id), "{deleted}");
    let missing = demo.fails(&["show", &id]).await;
    assert!(missing.contains("no image"), "{missing}");

    // A restart finds the guest image registered and makes no second one.
    stop(&mut cloud);
    let cloud = NefosProcess::up(&binary(), &data, &["--guest-image", guest_arg]);
    assert_eq!(printed_guest_id(&cloud), guest_id);
    let demo = User {
        url: &cloud.url,
        name: "demo",
        password: &demo_password,
    };
    assert_eq!(demo.names(&["--all"]).await, ["nefos-tiny"]);
}
