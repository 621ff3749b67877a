//! Swift's large objects and expiry on both databases: static manifests served from their
//! own blocks when the segments line up with blocks and from the segments otherwise,
//! dynamic manifests over a listing, and the expirer deleting exactly the due objects.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::TryStreamExt;
use md5::{Digest, Md5};
use nefos_blocks::{BLOCK_SIZE, BlockStore, BlockStoreConfig};
use nefos_identity::{
    AuthContext, Caller, Identity, IdentityConfig, NewUser, PasswordCredentials, Scope, UserRef,
};
use nefos_storage::{
    Accessor, ByteRange, ContainerUpdate, ManifestError, ObjectInfo, ObjectSegmentSpec,
    SegmentSpec, Storage, StorageError, VersionSelector, Versioning, WriteOptions,
};
use nefos_test_utils::{TestDatabase, each_backend};
use rand::{RngCore, SeedableRng};
use tempfile::TempDir;

const PASSWORD: &str = "a password for the storage tests";

struct Cloud {
    label: &'static str,
    storage: Storage,
    user: AuthContext,
    _blocks_dir: TempDir,
    _db: TestDatabase,
}

impl Cloud {
    async fn new(t: TestDatabase) -> Cloud {
        let dir = tempfile::tempdir().unwrap();
        let blocks = BlockStore::open(&BlockStoreConfig::Fs {
            path: dir.path().join("blocks"),
        })
        .await
        .unwrap();
        let identity = Identity::new(t.db.clone(), IdentityConfig::default());
        let user = identity
            .create_user(
                Caller::Operator,
                NewUser {
                    name: "owner".to_owned(),
                    email: None,
                    password: Some(PASSWORD.to_owned()),
                    enabled: true,
                },
            )
            .await
            .unwrap();
        let user = identity
            .authenticate_password(
                PasswordCredentials {
                    user: UserRef::Name("owner".to_owned()),
                    password: PASSWORD.to_owned(),
                },
                Scope::ProjectId(user.base_project_id),
            )
            .await
            .unwrap()
            .context;
        Cloud {
            label: t.label,
            storage: Storage::new(t.db.clone(), blocks, nefos_quota::Quotas::new(t.db.clone())),
            user,
            _blocks_dir: dir,
            _db: t,
        }
    }

    fn who(&self) -> Accessor<'_> {
        Accessor::Token(&self.user)
    }

    fn project(&self) -> &str {
        self.user.project_id().unwrap()
    }

    async fn container(&self, name: &str, versioning: Versioning) {
        let update = ContainerUpdate {
            versioning: Some(versioning),
            ..ContainerUpdate::default()
        };
        self.storage
            .put_container(self.who(), self.project(), name, &update)
            .await
            .unwrap();
    }

    async fn put(&self, container: &str, name: &str, data: &[u8], options: WriteOptions) {
        let body =
            futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::copy_from_slice(data))]);
        self.storage
            .put_object(self.who(), self.project(), container, name, body, options)
            .await
            .unwrap();
    }

    async fn object(&self, container: &str, name: &str) -> Result<ObjectInfo, StorageError> {
        self.storage
            .object(
                self.who(),
                self.project(),
                container,
                name,
                VersionSelector::Current,
            )
            .await
    }

    /// What a GET of the object serves, or of a range of it.
    async fn read(&self, name: &str, range: Option<ByteRange>) -> Vec<u8> {
        let object = self.object("c", name).await.unwrap();
        let content = self
            .storage
            .content(self.who(), &object, false)
            .await
            .unwrap();
        let chunks: Vec<Bytes> = self
            .storage
            .read_content(&content, range)
            .try_collect()
            .await
            .unwrap();
        chunks.concat()
    }

    async fn manifest(
        &self,
        name: &str,
        segments: Vec<SegmentSpec>,
    ) -> Result<ObjectInfo, ManifestError> {
        self.storage
            .put_static_manifest(
                self.who(),
                self.project(),
                "c",
                name,
                segments,
                WriteOptions::default(),
            )
            .await
    }
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

