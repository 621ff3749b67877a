//! Synnefo's account API (`/account/v1.0`) of a real `nefos up`, over HTTP: quotas as
//! object storage uses them, commissions with their 413, and a project's whole life
//! (application, approval, join, a member storing up to the project's grant, leaving,
//! termination), on SQLite and, where storage is involved, on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::account::*;
use common::*;
use nefos_account_api::{CommissionInfo, ProjectView, QuotaView, UserQuotas};
use serde_json::{Value, json};

/// `nefos up` in `data/LABEL`: on SQLite, and on a fresh PostgreSQL database when asked.
async fn clouds(
    data: &tempfile::TempDir,
    with_postgres: bool,
) -> Vec<(
    &'static str,
    NefosProcess,
    Option<nefos_test_utils::TestDatabase>,
)> {
    let mut clouds = vec![("sqlite", up(&data.path().join("sqlite")), None)];
    if with_postgres {
        let postgres = nefos_test_utils::postgres().await;
        let process = NefosProcess::up(
            &binary(),
            &data.path().join("postgres"),
            &["--database", &postgres.url],
        );
        clouds.push(("postgres", process, Some(postgres)));
    }
    clouds
}

fn object_url(url: &str, project: &str, path: &str) -> String {
    format!("{url}/object/v1/AUTH_{project}/{path}")
}

