//! The image service on both databases, over a real block store: upload and download,
//! inspection that refuses unsafe data and leaves nothing behind, registration of objects
//! (no byte copied, the image going with its object), shared blocks, visibility and members,
//! the status life cycle, updates, listings, and what a server's boot disk needs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use md5::Md5;
use nefos_blocks::{BlockStore, BlockStoreConfig};
use nefos_identity::{
    AuthContext, Caller as IdentityCaller, Identity, IdentityConfig, NewUser, ProjectKind, Role,
    ScopedProject,
};
use nefos_image::{
    Arrival, ByteRangeRequest, Caller, FieldValue, ImageError, ImageField, ImageStatus, Images,
    ListQuery, MemberStatus, MemberStatusFilter, NewImage, ObjectRef, PatchOp, PatchOperation,
    SortDirection, SortKey, Visibility, VisibilityFilter,
};
use nefos_storage::{Accessor, ContainerUpdate, Storage, StorageError, WriteOptions};
use nefos_test_utils::TestDatabase;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

struct Cloud {
    label: &'static str,
    images: Images,
    storage: Storage,
    identity: Identity,
    dir: TempDir,
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
        let storage = Storage::new(t.db.clone(), blocks, nefos_quota::Quotas::new(t.db.clone()));
        Cloud {
            label: t.label,
            images: Images::new(storage.clone()),
            storage,
            identity: Identity::new(t.db.clone(), IdentityConfig::default()),
            dir,
            _db: t,
        }
    }

    /// A new user acting as a member of its personal project.
    async fn user(&self, name: &str) -> AuthContext {
        let user = self
            .identity
            .create_user(
                IdentityCaller::Operator,
                NewUser {
                    name: name.to_owned(),
                    email: None,
                    password: None,
                    enabled: true,
                },
            )
            .await
            .unwrap();
        AuthContext {
            user_id: user.id.clone(),
            user_name: user.name.clone(),
            project: Some(ScopedProject {
                id: user.base_project_id.clone(),
                name: user.name.clone(),
                kind: ProjectKind::Base,
            }),
            roles: vec![Role::Member],
            methods: vec!["password".to_owned()],
            issued_at: 0,
            expires_at: i64::MAX,
            audit_id: String::new(),
        }
    }

    /// A cloud administrator: `admin` on a system project.
    async fn admin(&self) -> AuthContext {
        let mut admin = self.user("cloud-admin").await;
        if let Some(project) = admin.project.as_mut() {
            project.kind = ProjectKind::System;
        }
        admin.roles = vec![Role::Admin];
        admin
    }

    async fn blocks_stored(&self) -> usize {
        self.storage.blocks().list().await.unwrap().len()
    }

    async fn create(&self, who: &AuthContext, name: &str, disk_format: &str) -> String {
        self.images
            .create(
                Caller::new(who),
                NewImage {
                    name: Some(name.to_owned()),
                    disk_format: Some(disk_format.to_owned()),
                    container_format: Some("bare".to_owned()),
                    ..NewImage::default()
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn upload(&self, who: &AuthContext, id: &str, data: &[u8]) -> Result<(), ImageError> {
        let body = futures::stream::iter(
            data.chunks(1 << 20)
                .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        self.images
            .receive(
                Caller::new(who),
                id,
                body,
                Some(data.len() as u64),
                Arrival::Upload,
            )
            .await
            .map(drop)
    }

    async fn download(
        &self,
        who: &AuthContext,
        id: &str,
        range: Option<ByteRangeRequest>,
    ) -> Vec<u8> {
        let data = self
            .images
            .download(Caller::new(who), id, range)
            .await
            .unwrap();
        let chunks: Vec<Bytes> = data.body.try_collect().await.unwrap();
        chunks.concat()
    }

    async fn put_object(&self, who: &AuthContext, container: &str, name: &str, data: &[u8]) {
        let project = who.project_id().unwrap();
        let _ = self
            .storage
            .put_container(
                Accessor::Token(who),
                project,
                container,
                &ContainerUpdate::default(),
            )
            .await;
        self.storage
            .put_object(
                Accessor::Token(who),
                project,
                container,
                name,
                futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::copy_from_slice(data))]),
                WriteOptions::default(),
            )
            .await
            .unwrap();
    }

    /// The names of the objects in an account's container.
    async fn objects(&self, who: &AuthContext, container: &str) -> Vec<String> {
        let project = who.project_id().unwrap();
        match self
            .storage
            .list_objects(
                Accessor::Token(who),
                project,
                container,
                &nefos_storage::ListQuery::default(),
            )
            .await
        {
            Ok(entries) => entries
                .into_iter()
                .filter_map(|e| match e {
                    nefos_storage::ListEntry::Object(o) => Some(o.name),
                    nefos_storage::ListEntry::Subdir(_) => None,
                })
                .collect(),
            Err(StorageError::NotFound { .. }) => Vec::new(),
            Err(other) => panic!("{other}"),
        }
    }

    fn qemu_img(&self, args: &[&str]) -> Vec<u8> {
        let out = self.dir.path().join("made.qcow2");
        let _ = std::fs::remove_file(&out);
        let mut all: Vec<&str> = args.to_vec();
        let out_text = out.display().to_string();
        all.push(&out_text);
        let status = Command::new("qemu-img").args(&all).status().unwrap();
        assert!(status.success(), "qemu-img {all:?}");
        std::fs::read(&out).unwrap()
    }

    fn write(&self, name: &str, data: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        path.display().to_string()
    }
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

fn project(who: &AuthContext) -> &str {
    who.project_id().unwrap()
}

async fn clouds() -> Vec<Cloud> {
    let mut clouds = Vec::new();
    for db in nefos_test_utils::each_backend().await {
        clouds.push(Cloud::new(db).await);
    }
    clouds
}

#[tokio::test]
async fn upload_inspect_download_and_share_blocks() {
    for cloud in clouds().await {
        let label = cloud.label;
        let alice = cloud.user("alice").await;
        let data = random(9 << 20, 1);
        let id = cloud.create(&alice, "debian", "raw").await;
        let queued = cloud.images.get(Caller::new(&alice), &id).await.unwrap();
        assert_eq!(queued.status, ImageStatus::Queued, "{label}");
        assert!(matches!(
            cloud.images.download(Caller::new(&alice), &id, None).await,
            Err(ImageError::NoData { .. })
        ));

        cloud.upload(&alice, &id, &data).await.unwrap();
        let image = cloud.images.get(Caller::new(&alice), &id).await.unwrap();
        assert_eq!(image.status, ImageStatus::Active, "{label}");
        // The MD5 is the object store's digest job's, once it has run.
        assert_eq!(image.checksum, None, "{label}");
        cloud.storage.compute_pending_digests(16).await.unwrap();
        let image = cloud.images.get(Caller::new(&alice), &id).await.unwrap();
        assert_eq!(image.size, Some(data.len() as u64));
        assert_eq!(image.virtual_size, Some(data.len() as u64));
        assert_eq!(image.checksum, Some(hex::encode(Md5::digest(&data))));
        assert_eq!(image.os_hash_algo.as_deref(), Some("sha256"));
        assert_eq!(
            image.os_hash_value,
            Some(hex::encode(Sha256::digest(&data)))
        );
        let location = image.location.clone().unwrap();
        assert_eq!(
            (location.container.as_str(), location.name.as_str()),
            ("images", id.as_str())
        );
        assert_eq!(cloud.download(&alice, &id, None).await, data, "{label}");
        let range = ByteRangeRequest::From {
            first: 5,
            last: Some(9),
        };
        assert_eq!(cloud.download(&alice, &id, Some(range)).await, data[5..10]);

        // A second upload uploads the same bytes: no new block stored.
        let blocks = cloud.blocks_stored().await;
        let again = cloud.create(&alice, "debian again", "raw").await;
        cloud.upload(&alice, &again, &data).await.unwrap();
        assert_eq!(
            cloud.blocks_stored().await,
            blocks,
            "{label}: blocks stored twice"
        );
        // A second upload into an active image is a conflict.
        assert!(matches!(
            cloud.upload(&alice, &again, &data).await,
            Err(ImageError::Conflict { .. })
        ));

        // Deleting one image keeps the other whole; the deleted one's object is gone.
        cloud.images.delete(Caller::new(&alice), &id).await.unwrap();
        assert!(matches!(
            cloud.images.get(Caller::new(&alice), &id).await,
            Err(ImageError::NotFound { .. })
        ));
        assert_eq!(cloud.download(&alice, &again, None).await, data);
        assert_eq!(cloud.objects(&alice, "images").await, vec![again.clone()]);
    }
}

#[tokio::test]
async fn unsafe_or_mismatched_data_is_refused_and_leaves_nothing() {
    for cloud in clouds().await {
        let label = cloud.label;
        let alice = cloud.user("alice").await;
        let raw = random(1 << 20, 2);
        let raw_path = cloud.write("base.raw", &raw);
        let backed = cloud.qemu_img(&["create", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw"]);
        let good_qcow2 = cloud.qemu_img(&["convert", "-f", "raw", "-O", "qcow2", &raw_path]);
        let mut truncated = good_qcow2.clone();
        truncated.truncate(truncated.len() / 2);

        for (what, declared, data) in [
            ("a backing file", "qcow2", backed.clone()),
            ("qcow2 declared raw", "raw", good_qcow2.clone()),
            ("raw declared qcow2", "qcow2", raw.clone()),
        ] {
            let id = cloud.create(&alice, what, declared).await;
            let refused = cloud.upload(&alice, &id, &data).await;
            assert!(
                matches!(refused, Err(ImageError::UnsafeData { .. })),
                "{label}: {what}: {refused:?}"
            );
            let image = cloud.images.get(Caller::new(&alice), &id).await.unwrap();
            assert_eq!(image.status, ImageStatus::Queued, "{label}: {what}");
            assert_eq!(image.size, None);
            assert!(
                cloud.objects(&alice, "images").await.is_empty(),
                "{label}: {what}"
            );
        }
        let reason = match cloud
            .upload(&alice, &cloud.create(&alice, "b", "qcow2").await, &backed)
            .await
        {
            Err(ImageError::UnsafeData { reason }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason.contains("/etc/passwd"), "{reason}");
        let corrupt = cloud.create(&alice, "truncated", "qcow2").await;
        assert!(
            cloud.upload(&alice, &corrupt, &truncated).await.is_err(),
            "{label}: truncated qcow2"
        );

        // A good qcow2 is accepted with the disk size its header states.
        let id = cloud.create(&alice, "good", "qcow2").await;
        cloud.upload(&alice, &id, &good_qcow2).await.unwrap();
        let image = cloud.images.get(Caller::new(&alice), &id).await.unwrap();
        assert_eq!(image.virtual_size, Some(raw.len() as u64), "{label}");
        assert_eq!(image.size, Some(good_qcow2.len() as u64));

        // A raw image too small to hold a boot sector is kept, but no server boots it.
        let tiny = cloud.create(&alice, "tiny", "raw").await;
        cloud.upload(&alice, &tiny, b"not a disk").await.unwrap();
        let refused = cloud.images.boot_source(Caller::new(&alice), &tiny).await;
        assert!(
            matches!(refused, Err(ImageError::Invalid { .. })),
            "{label}: {refused:?}"
        );
        let source = cloud
            .images
            .boot_source(Caller::new(&alice), &id)
            .await
            .unwrap();
        assert_eq!(source.format.as_str(), "qcow2");
        assert!(source.check_flavor(1 << 30, 256).is_ok());
        assert!(
            source.check_flavor(1 << 19, 256).is_err(),
            "a disk smaller than the image's"
        );
    }
}

#[tokio::test]
async fn registered_objects_are_images_until_deleted() {
    for cloud in clouds().await {
        let label = cloud.label;
        let alice = cloud.user("alice").await;
        let bob = cloud.user("bob").await;
        let data = random(5 << 20, 3);
        cloud.put_object(&alice, "files", "disk.raw", &data).await;
        let blocks = cloud.blocks_stored().await;
        let object = ObjectRef {
            project_id: project(&alice).to_owned(),
            container: "files".to_owned(),
            name: "disk.raw".to_owned(),
        };
        let mut properties = BTreeMap::new();
        properties.insert("os".to_owned(), "debian".to_owned());
        let new = NewImage {
            name: Some("registered".to_owned()),
            disk_format: Some("raw".to_owned()),
            properties,
            ..NewImage::default()
        };
        // Only the object's owner registers it.
        assert!(matches!(
            cloud
                .images
                .register(Caller::new(&bob), &object, new.clone())
                .await,
            Err(ImageError::Forbidden { .. })
        ));
        let image = cloud
            .images
            .register(Caller::new(&alice), &object, new.clone())
            .await
            .unwrap();
        assert_eq!(image.status, ImageStatus::Active, "{label}");
        assert_eq!(
            image.properties.get("os").map(String::as_str),
            Some("debian")
        );
        assert_eq!(
            cloud.blocks_stored().await,
            blocks,
            "{label}: registration copied bytes"
        );
        assert_eq!(cloud.download(&alice, &image.id, None).await, data);
        // Registering it again updates the same image.
        let again = cloud
            .images
            .register(Caller::new(&alice), &object, new)
            .await
            .unwrap();
        assert_eq!(again.id, image.id);

        // Unregistering keeps the object.
        cloud
            .images
            .unregister(Caller::new(&alice), &image.id)
            .await
            .unwrap();
        assert_eq!(
            cloud.objects(&alice, "files").await,
            vec!["disk.raw".to_owned()]
        );

        // Deleting (or overwriting) the object unregisters the image at once.
        let image = cloud
            .images
            .register(
                Caller::new(&alice),
                &object,
                NewImage {
                    name: Some("r2".to_owned()),
                    ..NewImage::default()
                },
            )
            .await
            .unwrap();
        cloud
            .storage
            .delete_object(
                Accessor::Token(&alice),
                project(&alice),
                "files",
                "disk.raw",
            )
            .await
            .unwrap();
        assert!(
            matches!(
                cloud.images.get(Caller::new(&alice), &image.id).await,
                Err(ImageError::NotFound { .. })
            ),
            "{label}"
        );
        let listed = cloud
            .images
            .list(Caller::new(&alice), &ListQuery::default())
            .await
            .unwrap();
        assert!(listed.images.is_empty(), "{label}");
        assert_eq!(cloud.images.forget_unregistered().await.unwrap(), 1);
    }
}

#[tokio::test]
async fn visibility_members_and_isolation() {
    for cloud in clouds().await {
        let label = cloud.label;
        let alice = cloud.user("alice").await;
        let bob = cloud.user("bob").await;
        let admin = cloud.admin().await;
        let data = random(1 << 20, 4);
        let private = cloud.create(&alice, "private", "raw").await;
        cloud.upload(&alice, &private, &data).await.unwrap();
        let make_private = PatchOp {
            operation: PatchOperation::Replace,
            field: ImageField::Visibility,
            value: Some(FieldValue::Visibility(Visibility::Private)),
        };
        cloud
            .images
            .update(Caller::new(&alice), &private, vec![make_private])
            .await
            .unwrap();

        // Another project's private image is a 404 everywhere.
        let b = Caller::new(&bob);
        assert!(matches!(
            cloud.images.get(b, &private).await,
            Err(ImageError::NotFound { .. })
        ));
        assert!(matches!(
            cloud.images.download(b, &private, None).await,
            Err(ImageError::NotFound { .. })
        ));
        assert!(matches!(
            cloud.images.delete(b, &private).await,
            Err(ImageError::NotFound { .. })
        ));
        assert!(matches!(
            cloud.images.members(b, &private).await,
            Err(ImageError::NotFound { .. })
        ));
        assert!(matches!(
            cloud.images.boot_source(b, &private).await,
            Err(ImageError::NotFound { .. })
        ));
        assert!(matches!(
            cloud.images.update(b, &private, vec![]).await,
            Err(ImageError::NotFound { .. })
        ));

        // Shared: a member sees it by id, lists it only once it accepts.
        let shared = cloud.create(&alice, "shared", "raw").await;
        cloud.upload(&alice, &shared, &data).await.unwrap();
        assert!(
            matches!(
                cloud
                    .images
                    .add_member(Caller::new(&alice), &private, project(&bob))
                    .await,
                Err(ImageError::Forbidden { .. })
            ),
            "{label}: members of a private image"
        );
        assert!(matches!(
            cloud.images.get(b, &shared).await,
            Err(ImageError::NotFound { .. })
        ));
        cloud
            .images
            .add_member(Caller::new(&alice), &shared, project(&bob))
            .await
            .unwrap();
        assert_eq!(
            cloud.images.get(b, &shared).await.unwrap().member_status,
            Some(MemberStatus::Pending)
        );
        let listed =
            |page: nefos_image::ListPage| page.images.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert!(listed(cloud.images.list(b, &ListQuery::default()).await.unwrap()).is_empty());
        // The owner cannot answer for the member; the member can.
        assert!(
            cloud
                .images
                .set_member_status(
                    Caller::new(&alice),
                    &shared,
                    project(&bob),
                    MemberStatus::Accepted
                )
                .await
                .is_err()
        );
        cloud
            .images
            .set_member_status(b, &shared, project(&bob), MemberStatus::Accepted)
            .await
            .unwrap();
        assert_eq!(
            listed(cloud.images.list(b, &ListQuery::default()).await.unwrap()),
            vec![shared.clone()]
        );
        assert_eq!(cloud.download(&bob, &shared, None).await, data);
        assert!(cloud.images.boot_source(b, &shared).await.is_ok());
        // A member may not change or delete the image.
        assert!(matches!(
            cloud.images.delete(b, &shared).await,
            Err(ImageError::Forbidden { .. })
        ));

        // Community: usable by all, listed only when asked for.
        let community = cloud.create(&alice, "community", "raw").await;
        let make_community = PatchOp {
            operation: PatchOperation::Add,
            field: ImageField::Visibility,
            value: Some(FieldValue::Visibility(Visibility::Community)),
        };
        cloud
            .images
            .update(Caller::new(&alice), &community, vec![make_community])
            .await
            .unwrap();
        assert!(
            !listed(cloud.images.list(b, &ListQuery::default()).await.unwrap())
                .contains(&community)
        );
        let ask = ListQuery {
            visibility: VisibilityFilter::Only(Visibility::Community),
            ..ListQuery::default()
        };
        assert_eq!(
            listed(cloud.images.list(b, &ask).await.unwrap()),
            vec![community.clone()]
        );

        // Public: only administrators publish.
        let public = PatchOp {
            operation: PatchOperation::Add,
            field: ImageField::Visibility,
            value: Some(FieldValue::Visibility(Visibility::Public)),
        };
        assert!(
            matches!(
                cloud
                    .images
                    .update(Caller::new(&alice), &community, vec![public.clone()])
                    .await,
                Err(ImageError::Forbidden { .. })
            ),
            "{label}"
        );
        cloud
            .images
            .update(Caller::new(&admin), &community, vec![public])
            .await
            .unwrap();
        assert!(
            listed(cloud.images.list(b, &ListQuery::default()).await.unwrap()).contains(&community)
        );

        // Deactivated: the owner keeps it, no one but administrators downloads it.
        cloud
            .images
            .deactivate(Caller::new(&alice), &shared)
            .await
            .unwrap();
        assert!(matches!(
            cloud
                .images
                .download(Caller::new(&alice), &shared, None)
                .await,
            Err(ImageError::Forbidden { .. })
        ));
        assert!(
            cloud
                .images
                .download(Caller::new(&admin), &shared, None)
                .await
                .is_ok()
        );
        cloud
            .images
            .reactivate(Caller::new(&alice), &shared)
            .await
            .unwrap();
        assert!(
            cloud
                .images
                .download(Caller::new(&alice), &shared, None)
                .await
                .is_ok()
        );
    }
}

#[tokio::test]
async fn updates_listings_and_import() {
    for cloud in clouds().await {
        let label = cloud.label;
        let alice = cloud.user("alice").await;
        let a = Caller::new(&alice);
        let mut ids = Vec::new();
        for (i, name) in ["b", "a", "c"].iter().enumerate() {
            let id = cloud.create(&alice, name, "raw").await;
            cloud
                .upload(&alice, &id, &random(1000 * (i + 1), 10 + i as u64))
                .await
                .unwrap();
            ids.push(id);
        }
        let set = |field: ImageField, value: FieldValue| PatchOp {
            operation: PatchOperation::Add,
            field,
            value: Some(value),
        };
        cloud
            .images
            .update(
                a,
                &ids[0],
                vec![
                    set(
                        ImageField::Property("os".to_owned()),
                        FieldValue::Text(Some("debian".to_owned())),
                    ),
                    set(
                        ImageField::Tags,
                        FieldValue::List(vec!["x".to_owned(), "y".to_owned()]),
                    ),
                    set(ImageField::MinDisk, FieldValue::Number(2)),
                ],
            )
            .await
            .unwrap();
        // Changes apply all or none: a missing property to replace is a conflict.
        let failed = cloud
            .images
            .update(
                a,
                &ids[0],
                vec![
                    set(
                        ImageField::Name,
                        FieldValue::Text(Some("renamed".to_owned())),
                    ),
                    PatchOp {
                        operation: PatchOperation::Replace,
                        field: ImageField::Property("missing".to_owned()),
                        value: Some(FieldValue::Text(Some("v".to_owned()))),
                    },
                ],
            )
            .await;
        assert!(
            matches!(failed, Err(ImageError::Conflict { .. })),
            "{label}"
        );
        assert_eq!(
            cloud.images.get(a, &ids[0]).await.unwrap().name.as_deref(),
            Some("b")
        );
        // The format of data already in cannot change.
        assert!(matches!(
            cloud
                .images
                .update(
                    a,
                    &ids[0],
                    vec![set(
                        ImageField::DiskFormat,
                        FieldValue::Text(Some("qcow2".to_owned()))
                    )]
                )
                .await,
            Err(ImageError::Forbidden { .. })
        ));
        assert!(matches!(
            ImageField::from_name("status"),
            Err(ImageError::ReservedAttribute { .. })
        ));

        let names = |page: nefos_image::ListPage| {
            page.images
                .into_iter()
                .map(|i| i.name.unwrap_or_default())
                .collect::<Vec<_>>()
        };
        let by_name = ListQuery {
            sort: vec![(SortKey::Name, SortDirection::Asc)],
            ..ListQuery::default()
        };
        assert_eq!(
            names(cloud.images.list(a, &by_name).await.unwrap()),
            ["a", "b", "c"]
        );
        let first = cloud
            .images
            .list(
                a,
                &ListQuery {
                    limit: Some(2),
                    ..by_name.clone()
                },
            )
            .await
            .unwrap();
        let marker = first.next_marker.clone().unwrap();
        assert_eq!(names(first), ["a", "b"]);
        let rest = cloud
            .images
            .list(
                a,
                &ListQuery {
                    limit: Some(2),
                    marker: Some(marker),
                    ..by_name.clone()
                },
            )
            .await
            .unwrap();
        assert!(rest.next_marker.is_none());
        assert_eq!(names(rest), ["c"], "{label}");
        let tagged = ListQuery {
            tags: vec!["x".to_owned(), "y".to_owned()],
            ..ListQuery::default()
        };
        assert_eq!(names(cloud.images.list(a, &tagged).await.unwrap()), ["b"]);
        let mut properties = BTreeMap::new();
        properties.insert("os".to_owned(), "debian".to_owned());
        let by_property = ListQuery {
            properties,
            ..ListQuery::default()
        };
        assert_eq!(
            names(cloud.images.list(a, &by_property).await.unwrap()),
            ["b"]
        );
        let big = ListQuery {
            size_min: Some(2000),
            sort: by_name.sort.clone(),
            ..ListQuery::default()
        };
        assert_eq!(names(cloud.images.list(a, &big).await.unwrap()), ["a", "c"]);
        assert!(
            cloud
                .images
                .list(
                    a,
                    &ListQuery {
                        marker: Some("nope".to_owned()),
                        ..ListQuery::default()
                    }
                )
                .await
                .is_err()
        );

        // glance-direct: stage, then import.
        let staged = cloud.create(&alice, "staged", "raw").await;
        assert!(matches!(
            cloud.images.import(a, &staged).await,
            Err(ImageError::Conflict { .. })
        ));
        let data = random(3000, 20);
        let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(data.clone()))]);
        cloud
            .images
            .receive(a, &staged, body, None, Arrival::Stage)
            .await
            .unwrap();
        assert_eq!(
            cloud.images.get(a, &staged).await.unwrap().status,
            ImageStatus::Uploading
        );
        let imported = cloud.images.import(a, &staged).await.unwrap();
        assert_eq!(imported.status, ImageStatus::Active, "{label}");
        assert_eq!(cloud.download(&alice, &staged, None).await, data);

        // A hidden image is left out unless asked for.
        cloud
            .images
            .update(
                a,
                &ids[2],
                vec![set(ImageField::OsHidden, FieldValue::Flag(true))],
            )
            .await
            .unwrap();
        let all = ListQuery {
            member_status: MemberStatusFilter::All,
            ..by_name.clone()
        };
        assert!(!names(cloud.images.list(a, &all).await.unwrap()).contains(&"c".to_owned()));
    }
}

#[tokio::test]
async fn uploads_of_a_stopped_process_are_put_back() {
    for cloud in clouds().await {
        let label = cloud.label;
        let alice = cloud.user("alice").await;
        let id = cloud.create(&alice, "interrupted", "raw").await;
        // An upload whose body never ends, abandoned without running any of its cleanup:
        // as if its process had been killed mid-upload.
        let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(random(
            1 << 20,
            30,
        )))])
        .chain(futures::stream::pending());
        let mut upload =
            Box::pin(
                cloud
                    .images
                    .receive(Caller::new(&alice), &id, body, None, Arrival::Upload),
            );
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(500), &mut upload).await;
        assert!(pending.is_err(), "{label}: the upload ended");
        std::mem::forget(upload);
        let image = cloud.images.get(Caller::new(&alice), &id).await.unwrap();
        assert_eq!(image.status, ImageStatus::Saving, "{label}");

        // Another process: while the first one's heartbeat is fresh, nothing happens.
        let db = cloud.storage.database().clone();
        let quotas = nefos_quota::Quotas::new(db.clone());
        let other = Images::new(Storage::new(
            db.clone(),
            cloud.storage.blocks().clone(),
            quotas,
        ));
        cloud.storage.quotas().heartbeat().await.unwrap();
        let silence = std::time::Duration::from_secs(30);
        assert_eq!(
            other.recover_interrupted(silence).await.unwrap(),
            0,
            "{label}"
        );
        // The process itself never puts back its own.
        assert_eq!(
            cloud
                .images
                .recover_interrupted(std::time::Duration::ZERO)
                .await
                .unwrap(),
            0
        );
        // Silent long enough: the image is queued again, and takes an upload.
        assert_eq!(
            other
                .recover_interrupted(std::time::Duration::ZERO)
                .await
                .unwrap(),
            1,
            "{label}"
        );
        let image = cloud.images.get(Caller::new(&alice), &id).await.unwrap();
        assert_eq!(image.status, ImageStatus::Queued, "{label}");
        cloud
            .upload(&alice, &id, &random(1 << 20, 31))
            .await
            .unwrap();
        assert_eq!(
            cloud
                .images
                .get(Caller::new(&alice), &id)
                .await
                .unwrap()
                .status,
            ImageStatus::Active
        );
    }
}
