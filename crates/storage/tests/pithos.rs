//! The Pithos extensions of object storage on both databases: versions and `until=`, copies
//! and moves that share hashmaps, the hashmap protocol, partial updates that store only the
//! blocks they change, sharing with users, groups and everyone, public objects, and the
//! isolation of accounts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use md5::{Digest, Md5};
use nefos_blocks::{BLOCK_SIZE, BlockHash, BlockStore, BlockStoreConfig, hash_block};
use nefos_identity::{
    AuthContext, Caller, Identity, IdentityConfig, NewUser, PasswordCredentials, Scope, UserRef,
};
use nefos_storage::{
    Accessor, ContainerUpdate, DataUpdate, ListEntry, ListQuery, ObjectInfo, ObjectUpdate,
    SourceObject, Storage, StorageError, VersionSelector, Versioning, WriteOptions,
};
use nefos_test_utils::TestDatabase;
use rand::{RngCore, SeedableRng};
use tempfile::TempDir;

const PASSWORD: &str = "a password for the storage tests";
const BLOCK: usize = BLOCK_SIZE;

/// Object storage over one test database, with a `fs` block store in a temporary directory
/// and the identity service that makes the callers.
struct Cloud {
    label: &'static str,
    storage: Storage,
    identity: Identity,
    _blocks_dir: TempDir,
    _db: TestDatabase,
}

impl Cloud {
    async fn hashes(&self, object: &ObjectInfo) -> Vec<BlockHash> {
        self.storage.hashmap(object).await.unwrap()
    }

    async fn new(t: TestDatabase) -> Cloud {
        let dir = tempfile::tempdir().unwrap();
        let blocks = BlockStore::open(&BlockStoreConfig::Fs {
            path: dir.path().join("blocks"),
        })
        .await
        .unwrap();
        Cloud {
            label: t.label,
            storage: Storage::new(t.db.clone(), blocks, nefos_quota::Quotas::new(t.db.clone())),
            identity: Identity::new(t.db.clone(), IdentityConfig::default()),
            _blocks_dir: dir,
            _db: t,
        }
    }

    /// A new user with a token scoped to their own project (as a member).
    async fn user(&self, name: &str) -> AuthContext {
        let user = self
            .identity
            .create_user(
                Caller::Operator,
                NewUser {
                    name: name.to_owned(),
                    email: None,
                    password: Some(PASSWORD.to_owned()),
                    enabled: true,
                },
            )
            .await
            .unwrap();
        self.identity
            .authenticate_password(
                PasswordCredentials {
                    user: UserRef::Name(name.to_owned()),
                    password: PASSWORD.to_owned(),
                },
                Scope::ProjectId(user.base_project_id),
            )
            .await
            .unwrap()
            .context
    }

    async fn blocks_stored(&self) -> usize {
        self.storage.blocks().list().await.unwrap().len()
    }

    async fn container(&self, who: &AuthContext, name: &str, versioning: Versioning) {
        let update = ContainerUpdate {
            versioning: Some(versioning),
            ..ContainerUpdate::default()
        };
        self.storage
            .put_container(Accessor::Token(who), project(who), name, &update)
            .await
            .unwrap();
    }

    async fn put(
        &self,
        who: &AuthContext,
        container: &str,
        name: &str,
        data: &[u8],
    ) -> Result<ObjectInfo, StorageError> {
        self.put_in(who, project(who), container, name, data).await
    }

    async fn put_in(
        &self,
        who: &AuthContext,
        account: &str,
        container: &str,
        name: &str,
        data: &[u8],
    ) -> Result<ObjectInfo, StorageError> {
        let body = futures::stream::iter(
            data.chunks(1 << 20)
                .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        self.storage
            .put_object(
                Accessor::Token(who),
                account,
                container,
                name,
                body,
                WriteOptions::default(),
            )
            .await
    }

    async fn get(
        &self,
        who: Accessor<'_>,
        account: &str,
        container: &str,
        name: &str,
        version: VersionSelector,
    ) -> Result<Vec<u8>, StorageError> {
        let object = self
            .storage
            .object(who, account, container, name, version)
            .await?;
        let chunks: Vec<Bytes> = self
            .storage
            .read(&object, None)
            .await?
            .try_collect()
            .await?;
        Ok(chunks.concat())
    }

    async fn update_data(
        &self,
        who: &AuthContext,
        container: &str,
        name: &str,
        update: DataUpdate,
        data: &[u8],
    ) -> Result<ObjectInfo, StorageError> {
        let body =
            futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::copy_from_slice(data))]);
        self.storage
            .update_object_data(
                Accessor::Token(who),
                project(who),
                container,
                name,
                update,
                body,
            )
            .await
    }
}

