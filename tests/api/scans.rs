//! A deployment's database only grows, so what a chat costs must not grow with it: the paths
//! every chat and every connection take (hello, send, read mark, resume) find their rows by
//! key. Postgres counts the sequential scans of each table (`pg_stat_user_tables`); this test
//! fills the tables well past the size where a scan is the cheap plan, walks those paths
//! through a real node, and checks that no big table was scanned.

use std::collections::BTreeMap;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::json;

use crate::support::*;

/// The tables that grow with the number of users, couples and chats.
const BIG: &str = "'users', 'sessions', 'couples', 'couple_members', 'chats', 'events'";

/// 20,000 other couples with ten chats each, written as SQL (a plan that scans instead of
/// finding by key then reads thousands of pages, and the planner knows it).
const FILL: &str = r#"
INSERT INTO users (id, username, username_key, password_hash, created_at)
SELECT md5('u' || n)::uuid, 'filler' || n, 'filler' || n, 'x', now()
FROM generate_series(1, 40000) n;
INSERT INTO sessions (id, token_hash, user_id, created_at, expires_at)
SELECT md5('s' || n)::uuid, md5('t' || n), md5('u' || n)::uuid, now(), now() + interval '1 day'
FROM generate_series(1, 40000) n;
INSERT INTO couples (id, since, last_seq, open_questions)
SELECT md5('c' || n)::uuid, now(), 10, 0 FROM generate_series(1, 20000) n;
INSERT INTO couple_members (user_id, couple_id, read_seq)
SELECT md5('u' || n)::uuid, md5('c' || ((n + 1) / 2))::uuid, 0
FROM generate_series(1, 40000) n;
INSERT INTO chats (id, couple_id, seq, sender_id, client_id, text, sent_at, edits)
SELECT md5('m' || c || '.' || s)::uuid, md5('c' || c)::uuid, s,
    md5('u' || (2 * c - s % 2))::uuid, md5('k' || c || '.' || s)::uuid,
    'a filler chat ' || s, now(), 0
FROM generate_series(1, 20000) c, generate_series(1, 10) s;
ANALYZE;
"#;

/// Sequential scans so far of each big table.
async fn scans(db: &DatabaseConnection) -> BTreeMap<String, i64> {
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT relname, seq_scan FROM pg_stat_user_tables WHERE relname IN ({BIG})"),
        ))
        .await
        .expect("reading the scan counts");
    rows.iter()
        .map(|row| {
            (
                row.try_get::<String>("", "relname").unwrap_or_default(),
                row.try_get::<i64>("", "seq_scan").unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits until no other connection to the test's database is left: a connection reports
/// its counts as it closes, so after this every count is in.
async fn all_counted(db: &DatabaseConnection) {
    let others = "SELECT count(*) AS n FROM pg_stat_activity \
                  WHERE datname = current_database() AND pid <> pg_backend_pid()";
    for _ in 0..200 {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                others,
            ))
            .await
            .expect("listing the connections");
        if row.and_then(|r| r.try_get::<i64>("", "n").ok()) == Some(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT application_name, state, left(query, 60) AS q FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        ))
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    let get = |c: &str| r.try_get::<String>("", c).unwrap_or_default();
                    format!("{} {} {}", get("application_name"), get("state"), get("q"))
                })
                .collect::<Vec<_>>()
        });
    panic!("the node's connections did not close within 10 s: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_send_read_mark_and_resume_scan_no_table_however_many_couples() {
    let mut node = spawn_node(Backend::Postgres).await;
    let (mina, joon) = couple(&node).await;
    // One connection: `all_counted` waits for every connection but this one.
    let mut options = sea_orm::ConnectOptions::new(node.db.url.as_str());
    options.max_connections(1).min_connections(1);
    let db = sea_orm::Database::connect(options)
        .await
        .expect("a connection of the test's own");
    db.execute_unprepared(FILL)
        .await
        .expect("filling the tables");
    // The first node's connections, closed, have reported what they scanned; a new node's
    // plan against the filled tables.
    node.stop().await;
    all_counted(&db).await;
    let before = scans(&db).await;
    let addr = node.restart(&[]).await;
    let (mina, joon) = (mina.on(addr), joon.on(addr));
    assert_eq!(before.len(), 6, "{before:?}");

    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    let chat = mine.acked("hello there").await;
    let seq = chat["seq"].as_i64().unwrap_or_default();
    theirs.until("chat").await;
    theirs.send(json!({ "type": "read", "seq": seq })).await;
    mine.until("read").await;
    mine.acked("and again").await;
    drop(theirs);
    // Joon comes back having missed a chat: a resume from what the client has.
    let back = joon.socket_at(&format!("/ws?after={seq}")).await;
    assert!(
        back.replay.iter().any(|f| f["text"] == "and again"),
        "the resume replayed the missed chat: {:?}",
        back.replay
    );
    drop((mine, back));

    node.stop().await;
    all_counted(&db).await;
    let after = scans(&db).await;
    // Everything the node did counts, its start and its sweepers' first round included.
    assert_eq!(
        after, before,
        "a big table was scanned (seq_scan before and after)"
    );
}
