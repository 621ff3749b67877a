//! The quota engine on both databases: commissions that race for one limit, two-phase
//! resolution, commissions abandoned by a stopped process, and limits from projects.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use nefos_db::Database;
use nefos_identity::{Caller, Identity, IdentityConfig, User};
use nefos_quota::projects::{ApplicationSpec, Grant, MembershipAction, Policy};
use nefos_quota::{NewCommission, PITHOS_DISKSPACE, Provision, QuotaError, Quotas};
use nefos_test_utils::each_backend;

use common::{DISK, context, user};

fn commission(provisions: Vec<Provision>) -> NewCommission {
    NewCommission {
        client: "test".to_owned(),
        name: "test".to_owned(),
        provisions,
        force: false,
    }
}

/// A user whose personal project allows `limit` bytes.
async fn limited_user(db: &Database, name: &str, limit: i64) -> (Quotas, User) {
    let identity = Identity::new(db.clone(), IdentityConfig::default());
    let quotas = Quotas::new(db.clone());
    quotas
        .register_resources(&[PITHOS_DISKSPACE])
        .await
        .unwrap();
    let user = user(&identity, name).await;
    quotas
        .set_grant(
            Caller::Operator,
            &user.base_project_id,
            DISK,
            Grant {
                member_capacity: limit,
                project_capacity: limit,
            },
        )
        .await
        .unwrap();
    (quotas, user)
}

async fn usage(quotas: &Quotas, user: &User) -> (i64, i64) {
    let quota = quotas
        .user_quotas(Caller::Operator, &user.id)
        .await
        .unwrap()
        .into_iter()
        .find(|q| q.project_id == user.base_project_id)
        .unwrap();
    let member = quota.member[DISK];
    (member.usage, member.pending)
}

#[tokio::test]
async fn concurrent_commissions_never_exceed_a_limit() {
    for backend in each_backend().await {
        let (quotas, user) = limited_user(&backend.db, "racer", 1000).await;
        let mut expected_total = 0;
        for round in 0..20 {
            // 50 commissions of 30..=79 each fit alone; together they ask for about 2,700
            // of the 1,000 allowed. Each round releases what it took at the end.
            let sizes: Vec<i64> = (0..50).map(|i| 30 + (i * 7 + round) % 50).collect();
            let issued = futures::future::join_all(sizes.iter().map(|&size| {
                let quotas = quotas.clone();
                let provision = Provision::new(&user.base_project_id, &user.id, DISK, size);
                async move {
                    let result = quotas.issue(commission(vec![provision]), false).await;
                    (size, result)
                }
            }))
            .await;
            let mut accepted = 0;
            let mut serials = Vec::new();
            for (size, result) in issued {
                match result {
                    Ok(serial) => {
                        accepted += size;
                        serials.push(serial);
                    }
                    Err(QuotaError::Exceeded(shortfall)) => {
                        assert_eq!(shortfall.limit, 1000, "{}", backend.label);
                        assert!(shortfall.usage + size > 1000, "{}", backend.label);
                    }
                    Err(other) => panic!("{}: {other}", backend.label),
                }
            }
            assert!(
                accepted <= 1000,
                "{}: round {round} took {accepted}",
                backend.label
            );
            assert!(
                accepted > 1000 - 80,
                "{}: round {round} left room",
                backend.label
            );
            assert_eq!(usage(&quotas, &user).await, (accepted, accepted));
            for serial in &serials {
                quotas.accept(*serial).await.unwrap();
            }
            assert_eq!(
                usage(&quotas, &user).await,
                (accepted, 0),
                "{}",
                backend.label
            );
            expected_total += accepted;
            // Release it all for the next round, as one commission charged at once.
            let mut tx = backend.db.begin().await.unwrap();
            quotas
                .charge_in(
                    &mut tx,
                    &[Provision::new(
                        &user.base_project_id,
                        &user.id,
                        DISK,
                        -accepted,
                    )],
                )
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(usage(&quotas, &user).await, (0, 0), "{}", backend.label);
        }
        assert!(expected_total > 0);
    }
}