/// A PUT into an account; its status.
async fn put(client: &reqwest::Client, token: &str, url: String, body: Vec<u8>) -> u16 {
    client
        .put(url)
        .header("X-Auth-Token", token)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `size` bytes of `byte`.
fn filled(byte: u8, size: i64) -> Vec<u8> {
    vec![byte; usize::try_from(size).unwrap()]
}

/// One user's quota of `resource` in `project`.
async fn quota(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    project: &str,
    resource: &str,
) -> QuotaView {
    let quotas: UserQuotas =
        serde_json::from_value(account_get(client, url, token, "/quotas").await).unwrap();
    quotas
        .get(project)
        .and_then(|q| q.get(resource))
        .copied()
        .unwrap_or_else(|| panic!("no {resource} in {project}: {quotas:?}"))
}

#[tokio::test]
async fn quotas_show_what_objects_use_and_are_only_the_callers() {
    let data = tempfile::tempdir().unwrap();
    let cloud = up(data.path());
    let url = cloud.url.clone();
    let client = http();
    let demo_password = read_credentials(data.path())["demo"].clone();
    let demo = login(&client, &url, "demo", &demo_password).await;
    let admin = admin_token(&client, &url, data.path()).await;

    let before = quota(
        &client,
        &url,
        &demo.token,
        &demo.base_project,
        "pithos.diskspace",
    )
    .await;
    assert_eq!(before.limit, 20 * GIB);
    assert_eq!((before.usage, before.pending), (0, 0));
    assert_eq!(before.project_limit, 20 * GIB);

    let container = object_url(&url, &demo.base_project, "c");
    assert_eq!(
        put(&client, &demo.token, container.clone(), vec![]).await,
        201
    );
    let object = format!("{container}/o");
    assert_eq!(put(&client, &demo.token, object, vec![7; 1000]).await, 201);
    let after = quota(
        &client,
        &url,
        &demo.token,
        &demo.base_project,
        "pithos.diskspace",
    )
    .await;
    assert_eq!((after.usage, after.pending), (1000, 0));
    assert_eq!(after.project_usage, 1000);

    // Every resource, in Astakos's shape: a count has no unit.
    let resources = account_get(&client, &url, &demo.token, "/resources").await;
    assert_eq!(
        resources["pithos.diskspace"]["unit"], "bytes",
        "{resources}"
    );
    assert_eq!(resources["pithos.diskspace"]["service"], "pithos");
    assert!(resources["cyclades.vm"]["unit"].is_null(), "{resources}");

    // Nothing without a token, in Astakos's error convention.
    let anonymous = client.get(account(&url, "/quotas")).send().await.unwrap();
    assert_astakos_error(anonymous, 401, "unauthorized").await;
    let bogus = get(&client, &account(&url, "/quotas"), "bogus").await;
    assert_astakos_error(bogus, 401, "unauthorized").await;
    let nowhere = get(&client, &account(&url, "/nowhere"), &demo.token).await;
    assert_astakos_error(nowhere, 404, "itemNotFound").await;

    // Every holder's quotas are for administrators.
    for path in ["/service_quotas", "/service_project_quotas", "/commissions"] {
        let refused = get(&client, &account(&url, path), &demo.token).await;
        assert_astakos_error(refused, 403, "forbidden").await;
    }
    let all = account_get(
        &client,
        &url,
        &admin,
        &format!("/service_quotas?user={}", demo.id),
    )
    .await;
    assert_eq!(
        all[&demo.id][&demo.base_project]["pithos.diskspace"]["usage"], 1000,
        "{all}"
    );
    assert_eq!(all.as_object().unwrap().len(), 1, "{all}");
    let unknown = get(
        &client,
        &account(
            &url,
            "/service_quotas?user=0123456789abcdef0123456789abcdef",
        ),
        &admin,
    )
    .await;
    assert_astakos_error(unknown, 404, "itemNotFound").await;
    let projects = account_get(
        &client,
        &url,
        &admin,
        &format!("/service_project_quotas?project={}", demo.base_project),
    )
    .await;
    assert_eq!(
        projects[&demo.base_project]["pithos.diskspace"],
        json!({"project_limit": 20 * GIB, "project_usage": 1000, "project_pending": 0})
    );
    let everyone = account_get(&client, &url, &admin, "/service_quotas").await;
    assert!(everyone.get(&demo.id).is_some(), "{everyone}");
}

#[tokio::test]
async fn commissions_are_issued_accepted_and_rejected_by_administrators_only() {
    let data = tempfile::tempdir().unwrap();
    let cloud = up(data.path());
    let url = cloud.url.clone();
    let client = http();
    let demo_password = read_credentials(data.path())["demo"].clone();
    let demo = login(&client, &url, "demo", &demo_password).await;
    let admin = admin_token(&client, &url, data.path()).await;
    let user = format!("user:{}", demo.id);
    let source = format!("project:{}", demo.base_project);
    // astakosclient's shape: the member's provision and the project's twin.
    let vms = |quantity: i64| {
        json!([
            {"holder": user, "source": source, "resource": "cyclades.vm", "quantity": quantity},
            {"holder": source, "source": null, "resource": "cyclades.vm", "quantity": quantity}
        ])
    };
    let vm_quota = || {
        quota(
            &client,
            &url,
            &demo.token,
            &demo.base_project,
            "cyclades.vm",
        )
    };

    // Issued, the VM is pending; accepted, it is used.
    let issued = account_post_ok(
        &client,
        &url,
        &admin,
        "/commissions",
        &json!({"provisions": vms(1), "name": "one VM", "force": false, "auto_accept": false}),
        201,
    )
    .await;
    let serial = issued["serial"].as_i64().unwrap();
    let pending = account_get(&client, &url, &admin, "/commissions").await;
    assert_eq!(pending, json!([serial]));
    let info: CommissionInfo = serde_json::from_value(
        account_get(&client, &url, &admin, &format!("/commissions/{serial}")).await,
    )
    .unwrap();
    assert_eq!(info.name, "one VM");
    assert_eq!(info.provisions.len(), 1, "{info:?}");
    assert_eq!(info.provisions[0].holder, user);
    assert_eq!(info.provisions[0].source.as_deref(), Some(source.as_str()));
    assert!(info.issue_time.ends_with("+00:00"), "{}", info.issue_time);
    let held = vm_quota().await;
    assert_eq!((held.limit, held.usage, held.pending), (2, 1, 1));
    let action = format!("/commissions/{serial}/action");
    account_post_ok(&client, &url, &admin, &action, &json!({"accept": ""}), 200).await;
    let held = vm_quota().await;
    assert_eq!((held.usage, held.pending), (1, 0));
    // Resolved, it is gone.
    assert_astakos_error(
        account_post(&client, &url, &admin, &action, &json!({"reject": ""})).await,
        404,
        "itemNotFound",
    )
    .await;

    // Five more do not fit a limit of two: 413 with what astakosclient reads.
    let refused = account_post(
        &client,
        &url,
        &admin,
        "/commissions",
        &json!({"provisions": vms(5)}),
    )
    .await;
    let fault = assert_astakos_error(refused, 413, "overLimit").await;
    assert_eq!(fault["data"]["name"], "NoCapacityError", "{fault}");
    assert_eq!(fault["data"]["limit"], 2, "{fault}");
    assert_eq!(fault["data"]["usage"], 1, "{fault}");
    assert_eq!(fault["data"]["provision"]["quantity"], 5, "{fault}");
    assert_eq!(fault["data"]["provision"]["resource"], "cyclades.vm");
    // The project's own holding is checked first; in a personal project both limits are 2.
    let holder = fault["data"]["provision"]["holder"].as_str().unwrap();
    assert!(holder == user || holder == source, "{fault}");
    assert_eq!(vm_quota().await.usage, 1, "nothing of it was reserved");
    // Releasing more than is used is refused too.
    let below = account_post(
        &client,
        &url,
        &admin,
        "/commissions",
        &json!({"provisions": vms(-3)}),
    )
    .await;
    let fault = assert_astakos_error(below, 413, "overLimit").await;
    assert_eq!(fault["data"]["name"], "NoQuantityError", "{fault}");
    assert_eq!(fault["data"]["provision"]["quantity"], -3, "{fault}");

    // Forced, it overcommits; rejected in a batch, it is released.
    let forced = account_post_ok(
        &client,
        &url,
        &admin,
        "/commissions",
        &json!({"provisions": vms(5), "force": true}),
        201,
    )
    .await;
    let forced = forced["serial"].as_i64().unwrap();
    assert_eq!(vm_quota().await.usage, 6);
    let resolved = account_post_ok(
        &client,
        &url,
        &admin,
        "/commissions/action",
        &json!({"reject": [forced], "accept": [987654]}),
        200,
    )
    .await;
    assert_eq!(resolved["rejected"], json!([forced]), "{resolved}");
    assert_eq!(resolved["accepted"], json!([]), "{resolved}");
    assert_eq!(resolved["failed"][0][0], 987654, "{resolved}");
    assert_eq!(
        resolved["failed"][0][1]["itemNotFound"]["code"], 404,
        "{resolved}"
    );
    assert_eq!(vm_quota().await.usage, 1);
    let strings = account_post(
        &client,
        &url,
        &admin,
        "/commissions/action",
        &json!({"accept": ["1"]}),
    )
    .await;
    assert_astakos_error(strings, 400, "badRequest").await;

    // Accepted at once, the release never shows as pending.
    let auto = account_post_ok(
        &client,
        &url,
        &admin,
        "/commissions",
        &json!({"provisions": vms(-1), "auto_accept": true}),
        201,
    )
    .await;
    assert!(auto["serial"].is_i64(), "{auto}");
    assert_eq!(
        account_get(&client, &url, &admin, "/commissions").await,
        json!([])
    );
    let held = vm_quota().await;
    assert_eq!((held.usage, held.pending), (0, 0));

    // A project twin that does not match its members, a project or user that does not
    // exist: refused before anything is reserved.
    let mismatched = json!({"provisions": [
        {"holder": user, "source": source, "resource": "cyclades.vm", "quantity": 1},
        {"holder": source, "source": null, "resource": "cyclades.vm", "quantity": 2}
    ]});
    assert_astakos_error(
        account_post(&client, &url, &admin, "/commissions", &mismatched).await,
        400,
        "badRequest",
    )
    .await;
    let nowhere = json!({"provisions": [
        {"holder": user, "source": "project:0123456789abcdef0123456789abcdef",
         "resource": "cyclades.vm", "quantity": 1}
    ]});
    assert_astakos_error(
        account_post(&client, &url, &admin, "/commissions", &nowhere).await,
        404,
        "itemNotFound",
    )
    .await;
    let nobody = json!({"provisions": [
        {"holder": "user:0123456789abcdef0123456789abcdef", "source": source,
         "resource": "cyclades.vm", "quantity": 1}
    ]});
    assert_astakos_error(
        account_post(&client, &url, &admin, "/commissions", &nobody).await,
        404,
        "itemNotFound",
    )
    .await;
    let unknown = json!({"provisions": [
        {"holder": user, "source": source, "resource": "cyclades.nothing", "quantity": 1}
    ]});
    assert_astakos_error(
        account_post(&client, &url, &admin, "/commissions", &unknown).await,
        400,
        "badRequest",
    )
    .await;

    // A user is no service: it may neither issue nor resolve.
    let own = account_post(
        &client,
        &url,
        &demo.token,
        "/commissions",
        &json!({"provisions": vms(1), "auto_accept": true}),
    )
    .await;
    assert_astakos_error(own, 403, "forbidden").await;
    let issued = account_post_ok(
        &client,
        &url,
        &admin,
        "/commissions",
        &json!({"provisions": vms(1)}),
        201,
    )
    .await;
    let serial = issued["serial"].as_i64().unwrap();
    let path = format!("/commissions/{serial}/action");
    assert_astakos_error(
        account_post(&client, &url, &demo.token, &path, &json!({"accept": ""})).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(vm_quota().await.pending, 1, "still pending");
    assert_astakos_error(
        account_post(
            &client,
            &url,
            &admin,
            &path,
            &json!({"accept": "", "reject": ""}),
        )
        .await,
        400,
        "badRequest",
    )
    .await;
    account_post_ok(&client, &url, &admin, &path, &json!({"reject": ""}), 200).await;
    assert_eq!(
        vm_quota().await,
        QuotaView {
            limit: 2,
            usage: 0,
            pending: 0,
            project_limit: 2,
            project_usage: 0,
            project_pending: 0,
        }
    );
}

/// The project's membership of `person`, as the member sees it.
async fn membership_of(
    client: &reqwest::Client,
    url: &str,
    person: &Person,
    project: &str,
) -> Value {
    let memberships = account_get(
        client,
        url,
        &person.token,
        &format!("/projects/memberships?project={project}"),
    )
    .await;
    memberships
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"] == person.id.as_str())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{} has no membership of {project}: {memberships}",
                person.name
            )
        })
}

