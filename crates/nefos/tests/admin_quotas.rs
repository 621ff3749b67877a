//! `nefos admin resource|quota|usage` and the Synnefo project commands, as subprocesses on
//! a test database that the test prepares through the library crates: resources and their
//! defaults, limits of users and projects, applications and the project life cycle,
//! reconciliation with what object storage holds, and usage reports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Output;

use bytes::Bytes;
use nefos_blocks::{BlockStore, BlockStoreConfig};
use nefos_identity::{
    AuthContext, Caller, Identity, IdentityConfig, NewUser, PasswordCredentials, Scope, User,
    UserRef,
};
use nefos_quota::projects::{ApplicationSpec, Grant, Policy};
use nefos_quota::{CYCLADES_RESOURCES, NewCommission, Provision, Quotas};
use nefos_storage::{Accessor, ContainerUpdate, Storage, WriteOptions};
use nefos_test_utils::{TestDatabase, each_backend, sqlite};
use serde_json::Value;

const DISK: &str = "pithos.diskspace";
const VM: &str = "cyclades.vm";
const GIB: i64 = 1 << 30;
const PASSWORD: &str = "a password for the quota tests";
const HOUR: i64 = 3_600_000_000;

/// A test database with the identity and quota services over it, and `nefos admin` run on
/// it as a subprocess.
struct Cloud {
    t: TestDatabase,
    identity: Identity,
    quotas: Quotas,
}

impl Cloud {
    fn new(t: TestDatabase) -> Cloud {
        Cloud {
            identity: Identity::new(t.db.clone(), IdentityConfig::default()),
            quotas: Quotas::new(t.db.clone()),
            t,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["--database", self.t.url.as_str()];
        all.extend_from_slice(args);
        common::admin(&all)
    }

    /// `nefos admin ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "{}: nefos admin {args:?} failed ({}):\n{stdout}\n{}",
            self.t.label,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// `nefos admin ARGS --json`, which must succeed; its output.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// `nefos admin ARGS`, which must fail; its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            !output.status.success(),
            "{}: nefos admin {args:?} should have failed:\n{}",
            self.t.label,
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8(output.stderr).unwrap()
    }

    async fn user(&self, name: &str) -> User {
        self.identity
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
            .unwrap()
    }

    /// `owner` applies for a project `name` that grants `grants` (resource → (per member,
    /// for the project)); returns the application's id and the project's.
    async fn apply(
        &self,
        owner: &User,
        name: &str,
        grants: &[(&str, i64, i64)],
    ) -> (String, String) {
        let ctx = context(owner);
        let resources = grants
            .iter()
            .map(|(resource, member, project)| {
                let grant = Grant {
                    member_capacity: *member,
                    project_capacity: *project,
                };
                ((*resource).to_owned(), grant)
            })
            .collect::<BTreeMap<_, _>>();
        let app = self
            .quotas
            .apply(
                Caller::Token(&ctx),
                ApplicationSpec {
                    project_id: None,
                    name: name.to_owned(),
                    description: format!("the {name} project"),
                    homepage: String::new(),
                    start_at: None,
                    end_at: nefos_db::time::now_micros() + 24 * HOUR,
                    join_policy: Policy::Moderated,
                    leave_policy: Policy::Auto,
                    max_members: Some(10),
                    resources,
                    comments: String::new(),
                },
            )
            .await
            .unwrap();
        (app.id, app.project_id)
    }

    /// Charges `quantity` of `resource` to `member` in `project`, as a service does with
    /// what it wrote.
    async fn charge(&self, project: &str, member: &str, resource: &str, quantity: i64) {
        let mut tx = self.t.db.begin().await.unwrap();
        self.quotas
            .charge_in(
                &mut tx,
                &[Provision::new(project, member, resource, quantity)],
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

/// What an unscoped token of `user` says.
fn context(user: &User) -> AuthContext {
    AuthContext {
        user_id: user.id.clone(),
        user_name: user.name.clone(),
        project: None,
        roles: Vec::new(),
        methods: vec!["password".to_owned()],
        issued_at: 0,
        expires_at: i64::MAX,
        audit_id: String::new(),
    }
}

/// The holding of `resource` for `member` (`None`: the whole project) in the JSON of
/// `quota show`.
fn holding<'a>(shown: &'a Value, project: &str, member: Option<&str>, resource: &str) -> &'a Value {
    shown["holdings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| {
            h["project_id"] == project
                && h["member_id"].as_str() == member
                && h["resource"] == resource
        })
        .unwrap_or_else(|| panic!("no holding {project}/{member:?}/{resource} in {shown:#}"))
}

/// The table rows whose cells are `first` and `second`, as cells.
fn rows<'a>(table: &'a str, first: &str, second: &str) -> Vec<Vec<&'a str>> {
    table
        .lines()
        .map(cells)
        .filter(|c| c.len() >= 2 && c[0] == first && c[1] == second)
        .collect()
}