fn project(who: &AuthContext) -> &str {
    who.project_id().unwrap()
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

fn names(entries: &[ListEntry]) -> Vec<String> {
    entries.iter().map(|e| e.name().to_owned()).collect()
}

/// Lets the clock move on, so that versions written on either side have distinct times.
async fn tick() -> i64 {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let now = nefos_db::time::now_micros();
    tokio::time::sleep(Duration::from_millis(5)).await;
    now
}

macro_rules! assert_err {
    ($label:expr, $result:expr, $pattern:pat $(,)?) => {
        match $result {
            Err(error) if matches!(error, $pattern) => error,
            other => panic!(
                "{}: expected Err({}), got {:?}",
                $label,
                stringify!($pattern),
                other
            ),
        }
    };
}

async fn clouds() -> Vec<Cloud> {
    let mut clouds = Vec::new();
    for t in nefos_test_utils::each_backend().await {
        clouds.push(Cloud::new(t).await);
    }
    clouds
}

#[tokio::test]
async fn versions_until_and_unversioned_containers() {
    for cloud in &clouds().await {
        let l = cloud.label;
        let alice = cloud.user("alice").await;
        let me = Accessor::Token(&alice);
        let account = project(&alice);
        let before_all = tick().await;
        cloud.container(&alice, "docs", Versioning::Auto).await;
        let v1 = cloud.put(&alice, "docs", "a", b"one").await.unwrap();
        let after_v1 = tick().await;
        let v2 = cloud.put(&alice, "docs", "a", b"two!").await.unwrap();
        let after_v2 = tick().await;
        assert!(v2.serial > v1.serial, "{l}");

        let versions = cloud
            .storage
            .object_versions(me, account, "docs", "a")
            .await
            .unwrap();
        let serials: Vec<i64> = versions.iter().map(|(s, _)| *s).collect();
        assert_eq!(serials, vec![v1.serial, v2.serial], "{l}");
        let read = |v| cloud.get(me, account, "docs", "a", v);
        assert_eq!(read(VersionSelector::Current).await.unwrap(), b"two!");
        assert_eq!(
            read(VersionSelector::Serial(v1.serial)).await.unwrap(),
            b"one"
        );
        assert_eq!(
            read(VersionSelector::Until(after_v1)).await.unwrap(),
            b"one"
        );
        assert_err!(
            l,
            read(VersionSelector::Until(before_all)).await,
            StorageError::NotFound { .. }
        );

        // A deletion keeps the history: `until=` still sees the object.
        cloud
            .storage
            .delete_object(me, account, "docs", "a")
            .await
            .unwrap();
        let after_delete = tick().await;
        assert_err!(
            l,
            read(VersionSelector::Current).await,
            StorageError::NotFound { .. }
        );
        assert_eq!(
            read(VersionSelector::Until(after_v2)).await.unwrap(),
            b"two!"
        );
        assert_err!(
            l,
            read(VersionSelector::Until(after_delete)).await,
            StorageError::NotFound { .. }
        );
        let list = |until| {
            let query = ListQuery {
                until,
                ..ListQuery::default()
            };
            async move {
                names(
                    &cloud
                        .storage
                        .list_objects(me, account, "docs", &query)
                        .await
                        .unwrap(),
                )
            }
        };
        assert_eq!(list(Some(after_v1)).await, vec!["a"], "{l}");
        assert_eq!(list(None).await, Vec::<String>::new(), "{l}");

        // The container as it was: what it held then.
        let then = cloud
            .storage
            .container_until(me, account, "docs", after_v2)
            .await
            .unwrap();
        assert_eq!((then.objects, then.bytes), (1, 4), "{l}");
        let now = cloud.storage.container(me, account, "docs").await.unwrap();
        assert_eq!((now.objects, now.bytes), (0, 0), "{l}");

        // The account as it was: containers created since are not listed.
        cloud.container(&alice, "later", Versioning::Auto).await;
        let containers = |until| {
            let query = ListQuery {
                until,
                ..ListQuery::default()
            };
            async move {
                cloud
                    .storage
                    .list_containers(me, account, &query)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|c| (c.name, c.objects, c.bytes))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            containers(Some(after_v1)).await,
            vec![("docs".to_owned(), 1, 3)],
            "{l}"
        );
        assert_eq!(containers(Some(before_all)).await, vec![], "{l}");
        assert_eq!(
            containers(None).await,
            vec![("docs".to_owned(), 0, 0), ("later".to_owned(), 0, 0)],
            "{l}"
        );
        let account_then = cloud
            .storage
            .account_until(me, account, after_v2)
            .await
            .unwrap();
        assert_eq!(
            (
                account_then.stats.containers,
                account_then.stats.objects,
                account_then.stats.bytes
            ),
            (1, 1, 4),
            "{l}"
        );

        // `none` keeps only the current version, and a deletion leaves nothing.
        cloud.container(&alice, "flat", Versioning::None).await;
        let old = cloud.put(&alice, "flat", "b", b"old").await.unwrap();
        let after_old = tick().await;
        cloud.put(&alice, "flat", "b", b"new").await.unwrap();
        let versions = cloud
            .storage
            .object_versions(me, account, "flat", "b")
            .await
            .unwrap();
        assert_eq!(versions.len(), 1, "{l}: {versions:?}");
        assert_err!(
            l,
            cloud
                .get(
                    me,
                    account,
                    "flat",
                    "b",
                    VersionSelector::Serial(old.serial)
                )
                .await,
            StorageError::NotFound { .. }
        );
        assert_err!(
            l,
            cloud
                .get(me, account, "flat", "b", VersionSelector::Until(after_old))
                .await,
            StorageError::NotFound { .. }
        );
        cloud
            .storage
            .delete_object(me, account, "flat", "b")
            .await
            .unwrap();
        assert_err!(
            l,
            cloud
                .storage
                .object_versions(me, account, "flat", "b")
                .await,
            StorageError::NotFound { .. }
        );
    }
}

#[tokio::test]
async fn copies_and_moves_share_hashmaps() {
    for cloud in &clouds().await {
        let l = cloud.label;
        let alice = cloud.user("alice").await;
        let me = Accessor::Token(&alice);
        let account = project(&alice);
        cloud.container(&alice, "c", Versioning::Auto).await;
        cloud.container(&alice, "d", Versioning::None).await;
        let data = random(2 * BLOCK + 1000, 1);
        let original = cloud.put(&alice, "c", "big", &data).await.unwrap();
        assert_eq!(cloud.hashes(&original).await.len(), 3, "{l}");
        let stored = cloud.blocks_stored().await;
        assert_eq!(stored, 3, "{l}");

        let copy = cloud
            .storage
            .copy_object(
                me,
                (account, "c", "big"),
                VersionSelector::Current,
                (account, "d", "copy"),
                WriteOptions::default(),
                false,
            )
            .await
            .unwrap();
        assert_eq!(
            cloud.hashes(&copy).await,
            cloud.hashes(&original).await,
            "{l}"
        );
        assert_eq!(copy.etag, original.etag, "{l}");
        // A move is a copy of the hashmap and a deletion of the source.
        let moved = cloud
            .storage
            .copy_object(
                me,
                (account, "d", "copy"),
                VersionSelector::Current,
                (account, "c", "moved"),
                WriteOptions::default(),
                false,
            )
            .await
            .unwrap();
        cloud
            .storage
            .delete_object(me, account, "d", "copy")
            .await
            .unwrap();
        assert_eq!(
            cloud.hashes(&moved).await,
            cloud.hashes(&original).await,
            "{l}"
        );
        assert_eq!(
            cloud.blocks_stored().await,
            stored,
            "{l}: no block was copied"
        );
        assert_eq!(
            cloud
                .get(me, account, "c", "moved", VersionSelector::Current)
                .await
                .unwrap(),
            data,
            "{l}"
        );
        assert_err!(
            l,
            cloud
                .get(me, account, "d", "copy", VersionSelector::Current)
                .await,
            StorageError::NotFound { .. }
        );
    }
}

#[tokio::test]
async fn hashmap_puts_need_every_block() {
    for cloud in &clouds().await {
        let l = cloud.label;
        let alice = cloud.user("alice").await;
        let me = Accessor::Token(&alice);
        let account = project(&alice);
        cloud.container(&alice, "c", Versioning::Auto).await;
        let data = random(3 * BLOCK + 77, 2);
        let original = cloud.put(&alice, "c", "first", &data).await.unwrap();
        let before = cloud.blocks_stored().await;

        // The same bytes but the second block: only that block is missing.
        let mut changed = data.clone();
        changed[BLOCK..2 * BLOCK].copy_from_slice(&random(BLOCK, 3));
        let hashes: Vec<BlockHash> = changed.chunks(BLOCK).map(hash_block).collect();
        assert_eq!(hashes[0], cloud.hashes(&original).await[0]);
        let put = |hashes: Vec<BlockHash>, bytes: u64| {
            cloud.storage.put_hashmap(
                me,
                account,
                "c",
                "second",
                bytes,
                hashes,
                WriteOptions::default(),
            )
        };
        let missing = assert_err!(
            l,
            put(hashes.clone(), changed.len() as u64).await,
            StorageError::MissingBlocks { .. }
        );
        let StorageError::MissingBlocks { missing } = missing else {
            unreachable!()
        };
        assert_eq!(missing, vec![hashes[1].to_hex()], "{l}");
        assert_err!(
            l,
            cloud
                .get(me, account, "c", "second", VersionSelector::Current)
                .await,
            StorageError::NotFound { .. }
        );

        // The client posts the missing block to the container, then puts the hashmap again.
        let posted = cloud
            .storage
            .put_blocks(
                me,
                account,
                "c",
                futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::copy_from_slice(
                    &changed[BLOCK..2 * BLOCK],
                ))]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(posted, vec![hashes[1]], "{l}");
        assert_eq!(cloud.blocks_stored().await, before + 1, "{l}");
        let second = put(hashes.clone(), changed.len() as u64).await.unwrap();
        assert_eq!(cloud.hashes(&second).await, hashes, "{l}");
        // The MD5 is the digest job's, not the request's.
        assert_eq!(second.etag, None, "{l}");
        assert_eq!(cloud.storage.compute_pending_digests(100).await.unwrap(), 1);
        let second = cloud
            .storage
            .object(me, account, "c", "second", VersionSelector::Current)
            .await
            .unwrap();
        assert_eq!(
            second.etag.as_deref(),
            Some(md5_hex(&changed).as_str()),
            "{l}: the ETag is the MD5"
        );
        assert_eq!(cloud.blocks_stored().await, before + 1, "{l}");
        assert_eq!(
            cloud
                .get(me, account, "c", "second", VersionSelector::Current)
                .await
                .unwrap(),
            changed,
            "{l}"
        );

        // Several blocks in one body come back as their hashes, in order.
        let two = random(BLOCK + 5, 4);
        let posted = cloud
            .storage
            .put_blocks(
                me,
                account,
                "c",
                futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(two.clone()))]),
                None,
            )
            .await
            .unwrap();
        let expected: Vec<BlockHash> = two.chunks(BLOCK).map(hash_block).collect();
        assert_eq!(posted, expected, "{l}");

        // The size must match the number of hashes; an empty object has no blocks.
        assert_err!(
            l,
            put(hashes.clone(), 5).await,
            StorageError::InvalidInput { .. }
        );
        assert_err!(
            l,
            put(hashes.clone(), (4 * BLOCK + 1) as u64).await,
            StorageError::InvalidInput { .. }
        );
        let empty = put(vec![], 0).await.unwrap();
        assert_eq!(empty.etag, None, "{l}");
        cloud.storage.compute_pending_digests(100).await.unwrap();
        let empty = cloud
            .storage
            .object(me, account, "c", &empty.name, VersionSelector::Current)
            .await
            .unwrap();
        assert_eq!(empty.etag.as_deref(), Some(md5_hex(b"").as_str()), "{l}");
        assert_eq!(empty.size, 0, "{l}");

        // Another account may not use this container, even with hashes of blocks it has.
        let bob = cloud.user("bob").await;
        assert_err!(
            l,
            cloud
                .storage
                .put_hashmap(
                    Accessor::Token(&bob),
                    account,
                    "c",
                    "theirs",
                    changed.len() as u64,
                    hashes.clone(),
                    WriteOptions::default(),
                )
                .await,
            StorageError::Forbidden
        );
        assert_err!(
            l,
            cloud
                .storage
                .put_blocks(
                    Accessor::Token(&bob),
                    account,
                    "c",
                    futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(b"x"))]),
                    None,
                )
                .await,
            StorageError::Forbidden
        );
    }
}