#[tokio::test]
async fn a_commission_is_refused_whole_and_a_rejection_releases() {
    for backend in each_backend().await {
        let (quotas, user) = limited_user(&backend.db, "whole", 100).await;
        let project = user.base_project_id.clone();
        let serial = quotas
            .issue(
                commission(vec![Provision::new(&project, &user.id, DISK, 60)]),
                false,
            )
            .await
            .unwrap();
        // Two provisions: the second does not fit, so neither is applied.
        let refused = quotas
            .issue(
                commission(vec![
                    Provision::new(&project, &user.id, DISK, 10),
                    Provision::new(&project, &user.id, "pithos.nothing", 1),
                ]),
                false,
            )
            .await;
        assert!(matches!(refused, Err(QuotaError::UnknownResource { .. })));
        let refused = quotas
            .issue(
                commission(vec![Provision::new(&project, &user.id, DISK, 41)]),
                false,
            )
            .await;
        match refused {
            Err(QuotaError::Exceeded(s)) => {
                assert_eq!((s.limit, s.usage, s.requested), (100, 60, 41));
            }
            other => panic!("{}: {other:?}", backend.label),
        }
        assert_eq!(usage(&quotas, &user).await, (60, 60));
        quotas.reject(serial).await.unwrap();
        assert_eq!(usage(&quotas, &user).await, (0, 0));
        assert!(matches!(
            quotas.reject(serial).await,
            Err(QuotaError::NoCommission { .. })
        ));
        // An administrator may overcommit; usage then shows over the limit.
        let forced = quotas
            .issue(
                NewCommission {
                    force: true,
                    ..commission(vec![Provision::new(&project, &user.id, DISK, 150)])
                },
                false,
            )
            .await
            .unwrap();
        quotas.accept(forced).await.unwrap();
        let quota = &quotas
            .user_quotas(Caller::Operator, &user.id)
            .await
            .unwrap()[0];
        assert!(quota.member[DISK].over_limit());
        // Releasing more than is held is a caller's bug, refused.
        let mut tx = backend.db.begin().await.unwrap();
        let below = quotas
            .charge_in(&mut tx, &[Provision::new(&project, &user.id, DISK, -151)])
            .await;
        assert!(matches!(below, Err(QuotaError::BelowZero { .. })));
    }
}

#[tokio::test]
async fn commissions_of_a_stopped_process_are_rejected_by_another() {
    for backend in each_backend().await {
        let (crashed, user) = limited_user(&backend.db, "crashy", 100).await;
        crashed.heartbeat().await.unwrap();
        let project = user.base_project_id.clone();
        crashed
            .issue(
                commission(vec![Provision::new(&project, &user.id, DISK, 70)]),
                true,
            )
            .await
            .unwrap();
        // A commission issued by an API client is the client's to resolve.
        let clients = crashed
            .issue(
                commission(vec![Provision::new(&project, &user.id, DISK, 5)]),
                false,
            )
            .await
            .unwrap();
        let survivor = Quotas::new(backend.db.clone());
        // The crashed process's heartbeat is recent: not yet abandoned.
        assert_eq!(
            survivor
                .reject_abandoned(Duration::from_secs(60))
                .await
                .unwrap(),
            0
        );
        assert_eq!(survivor.reject_abandoned(Duration::ZERO).await.unwrap(), 1);
        assert_eq!(usage(&survivor, &user).await, (5, 5));
        assert_eq!(survivor.pending(None).await.unwrap(), vec![clients]);
    }
}