fn cells(row: &str) -> Vec<&str> {
    row.split(['│', '┆'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The one table row that mentions `needle` as a cell.
fn row<'a>(table: &'a str, needle: &str) -> Vec<&'a str> {
    let found: Vec<_> = table
        .lines()
        .map(cells)
        .filter(|c| c.contains(&needle))
        .collect();
    assert_eq!(found.len(), 1, "rows with {needle:?} in:\n{table}");
    found.into_iter().next().unwrap()
}

#[tokio::test]
async fn resource_defaults_are_listed_and_changed() {
    let cloud = Cloud::new(sqlite().await);

    // Every resource of this binary's services, known before any control plane started.
    let out = cloud.ok(&["resource", "list"]);
    assert_eq!(
        row(&out, DISK)[1..5],
        ["pithos", "bytes", "20 GiB", "0 B"],
        "{out}"
    );
    assert_eq!(
        row(&out, VM)[1..5],
        ["cyclades", "count", "2", "0"],
        "{out}"
    );
    let listed = cloud.json(&["resource", "list"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for name in [
        DISK,
        VM,
        "cyclades.cpu",
        "cyclades.ram",
        "cyclades.floating_ip",
    ] {
        assert!(names.contains(&name), "{listed:#}");
    }
    let disk = &listed.as_array().unwrap()[names.iter().position(|n| *n == DISK).unwrap()];
    assert_eq!(disk["base_default"], 20 * GIB);

    // A user without a limit of its own follows the base default.
    let alice = cloud.user("alice").await;
    let shown = cloud.json(&["quota", "show", "--user", "alice"]);
    let base = &alice.base_project_id;
    assert_eq!(
        holding(&shown, base, Some(&alice.id), DISK)["limit"],
        20 * GIB
    );

    // Changed, in sizes; exact in JSON, readable in tables.
    let out = cloud.ok(&[
        "resource",
        "set-default",
        DISK,
        "--base",
        "50GiB",
        "--project",
        "512MiB",
    ]);
    assert_eq!(row(&out, DISK)[3..5], ["50 GiB", "512 MiB"], "{out}");
    let changed = cloud.json(&["resource", "set-default", VM, "--base", "3"]);
    assert_eq!(
        (
            changed["base_default"].as_i64(),
            changed["project_default"].as_i64()
        ),
        (Some(3), Some(0))
    );
    let shown = cloud.json(&["quota", "show", "--user", &alice.id]);
    assert_eq!(
        holding(&shown, base, Some(&alice.id), DISK)["limit"],
        50 * GIB
    );
    assert_eq!(holding(&shown, base, Some(&alice.id), VM)["limit"], 3);
    let listed = cloud.json(&["resource", "list"]);
    let disk = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == DISK)
        .unwrap();
    assert_eq!(disk["project_default"], 512 << 20);

    // Errors say what is wrong.
    let err = cloud.fails(&["resource", "set-default", "nope", "--base", "1"]);
    assert!(
        err.contains("unknown resource \"nope\"") && err.contains(DISK),
        "{err}"
    );
    let err = cloud.fails(&["resource", "set-default", DISK, "--base", "-1GiB"]);
    assert!(err.contains("cannot be negative"), "{err}");
    let err = cloud.fails(&["resource", "set-default", VM, "--base", "3GiB"]);
    assert!(err.contains("takes a plain number"), "{err}");
    let err = cloud.fails(&["resource", "set-default", DISK, "--base", "10 parsecs"]);
    assert!(err.contains("is not an amount"), "{err}");
    let err = cloud.fails(&["resource", "set-default", DISK]);
    assert!(err.contains("--base") && err.contains("--project"), "{err}");
    // Nothing of that changed anything.
    let listed = cloud.json(&["resource", "list"]);
    let disk = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == DISK)
        .unwrap();
    assert_eq!(disk["base_default"], 50 * GIB);
}

#[tokio::test]
async fn quotas_of_users_and_projects_are_shown_and_set() {
    let cloud = Cloud::new(sqlite().await);
    let alice = cloud.user("alice").await;
    let bob = cloud.user("bob").await;
    let base = alice.base_project_id.clone();

    // A user's limit is its personal project's.
    let out = cloud.ok(&["quota", "set", "--user", "alice", DISK, "5GiB"]);
    assert!(
        out.contains("pithos.diskspace of alice (its personal project) is now limited to 5 GiB"),
        "{out}"
    );
    // Usage, and what a pending commission reserves, against it.
    cloud.charge(&base, &alice.id, DISK, 3 * GIB).await;
    let serial = cloud
        .quotas
        .issue(
            NewCommission {
                client: "test".to_owned(),
                name: "an upload in flight".to_owned(),
                provisions: vec![Provision::new(&base, &alice.id, DISK, GIB)],
                force: false,
            },
            false,
        )
        .await
        .unwrap();
    let shown = cloud.json(&["quota", "show", "--user", "alice"]);
    assert_eq!(shown["user"]["name"], "alice");
    let h = holding(&shown, &base, Some(&alice.id), DISK);
    assert_eq!(
        (
            h["limit"].as_i64(),
            h["usage"].as_i64(),
            h["pending"].as_i64()
        ),
        (Some(5 * GIB), Some(4 * GIB), Some(GIB))
    );
    assert_eq!(h["over_limit"], false);
    assert_eq!(h["project_name"], "alice");
    assert_eq!(h["member_name"], "alice");
    // Lowered below what is used: shown over the limit.
    cloud.ok(&["quota", "set", "--user", &alice.id, DISK, "2147483648"]);
    let out = cloud.ok(&["quota", "show", "--user", "alice"]);
    assert!(out.contains("quotas of user alice"), "{out}");
    let disk: Vec<_> = rows(&out, "alice", "alice")
        .into_iter()
        .filter(|c| c[2] == DISK)
        .collect();
    assert_eq!(
        disk,
        [vec![
            "alice", "alice", DISK, "2 GiB", "4 GiB", "1 GiB", "OVER"
        ]],
        "{out}"
    );
    assert!(
        out.contains("1 marked OVER use more than their limit"),
        "{out}"
    );
    cloud.quotas.reject(serial).await.unwrap();

    // A project: applied for, approved by the command, with two members.
    let (app, lab) = cloud
        .apply(&alice, "lab", &[(DISK, 10 * GIB, 30 * GIB)])
        .await;
    cloud.ok(&["project", "application", "approve", &app]);
    for member in [&alice, &bob] {
        cloud
            .quotas
            .enroll(Caller::Operator, &lab, &member.id)
            .await
            .unwrap();
    }
    cloud.charge(&lab, &bob.id, DISK, 7 * GIB).await;
    let shown = cloud.json(&["quota", "show", "--project", "lab"]);
    assert_eq!(shown["project"]["id"], lab.as_str());
    let whole = holding(&shown, &lab, None, DISK);
    assert_eq!(
        (whole["limit"].as_i64(), whole["usage"].as_i64()),
        (Some(30 * GIB), Some(7 * GIB))
    );
    assert_eq!(holding(&shown, &lab, Some(&bob.id), DISK)["usage"], 7 * GIB);
    assert_eq!(
        holding(&shown, &lab, Some(&alice.id), DISK)["limit"],
        10 * GIB
    );
    // The project-wide limit alone: each member keeps the limit in force.
    let out = cloud.ok(&["quota", "set", "--project", "lab", DISK, "100GiB"]);
    assert!(
        out.contains("100 GiB for all members together, 10 GiB for each member"),
        "{out}"
    );
    let set = cloud.json(&[
        "quota",
        "set",
        "--project",
        &lab,
        DISK,
        "100GiB",
        "--member-limit",
        "20GiB",
    ]);
    assert_eq!(
        (set["project_limit"].as_i64(), set["member_limit"].as_i64()),
        (Some(100 * GIB), Some(20 * GIB))
    );
    // A resource the application did not ask for starts from the project default (0).
    let out = cloud.ok(&["quota", "set", "--project", "lab", VM, "10"]);
    assert!(
        out.contains("10 for all members together, 0 for each member"),
        "{out}"
    );
    cloud.ok(&[
        "quota",
        "set",
        "--project",
        "lab",
        VM,
        "10",
        "--member-limit",
        "2",
    ]);
    let out = cloud.ok(&["quota", "show", "--project", "lab"]);
    assert!(out.contains("quotas of project lab"), "{out}");
    let whole: Vec<_> = rows(&out, "lab", "(all members)")
        .into_iter()
        .filter(|c| c[2] == VM)
        .collect();
    assert_eq!(
        whole,
        [vec!["lab", "(all members)", VM, "10", "0", "0"]],
        "{out}"
    );
    let bobs: Vec<_> = rows(&out, "lab", "bob")
        .into_iter()
        .filter(|c| c[2] == DISK)
        .collect();
    assert_eq!(
        bobs,
        [vec!["lab", "bob", DISK, "20 GiB", "7 GiB", "0 B"]],
        "{out}"
    );
    // One resource only.
    let shown = cloud.json(&["quota", "show", "--project", "lab", "--resource", DISK]);
    let holders: Vec<&Value> = shown["holdings"].as_array().unwrap().iter().collect();
    assert_eq!(holders.len(), 3, "{shown:#}");
    assert!(holders.iter().all(|h| h["resource"] == DISK), "{shown:#}");
    let err = cloud.fails(&["quota", "show", "--user", "alice", "--resource", "nope"]);
    assert!(err.contains("unknown resource \"nope\""), "{err}");
    // A member's view shows the project's limit beside its own.
    let shown = cloud.json(&["quota", "show", "--user", "bob"]);
    assert_eq!(holding(&shown, &lab, Some(&bob.id), VM)["limit"], 2);
    assert_eq!(holding(&shown, &lab, None, DISK)["limit"], 100 * GIB);
    assert_eq!(
        holding(&shown, &bob.base_project_id, Some(&bob.id), DISK)["limit"],
        20 * GIB
    );

    // Errors.
    let err = cloud.fails(&["quota", "set", "--user", "nobody", DISK, "1GiB"]);
    assert!(err.contains("could not find user nobody"), "{err}");
    let err = cloud.fails(&["quota", "set", "--project", "nothing", DISK, "1GiB"]);
    assert!(err.contains("could not find project nothing"), "{err}");
    let err = cloud.fails(&["quota", "set", "--user", "alice", "pithos.disk", "1GiB"]);
    assert!(err.contains("unknown resource \"pithos.disk\""), "{err}");
    let err = cloud.fails(&["quota", "set", "--user", "alice", DISK, "-1"]);
    assert!(err.contains("cannot be negative"), "{err}");
    let err = cloud.fails(&[
        "quota",
        "set",
        "--project",
        "lab",
        DISK,
        "1GiB",
        "--member-limit",
        "-1GiB",
    ]);
    assert!(err.contains("cannot be negative"), "{err}");
    let err = cloud.fails(&[
        "quota",
        "set",
        "--user",
        "alice",
        DISK,
        "1GiB",
        "--member-limit",
        "1GiB",
    ]);
    assert!(
        err.contains("--member-limit") && err.contains("--user"),
        "{err}"
    );
    let err = cloud.fails(&["quota", "set", DISK, "1GiB"]);
    assert!(err.contains("--user") && err.contains("--project"), "{err}");
    let err = cloud.fails(&["quota", "show", "--user", "alice", "--project", "lab"]);
    assert!(err.contains("cannot be used with"), "{err}");
    let err = cloud.fails(&["quota", "show", "--user", "nobody"]);
    assert!(err.contains("could not find user nobody"), "{err}");
    // Nothing of that changed a limit.
    let shown = cloud.json(&["quota", "show", "--user", "alice"]);
    assert_eq!(
        holding(&shown, &base, Some(&alice.id), DISK)["limit"],
        2 * GIB
    );
}

#[tokio::test]
async fn applications_are_decided_and_projects_suspended_resumed_and_terminated() {
    let cloud = Cloud::new(sqlite().await);
    let alice = cloud.user("alice").await;
    let bob = cloud.user("bob").await;
    let (lab_app, lab) = cloud
        .apply(&alice, "lab", &[(DISK, 2 * GIB, 4 * GIB)])
        .await;
    let (bad_app, bad) = cloud.apply(&bob, "bad", &[]).await;

    // Pending applications, with their applicants' names.
    let pending = cloud.json(&["project", "application", "list", "--state", "pending"]);
    let listed: Vec<(&str, &str)> = pending
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap(),
                a["applicant_name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [("lab", "alice"), ("bad", "bob")], "{pending:#}");
    assert_eq!(pending[0]["resources"][DISK]["member_capacity"], 2 * GIB);
    let out = cloud.ok(&["project", "application", "list"]);
    let lab_row = row(&out, &lab_app);
    assert_eq!(lab_row[1..4], ["lab", "alice", "pending"], "{out}");
    assert!(out.contains("pithos.diskspace 2 GiB / 4 GiB"), "{out}");
    // Not yet a project anyone can use.
    let out = cloud.ok(&["project", "list"]);
    assert_eq!(row(&out, "lab")[4], "uninitialized", "{out}");
    // A limit set now is replaced by what the application asks, as the command warns.
    let out = cloud.ok(&["quota", "set", "--project", "lab", VM, "3"]);
    assert!(
        out.contains("note: the project is not approved yet"),
        "{out}"
    );

    // Approved: the project is active.
    let out = cloud.ok(&[
        "project",
        "application",
        "approve",
        &lab_app,
        "--reason",
        "fine",
    ]);
    assert!(
        out.contains(&format!(
            "application {lab_app} is approved; project lab is active"
        )),
        "{out}"
    );
    let out = cloud.ok(&["project", "list"]);
    assert_eq!(
        row(&out, "lab")[2..5],
        ["regular", "true", "active"],
        "{out}"
    );
    let shown = cloud.json(&["quota", "show", "--project", "lab"]);
    assert_eq!(holding(&shown, &lab, None, VM)["limit"], 0, "{shown:#}");
    assert_eq!(
        holding(&shown, &lab, None, DISK)["limit"],
        4 * GIB,
        "{shown:#}"
    );
    // Denied only with a reason; a project never approved is deleted.
    let err = cloud.fails(&["project", "application", "deny", &bad_app]);
    assert!(err.contains("--reason"), "{err}");
    let err = cloud.fails(&["project", "application", "deny", &bad_app, "--reason", " "]);
    assert!(err.contains("a denial needs a reason"), "{err}");
    let denied = cloud.json(&[
        "project",
        "application",
        "deny",
        &bad_app,
        "--reason",
        "no budget",
    ]);
    assert_eq!(
        (denied["state"].as_str(), denied["reason"].as_str()),
        (Some("denied"), Some("no budget"))
    );
    assert_eq!(denied["project_id"], bad.as_str());
    let out = cloud.ok(&["project", "list"]);
    assert_eq!(row(&out, "bad")[4], "deleted", "{out}");
    assert!(
        cloud
            .json(&["project", "application", "list", "--state", "pending"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let decided = cloud.json(&["project", "application", "list", "--state", "approved"]);
    assert_eq!(decided.as_array().unwrap().len(), 1, "{decided:#}");
    assert_eq!(decided[0]["reason"], "fine");
    // What cannot be decided.
    let err = cloud.fails(&["project", "application", "approve", &lab_app]);
    assert!(
        err.contains("the application is approved, not pending"),
        "{err}"
    );
    let err = cloud.fails(&[
        "project",
        "application",
        "deny",
        &bad_app,
        "--reason",
        "again",
    ]);
    assert!(
        err.contains("the application is denied, not pending"),
        "{err}"
    );
    let err = cloud.fails(&["project", "application", "approve", "nope"]);
    assert!(err.contains("application \"nope\" not found"), "{err}");
    let err = cloud.fails(&["project", "application", "list", "--state", "waiting"]);
    assert!(err.contains("invalid value 'waiting'"), "{err}");

    // A member uses some of it; suspended, the project grants nothing and what is used
    // shows over the limit.
    cloud
        .quotas
        .enroll(Caller::Operator, &lab, &bob.id)
        .await
        .unwrap();
    cloud.charge(&lab, &bob.id, DISK, GIB).await;
    let out = cloud.ok(&["project", "suspend", "lab"]);
    assert!(
        out.contains(&format!("project lab ({lab}) is suspended")),
        "{out}"
    );
    let out = cloud.ok(&["quota", "set", "--project", "lab", DISK, "4GiB"]);
    assert!(
        out.contains("note: the project is suspended; it grants nothing while it is"),
        "{out}"
    );
    let shown = cloud.json(&["quota", "show", "--project", "lab"]);
    let bobs = holding(&shown, &lab, Some(&bob.id), DISK);
    assert_eq!(
        (
            bobs["limit"].as_i64(),
            bobs["usage"].as_i64(),
            bobs["over_limit"].as_bool()
        ),
        (Some(0), Some(GIB), Some(true))
    );
    let err = cloud.fails(&["project", "suspend", "lab"]);
    assert!(
        err.contains("cannot suspend a project that is suspended"),
        "{err}"
    );
    let resumed = cloud.json(&["project", "resume", &lab]);
    assert_eq!(
        (resumed["name"].as_str(), resumed["state"].as_str()),
        (Some("lab"), Some("active"))
    );
    let shown = cloud.json(&["quota", "show", "--project", "lab"]);
    assert_eq!(holding(&shown, &lab, Some(&bob.id), DISK)["limit"], 2 * GIB);
    let err = cloud.fails(&["project", "resume", "lab"]);
    assert!(
        err.contains("cannot resume a project that is active"),
        "{err}"
    );
    let out = cloud.ok(&["project", "terminate", "lab"]);
    assert!(out.contains("is terminated"), "{out}");
    for action in ["resume", "suspend", "terminate"] {
        let err = cloud.fails(&["project", action, "lab"]);
        assert!(
            err.contains(&format!("cannot {action} a project that is terminated")),
            "{err}"
        );
    }
    let out = cloud.ok(&["project", "list"]);
    assert_eq!(row(&out, "lab")[4], "terminated", "{out}");
    // Personal projects have no such life cycle; unknown ones are named.
    let err = cloud.fails(&["project", "suspend", "alice"]);
    assert!(
        err.contains("personal and system projects are not suspended or terminated"),
        "{err}"
    );
    let err = cloud.fails(&["project", "terminate", "nothing"]);
    assert!(err.contains("could not find project nothing"), "{err}");
}

/// Object storage over the test database, with a `fs` block store in a temporary
/// directory.
async fn storage(cloud: &Cloud) -> (Storage, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let blocks = BlockStore::open(&BlockStoreConfig::Fs {
        path: dir.path().join("blocks"),
    })
    .await
    .unwrap();
    (
        Storage::new(cloud.t.db.clone(), blocks, cloud.quotas.clone()),
        dir,
    )
}

/// A token of `user` scoped to its personal project.
async fn scoped(cloud: &Cloud, user: &User) -> AuthContext {
    cloud
        .identity
        .authenticate_password(
            PasswordCredentials {
                user: UserRef::Name(user.name.clone()),
                password: PASSWORD.to_owned(),
            },
            Scope::ProjectId(user.base_project_id.clone()),
        )
        .await
        .unwrap()
        .context
}

#[tokio::test]
async fn reconcile_finds_and_fixes_usage_that_differs_from_what_is_stored() {
    for backend in each_backend().await {
        let label = backend.label;
        let cloud = Cloud::new(backend);
        let (storage, _blocks) = storage(&cloud).await;
        let alice = cloud.user("alice").await;
        let ctx = scoped(&cloud, &alice).await;
        let account = alice.base_project_id.clone();
        storage
            .put_container(
                Accessor::Token(&ctx),
                &account,
                "files",
                &ContainerUpdate::default(),
            )
            .await
            .unwrap();
        for (name, size) in [("a", 1000), ("b", 3000)] {
            let body =
                futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(vec![7u8; size]))]);
            storage
                .put_object(
                    Accessor::Token(&ctx),
                    &account,
                    "files",
                    name,
                    body,
                    WriteOptions::default(),
                )
                .await
                .unwrap();
        }

        // Clean: nothing to report.
        let out = cloud.ok(&["quota", "reconcile"]);
        assert!(
            out.contains("pithos.diskspace: every holding matches what object storage holds"),
            "{label}: {out}"
        );
        assert!(out.contains("no pending commissions"), "{label}: {out}");
        let clean = cloud.json(&["quota", "reconcile"]);
        assert!(
            clean["differences"].as_array().unwrap().is_empty(),
            "{label}: {clean:#}"
        );

        // Tampered with behind the engine's back: the member's usage raised, the project's
        // zeroed. A commission in flight reserves more, which is no difference.
        sqlx::query(
            "UPDATE quota_holdings SET usage_min = usage_min + 500, usage_max = usage_max + 500
              WHERE project_id = $1 AND member_id = $2 AND resource = 'pithos.diskspace'",
        )
        .bind(&account)
        .bind(&alice.id)
        .execute(cloud.t.db.pool())
        .await
        .unwrap();
        sqlx::query(
            "UPDATE quota_holdings SET usage_min = 0, usage_max = 0
              WHERE project_id = $1 AND member_id = '' AND resource = 'pithos.diskspace'",
        )
        .bind(&account)
        .execute(cloud.t.db.pool())
        .await
        .unwrap();
        let serial = cloud
            .quotas
            .issue(
                NewCommission {
                    client: "pithos".to_owned(),
                    name: "upload to files/c".to_owned(),
                    provisions: vec![Provision::new(&account, &alice.id, DISK, 10)],
                    force: false,
                },
                false,
            )
            .await
            .unwrap();

        // Found, and the exit status says so.
        let output = cloud.run(&["quota", "reconcile"]);
        let out = String::from_utf8(output.stdout).unwrap();
        let err = String::from_utf8(output.stderr).unwrap();
        assert!(!output.status.success(), "{label}: {out}");
        assert!(
            err.contains("2 holdings of pithos.diskspace differ") && err.contains("--fix"),
            "{label}: {err}"
        );
        assert_eq!(
            rows(&out, "alice", "alice"),
            [vec![
                "alice",
                "alice",
                DISK,
                "4.39 KiB (4500)",
                "3.91 KiB (4000)"
            ]],
            "{label}: {out}"
        );
        assert_eq!(
            rows(&out, "alice", "(all members)"),
            [vec![
                "alice",
                "(all members)",
                DISK,
                "0 B (0)",
                "3.91 KiB (4000)"
            ]],
            "{label}: {out}"
        );
        assert!(out.contains("1 pending commissions"), "{label}: {out}");
        assert_eq!(
            row(&out, &serial.to_string())[1..3],
            ["pithos", "upload to files/c"],
            "{label}: {out}"
        );
        assert!(
            out.contains("pithos.diskspace +10 for alice in alice"),
            "{label}: {out}"
        );
        let output = cloud.run(&["quota", "reconcile", "--json"]);
        assert!(!output.status.success(), "{label}");
        let found: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(found["fixed"], false, "{label}");
        let mut differences: Vec<(Option<&str>, i64, i64)> = found["differences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["member_name"].as_str(),
                    d["recorded"].as_i64().unwrap(),
                    d["actual"].as_i64().unwrap(),
                )
            })
            .collect();
        differences.sort_unstable();
        assert_eq!(
            differences,
            [(None, 0, 4000), (Some("alice"), 4500, 4000)],
            "{label}: {found:#}"
        );
        assert_eq!(found["pending_commissions"][0]["serial"], serial, "{label}");
        assert_eq!(
            found["pending_commissions"][0]["provisions"][0]["quantity"], 10,
            "{label}"
        );

        // Fixed: the recorded usage is what is stored, and the reservation is kept.
        let out = cloud.ok(&["quota", "reconcile", "--fix"]);
        assert!(
            out.contains("2 holdings differed from what object storage holds; corrected"),
            "{label}: {out}"
        );
        let out = cloud.ok(&["quota", "reconcile"]);
        assert!(out.contains("every holding matches"), "{label}: {out}");
        let shown = cloud.json(&["quota", "show", "--user", "alice"]);
        let h = holding(&shown, &account, Some(&alice.id), DISK);
        assert_eq!(
            (h["usage"].as_i64(), h["pending"].as_i64()),
            (Some(4010), Some(10)),
            "{label}"
        );
        cloud.quotas.reject(serial).await.unwrap();
        let out = cloud.ok(&["quota", "reconcile"]);
        assert!(
            out.contains("every holding matches") && out.contains("no pending commissions"),
            "{label}: {out}"
        );
        let shown = cloud.json(&["quota", "show", "--user", "alice"]);
        assert_eq!(
            holding(&shown, &account, Some(&alice.id), DISK)["usage"],
            4000,
            "{label}"
        );
    }
}

/// A usage event, as an accepted commission leaves it, at a time the test chooses.
async fn event(
    cloud: &Cloud,
    project: &str,
    member: &str,
    resource: &str,
    quantity: i64,
    at: &str,
) {
    let at = chrono::DateTime::parse_from_rfc3339(at)
        .unwrap()
        .timestamp_micros();
    let row = nefos_db::quota::UsageEventRow {
        project_id: project.to_owned(),
        member_id: member.to_owned(),
        resource: resource.to_owned(),
        quantity,
        at,
    };
    nefos_db::quota::insert_usage_event(cloud.t.db.pool(), &row)
        .await
        .unwrap();
}

#[tokio::test]
async fn usage_reports_by_user_and_by_project() {
    for backend in each_backend().await {
        let label = backend.label;
        let cloud = Cloud::new(backend);
        // As a control plane does at start (the admin commands do it too).
        cloud
            .quotas
            .register_resources(CYCLADES_RESOURCES)
            .await
            .unwrap();
        let alice = cloud.user("alice").await;
        let bob = cloud.user("bob").await;
        let (app, lab) = cloud.apply(&alice, "lab", &[(VM, 2, 4)]).await;
        cloud
            .quotas
            .approve(Caller::Operator, &app, "")
            .await
            .unwrap();
        let home = alice.base_project_id.clone();

        // A day in 2024: alice runs 2 VMs at home, one of them until 10:00, and from 12:00
        // she and bob run one each in lab; she keeps 10 GiB at home all day.
        event(&cloud, &home, &alice.id, VM, 2, "2024-01-01T00:00:00Z").await;
        event(&cloud, &home, &alice.id, VM, -1, "2024-01-01T10:00:00Z").await;
        event(
            &cloud,
            &home,
            &alice.id,
            DISK,
            10 * GIB,
            "2024-01-01T00:00:00Z",
        )
        .await;
        event(&cloud, &lab, &alice.id, VM, 1, "2024-01-01T12:00:00Z").await;
        event(&cloud, &lab, &bob.id, VM, 1, "2024-01-01T12:00:00+00:00").await;
        // Before the period: counted from its start. After it: not at all.
        event(&cloud, &lab, &bob.id, DISK, GIB, "2023-12-01T00:00:00Z").await;
        event(&cloud, &lab, &bob.id, VM, 5, "2024-01-03T00:00:00Z").await;

        let period = ["--from", "2024-01-01", "--to", "2024-01-02T00:00:00Z"];
        let report = |by: &str, format: &str| {
            let mut args = vec!["usage", "report", "--by", by, "--format", format];
            args.extend_from_slice(&period);
            cloud.ok(&args)
        };

        // By user, as JSON.
        let json: Value = serde_json::from_str(&report("user", "json")).unwrap();
        assert_eq!(
            (
                json["from"].as_str(),
                json["to"].as_str(),
                json["by"].as_str()
            ),
            (
                Some("2024-01-01T00:00:00Z"),
                Some("2024-01-02T00:00:00Z"),
                Some("user")
            ),
            "{label}"
        );
        let line = |holder: &str, resource: &str| -> Value {
            json["lines"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["holder_id"] == holder && l["resource"] == resource)
                .cloned()
                .unwrap_or_else(|| panic!("{label}: no line {holder}/{resource} in {json:#}"))
        };
        let vm = line(&alice.id, VM);
        assert_eq!(
            (
                vm["holder_name"].as_str(),
                vm["unit"].as_str(),
                vm["usage_at_end"].as_i64()
            ),
            (Some("alice"), Some("VM-hours"), Some(2)),
            "{label}"
        );
        // 2 × 10 h + 1 × 14 h at home, 1 × 12 h in lab.
        assert!(
            (vm["amount"].as_f64().unwrap() - 46.0).abs() < 1e-9,
            "{label}: {vm}"
        );
        let disk = line(&alice.id, DISK);
        assert_eq!(disk["unit"], "GiB-months", "{label}");
        assert_eq!(disk["usage_at_end"], 10 * GIB, "{label}");
        // 10 GiB for 24 of an average month's 730.5 hours.
        assert!(
            (disk["amount"].as_f64().unwrap() - 10.0 * 24.0 / 730.5).abs() < 1e-9,
            "{label}: {disk}"
        );
        let bobs = line(&bob.id, VM);
        assert!(
            (bobs["amount"].as_f64().unwrap() - 12.0).abs() < 1e-9,
            "{label}: {bobs}"
        );
        assert_eq!(bobs["usage_at_end"], 1, "{label}");
        let bobs = line(&bob.id, DISK);
        assert!(
            (bobs["amount"].as_f64().unwrap() - 24.0 / 730.5).abs() < 1e-9,
            "{label}: {bobs}"
        );
        assert_eq!(
            json["lines"].as_array().unwrap().len(),
            4,
            "{label}: {json:#}"
        );

        // By project, as CSV.
        let csv = report("project", "csv");
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("holder_id,holder_name,resource,amount,unit,usage_at_end"),
            "{label}"
        );
        let records: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        let record = |project: &str, resource: &str| {
            records
                .iter()
                .find(|r| r[0] == project && r[2] == resource)
                .unwrap_or_else(|| panic!("{label}: no {project}/{resource} in\n{csv}"))
                .clone()
        };
        let home_vm = record(&home, VM);
        assert_eq!(
            (home_vm[1], home_vm[4], home_vm[5]),
            ("alice", "VM-hours", "1"),
            "{label}"
        );
        assert!(
            (home_vm[3].parse::<f64>().unwrap() - 34.0).abs() < 1e-9,
            "{label}: {csv}"
        );
        let lab_vm = record(&lab, VM);
        assert_eq!((lab_vm[1], lab_vm[5]), ("lab", "2"), "{label}");
        assert!(
            (lab_vm[3].parse::<f64>().unwrap() - 24.0).abs() < 1e-9,
            "{label}: {csv}"
        );
        assert_eq!(records.len(), 4, "{label}: {csv}");

        // As a table, with names beside the ids.
        let table = report("user", "table");
        assert!(
            table.contains("usage by user from 2024-01-01T00:00:00Z to 2024-01-02T00:00:00Z"),
            "{label}: {table}"
        );
        let alice_vm: Vec<_> = rows(&table, &alice.id, "alice")
            .into_iter()
            .filter(|c| c[2] == VM)
            .collect();
        assert_eq!(
            alice_vm,
            [vec![
                alice.id.as_str(),
                "alice",
                VM,
                "46.000",
                "VM-hours",
                "2"
            ]],
            "{label}: {table}"
        );
        let alice_disk: Vec<_> = rows(&table, &alice.id, "alice")
            .into_iter()
            .filter(|c| c[2] == DISK)
            .collect();
        assert_eq!(
            alice_disk[0][3..],
            ["0.329", "GiB-months", "10 GiB"],
            "{label}: {table}"
        );
        let empty = cloud.ok(&[
            "usage",
            "report",
            "--by",
            "user",
            "--from",
            "2020-01-01",
            "--to",
            "2020-02-01",
        ]);
        assert!(
            empty.contains("no usage in this period"),
            "{label}: {empty}"
        );

        // What the engine records now shows up with a plausible magnitude: 1 GiB from just
        // after `now`, over a period that ends a day after it.
        let now = chrono::Utc::now();
        cloud.charge(&home, &alice.id, DISK, GIB).await;
        let from = (now - chrono::Duration::hours(1)).to_rfc3339();
        let to = (now + chrono::Duration::hours(24)).to_rfc3339();
        let json: Value = serde_json::from_str(&cloud.ok(&[
            "usage", "report", "--by", "user", "--format", "json", "--from", &from, "--to", &to,
        ]))
        .unwrap();
        let recent = json["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["holder_id"] == alice.id.as_str() && l["resource"] == DISK)
            .unwrap();
        // The 10 GiB from 2024 for 25 h, and the new GiB for a little under 24 h.
        let amount = recent["amount"].as_f64().unwrap();
        let expected = (10.0 * 25.0 + 24.0) / 730.5;
        assert!(
            amount <= expected && amount > expected - 0.01,
            "{label}: {amount} vs {expected}"
        );
        assert_eq!(recent["usage_at_end"], 11 * GIB, "{label}");

        // Errors.
        let err = cloud.fails(&[
            "usage",
            "report",
            "--by",
            "user",
            "--from",
            "2024-13-01",
            "--to",
            "2024-02-01",
        ]);
        assert!(
            err.contains("\"2024-13-01\" is not a time"),
            "{label}: {err}"
        );
        let err = cloud.fails(&[
            "usage",
            "report",
            "--by",
            "user",
            "--from",
            "2024-02-01",
            "--to",
            "2024-01-01",
        ]);
        assert!(
            err.contains("it must end after it starts"),
            "{label}: {err}"
        );
        let err = cloud.fails(&[
            "usage",
            "report",
            "--by",
            "team",
            "--from",
            "2024-01-01",
            "--to",
            "2024-02-01",
        ]);
        assert!(err.contains("invalid value 'team'"), "{label}: {err}");
    }
}
