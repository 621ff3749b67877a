//! Object storage under `pithos.diskspace` quotas, through the real server on SQLite and
//! PostgreSQL: concurrent uploads into a nearly full account store exactly what fits and
//! refuse the rest with 413; kept versions count; raw block uploads need room; and a
//! control plane killed mid-upload leaves no commission pending and usage equal to what
//! is stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::future::join_all;
use nefos_db::{Database, PoolSettings};
use nefos_identity::{Caller, Identity, IdentityConfig, NewUser};
use nefos_quota::projects::Grant;
use nefos_quota::{PITHOS_DISKSPACE, Quotas};
use nefos_test_utils::{TestDatabase, serve_args, toml_str};

/// A mebibyte, for buffers.
const MIB: usize = 1 << 20;

/// `n` mebibytes, for limits and usage.
fn mib(n: i64) -> i64 {
    n << 20
}
const DISK: &str = "pithos.diskspace";

/// A control plane (`nefos serve`) on one database, and a handle on that database.
struct Cloud {
    label: &'static str,
    process: NefosProcess,
    args: Vec<String>,
    db: Database,
    _postgres: Option<TestDatabase>,
}

impl Cloud {
    async fn start(dir: &std::path::Path, label: &'static str) -> Cloud {
        let postgres = match label {
            "postgres" => Some(nefos_test_utils::postgres().await),
            _ => None,
        };
        let data = dir.join(label);
        std::fs::create_dir_all(&data).unwrap();
        let database = match &postgres {
            Some(pg) => format!("database = {}\n", toml_str(&pg.url)),
            None => String::new(),
        };
        let (port, internal) = (free_port(), free_port());
        let args = serve_args(
            &data,
            &format!(
                "listen = \"127.0.0.1:{port}\"\ninternal_listen = \"127.0.0.1:{internal}\"\n\
                 data_dir = {}\n{database}\n[quotas]\nheartbeat_seconds = 1\n\
                 abandoned_after_seconds = 3\n",
                toml_str(data.to_str().unwrap())
            ),
        );
        let process = NefosProcess::spawn(&binary(), &args, &format!("http://127.0.0.1:{port}"));
        let url = match &postgres {
            Some(pg) => pg.url.clone(),
            None => Database::sqlite_url(&data.join("nefos.db")),
        };
        let db = Database::connect_existing(&url, &PoolSettings::default())
            .await
            .unwrap();
        Cloud {
            label,
            process,
            args,
            db,
            _postgres: postgres,
        }
    }

    fn url(&self) -> &str {
        &self.process.url
    }

    fn quotas(&self) -> Quotas {
        Quotas::new(self.db.clone())
    }
}

/// A user whose personal account may hold `limit` bytes: its token and account URL.
struct Tenant {
    user_id: String,
    project_id: String,
    token: String,
    account: String,
}

async fn tenant(cloud: &Cloud, name: &str, limit: i64) -> Tenant {
    let identity = Identity::new(cloud.db.clone(), IdentityConfig::default());
    let user = identity
        .create_user(
            Caller::Operator,
            NewUser {
                name: name.to_owned(),
                email: None,
                password: Some("secret-password".to_owned()),
                enabled: true,
            },
        )
        .await
        .unwrap();
    set_limit(cloud, &user.base_project_id, limit).await;
    let (token, _) = token(&http(), cloud.url(), name, "secret-password", Some(name)).await;
    Tenant {
        account: format!("{}/object/v1/AUTH_{}", cloud.url(), user.base_project_id),
        user_id: user.id,
        project_id: user.base_project_id,
        token,
    }
}

async fn set_limit(cloud: &Cloud, project_id: &str, limit: i64) {
    let grant = Grant {
        member_capacity: limit,
        project_capacity: limit,
    };
    cloud
        .quotas()
        .set_grant(Caller::Operator, project_id, DISK, grant)
        .await
        .unwrap();
}

/// The tenant's `pithos.diskspace` usage and pending reservations, as recorded.
async fn usage(cloud: &Cloud, tenant: &Tenant) -> (i64, i64) {
    let quota = cloud
        .quotas()
        .user_quotas(Caller::Operator, &tenant.user_id)
        .await
        .unwrap()
        .into_iter()
        .find(|q| q.project_id == tenant.project_id)
        .unwrap();
    let held = quota.member[DISK];
    (held.usage, held.pending)
}