#[tokio::test]
async fn a_project_grants_its_members_what_it_says_until_it_stops() {
    for backend in each_backend().await {
        let db = &backend.db;
        let identity = Identity::new(db.clone(), IdentityConfig::default());
        let quotas = Quotas::new(db.clone());
        quotas
            .register_resources(&[PITHOS_DISKSPACE])
            .await
            .unwrap();
        let owner = user(&identity, "owner").await;
        let member = user(&identity, "member").await;
        let owner_ctx = context(&owner);
        let member_ctx = context(&member);
        let app = quotas
            .apply(
                Caller::Token(&owner_ctx),
                ApplicationSpec {
                    project_id: None,
                    name: "lab".to_owned(),
                    description: "a virtual lab".to_owned(),
                    homepage: String::new(),
                    start_at: None,
                    end_at: nefos_db::time::now_micros() + 3_600_000_000,
                    join_policy: Policy::Moderated,
                    leave_policy: Policy::Auto,
                    max_members: Some(5),
                    resources: BTreeMap::from([(
                        DISK.to_owned(),
                        Grant {
                            member_capacity: 100,
                            project_capacity: 150,
                        },
                    )]),
                    comments: String::new(),
                },
            )
            .await
            .unwrap();
        let project = app.project_id.clone();
        let charge = |who: &User, quantity| {
            commission(vec![Provision::new(&project, &who.id, DISK, quantity)])
        };
        // Nothing is granted before approval, and a user cannot approve.
        assert!(quotas.issue(charge(&member, 1), false).await.is_err());
        assert!(matches!(
            quotas
                .approve(Caller::Token(&member_ctx), &app.id, "")
                .await,
            Err(QuotaError::NotAllowed { .. })
        ));
        quotas
            .approve(Caller::Operator, &app.id, "fine")
            .await
            .unwrap();
        // Joining is moderated: not a member until the owner accepts.
        let asked = quotas
            .join(Caller::Token(&member_ctx), &project)
            .await
            .unwrap();
        assert_eq!(asked.state, "requested");
        assert!(matches!(
            quotas.issue(charge(&member, 1), false).await,
            Err(QuotaError::Exceeded(_))
        ));
        assert!(
            quotas
                .act_on_membership(
                    Caller::Token(&member_ctx),
                    asked.id,
                    MembershipAction::Accept
                )
                .await
                .is_err()
        );
        quotas
            .act_on_membership(
                Caller::Token(&owner_ctx),
                asked.id,
                MembershipAction::Accept,
            )
            .await
            .unwrap();
        quotas
            .enroll(Caller::Token(&owner_ctx), &project, &owner.id)
            .await
            .unwrap();
        // Each member up to 100; both together up to 150.
        let taken = quotas.issue(charge(&member, 100), false).await.unwrap();
        quotas.accept(taken).await.unwrap();
        assert!(quotas.issue(charge(&member, 1), false).await.is_err());
        match quotas.issue(charge(&owner, 60), false).await {
            Err(QuotaError::Exceeded(s)) => {
                assert_eq!((s.member_id, s.limit, s.usage), (None, 150, 100));
            }
            other => panic!("{}: {other:?}", backend.label),
        }
        quotas.issue(charge(&owner, 50), false).await.unwrap();
        // Suspended: nothing new; what is used stays, over the limit.
        quotas
            .change_project_state(
                Caller::Operator,
                &project,
                nefos_quota::projects::LifecycleAction::Suspend,
            )
            .await
            .unwrap();
        assert!(quotas.issue(charge(&member, 1), false).await.is_err());
        let view = quotas
            .project_quota(Caller::Operator, &project)
            .await
            .unwrap();
        assert!(view.project[DISK].over_limit());
        quotas
            .change_project_state(
                Caller::Operator,
                &project,
                nefos_quota::projects::LifecycleAction::Resume,
            )
            .await
            .unwrap();
        // A member who leaves keeps its usage and can add nothing.
        quotas
            .act_on_membership(
                Caller::Token(&member_ctx),
                asked.id,
                MembershipAction::Leave,
            )
            .await
            .unwrap();
        assert!(quotas.issue(charge(&member, 1), false).await.is_err());
        let mut tx = db.begin().await.unwrap();
        quotas
            .charge_in(&mut tx, &[Provision::new(&project, &member.id, DISK, -100)])
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn a_deleted_projects_pending_commission_goes_with_it_and_its_usage_ends() {
    for backend in each_backend().await {
        let identity = Identity::new(backend.db.clone(), IdentityConfig::default());
        let (quotas, doomed) = limited_user(&backend.db, "doomed", 100).await;
        let project = doomed.base_project_id.clone();
        let used = quotas
            .issue(
                commission(vec![Provision::new(&project, &doomed.id, DISK, 40)]),
                false,
            )
            .await
            .unwrap();
        quotas.accept(used).await.unwrap();
        quotas.heartbeat().await.unwrap();
        quotas
            .issue(
                commission(vec![Provision::new(&project, &doomed.id, DISK, 10)]),
                true,
            )
            .await
            .unwrap();
        let start = nefos_db::time::now_micros();
        identity
            .delete_user(Caller::Operator, &doomed.id)
            .await
            .unwrap();
        let end = nefos_db::time::now_micros();
        // The pending commission went with its project: nothing is left to resolve, and
        // the next start is not refused.
        let survivor = Quotas::new(backend.db.clone());
        assert_eq!(survivor.reject_abandoned(Duration::ZERO).await.unwrap(), 0);
        assert!(
            survivor.pending(None).await.unwrap().is_empty(),
            "{}",
            backend.label
        );
        // The usage report counts the 40 up to the deletion, and nothing after it.
        let report = survivor
            .usage_report(Caller::Operator, start, end + 3_600_000_000, true)
            .await
            .unwrap();
        let line = report
            .lines
            .iter()
            .find(|l| l.holder == project)
            .expect("a line for the deleted project");
        assert_eq!(line.usage_at_end, 0, "{}", backend.label);
        let most = 40.0 * (end - start) as f64 / 3_600_000_000.0 / 1_073_741_824.0 / 730.5;
        assert!(
            line.amount > 0.0 && line.amount <= most * 1.01,
            "{}: {line:?}",
            backend.label
        );
    }
}
