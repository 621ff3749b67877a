//! Server listings paged in SQL, on SQLite and PostgreSQL: walking the pages by marker
//! gives every selected server once, in the order asked for, ties broken by id; filters
//! select what they say, a name's LIKE wildcards are plain characters; a deleted server
//! shows only to a listing of changes.

#![allow(clippy::unwrap_used)]

use nefos_db::compute::{self as q, ServerQuery, ServerRow, SortColumn, StatusStates};
use nefos_db::{Database, Transaction};
use nefos_test_utils::{each_backend, server_row};

/// 30 servers of project `p`: names repeat every 7 (`name-0` … `name-6`, and one named
/// `50%_off`), one in three is stopped, one in five is tagged `blue`; one of project `q`.
async fn fill(db: &Database) {
    let mut tx: Transaction = db.begin().await.unwrap();
    for index in 0..30i64 {
        let id = format!("00000000-0000-4000-8000-{index:012}");
        let name = if index == 13 {
            "50%_off".to_owned()
        } else {
            format!("name-{}", index % 7)
        };
        // Pairs share a creation time: the id orders them.
        let mut row = server_row(&id, "p", &name, 1_000 + index / 2, index + 1);
        if index % 3 == 0 {
            row.vm_state = "stopped".to_owned();
        }
        if index == 29 {
            row.deleted_at = Some(5_000);
            row.updated_at = 5_000;
        }
        q::insert_server(&mut tx, &row).await.unwrap();
        if index % 5 == 0 {
            q::set_tags(&mut tx, &id, &["blue".to_owned()])
                .await
                .unwrap();
        }
        if index == 26 {
            let metadata = std::collections::BTreeMap::from([("k".to_owned(), "v".to_owned())]);
            q::put_metadata(&mut tx, &id, &metadata, false)
                .await
                .unwrap();
        }
    }
    let other = server_row(
        "00000000-0000-4000-8000-999999999999",
        "q",
        "name-1",
        1_500,
        99,
    );
    q::insert_server(&mut tx, &other).await.unwrap();
    tx.commit().await.unwrap();
}

/// Every page of `query`, walked by marker.
async fn walk(db: &Database, query: &ServerQuery<'_>) -> Vec<ServerRow> {
    let mut all: Vec<ServerRow> = Vec::new();
    loop {
        let marker = all.last().cloned();
        let page = ServerQuery {
            after: marker.as_ref(),
            ..query.clone()
        };
        let (rows, more) = q::page_servers(db, &page).await.unwrap();
        assert!(rows.len() <= query.limit);
        all.extend(rows.into_iter().map(|paged| paged.row));
        if !more {
            return all;
        }
    }
}

fn ids(rows: &[ServerRow]) -> Vec<String> {
    rows.iter().map(|r| r.id.clone()).collect()
}

#[tokio::test]
async fn pages_walk_every_server_once_in_order() {
    for t in each_backend().await {
        let label = t.label;
        fill(&t.db).await;
        let base = ServerQuery {
            project: Some("p"),
            limit: 4,
            ..ServerQuery::default()
        };

        // Newest first, then by id descending; the deleted one and project q's are out.
        let newest = walk(&t.db, &base).await;
        let mut expected: Vec<ServerRow> = (0..29i64)
            .map(|i| {
                server_row(
                    &format!("00000000-0000-4000-8000-{i:012}"),
                    "p",
                    "",
                    1_000 + i / 2,
                    0,
                )
            })
            .collect();
        expected.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        assert_eq!(ids(&newest), ids(&expected), "{label}");

        // By name ascending (ties: id ascending), then by name descending.
        for descending in [false, true] {
            let query = ServerQuery {
                sort: vec![(SortColumn::Name, descending)],
                ..base.clone()
            };
            let by_name = walk(&t.db, &query).await;
            let mut sorted = newest.clone();
            sorted.sort_by(|a, b| {
                let order = (&a.name, &a.id).cmp(&(&b.name, &b.id));
                if descending { order.reverse() } else { order }
            });
            assert_eq!(
                ids(&by_name),
                ids(&sorted),
                "{label} descending={descending}"
            );
        }

        // Filters.
        let named = |name| ServerQuery {
            name_contains: Some(name),
            ..base.clone()
        };
        let percent = walk(&t.db, &named("%_")).await;
        assert_eq!(
            ids(&percent),
            vec!["00000000-0000-4000-8000-000000000013"],
            "{label}"
        );
        assert_eq!(walk(&t.db, &named("name-3")).await.len(), 4, "{label}");
        let stopped = ServerQuery {
            statuses: vec![StatusStates {
                vm_states: &["stopped"],
                task_states: None,
            }],
            ..base.clone()
        };
        let stopped = walk(&t.db, &stopped).await;
        assert!(stopped.iter().all(|r| r.vm_state == "stopped"), "{label}");
        assert_eq!(stopped.len(), 10, "{label}");
        let tags = ["blue".to_owned()];
        let blue = ServerQuery {
            tags: &tags,
            ..base.clone()
        };
        assert_eq!(walk(&t.db, &blue).await.len(), 6, "{label}");

        // Changes since a time include the deleted server.
        let changes = ServerQuery {
            changed_since: Some(4_000),
            ..base.clone()
        };
        let changed = walk(&t.db, &changes).await;
        assert_eq!(
            ids(&changed),
            vec!["00000000-0000-4000-8000-000000000029"],
            "{label}"
        );

        // Each server of a page comes with its own tags and metadata, tags sorted.
        let first = ServerQuery {
            limit: 9,
            ..base.clone()
        };
        let page: Vec<String> = ids(&newest[..10]);
        let mut tx = t.db.begin().await.unwrap();
        q::set_tags(&mut tx, &page[0], &["red".to_owned(), "blue".to_owned()])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let (rows, more) = q::page_servers(&t.db, &first).await.unwrap();
        assert!(more, "{label}");
        assert_eq!(
            ids(&rows.iter().map(|p| p.row.clone()).collect::<Vec<_>>()),
            page[..9],
            "{label}"
        );
        for paged in &rows {
            let index: usize = paged.row.id[24..].parse().unwrap();
            let expected_tags: Vec<String> = match index {
                _ if paged.row.id == page[0] => vec!["blue".to_owned(), "red".to_owned()],
                _ if index.is_multiple_of(5) => vec!["blue".to_owned()],
                _ => Vec::new(),
            };
            assert_eq!(paged.tags, expected_tags, "{label}: {}", paged.row.id);
            let expected_metadata = if index == 26 {
                std::collections::BTreeMap::from([("k".to_owned(), "v".to_owned())])
            } else {
                std::collections::BTreeMap::new()
            };
            assert_eq!(
                paged.metadata, expected_metadata,
                "{label}: {}",
                paged.row.id
            );
        }
        let (names, more) = q::page_server_names(t.db.pool(), &first).await.unwrap();
        assert!(more, "{label}");
        let listed: Vec<String> = names.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(listed, page[..9], "{label}");

        // Names match case and all, whatever SQL wildcards they hold.
        assert!(walk(&t.db, &named("NAME-3")).await.is_empty(), "{label}");
    }
}