#[tokio::test]
async fn partial_updates_store_only_the_blocks_they_change() {
    for cloud in &clouds().await {
        let l = cloud.label;
        let alice = cloud.user("alice").await;
        let me = Accessor::Token(&alice);
        let account = project(&alice);
        cloud.container(&alice, "c", Versioning::Auto).await;
        let mut expected = random(2 * BLOCK + 500, 5);
        let original = cloud.put(&alice, "c", "o", &expected).await.unwrap();
        let mut stored = cloud.blocks_stored().await;
        let current = |expected: Vec<u8>| async move {
            cloud.storage.compute_pending_digests(100).await.unwrap();
            let object = cloud
                .storage
                .object(me, account, "c", "o", VersionSelector::Current)
                .await
                .unwrap();
            let data = cloud
                .get(me, account, "c", "o", VersionSelector::Current)
                .await
                .unwrap();
            assert_eq!(data.len(), expected.len(), "{l}");
            assert!(data == expected, "{l}: the content differs");
            assert_eq!(
                object.etag.as_deref(),
                Some(md5_hex(&expected).as_str()),
                "{l}"
            );
            assert_eq!(object.size, expected.len() as u64, "{l}");
            object
        };

        // Append: the partial last block changes, the others stay.
        let tail = random(100, 6);
        let appended = cloud
            .update_data(&alice, "c", "o", DataUpdate::default(), &tail)
            .await
            .unwrap();
        expected.extend_from_slice(&tail);
        current(expected.clone()).await;
        assert_eq!(
            cloud.hashes(&appended).await[..2],
            cloud.hashes(&original).await[..2],
            "{l}"
        );
        assert_ne!(
            cloud.hashes(&appended).await[2],
            cloud.hashes(&original).await[2],
            "{l}"
        );
        assert_eq!(cloud.blocks_stored().await, stored + 1, "{l}");
        stored += 1;

        // Overwrite a range inside the first block: one new block.
        let patch = random(50, 7);
        let patched = cloud
            .update_data(
                &alice,
                "c",
                "o",
                DataUpdate {
                    offset: Some(100),
                    length: Some(50),
                    ..DataUpdate::default()
                },
                &patch,
            )
            .await
            .unwrap();
        expected[100..150].copy_from_slice(&patch);
        current(expected.clone()).await;
        assert_ne!(
            cloud.hashes(&patched).await[0],
            cloud.hashes(&appended).await[0],
            "{l}"
        );
        assert_eq!(
            cloud.hashes(&patched).await[1..],
            cloud.hashes(&appended).await[1..],
            "{l}"
        );
        assert_eq!(cloud.blocks_stored().await, stored + 1, "{l}");
        stored += 1;

        // Overwrite across a block boundary, and past the end (which grows the object).
        let across = random(BLOCK + 10, 8);
        let offset = 2 * BLOCK + 300;
        cloud
            .update_data(
                &alice,
                "c",
                "o",
                DataUpdate {
                    offset: Some(offset as u64),
                    ..DataUpdate::default()
                },
                &across,
            )
            .await
            .unwrap();
        expected.truncate(offset);
        expected.extend_from_slice(&across);
        let grown = current(expected.clone()).await;
        assert_eq!(cloud.hashes(&grown).await.len(), 4, "{l}");
        assert_eq!(
            cloud.hashes(&grown).await[..2],
            cloud.hashes(&patched).await[..2],
            "{l}"
        );
        assert_eq!(cloud.blocks_stored().await, stored + 2, "{l}");
        stored += 2;

        // Truncate into the second block: that block is stored shorter, the first stays.
        let truncated = cloud
            .update_data(
                &alice,
                "c",
                "o",
                DataUpdate {
                    final_size: Some((BLOCK + 5) as u64),
                    length: Some(0),
                    ..DataUpdate::default()
                },
                b"",
            )
            .await
            .unwrap();
        expected.truncate(BLOCK + 5);
        current(expected.clone()).await;
        assert_eq!(cloud.hashes(&truncated).await.len(), 2, "{l}");
        assert_eq!(
            cloud.hashes(&truncated).await[0],
            cloud.hashes(&grown).await[0],
            "{l}"
        );
        assert_eq!(cloud.blocks_stored().await, stored + 1, "{l}");
        stored += 1;

        // Extending with X-Object-Bytes adds zeros, which need no new data but the empty block.
        let extended = cloud
            .update_data(
                &alice,
                "c",
                "o",
                DataUpdate {
                    final_size: Some((3 * BLOCK + 1) as u64),
                    length: Some(0),
                    ..DataUpdate::default()
                },
                b"",
            )
            .await
            .unwrap();
        expected.resize(3 * BLOCK + 1, 0);
        current(expected.clone()).await;
        assert_eq!(
            cloud.hashes(&extended).await[..2],
            cloud.hashes(&truncated).await[..],
            "{l}"
        );
        assert!(cloud.blocks_stored().await <= stored + 1, "{l}");
        stored = cloud.blocks_stored().await;

        // Data from another object, at an offset (X-Source-Object).
        let source_data = random(1000, 9);
        cloud.put(&alice, "c", "src", &source_data).await.unwrap();
        stored += 1;
        cloud
            .update_data(
                &alice,
                "c",
                "o",
                DataUpdate {
                    offset: Some(10),
                    length: Some(500),
                    source: Some(SourceObject {
                        project_id: account.to_owned(),
                        container: "c".to_owned(),
                        name: "src".to_owned(),
                        version: VersionSelector::Current,
                    }),
                    ..DataUpdate::default()
                },
                b"ignored",
            )
            .await
            .unwrap();
        expected[10..510].copy_from_slice(&source_data[..500]);
        current(expected.clone()).await;
        assert_eq!(cloud.blocks_stored().await, stored + 1, "{l}");

        // Every earlier version is still there and intact.
        let mut first = random(2 * BLOCK + 500, 5);
        assert_eq!(
            cloud
                .get(
                    me,
                    account,
                    "c",
                    "o",
                    VersionSelector::Serial(original.serial)
                )
                .await
                .unwrap()
                .len(),
            first.len(),
            "{l}"
        );
        first.extend_from_slice(&tail);
        assert!(
            cloud
                .get(
                    me,
                    account,
                    "c",
                    "o",
                    VersionSelector::Serial(appended.serial)
                )
                .await
                .unwrap()
                == first,
            "{l}"
        );

        // Ranges that do not fit, and data that does not match its range.
        assert_err!(
            l,
            cloud
                .update_data(
                    &alice,
                    "c",
                    "o",
                    DataUpdate {
                        offset: Some(expected.len() as u64 + 1),
                        ..DataUpdate::default()
                    },
                    b"x",
                )
                .await,
            StorageError::RangeNotSatisfiable { .. }
        );
        assert_err!(
            l,
            cloud
                .update_data(
                    &alice,
                    "c",
                    "o",
                    DataUpdate {
                        offset: Some(0),
                        length: Some(3),
                        ..DataUpdate::default()
                    },
                    b"xy",
                )
                .await,
            StorageError::InvalidInput { .. }
        );
        assert_err!(
            l,
            cloud
                .update_data(
                    &alice,
                    "c",
                    "o",
                    DataUpdate {
                        offset: Some(0),
                        length: Some(1),
                        total: Some(5),
                        ..DataUpdate::default()
                    },
                    b"x",
                )
                .await,
            StorageError::RangeNotSatisfiable { .. }
        );
        assert_err!(
            l,
            cloud
                .update_data(&alice, "c", "absent", DataUpdate::default(), b"x")
                .await,
            StorageError::NotFound { .. }
        );
    }
}

