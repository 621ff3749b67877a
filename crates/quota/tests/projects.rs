//! Project applications and memberships on both databases: what each party may do, and
//! what a project's policies allow.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use nefos_identity::{AuthContext, Caller, Identity, IdentityConfig, User};
use nefos_quota::projects::{ApplicationSpec, Grant, MembershipAction, Policy};
use nefos_quota::{PITHOS_DISKSPACE, QuotaError, Quotas};
use nefos_test_utils::each_backend;

async fn user(identity: &Identity, name: &str) -> (User, AuthContext) {
    let user = common::user(identity, name).await;
    let context = common::context(&user);
    (user, context)
}

fn spec(name: &str, join: Policy, leave: Policy, max_members: Option<i64>) -> ApplicationSpec {
    ApplicationSpec {
        project_id: None,
        name: name.to_owned(),
        description: String::new(),
        homepage: "https://lab.example.org".to_owned(),
        start_at: None,
        end_at: nefos_db::time::now_micros() + 86_400_000_000,
        join_policy: join,
        leave_policy: leave,
        max_members,
        resources: BTreeMap::from([(
            PITHOS_DISKSPACE.name.to_owned(),
            Grant {
                member_capacity: 10,
                project_capacity: 20,
            },
        )]),
        comments: String::new(),
    }
}

#[tokio::test]
async fn applications_are_decided_by_administrators_and_withdrawn_by_applicants() {
    for backend in each_backend().await {
        let identity = Identity::new(backend.db.clone(), IdentityConfig::default());
        let quotas = Quotas::new(backend.db.clone());
        quotas
            .register_resources(&[PITHOS_DISKSPACE])
            .await
            .unwrap();
        let (_, alice) = user(&identity, "alice").await;
        let (_, bob) = user(&identity, "bob").await;
        let (alice, bob) = (Caller::Token(&alice), Caller::Token(&bob));

        // Denied: the project that never was is deleted; its name cannot be reused.
        let denied = quotas
            .apply(alice, spec("denied", Policy::Auto, Policy::Auto, None))
            .await
            .unwrap();
        let denied = quotas
            .deny(Caller::Operator, &denied.id, "no")
            .await
            .unwrap();
        assert_eq!(
            (denied.state.as_str(), denied.reason.as_str()),
            ("denied", "no")
        );
        let project = quotas.project(alice, &denied.project_id).await.unwrap();
        assert_eq!(project.state, "deleted", "{}", backend.label);
        assert!(matches!(
            quotas.approve(Caller::Operator, &denied.id, "").await,
            Err(QuotaError::Conflict { .. })
        ));
        quotas.dismiss_application(alice, &denied.id).await.unwrap();

        // Cancelled by its applicant; nobody else may, nor see it.
        let pending = quotas
            .apply(alice, spec("cancelled", Policy::Auto, Policy::Auto, None))
            .await
            .unwrap();
        assert!(matches!(
            quotas.application(bob, &pending.id).await,
            Err(QuotaError::NotFound { .. })
        ));
        quotas.cancel_application(alice, &pending.id).await.unwrap();
        assert!(
            quotas
                .apply(alice, spec("", Policy::Auto, Policy::Auto, None))
                .await
                .is_err()
        );

        // A change of an approved project is an application too, by its owner only.
        let lab = quotas
            .apply(alice, spec("lab", Policy::Auto, Policy::Auto, None))
            .await
            .unwrap();
        quotas.approve(Caller::Operator, &lab.id, "").await.unwrap();
        let mut change = spec("lab", Policy::Closed, Policy::Auto, None);
        change.project_id = Some(lab.project_id.clone());
        assert!(matches!(
            quotas.apply(bob, change.clone()).await,
            Err(QuotaError::NotFound { .. })
        ));
        let changed = quotas.apply(alice, change).await.unwrap();
        // Until approved, the project is what the first application made it.
        assert_eq!(
            quotas
                .project(alice, &lab.project_id)
                .await
                .unwrap()
                .join_policy,
            "auto"
        );
        quotas
            .approve(Caller::Operator, &changed.id, "")
            .await
            .unwrap();
        let project = quotas.project(alice, &lab.project_id).await.unwrap();
        assert_eq!(project.join_policy, "closed", "{}", backend.label);
        assert!(matches!(
            quotas.join(bob, &lab.project_id).await,
            Err(QuotaError::Conflict { .. })
        ));
        let pending = quotas
            .applications(Caller::Operator, None, Some("pending"))
            .await
            .unwrap();
        assert!(pending.is_empty(), "{}: {pending:?}", backend.label);
    }
}

#[tokio::test]
async fn memberships_follow_the_policies_and_the_maximum() {
    for backend in each_backend().await {
        let identity = Identity::new(backend.db.clone(), IdentityConfig::default());
        let quotas = Quotas::new(backend.db.clone());
        quotas
            .register_resources(&[PITHOS_DISKSPACE])
            .await
            .unwrap();
        let (_, owner) = user(&identity, "owner").await;
        let (carol_user, carol) = user(&identity, "carol").await;
        let (dave_user, dave) = user(&identity, "dave").await;
        let (owner, carol, dave) = (
            Caller::Token(&owner),
            Caller::Token(&carol),
            Caller::Token(&dave),
        );
        let app = quotas
            .apply(
                owner,
                spec("small", Policy::Auto, Policy::Moderated, Some(1)),
            )
            .await
            .unwrap();
        quotas.approve(Caller::Operator, &app.id, "").await.unwrap();
        let project = app.project_id;

        // Auto join, up to the maximum.
        let joined = quotas.join(carol, &project).await.unwrap();
        assert_eq!(joined.state, "accepted");
        assert!(matches!(
            quotas.join(carol, &project).await,
            Err(QuotaError::Conflict { .. })
        ));
        assert!(matches!(
            quotas.join(dave, &project).await,
            Err(QuotaError::Conflict { .. })
        ));
        // The member holds the project's role; others see only their own memberships.
        let roles =
            nefos_db::identity::roles_on_project(backend.db.pool(), &carol_user.id, &project)
                .await
                .unwrap();
        assert_eq!(roles, ["member"], "{}", backend.label);
        assert!(
            quotas
                .memberships(dave, Some(&project))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            quotas
                .memberships(owner, Some(&project))
                .await
                .unwrap()
                .len(),
            1
        );

        // Moderated leave: asked, then accepted by the owner; the role goes with it.
        let asked = quotas
            .act_on_membership(carol, joined.id, MembershipAction::Leave)
            .await
            .unwrap();
        assert_eq!(asked.state, "leave_requested");
        assert!(matches!(
            quotas
                .act_on_membership(dave, joined.id, MembershipAction::Accept)
                .await,
            Err(QuotaError::NotFound { .. })
        ));
        let left = quotas
            .act_on_membership(owner, joined.id, MembershipAction::Accept)
            .await
            .unwrap();
        assert_eq!(left.state, "left");
        let roles =
            nefos_db::identity::roles_on_project(backend.db.pool(), &carol_user.id, &project)
                .await
                .unwrap();
        assert!(roles.is_empty(), "{}", backend.label);
        // Room again: the owner adds dave, then removes him.
        let enrolled = quotas.enroll(owner, &project, &dave_user.id).await.unwrap();
        assert_eq!(enrolled.state, "accepted");
        let removed = quotas
            .act_on_membership(owner, enrolled.id, MembershipAction::Remove)
            .await
            .unwrap();
        assert_eq!(removed.state, "removed", "{}", backend.label);
    }
}
