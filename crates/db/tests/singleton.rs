//! Leadership of singleton loops: one holder at a time on PostgreSQL, released on drop;
//! the one process of a SQLite cloud always leads.

#![allow(clippy::unwrap_used)]

use nefos_test_utils::{postgres, sqlite};

#[tokio::test]
async fn one_process_leads_a_loop_at_a_time() {
    let pg = postgres().await;
    let first = pg.db.try_singleton("reconcile").await.unwrap();
    assert!(first.is_some());
    assert!(pg.db.try_singleton("reconcile").await.unwrap().is_none());
    assert!(pg.db.try_singleton("another-loop").await.unwrap().is_some());
    first.unwrap().release().await.unwrap();
    assert!(pg.db.try_singleton("reconcile").await.unwrap().is_some());

    let lite = sqlite().await;
    let held = lite.db.try_singleton("reconcile").await.unwrap();
    assert!(held.is_some());
    assert!(lite.db.try_singleton("reconcile").await.unwrap().is_some());
}