#[tokio::test]
async fn accounts_are_isolated_except_as_sharing_grants() {
    for cloud in &clouds().await {
        let l = cloud.label;
        let alice = cloud.user("alice").await;
        let bob = cloud.user("bob").await;
        let carol = cloud.user("carol").await;
        let (owner, b, c) = (
            Accessor::Token(&alice),
            Accessor::Token(&bob),
            Accessor::Token(&carol),
        );
        let account = project(&alice);
        cloud.container(&alice, "c", Versioning::Auto).await;
        cloud.put(&alice, "c", "doc", b"private").await.unwrap();
        cloud.put(&alice, "c", "other", b"unshared").await.unwrap();

        // Another project's token: forbidden for everything, whether or not it exists.
        for who in [b, Accessor::ANONYMOUS] {
            for name in ["doc", "absent"] {
                for container in ["c", "nope"] {
                    assert_err!(
                        l,
                        cloud
                            .get(who, account, container, name, VersionSelector::Current)
                            .await,
                        StorageError::Forbidden
                    );
                    assert_err!(
                        l,
                        cloud
                            .storage
                            .object_versions(who, account, container, name)
                            .await,
                        StorageError::Forbidden
                    );
                }
            }
            for container in ["c", "nope"] {
                assert_err!(
                    l,
                    cloud
                        .storage
                        .list_objects(who, account, container, &ListQuery::default())
                        .await,
                    StorageError::Forbidden
                );
                assert_err!(
                    l,
                    cloud.storage.container(who, account, container).await,
                    StorageError::Forbidden
                );
                assert_err!(
                    l,
                    cloud
                        .storage
                        .list_shared_objects(who, account, container, &ListQuery::default())
                        .await,
                    StorageError::Forbidden
                );
            }
            assert_err!(
                l,
                cloud
                    .storage
                    .list_containers(who, account, &ListQuery::default())
                    .await,
                StorageError::Forbidden
            );
            assert_err!(
                l,
                cloud.storage.account(who, account).await,
                StorageError::Forbidden
            );
            assert_err!(
                l,
                cloud
                    .storage
                    .containers_shared_with(who, account, &ListQuery::default())
                    .await,
                StorageError::Forbidden
            );
        }
        for name in ["doc", "absent"] {
            assert_err!(
                l,
                cloud.put_in(&bob, account, "c", name, b"mine now").await,
                StorageError::Forbidden
            );
        }
        assert_err!(
            l,
            cloud.storage.delete_object(b, account, "c", "doc").await,
            StorageError::Forbidden
        );
        assert_err!(
            l,
            cloud
                .storage
                .update_object(
                    b,
                    account,
                    "c",
                    "doc",
                    ObjectUpdate {
                        sharing: Some("read=bob".to_owned()),
                        ..ObjectUpdate::default()
                    },
                )
                .await,
            StorageError::Forbidden
        );
        assert_eq!(
            cloud.storage.accounts_sharing_with(b).await.unwrap(),
            Vec::<String>::new(),
            "{l}"
        );

        // Shared for reading with bob: bob reads it (only it), but may not write it.
        let share = |sharing: &str| {
            let update = ObjectUpdate {
                sharing: Some(sharing.to_owned()),
                ..ObjectUpdate::default()
            };
            cloud
                .storage
                .update_object(owner, account, "c", "doc", update)
        };
        let shared = share("read=bob").await.unwrap();
        assert_eq!(shared.sharing.as_deref(), Some("read=bob"), "{l}");
        assert_eq!(
            cloud
                .get(b, account, "c", "doc", VersionSelector::Current)
                .await
                .unwrap(),
            b"private",
            "{l}"
        );
        assert_err!(
            l,
            cloud
                .get(b, account, "c", "other", VersionSelector::Current)
                .await,
            StorageError::Forbidden
        );
        assert_err!(
            l,
            cloud.put_in(&bob, account, "c", "doc", b"changed").await,
            StorageError::Forbidden
        );
        assert_err!(
            l,
            cloud
                .get(c, account, "c", "doc", VersionSelector::Current)
                .await,
            StorageError::Forbidden
        );
        // What bob can list of alice's account: the shared object and its container.
        let listed = cloud
            .storage
            .list_shared_objects(b, account, "c", &ListQuery::default())
            .await
            .unwrap();
        assert_eq!(names(&listed), vec!["doc"], "{l}");
        let containers = cloud
            .storage
            .containers_shared_with(b, account, &ListQuery::default())
            .await
            .unwrap();
        assert_eq!(containers.len(), 1, "{l}");
        assert_eq!(
            (
                containers[0].name.as_str(),
                containers[0].objects,
                containers[0].bytes
            ),
            ("c", 1, 7),
            "{l}"
        );
        assert_eq!(
            cloud.storage.accounts_sharing_with(b).await.unwrap(),
            vec![account.to_owned()],
            "{l}"
        );
        assert_eq!(
            cloud.storage.accounts_sharing_with(c).await.unwrap(),
            Vec::<String>::new(),
            "{l}"
        );
        // The plain listings stay the owner's.
        assert_err!(
            l,
            cloud
                .storage
                .list_objects(b, account, "c", &ListQuery::default())
                .await,
            StorageError::Forbidden
        );

        // The owner's `?shared` listings show only shared things.
        cloud.container(&alice, "quiet", Versioning::Auto).await;
        cloud.put(&alice, "quiet", "x", b"x").await.unwrap();
        let shared_containers = cloud
            .storage
            .list_shared_containers(owner, account, &ListQuery::default())
            .await
            .unwrap();
        let shared_names: Vec<_> = shared_containers.iter().map(|c| c.name.clone()).collect();
        assert_eq!(shared_names, vec!["c"], "{l}");
        let shared_objects = cloud
            .storage
            .list_shared_objects(owner, account, "c", &ListQuery::default())
            .await
            .unwrap();
        assert_eq!(names(&shared_objects), vec!["doc"], "{l}");
        assert!(
            cloud
                .storage
                .list_shared_objects(owner, account, "quiet", &ListQuery::default())
                .await
                .unwrap()
                .is_empty(),
            "{l}"
        );

        // Write through a group of the owner's account: carol writes, bob still only reads.
        cloud
            .storage
            .update_account(
                owner,
                account,
                &Default::default(),
                &[("team".to_owned(), vec!["carol".to_owned()])]
                    .into_iter()
                    .collect(),
                false,
            )
            .await
            .unwrap();
        share(&format!("read=bob;write={account}:team"))
            .await
            .unwrap();
        cloud
            .put_in(&carol, account, "c", "doc", b"by carol")
            .await
            .unwrap();
        assert_eq!(
            cloud
                .get(b, account, "c", "doc", VersionSelector::Current)
                .await
                .unwrap(),
            b"by carol",
            "{l}"
        );
        assert_err!(
            l,
            cloud.put_in(&bob, account, "c", "doc", b"by bob").await,
            StorageError::Forbidden
        );
        // A sharee with write may update data, but not sharing or metadata.
        cloud
            .storage
            .update_object_data(
                c,
                account,
                "c",
                "doc",
                DataUpdate::default(),
                futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(b"!"))]),
            )
            .await
            .unwrap();
        assert_err!(
            l,
            cloud
                .storage
                .update_object(
                    c,
                    account,
                    "c",
                    "doc",
                    ObjectUpdate {
                        sharing: Some("read=*".to_owned()),
                        ..ObjectUpdate::default()
                    },
                )
                .await,
            StorageError::Forbidden
        );
        // A group of another account grants nothing here.
        share(&format!("read={}:team", project(&bob)))
            .await
            .unwrap();
        assert_err!(
            l,
            cloud
                .get(c, account, "c", "doc", VersionSelector::Current)
                .await,
            StorageError::Forbidden
        );

        // Everyone with a token, but not the anonymous.
        share("read=*").await.unwrap();
        assert_eq!(
            cloud
                .get(c, account, "c", "doc", VersionSelector::Current)
                .await
                .unwrap(),
            b"by carol!",
            "{l}"
        );
        assert_err!(
            l,
            cloud
                .get(
                    Accessor::ANONYMOUS,
                    account,
                    "c",
                    "doc",
                    VersionSelector::Current
                )
                .await,
            StorageError::Forbidden
        );

        // Removing the sharing ends it.
        share("").await.unwrap();
        assert_err!(
            l,
            cloud
                .get(b, account, "c", "doc", VersionSelector::Current)
                .await,
            StorageError::Forbidden
        );
        assert!(
            cloud
                .storage
                .list_shared_containers(owner, account, &ListQuery::default())
                .await
                .unwrap()
                .is_empty(),
            "{l}"
        );
    }
}