fn segment(name: &str, data: &[u8]) -> SegmentSpec {
    SegmentSpec::Object(object_segment(name, data))
}

fn object_segment(name: &str, data: &[u8]) -> ObjectSegmentSpec {
    ObjectSegmentSpec {
        path: format!("/segs/{name}"),
        etag: Some(md5_hex(data)),
        size_bytes: Some(data.len() as u64),
        range: None,
    }
}

#[tokio::test]
async fn manifests_are_served_from_blocks_or_from_segments() {
    for t in each_backend().await {
        let cloud = Cloud::new(t).await;
        let label = cloud.label;
        cloud.container("c", Versioning::Auto).await;
        cloud.container("segs", Versioning::Auto).await;
        let (a, b, c) = (
            random(BLOCK_SIZE, 1),
            random(BLOCK_SIZE + 10, 2),
            random(100, 3),
        );
        for (name, data) in [("a", &a), ("b", &b), ("c", &c)] {
            cloud.put("segs", name, data, WriteOptions::default()).await;
        }
        let hashes_of = |name: &'static str| {
            let cloud = &cloud;
            async move {
                let object = cloud.object("segs", name).await.unwrap();
                cloud.storage.hashmap(&object).await.unwrap()
            }
        };

        // Whole blocks but for the last segment: the manifest's hashmap is theirs.
        let aligned = cloud
            .manifest("aligned", vec![segment("a", &a), segment("b", &b)])
            .await
            .unwrap();
        assert_eq!(
            cloud.storage.hashmap(&aligned).await.unwrap(),
            [hashes_of("a").await, hashes_of("b").await].concat(),
            "{label}"
        );
        assert_eq!(aligned.size, (a.len() + b.len()) as u64, "{label}");
        assert_eq!(
            aligned.etag,
            Some(md5_hex(
                format!("{}{}", md5_hex(&a), md5_hex(&b)).as_bytes()
            )),
            "{label}"
        );
        assert!(aligned.is_static_manifest(), "{label}");
        let whole = [a.as_slice(), &b].concat();
        assert_eq!(cloud.read("aligned", None).await, whole, "{label}");

        // A short segment first: no hashmap, the segments are streamed.
        let streamed = cloud
            .manifest(
                "streamed",
                vec![segment("c", &c), segment("a", &a), segment("b", &b)],
            )
            .await
            .unwrap();
        assert_eq!(streamed.blocks, 0, "{label}");
        assert!(cloud.storage.hashmap(&streamed).await.unwrap().is_empty());
        let whole = [c.as_slice(), &a, &b].concat();
        assert_eq!(cloud.read("streamed", None).await, whole, "{label}");
        let range = ByteRange {
            first: 90,
            last: 100 + BLOCK_SIZE as u64 + 5,
        };
        assert_eq!(
            cloud.read("streamed", Some(range)).await,
            whole[90..=100 + BLOCK_SIZE + 5],
            "{label}"
        );

        // Inline data between segments: streamed with them, counted in the ETag by its
        // MD5, and read back across its edges.
        let head = b"HEAD".repeat(8);
        let tail = b"TAIL".repeat(16);
        let inline = cloud
            .manifest(
                "inline",
                vec![
                    SegmentSpec::Data(head.clone()),
                    segment("c", &c),
                    SegmentSpec::Data(tail.clone()),
                ],
            )
            .await
            .unwrap();
        assert_eq!(inline.blocks, 0, "{label}");
        assert_eq!(
            inline.etag,
            Some(md5_hex(
                format!("{}{}{}", md5_hex(&head), md5_hex(&c), md5_hex(&tail)).as_bytes()
            )),
            "{label}"
        );
        let whole = [head.as_slice(), &c, &tail].concat();
        assert_eq!(inline.size, whole.len() as u64, "{label}");
        assert_eq!(cloud.read("inline", None).await, whole, "{label}");
        let range = ByteRange {
            first: 30,
            last: 140,
        };
        assert_eq!(
            cloud.read("inline", Some(range)).await,
            whole[30..=140],
            "{label}"
        );

        // Segments that are not as described are all reported.
        let mut wrong = object_segment("a", &a);
        wrong.size_bytes = Some(1);
        let missing = ObjectSegmentSpec {
            path: "/segs/none".to_owned(),
            etag: None,
            size_bytes: None,
            range: None,
        };
        let specs = vec![SegmentSpec::Object(wrong), SegmentSpec::Object(missing)];
        match cloud.manifest("bad", specs).await {
            Err(ManifestError::Segments(problems)) => {
                let problems: Vec<_> = problems
                    .iter()
                    .map(|p| format!("{}, {}", p.path, p.problem))
                    .collect();
                assert_eq!(
                    problems,
                    ["/segs/a, Size Mismatch", "/segs/none, 404 Not Found"],
                    "{label}"
                );
            }
            other => panic!("{label}: {other:?}"),
        }

        // A dynamic manifest: the current objects under a prefix, in name order.
        let headers = BTreeMap::from([("x-object-manifest".to_owned(), "segs/".to_owned())]);
        let options = WriteOptions {
            headers,
            ..WriteOptions::default()
        };
        cloud.put("c", "dynamic", b"", options).await;
        let object = cloud.object("c", "dynamic").await.unwrap();
        let content = cloud
            .storage
            .content(cloud.who(), &object, false)
            .await
            .unwrap();
        assert_eq!(content.size(), (a.len() + b.len() + c.len()) as u64);
        assert_eq!(
            content.etag(),
            Some(
                md5_hex(format!("{}{}{}", md5_hex(&a), md5_hex(&b), md5_hex(&c)).as_bytes())
                    .as_str()
            ),
            "{label}"
        );
        assert_eq!(
            cloud.read("dynamic", None).await,
            [a.as_slice(), &b, &c].concat(),
            "{label}"
        );
    }
}