#[tokio::test]
async fn a_project_grants_its_members_storage_from_approval_to_termination() {
    let data = tempfile::tempdir().unwrap();
    for (label, cloud, _db) in clouds(&data, true).await {
        let url = cloud.url.clone();
        let client = http();
        let admin = admin_token(&client, &url, &data.path().join(label)).await;
        let alice = create_user(&client, &url, &admin, "alice").await;
        let bob = create_user(&client, &url, &admin, "bob").await;
        let carol = create_user(&client, &url, &admin, "carol").await;

        // Alice applies for a project granting each member 1 GiB.
        let applied = apply(
            &client,
            &url,
            &alice.token,
            &project_spec("physics.example.org", GIB),
        )
        .await;
        let project = applied.id.clone();
        let shown: ProjectView = serde_json::from_value(
            account_get(&client, &url, &alice.token, &format!("/projects/{project}")).await,
        )
        .unwrap();
        assert_eq!(shown.state, "uninitialized", "{label}");
        assert_eq!(shown.owner.as_deref(), Some(alice.id.as_str()));
        let last = shown
            .last_application
            .expect("the owner sees the application");
        assert_eq!(
            (last.id.as_str(), last.state.as_str()),
            (applied.application.as_str(), "pending")
        );
        assert_eq!(last.end_date, "2035-01-01T00:00:00.000000+00:00");
        // Not approved, it is nobody else's business: not found, also to join.
        let hidden = get(
            &client,
            &account(&url, &format!("/projects/{project}")),
            &bob.token,
        )
        .await;
        assert_astakos_error(hidden, 404, "itemNotFound").await;
        let join = json!({"join": {"project": project}});
        assert_astakos_error(
            account_post(&client, &url, &bob.token, "/projects/memberships", &join).await,
            404,
            "itemNotFound",
        )
        .await;
        // Only an administrator approves, and only the project's own application.
        let approval = json!({"approve": {"reasons": "", "app_id": applied.application}});
        let action = format!("/projects/{project}/action");
        assert_astakos_error(
            account_post(&client, &url, &alice.token, &action, &approval).await,
            403,
            "forbidden",
        )
        .await;
        let other = apply(
            &client,
            &url,
            &alice.token,
            &project_spec("chemistry.example.org", MIB),
        )
        .await;
        let wrong = json!({"approve": {"app_id": other.application}});
        assert_astakos_error(
            account_post(&client, &url, &admin, &action, &wrong).await,
            409,
            "conflict",
        )
        .await;
        approve(&client, &url, &admin, &applied).await;
        // The other is withdrawn by its applicant: its project is deleted.
        let cancel = json!({"cancel": {"app_id": other.application}});
        account_post_ok(
            &client,
            &url,
            &alice.token,
            &format!("/projects/{}/action", other.id),
            &cancel,
            200,
        )
        .await;
        let withdrawn = account_get(
            &client,
            &url,
            &alice.token,
            &format!("/projects/{}", other.id),
        )
        .await;
        assert_eq!(withdrawn["state"], "deleted", "{label}: {withdrawn}");

        // Active, anyone may see it and ask to join; Alice accepts Bob.
        let shown = account_get(&client, &url, &bob.token, &format!("/projects/{project}")).await;
        assert_eq!(shown["state"], "active", "{label}");
        assert!(shown.get("last_application").is_none(), "{shown}");
        let joined = account_post_ok(
            &client,
            &url,
            &bob.token,
            "/projects/memberships",
            &join,
            200,
        )
        .await;
        let membership = joined["id"].as_i64().unwrap();
        assert_eq!(
            membership_of(&client, &url, &bob, &project).await["state"],
            "requested"
        );
        assert_astakos_error(
            account_post(&client, &url, &bob.token, "/projects/memberships", &join).await,
            409,
            "conflict",
        )
        .await;
        let scope = request_token(
            &client,
            &url,
            "bob",
            &bob.password,
            Some("physics.example.org"),
        )
        .await;
        assert_eq!(scope.status(), 401, "{label}: not a member yet");
        let accept = format!("/projects/memberships/{membership}/action");
        assert_astakos_error(
            account_post(&client, &url, &bob.token, &accept, &json!({"accept": ""})).await,
            403,
            "forbidden",
        )
        .await;
        account_post_ok(
            &client,
            &url,
            &alice.token,
            &accept,
            &json!({"accept": "welcome"}),
            200,
        )
        .await;
        let shown = account_get(
            &client,
            &url,
            &bob.token,
            &format!("/projects/memberships/{membership}"),
        )
        .await;
        assert_eq!(shown["state"], "accepted", "{label}: {shown}");
        assert!(
            shown["accepted"]
                .as_str()
                .is_some_and(|d| d.ends_with("+00:00")),
            "{shown}"
        );

        // Keystone: the accepted member holds a role there, so both listings show it.
        for path in [
            "/identity/v3/auth/projects".to_owned(),
            format!("/identity/v3/users/{}/projects", bob.id),
        ] {
            let listed = get_json(&client, &format!("{url}{path}"), &bob.token).await;
            let names: Vec<&str> = listed["projects"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert!(
                names.contains(&"physics.example.org"),
                "{label}: {path}: {listed}"
            );
            assert!(names.contains(&"bob"), "{label}: {path}: {listed}");
        }
        let member_mode = account_get(&client, &url, &bob.token, "/projects?mode=member").await;
        assert!(
            member_mode
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["id"] == project.as_str()),
            "{label}: {member_mode}"
        );

        // The grant as approved: 1 GiB for Bob, 2 GiB for the project.
        let granted = quota(&client, &url, &bob.token, &project, "pithos.diskspace").await;
        assert_eq!(
            (granted.limit, granted.project_limit, granted.usage),
            (GIB, 2 * GIB, 0),
            "{label}"
        );

        // Alice applies to shrink the grant to 8 MiB (kept small for the uploads below);
        // approved, it applies at once.
        let change = json!({"resources": {"pithos.diskspace": {"member_capacity": 8 * MIB, "project_capacity": 16 * MIB}}});
        let modified = client
            .put(account(&url, &format!("/projects/{project}")))
            .header("X-Auth-Token", &alice.token)
            .json(&change)
            .send()
            .await
            .unwrap();
        assert_eq!(modified.status(), 201, "{label}");
        let modified: nefos_account_api::Applied = modified.json().await.unwrap();
        assert_eq!(modified.id, project);
        approve(&client, &url, &admin, &modified).await;
        let shown = account_get(&client, &url, &alice.token, &format!("/projects/{project}")).await;
        assert_eq!(
            shown["name"], "physics.example.org",
            "{label}: the rest is kept: {shown}"
        );
        assert_eq!(shown["join_policy"], "moderated", "{shown}");
        assert_eq!(
            shown["resources"]["pithos.diskspace"]["member_capacity"],
            8 * MIB,
            "{shown}"
        );

        // Bob stores in the project's account up to his 8 MiB, and no further.
        let (bob_scoped, _) = token(
            &client,
            &url,
            "bob",
            &bob.password,
            Some("physics.example.org"),
        )
        .await;
        let container = object_url(&url, &project, "data");
        assert_eq!(
            put(&client, &bob_scoped, container.clone(), vec![]).await,
            201,
            "{label}"
        );
        let first = format!("{container}/first");
        assert_eq!(
            put(&client, &bob_scoped, first.clone(), filled(1, 5 * MIB)).await,
            201,
            "{label}"
        );
        let second = format!("{container}/second");
        assert_eq!(
            put(&client, &bob_scoped, second.clone(), filled(2, 4 * MIB)).await,
            413,
            "{label}"
        );
        let used = quota(&client, &url, &bob.token, &project, "pithos.diskspace").await;
        assert_eq!(
            (used.limit, used.usage, used.pending),
            (8 * MIB, 5 * MIB, 0),
            "{label}"
        );
        assert_eq!(used.project_usage, 5 * MIB);
        assert_eq!(
            put(&client, &bob_scoped, second.clone(), filled(2, 3 * MIB)).await,
            201,
            "{label}"
        );

        // Carol is enrolled by her address, at once.
        let enroll = json!({"enroll": {"project": project, "user": "carol@example.org"}});
        assert_astakos_error(
            account_post(&client, &url, &bob.token, "/projects/memberships", &enroll).await,
            404,
            "itemNotFound",
        )
        .await;
        account_post_ok(
            &client,
            &url,
            &alice.token,
            "/projects/memberships",
            &enroll,
            200,
        )
        .await;
        assert_eq!(
            membership_of(&client, &url, &carol, &project).await["state"],
            "accepted"
        );
        let (carol_scoped, _) = token(
            &client,
            &url,
            "carol",
            &carol.password,
            Some("physics.example.org"),
        )
        .await;

        // Bob leaves: his token for the project stops at once, his objects stay.
        account_post_ok(
            &client,
            &url,
            &bob.token,
            &accept,
            &json!({"leave": ""}),
            200,
        )
        .await;
        assert_eq!(
            membership_of(&client, &url, &bob, &project).await["state"],
            "removed"
        );
        let after = client
            .head(&first)
            .header("X-Auth-Token", &bob_scoped)
            .send()
            .await
            .unwrap();
        assert_eq!(
            after.status(),
            401,
            "{label}: the scoped token died with the membership"
        );
        let scope = request_token(
            &client,
            &url,
            "bob",
            &bob.password,
            Some("physics.example.org"),
        )
        .await;
        assert_eq!(scope.status(), 401, "{label}");
        let kept = client
            .head(&first)
            .header("X-Auth-Token", &carol_scoped)
            .send()
            .await
            .unwrap();
        assert_eq!(
            kept.status(),
            200,
            "{label}: Bob's objects stay in the project"
        );
        let quotas: UserQuotas =
            serde_json::from_value(account_get(&client, &url, &bob.token, "/quotas").await)
                .unwrap();
        assert!(!quotas.contains_key(&project), "{label}: {quotas:?}");

        // Terminated, the project keeps what its members stored and takes nothing new.
        assert_eq!(
            put(
                &client,
                &carol_scoped,
                format!("{container}/carol"),
                vec![3; 1000]
            )
            .await,
            201
        );
        let terminate = json!({"terminate": {"reason": "over"}});
        assert_astakos_error(
            account_post(&client, &url, &alice.token, &action, &terminate).await,
            403,
            "forbidden",
        )
        .await;
        account_post_ok(&client, &url, &admin, &action, &terminate, 200).await;
        let shown = account_get(&client, &url, &carol.token, &format!("/projects/{project}")).await;
        assert_eq!(shown["state"], "terminated", "{label}");
        assert_eq!(
            put(
                &client,
                &carol_scoped,
                format!("{container}/more"),
                vec![4; 1000]
            )
            .await,
            413,
            "{label}"
        );
        let read = client
            .get(&first)
            .header("X-Auth-Token", &carol_scoped)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200, "{label}");
        assert_eq!(read.bytes().await.unwrap().len(), filled(1, 5 * MIB).len());
        let over = quota(&client, &url, &carol.token, &project, "pithos.diskspace").await;
        assert_eq!(
            (over.limit, over.usage, over.project_usage),
            (0, 1000, 8 * MIB + 1000),
            "{label}"
        );
        let terminated = account_get(&client, &url, &admin, "/projects?state=terminated").await;
        assert_eq!(
            terminated.as_array().unwrap().len(),
            1,
            "{label}: {terminated}"
        );
        assert_astakos_error(
            get(&client, &account(&url, "/projects?colour=blue"), &admin).await,
            400,
            "badRequest",
        )
        .await;
    }
}