#[tokio::test]
async fn public_objects_are_served_by_token_until_revoked() {
    for cloud in &clouds().await {
        let l = cloud.label;
        let alice = cloud.user("alice").await;
        let owner = Accessor::Token(&alice);
        let account = project(&alice);
        cloud.container(&alice, "c", Versioning::Auto).await;
        cloud.put(&alice, "c", "pub", b"for all").await.unwrap();
        cloud.put(&alice, "c", "priv", b"for me").await.unwrap();
        let publish = |public| {
            cloud.storage.update_object(
                owner,
                account,
                "c",
                "pub",
                ObjectUpdate {
                    public: Some(public),
                    ..ObjectUpdate::default()
                },
            )
        };
        let published = publish(true).await.unwrap();
        let token = published.public_token.clone().unwrap();
        assert!(token.len() >= 32, "{l}");
        // Publishing again keeps the URL.
        assert_eq!(
            publish(true).await.unwrap().public_token.as_deref(),
            Some(token.as_str()),
            "{l}"
        );
        let object = cloud.storage.public_object(&token).await.unwrap();
        assert_eq!(object.name, "pub", "{l}");
        let data: Vec<Bytes> = cloud
            .storage
            .read(&object, None)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(data.concat(), b"for all", "{l}");
        // The token reaches only that object; the other stays private.
        assert_err!(
            l,
            cloud
                .get(
                    Accessor::ANONYMOUS,
                    account,
                    "c",
                    "priv",
                    VersionSelector::Current
                )
                .await,
            StorageError::Forbidden
        );
        assert_err!(
            l,
            cloud.storage.public_object("0123456789abcdef").await,
            StorageError::NotFound { .. }
        );
        // A new version stays public; revoking ends it.
        cloud.put(&alice, "c", "pub", b"v2").await.unwrap();
        assert_eq!(
            cloud.storage.public_object(&token).await.unwrap().size,
            2,
            "{l}"
        );
        assert!(publish(false).await.unwrap().public_token.is_none(), "{l}");
        assert_err!(
            l,
            cloud.storage.public_object(&token).await,
            StorageError::NotFound { .. }
        );
        // A deleted object's URL dies with it.
        let token = publish(true).await.unwrap().public_token.unwrap();
        cloud
            .storage
            .delete_object(owner, account, "c", "pub")
            .await
            .unwrap();
        assert_err!(
            l,
            cloud.storage.public_object(&token).await,
            StorageError::NotFound { .. }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_one_name_all_succeed_and_one_version_is_current() {
    for cloud in clouds().await {
        let alice = cloud.user("alice").await;
        cloud.container(&alice, "race", Versioning::Auto).await;
        let writes = (0..12usize).map(|i| {
            let (cloud, alice) = (&cloud, &alice);
            async move {
                cloud
                    .put(alice, "race", "same-name", &random(1000 + i, i as u64))
                    .await
            }
        });
        for (i, result) in futures::future::join_all(writes)
            .await
            .into_iter()
            .enumerate()
        {
            assert!(result.is_ok(), "{}: write {i}: {result:?}", cloud.label);
        }
        let versions = cloud
            .storage
            .object_versions(
                Accessor::Token(&alice),
                project(&alice),
                "race",
                "same-name",
            )
            .await
            .unwrap();
        assert_eq!(versions.len(), 12, "{}", cloud.label);
        let current = cloud
            .get(
                Accessor::Token(&alice),
                project(&alice),
                "race",
                "same-name",
                VersionSelector::Current,
            )
            .await
            .unwrap();
        assert!((1000..1012).contains(&current.len()), "{}", cloud.label);
        // Concurrent creations of one container are one container.
        let update = ContainerUpdate::default();
        let creations = (0..8).map(|_| {
            cloud
                .storage
                .put_container(Accessor::Token(&alice), project(&alice), "new", &update)
        });
        let created: Vec<bool> = futures::future::join_all(creations)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(created.iter().filter(|c| **c).count(), 1, "{}", cloud.label);
    }
}

#[tokio::test]
async fn listings_and_heads_never_read_hashmaps_and_gc_stops_at_a_damaged_one() {
    for cloud in &clouds().await {
        let l = cloud.label;
        let alice = cloud.user("alice").await;
        let me = Accessor::Token(&alice);
        let account = project(&alice);
        cloud.container(&alice, "c", Versioning::Auto).await;
        let data = random(BLOCK + 10, 9);
        let object = cloud.put(&alice, "c", "o", &data).await.unwrap();
        let hash = object.hash.unwrap();
        assert_eq!(
            hash,
            nefos_blocks::merkle_root(&cloud.hashes(&object).await)
        );
        // Damage the stored hashmap: what needs only size, hash and metadata must not
        // notice, because it must not read it.
        sqlx::query("UPDATE objects SET hashmap = 'damaged' WHERE serial = $1")
            .bind(object.serial)
            .execute(cloud.storage.database().pool())
            .await
            .unwrap();
        let listed = cloud
            .storage
            .list_objects(me, account, "c", &ListQuery::default())
            .await
            .unwrap();
        match &listed[..] {
            [ListEntry::Object(found)] => {
                assert_eq!(found.hash, Some(hash), "{l}");
                assert_eq!(found.etag, object.etag, "{l}");
                assert_eq!(found.size, data.len() as u64, "{l}");
            }
            other => panic!("{l}: {other:?}"),
        }
        let head = cloud
            .storage
            .object(me, account, "c", "o", VersionSelector::Current)
            .await
            .unwrap();
        assert_eq!(head.hash, Some(hash), "{l}");
        // Reading the content needs the hashmap, and says it is damaged.
        assert_err!(
            l,
            cloud
                .get(me, account, "c", "o", VersionSelector::Current)
                .await,
            StorageError::CorruptHashmap { .. }
        );
        // Garbage collection stops rather than delete blocks a damaged row may refer to.
        let before = cloud.blocks_stored().await;
        assert_err!(
            l,
            cloud.storage.collect_garbage(Duration::ZERO).await,
            StorageError::CorruptHashmap { .. }
        );
        assert_eq!(cloud.blocks_stored().await, before, "{l}");
    }
}

#[tokio::test]
async fn names_and_listing_bounds_with_nul_are_refused() {
    for cloud in &clouds().await {
        let l = cloud.label;
        let alice = cloud.user("alice").await;
        let me = Accessor::Token(&alice);
        let account = project(&alice);
        cloud.container(&alice, "c", Versioning::Auto).await;
        assert_err!(
            l,
            cloud.put(&alice, "c", "a\0b", b"x").await,
            StorageError::InvalidInput { .. }
        );
        assert_err!(
            l,
            cloud
                .storage
                .put_container(me, account, "c\0d", &ContainerUpdate::default())
                .await,
            StorageError::InvalidInput { .. }
        );
        for query in [
            ListQuery {
                prefix: Some("\0".to_owned()),
                ..ListQuery::default()
            },
            ListQuery {
                marker: Some("a\0".to_owned()),
                ..ListQuery::default()
            },
            ListQuery {
                end_marker: Some("\0".to_owned()),
                ..ListQuery::default()
            },
        ] {
            assert_err!(
                l,
                cloud.storage.list_objects(me, account, "c", &query).await,
                StorageError::InvalidInput { .. }
            );
        }
    }
}

/// Shares `name` of `owner`'s container `c` with a sharing value.
async fn share(cloud: &Cloud, owner: &AuthContext, name: &str, sharing: &str) {
    cloud
        .storage
        .update_object(
            Accessor::Token(owner),
            project(owner),
            "c",
            name,
            ObjectUpdate {
                sharing: Some(sharing.to_owned()),
                ..ObjectUpdate::default()
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn grants_follow_users_not_names() {
    for cloud in &clouds().await {
        let l = cloud.label;
        let alice = cloud.user("alice").await;
        let bob = cloud.user("bob").await;
        let account = project(&alice);
        cloud.container(&alice, "c", Versioning::Auto).await;
        cloud.put(&alice, "c", "doc", b"private").await.unwrap();
        share(cloud, &alice, "doc", "read=bob").await;
        let read = |who: &AuthContext| {
            let who = who.clone();
            async move {
                cloud
                    .get(
                        Accessor::Token(&who),
                        account,
                        "c",
                        "doc",
                        VersionSelector::Current,
                    )
                    .await
            }
        };
        assert_eq!(read(&bob).await.unwrap(), b"private", "{l}");
        let shown = cloud
            .storage
            .object(
                Accessor::Token(&alice),
                account,
                "c",
                "doc",
                VersionSelector::Current,
            )
            .await
            .unwrap();
        assert_eq!(shown.sharing.as_deref(), Some("read=bob"), "{l}");

        // An unknown user is refused, and the grant stays as it was.
        let refused = cloud
            .storage
            .update_object(
                Accessor::Token(&alice),
                account,
                "c",
                "doc",
                ObjectUpdate {
                    sharing: Some("read=nobody".to_owned()),
                    ..ObjectUpdate::default()
                },
            )
            .await;
        assert_err!(l, refused, StorageError::InvalidInput { .. });
        assert_eq!(read(&bob).await.unwrap(), b"private", "{l}");

        // Bob goes; a new user called bob gets nothing of the old one's.
        cloud
            .identity
            .delete_user(Caller::Operator, &bob.user_id)
            .await
            .unwrap();
        cloud.storage.forget_user(&bob.user_id).await.unwrap();
        let new_bob = cloud.user("bob").await;
        assert_err!(l, read(&new_bob).await, StorageError::Forbidden);
        let shown = cloud
            .storage
            .object(
                Accessor::Token(&alice),
                account,
                "c",
                "doc",
                VersionSelector::Current,
            )
            .await
            .unwrap();
        assert_eq!(shown.sharing, None, "{l}: the deleted user's grant is gone");
        let stored = sqlx::query_scalar::<_, Option<String>>(
            "SELECT sharing FROM object_paths WHERE name = 'doc'",
        )
        .fetch_optional(cloud.storage.database().pool())
        .await
        .unwrap()
        .flatten();
        assert_eq!(stored, None, "{l}");

        // Groups hold ids too.
        cloud
            .storage
            .update_account(
                Accessor::Token(&alice),
                account,
                &Default::default(),
                &[("team".to_owned(), vec!["bob".to_owned()])].into(),
                false,
            )
            .await
            .unwrap();
        share(cloud, &alice, "doc", &format!("read={account}:team")).await;
        assert_eq!(read(&new_bob).await.unwrap(), b"private", "{l}");
        let info = cloud
            .storage
            .account(Accessor::Token(&alice), account)
            .await
            .unwrap();
        assert_eq!(info.groups["team"], ["bob"], "{l}: shown by name");
        cloud
            .identity
            .delete_user(Caller::Operator, &new_bob.user_id)
            .await
            .unwrap();
        cloud.storage.forget_user(&new_bob.user_id).await.unwrap();
        let third_bob = cloud.user("bob").await;
        assert_err!(l, read(&third_bob).await, StorageError::Forbidden);
        let info = cloud
            .storage
            .account(Accessor::Token(&alice), account)
            .await
            .unwrap();
        assert!(info.groups.is_empty(), "{l}: {:?}", info.groups);
    }
}

#[tokio::test]
async fn a_sharee_replaces_data_only_and_a_refused_write_stores_nothing() {
    for cloud in &clouds().await {
        let l = cloud.label;
        let alice = cloud.user("alice").await;
        let bob = cloud.user("bob").await;
        let account = project(&alice);
        cloud.container(&alice, "c", Versioning::Auto).await;
        cloud.container(&bob, "mine", Versioning::Auto).await;
        let keep = WriteOptions {
            meta: [("owner-note".to_owned(), "mine".to_owned())].into(),
            ..WriteOptions::default()
        };
        let body = |data: &'static [u8]| {
            futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(data))])
        };
        cloud
            .storage
            .put_object(
                Accessor::Token(&alice),
                account,
                "c",
                "shared",
                body(b"v1"),
                keep,
            )
            .await
            .unwrap();
        share(cloud, &alice, "shared", "write=bob").await;
        let versions = || async {
            cloud
                .storage
                .object_versions(Accessor::Token(&alice), account, "c", "shared")
                .await
                .unwrap()
                .len()
        };
        let stored_before = cloud.blocks_stored().await;

        // Everything beyond the data is the owner's: each is refused before the body is
        // read, and nothing is stored.
        let owner_only = [
            WriteOptions {
                headers: [("x-object-manifest".to_owned(), "vic/keep".to_owned())].into(),
                ..WriteOptions::default()
            },
            WriteOptions {
                meta: [("owner-note".to_owned(), "bob's".to_owned())].into(),
                ..WriteOptions::default()
            },
            WriteOptions {
                delete_at: Some(4_000_000_000),
                ..WriteOptions::default()
            },
            WriteOptions {
                sharing: Some("read=bob".to_owned()),
                ..WriteOptions::default()
            },
            WriteOptions {
                public: Some(true),
                ..WriteOptions::default()
            },
        ];
        for options in owner_only {
            let refused = cloud
                .storage
                .put_object(
                    Accessor::Token(&bob),
                    account,
                    "c",
                    "shared",
                    body(b"never stored"),
                    options.clone(),
                )
                .await;
            assert_err!(l, refused, StorageError::Forbidden);
        }
        assert_eq!(versions().await, 1, "{l}");
        assert_eq!(cloud.blocks_stored().await, stored_before, "{l}");

        // Data alone is fine, and the owner's metadata stays.
        let replaced = cloud
            .storage
            .put_object(
                Accessor::Token(&bob),
                account,
                "c",
                "shared",
                body(b"v2 by bob"),
                WriteOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(replaced.meta["owner-note"], "mine", "{l}");
        assert_eq!(versions().await, 2, "{l}");

        // Nor can a manifest arrive by copying one of the sharee's own onto the object.
        let dlo = WriteOptions {
            headers: [("x-object-manifest".to_owned(), "vic/keep".to_owned())].into(),
            ..WriteOptions::default()
        };
        cloud
            .storage
            .put_object(
                Accessor::Token(&bob),
                project(&bob),
                "mine",
                "dlo",
                body(b""),
                dlo,
            )
            .await
            .unwrap();
        let copied = cloud
            .storage
            .copy_object(
                Accessor::Token(&bob),
                (project(&bob), "mine", "dlo"),
                VersionSelector::Current,
                (account, "c", "shared"),
                WriteOptions::default(),
                false,
            )
            .await;
        assert_err!(l, copied, StorageError::Forbidden);
        assert_eq!(versions().await, 2, "{l}");
        cloud
            .storage
            .delete_object(Accessor::Token(&bob), project(&bob), "mine", "dlo")
            .await
            .unwrap();

        // A reader cannot move the object into their own account: refused before the copy.
        share(cloud, &alice, "shared", "read=bob").await;
        let moved = cloud
            .storage
            .move_object(
                Accessor::Token(&bob),
                (account, "c", "shared"),
                (project(&bob), "mine", "taken"),
                WriteOptions::default(),
                false,
            )
            .await;
        assert_err!(l, moved, StorageError::Forbidden);
        let mine = cloud
            .storage
            .list_objects(
                Accessor::Token(&bob),
                project(&bob),
                "mine",
                &ListQuery::default(),
            )
            .await
            .unwrap();
        assert!(mine.is_empty(), "{l}: the copy must not have been made");
    }
}

#[tokio::test]
async fn the_digest_job_passes_over_a_version_it_cannot_read() {
    for cloud in &clouds().await {
        let l = cloud.label;
        let alice = cloud.user("alice").await;
        let me = Accessor::Token(&alice);
        let account = project(&alice);
        cloud.container(&alice, "c", Versioning::Auto).await;
        let data = random(BLOCK + 10, 11);
        let source = cloud.put(&alice, "c", "source", &data).await.unwrap();
        let hashes = cloud.hashes(&source).await;
        let mut made = Vec::new();
        for name in ["damaged", "fine"] {
            let object = cloud
                .storage
                .put_hashmap(
                    me,
                    account,
                    "c",
                    name,
                    data.len() as u64,
                    hashes.clone(),
                    WriteOptions::default(),
                )
                .await
                .unwrap();
            assert_eq!(object.etag, None, "{l}");
            made.push(object);
        }
        // The older version cannot be read; the newer one must get its MD5 all the same.
        sqlx::query("UPDATE objects SET hashmap = 'damaged' WHERE serial = $1")
            .bind(made[0].serial)
            .execute(cloud.storage.database().pool())
            .await
            .unwrap();
        assert_eq!(cloud.storage.compute_pending_digests(16).await.unwrap(), 1);
        let fine = cloud
            .storage
            .object(me, account, "c", "fine", VersionSelector::Current)
            .await
            .unwrap();
        assert_eq!(fine.etag, source.etag, "{l}");
    }
}