/// What object storage holds for every account, against what quotas record: none differ.
async fn assert_usage_matches_storage(cloud: &Cloud) {
    let mut tx = cloud.db.begin().await.unwrap();
    let stored = nefos_db::storage::stored_bytes_by_member(&mut *tx)
        .await
        .unwrap();
    let differences = cloud
        .quotas()
        .reconcile_in(&mut tx, PITHOS_DISKSPACE.name, &stored, false)
        .await
        .unwrap();
    assert!(differences.is_empty(), "{}: {differences:?}", cloud.label);
}

async fn put(
    client: &reqwest::Client,
    tenant: &Tenant,
    path: impl AsRef<str>,
    body: Vec<u8>,
) -> u16 {
    let path = path.as_ref();
    client
        .put(format!("{}/{path}", tenant.account))
        .header("x-auth-token", &tenant.token)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A PUT whose body is streamed (chunked, no Content-Length).
async fn put_chunked(
    client: &reqwest::Client,
    tenant: &Tenant,
    path: String,
    body: Vec<u8>,
) -> u16 {
    let stream = futures::stream::iter(
        body.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    client
        .put(format!("{}/{path}", tenant.account))
        .header("x-auth-token", &tenant.token)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn concurrent_uploads_into_a_nearly_full_account_store_exactly_what_fits() {
    let dir = tempfile::tempdir().unwrap();
    for label in ["sqlite", "postgres"] {
        let cloud = Cloud::start(dir.path(), label).await;
        let client = http();
        let tenant = tenant(&cloud, "racer", mib(10) + 1000).await;
        assert_eq!(put(&client, &tenant, "c", Vec::new()).await, 201, "{label}");

        // 20 uploads of 1 MiB each fit alone; 10 fit together.
        let statuses =
            join_all((0u8..20).map(|i| put(&client, &tenant, format!("c/o{i}"), vec![i; MIB])))
                .await;
        let stored = statuses.iter().filter(|s| **s == 201).count();
        let refused = statuses.iter().filter(|s| **s == 413).count();
        assert_eq!((stored, refused), (10, 10), "{label}: {statuses:?}");
        assert_eq!(usage(&cloud, &tenant).await, (mib(10), 0), "{label}");

        // Streamed uploads of unknown size are checked as they commit: of 6 × 100 KiB
        // with room for 3, exactly 3 are stored.
        set_limit(&cloud, &tenant.project_id, mib(10) + 3 * 100 * 1024 + 1000).await;
        let statuses = join_all(
            (0..6).map(|i| put_chunked(&client, &tenant, format!("c/s{i}"), vec![7; 100 * 1024])),
        )
        .await;
        let stored = statuses.iter().filter(|s| **s == 201).count();
        assert_eq!(stored, 3, "{label}: {statuses:?}");
        assert!(
            statuses.iter().all(|s| *s == 201 || *s == 413),
            "{label}: {statuses:?}"
        );

        // Full: raw blocks are refused too, before they are stored.
        let blocks = client
            .post(format!("{}/c", tenant.account))
            .header("x-auth-token", &tenant.token)
            .header("content-type", "application/octet-stream")
            .body(vec![1u8; 4096])
            .send()
            .await
            .unwrap();
        assert_eq!(blocks.status(), 413, "{label}");
        assert_usage_matches_storage(&cloud).await;
    }
}

#[tokio::test]
async fn kept_versions_count_and_deletes_release() {
    let dir = tempfile::tempdir().unwrap();
    for label in ["sqlite", "postgres"] {
        let cloud = Cloud::start(dir.path(), label).await;
        let client = http();
        let tenant = tenant(&cloud, "keeper", mib(100)).await;
        // A container that keeps every version (the default, as in Pithos): six
        // overwrites of one object hold six versions, all charged.
        assert_eq!(put(&client, &tenant, "kept", Vec::new()).await, 201);
        for i in 0..6 {
            assert_eq!(put(&client, &tenant, "kept/o", vec![i; MIB]).await, 201);
        }
        assert_eq!(usage(&cloud, &tenant).await.0, mib(6), "{label}");
        // Deleting keeps the history, and its charge.
        let deleted = client
            .delete(format!("{}/kept/o", tenant.account))
            .header("x-auth-token", &tenant.token)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 204);
        assert_eq!(usage(&cloud, &tenant).await.0, mib(6), "{label}");

        // A container that keeps none: an overwrite replaces, a delete releases.
        let created = client
            .put(format!("{}/flat", tenant.account))
            .header("x-auth-token", &tenant.token)
            .header("x-container-policy-versioning", "none")
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        for _ in 0..3 {
            assert_eq!(put(&client, &tenant, "flat/o", vec![1; 2 * MIB]).await, 201);
        }
        assert_eq!(usage(&cloud, &tenant).await.0, mib(8), "{label}");
        // A full account may still replace an object with one no larger.
        set_limit(&cloud, &tenant.project_id, mib(8)).await;
        assert_eq!(put(&client, &tenant, "flat/o", vec![2; 2 * MIB]).await, 201);
        assert_eq!(
            put(&client, &tenant, "flat/p", vec![2; 1]).await,
            413,
            "{label}"
        );
        let deleted = client
            .delete(format!("{}/flat/o", tenant.account))
            .header("x-auth-token", &tenant.token)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 204);
        assert_eq!(usage(&cloud, &tenant).await.0, mib(6), "{label}");

        // A static large object's manifest adds nothing: its segments hold its bytes.
        let before = usage(&cloud, &tenant).await.0;
        for segment in ["s1", "s2"] {
            assert_eq!(
                put(&client, &tenant, format!("flat/{segment}"), vec![4; MIB]).await,
                201
            );
        }
        let manifest = serde_json::json!([
            {"path": "/flat/s1", "size_bytes": MIB},
            {"path": "/flat/s2", "size_bytes": MIB},
        ]);
        let put_manifest = client
            .put(format!(
                "{}/flat/large?multipart-manifest=put",
                tenant.account
            ))
            .header("x-auth-token", &tenant.token)
            .body(manifest.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(put_manifest.status(), 201, "{label}");
        assert_eq!(usage(&cloud, &tenant).await.0, before + mib(2), "{label}");

        // Pithos's container policy quota counts every kept version.
        let policy = client
            .post(format!("{}/kept", tenant.account))
            .header("x-auth-token", &tenant.token)
            .header("x-container-policy-quota", mib(7).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(policy.status(), 204);
        set_limit(&cloud, &tenant.project_id, mib(100)).await;
        assert_eq!(put(&client, &tenant, "kept/p", vec![3; MIB]).await, 201);
        assert_eq!(
            put(&client, &tenant, "kept/q", vec![3; 1]).await,
            413,
            "{label}"
        );
        assert_usage_matches_storage(&cloud).await;
    }
}

#[tokio::test]
async fn a_control_plane_killed_mid_upload_leaves_no_commission_pending() {
    let dir = tempfile::tempdir().unwrap();
    for label in ["sqlite", "postgres"] {
        let mut cloud = Cloud::start(dir.path(), label).await;
        let client = http();
        let tenant = tenant(&cloud, "crasher", mib(200)).await;
        assert_eq!(put(&client, &tenant, "c", Vec::new()).await, 201);
        // A burst: uploads that finish, and uploads that declare 4 MiB, send one and
        // stall, holding their reservations pending.
        let mut stalled = Vec::new();
        for i in 0..8 {
            let (sender, receiver) =
                tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
            sender.send(Ok(vec![9; MIB])).await.unwrap();
            let body = reqwest::Body::wrap_stream(tokio_stream_of(receiver));
            let request = client
                .put(format!("{}/c/stalled{i}", tenant.account))
                .header("x-auth-token", &tenant.token)
                .header("content-length", mib(4).to_string())
                .body(body)
                .send();
            stalled.push((sender, tokio::spawn(request)));
        }
        let finished =
            join_all((0u8..8).map(|i| put(&client, &tenant, format!("c/done{i}"), vec![i; MIB])))
                .await;
        assert!(finished.iter().all(|s| *s == 201), "{label}: {finished:?}");
        let quotas = cloud.quotas();
        wait_until(|| async { quotas.pending(None).await.unwrap().len() == 8 }).await;
        assert_eq!(usage(&cloud, &tenant).await, (mib(40), mib(32)), "{label}");

        cloud.process.kill9();
        drop(stalled);
        let restarted = NefosProcess::spawn(&binary(), &cloud.args, &cloud.process.url.clone());
        // SQLite's one process rejects them as it starts; with PostgreSQL, once the killed
        // process has been silent for `abandoned_after_seconds`.
        wait_until(|| async { quotas.pending(None).await.unwrap().is_empty() }).await;
        assert_eq!(usage(&cloud, &tenant).await, (mib(8), 0), "{label}");
        assert_usage_matches_storage(&cloud).await;
        drop(restarted);
    }
}

fn tokio_stream_of(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// Polls `condition` for up to 20 s.
async fn wait_until<F, Fut>(condition: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "condition never held"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
