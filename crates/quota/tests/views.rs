//! Reconciliation of what is charged to no member, and every member's quota in a project,
//! on both databases.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use nefos_identity::{Caller, Identity, IdentityConfig};
use nefos_quota::projects::{ApplicationSpec, Grant, Policy};
use nefos_quota::{Discrepancy, PITHOS_DISKSPACE, Provision, Quotas};
use nefos_test_utils::each_backend;

use common::{DISK, context, user};

async fn charge(quotas: &Quotas, project: &str, member: &str, quantity: i64) {
    let mut tx = quotas.database().begin().await.unwrap();
    quotas
        .charge_in(&mut tx, &[Provision::new(project, member, DISK, quantity)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn what_is_charged_to_no_member_counts_in_the_project_total_only() {
    for backend in each_backend().await {
        let identity = Identity::new(backend.db.clone(), IdentityConfig::default());
        let quotas = Quotas::new(backend.db.clone());
        let alice = user(&identity, "alice").await;
        let home = alice.base_project_id.clone();
        charge(&quotas, &home, &alice.id, 100).await;
        // Stored: 100 bytes charged to alice, 50 from before quotas charged to no one.
        let actual = [
            (home.clone(), alice.id.clone(), 100),
            (home.clone(), String::new(), 50),
        ];
        for fix in [false, true] {
            let mut tx = backend.db.begin().await.unwrap();
            let found = quotas
                .reconcile_in(&mut tx, DISK, &actual, fix)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(
                found,
                [Discrepancy {
                    project_id: home.clone(),
                    member_id: None,
                    resource: DISK.to_owned(),
                    recorded: 100,
                    actual: 150,
                }],
                "{}",
                backend.label
            );
        }
        let mut tx = backend.db.begin().await.unwrap();
        let found = quotas
            .reconcile_in(&mut tx, DISK, &actual, false)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(found.is_empty(), "{}: {found:?}", backend.label);
    }
}

#[tokio::test]
async fn a_project_shows_every_member_and_whoever_still_holds_usage_there() {
    for backend in each_backend().await {
        let identity = Identity::new(backend.db.clone(), IdentityConfig::default());
        let quotas = Quotas::new(backend.db.clone());
        quotas
            .register_resources(&[PITHOS_DISKSPACE])
            .await
            .unwrap();
        let owner = user(&identity, "owner").await;
        let stays = user(&identity, "stays").await;
        let leaves = user(&identity, "leaves").await;
        let app = quotas
            .apply(
                Caller::Token(&context(&owner)),
                ApplicationSpec {
                    project_id: None,
                    name: "lab".to_owned(),
                    description: String::new(),
                    homepage: String::new(),
                    start_at: None,
                    end_at: nefos_db::time::now_micros() + 3_600_000_000,
                    join_policy: Policy::Auto,
                    leave_policy: Policy::Auto,
                    max_members: None,
                    resources: BTreeMap::from([(
                        DISK.to_owned(),
                        Grant {
                            member_capacity: 10,
                            project_capacity: 20,
                        },
                    )]),
                    comments: String::new(),
                },
            )
            .await
            .unwrap();
        let lab = app.project_id.clone();
        quotas.approve(Caller::Operator, &app.id, "").await.unwrap();
        for member in [&stays, &leaves] {
            quotas
                .enroll(Caller::Operator, &lab, &member.id)
                .await
                .unwrap();
        }
        charge(&quotas, &lab, &leaves.id, 7).await;
        let membership = quotas
            .memberships(Caller::Operator, Some(&lab))
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.user_id == leaves.id)
            .unwrap();
        quotas
            .act_on_membership(
                Caller::Token(&context(&leaves)),
                membership.id,
                nefos_quota::projects::MembershipAction::Leave,
            )
            .await
            .unwrap();

        let members = quotas.member_quotas(Caller::Operator, &lab).await.unwrap();
        let mut ids: Vec<&String> = members.keys().collect();
        ids.sort_unstable();
        let mut expected = vec![&stays.id, &leaves.id];
        expected.sort_unstable();
        assert_eq!(ids, expected, "{}", backend.label);
        let gone = members[&leaves.id][DISK];
        assert_eq!((gone.limit, gone.usage), (0, 7), "{}", backend.label);
        assert!(gone.over_limit());
        let member = members[&stays.id][DISK];
        assert_eq!((member.limit, member.usage), (10, 0), "{}", backend.label);
        // Only its owner, members and administrators may look.
        let stranger = user(&identity, "stranger").await;
        assert!(
            quotas
                .member_quotas(Caller::Token(&context(&stranger)), &lab)
                .await
                .is_err()
        );
    }
}