#[tokio::test]
async fn kamakis_token_login_gets_its_own_token_back_with_the_account_service() {
    let data = tempfile::tempdir().unwrap();
    let cloud = up(data.path());
    let client = http();
    let demo_password = read_credentials(data.path())["demo"].clone();
    let demo = login(&client, &cloud.url, "demo", &demo_password).await;
    let response = client
        .post(format!("{}/identity/v2.0/tokens", cloud.url))
        .header("X-Auth-Token", &demo.token)
        .json(&json!({"auth": {"token": {"id": demo.token}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let access = &body["access"];
    assert_eq!(
        access["token"]["id"],
        demo.token.as_str(),
        "the same token: {body}"
    );
    assert_eq!(access["user"]["id"], demo.id.as_str());
    let account_service = access["serviceCatalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "astakos_account")
        .unwrap_or_else(|| panic!("no astakos_account: {body}"));
    assert_eq!(account_service["type"], "account");
    let endpoint = &account_service["endpoints"][0];
    assert_eq!(endpoint["versionId"], "v1.0");
    assert_eq!(endpoint["publicURL"], account(&cloud.url, ""));
    assert_eq!(endpoint["SNF:uiURL"], cloud.url.as_str());
    // The account endpoint works with the same token.
    account_get(&client, &cloud.url, &demo.token, "/quotas").await;
}