#[tokio::test]
async fn the_expirer_deletes_exactly_the_due_objects() {
    for t in each_backend().await {
        let cloud = Cloud::new(t).await;
        let label = cloud.label;
        cloud.container("plain", Versioning::None).await;
        cloud.container("kept", Versioning::Auto).await;
        let now = nefos_db::time::now_micros() / 1_000_000;
        let due = || WriteOptions {
            delete_at: Some(now - 10),
            ..WriteOptions::default()
        };
        let later = WriteOptions {
            delete_at: Some(now + 3600),
            ..WriteOptions::default()
        };
        cloud.put("plain", "due", b"x", due()).await;
        cloud.put("plain", "later", b"y", later).await;
        cloud
            .put("plain", "forever", b"z", WriteOptions::default())
            .await;
        cloud.put("kept", "due", b"v", due()).await;

        assert_eq!(cloud.storage.delete_expired(1).await.unwrap(), 2, "{label}");
        assert_eq!(
            cloud.storage.delete_expired(100).await.unwrap(),
            0,
            "{label}"
        );
        let versions = |container: &'static str| {
            let cloud = &cloud;
            async move {
                cloud
                    .storage
                    .object_versions(cloud.who(), cloud.project(), container, "due")
                    .await
            }
        };
        // Gone for good from the unversioned container; history kept in the other.
        assert!(
            matches!(versions("plain").await, Err(StorageError::NotFound { .. })),
            "{label}"
        );
        assert_eq!(versions("kept").await.unwrap().len(), 1, "{label}");
        for name in ["later", "forever"] {
            cloud.object("plain", name).await.unwrap();
        }
        let stats = cloud
            .storage
            .container(cloud.who(), cloud.project(), "kept")
            .await
            .unwrap();
        assert_eq!(stats.objects, 0, "{label}");
    }
}
