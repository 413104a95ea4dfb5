//! Search and jumps: words inside words in Korean, any case in English, newest first, paged;
//! never a deleted chat, never another couple's; and opening the conversation anywhere.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

both_backends!(
    korean_matches_inside_words_and_english_ignores_case_newest_first,
    search_pages_with_before_and_wildcards_match_themselves,
    another_couples_search_never_returns_our_chats,
    a_deleted_chat_is_never_found,
    a_search_needs_a_couple_and_one_to_a_hundred_characters,
    a_jump_opens_the_conversation_around_a_chat_and_pages_on_from_there,
    a_date_jump_opens_the_first_chat_of_that_day_or_says_there_is_none,
);

fn texts(body: &Value) -> Vec<String> {
    body["chats"]
        .as_array()
        .map(|chats| {
            chats
                .iter()
                .map(|c| c["text"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn seqs(body: &Value) -> Vec<i64> {
    body["chats"]
        .as_array()
        .map(|chats| chats.iter().filter_map(|c| c["seq"].as_i64()).collect())
        .unwrap_or_default()
}

async fn search(user: &User, q: &str) -> Value {
    let q = percent_encode(q);
    let (status, body) = user.get(&format!("/api/chats/search?q={q}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn korean_matches_inside_words_and_english_ignores_case_newest_first(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (mut m, mut j) = (mina.socket().await, joon.socket().await);
    let mut watcher = mina.socket().await;
    // "여행" is a catalogue keyword: its question comes, both answer, and the chat stays.
    m.acked("여행을 가자").await;
    let question = watcher.until("question").await;
    both_answer(&mut m, &mut j, &mut watcher, &question["question_id"]).await;
    m.acked("산책을 하자").await;
    j.acked("오늘 산책이 좋았어").await;
    m.acked("Let's go for a Walk").await;
    j.acked("WALKING home").await;
    m.acked("nothing to see").await;

    assert_eq!(texts(&search(&joon, "여행").await), ["여행을 가자"]);
    assert_eq!(
        texts(&search(&joon, "산책").await),
        ["오늘 산책이 좋았어", "산책을 하자"]
    );
    assert_eq!(
        texts(&search(&mina, "walk").await),
        ["WALKING home", "Let's go for a Walk"]
    );
    assert!(texts(&search(&mina, "swim").await).is_empty());
}

async fn search_pages_with_before_and_wildcards_match_themselves(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let mut m = mina.socket().await;
    for text in ["kite 1", "kite 2", "100% kite", "kite_4", "kitex"] {
        m.acked(text).await;
    }
    let (status, first) = mina.get("/api/chats/search?q=kite&limit=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(texts(&first), ["kitex", "kite_4"]);
    let last = seqs(&first)[1];
    let (_, second) = mina
        .get(&format!("/api/chats/search?q=kite&limit=2&before={last}"))
        .await;
    assert_eq!(texts(&second), ["100% kite", "kite 2"]);
    let (_, third) = mina
        .get(&format!(
            "/api/chats/search?q=kite&limit=2&before={}",
            seqs(&second)[1]
        ))
        .await;
    assert_eq!(texts(&third), ["kite 1"]);

    // `%` and `_` are what they are, not wildcards.
    assert_eq!(texts(&search(&mina, "%").await), ["100% kite"]);
    assert_eq!(texts(&search(&mina, "e_").await), ["kite_4"]);
}

async fn another_couples_search_never_returns_our_chats(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let (sora, hana) = (
        User::signup(&node, "sora").await,
        User::signup(&node, "hana").await,
    );
    pair(&sora, &hana).await;
    mina.socket().await.acked("our secret picnic").await;
    sora.socket().await.acked("their own picnic").await;

    assert_eq!(texts(&search(&mina, "picnic").await), ["our secret picnic"]);
    assert_eq!(texts(&search(&hana, "picnic").await), ["their own picnic"]);
    assert!(texts(&search(&sora, "secret").await).is_empty());
}

async fn a_deleted_chat_is_never_found(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut m = mina.socket().await;
    let ack = m.acked("a regrettable sentence").await;
    m.acked("a kept sentence").await;
    m.send(json!({ "type": "delete", "chat_id": ack["id"] }))
        .await;
    m.until("deleted").await;

    assert_eq!(texts(&search(&joon, "sentence").await), ["a kept sentence"]);
    assert!(texts(&search(&joon, "regrettable").await).is_empty());
}

async fn a_search_needs_a_couple_and_one_to_a_hundred_characters(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let single = User::signup(&node, "single").await;
    let (status, body) = single.get("/api/chats/search?q=hello").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "not_paired");

    let long = "a".repeat(101);
    for (query, expected) in [
        ("q=%20%20", StatusCode::UNPROCESSABLE_ENTITY),
        (&*format!("q={long}"), StatusCode::UNPROCESSABLE_ENTITY),
        ("q=a&limit=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("", StatusCode::BAD_REQUEST),
        ("q=a&before=soon", StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = mina.get(&format!("/api/chats/search?{query}")).await;
        assert_eq!(status, expected, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_input", "{query}");
    }
    let (status, _, _) = request(
        reqwest::Method::GET,
        &format!("{}/api/chats/search?q=a", node.base()),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn a_jump_opens_the_conversation_around_a_chat_and_pages_on_from_there(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let mut m = mina.socket().await;
    let mut sent = Vec::new();
    for i in 1..=9 {
        sent.push(m.acked(&format!("line {i}")).await["seq"].as_i64().unwrap());
    }
    let deleted = m.acked("line gone").await;
    m.send(json!({ "type": "delete", "chat_id": deleted["id"] }))
        .await;
    m.until("deleted").await;

    // Around line 5: it and one older, two newer; newest first, like every page.
    let (status, window) = mina
        .get(&format!("/api/chats?around={}&limit=4", sent[4]))
        .await;
    assert_eq!(status, StatusCode::OK, "{window}");
    assert_eq!(texts(&window), ["line 7", "line 6", "line 5", "line 4"]);
    assert_eq!(window["anchor"], sent[4]);
    // Newer pages from there up to the present (the deleted chat is not among them).
    let (_, newer) = mina
        .get(&format!("/api/chats?after={}&limit=2", sent[6]))
        .await;
    assert_eq!(texts(&newer), ["line 9", "line 8"]);
    let (_, end) = mina
        .get(&format!("/api/chats?after={}&limit=2", sent[8]))
        .await;
    assert!(texts(&end).is_empty(), "{end}");
    // Older pages as ever.
    let (_, older) = mina
        .get(&format!("/api/chats?before={}&limit=2", sent[3]))
        .await;
    assert_eq!(texts(&older), ["line 3", "line 2"]);

    let (status, body) = mina
        .get(&format!("/api/chats?around={}&before=3", sent[4]))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_input");
}

async fn a_date_jump_opens_the_first_chat_of_that_day_or_says_there_is_none(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let mut m = mina.socket().await;
    let first = m.acked("the first words").await;
    m.acked("the second words").await;
    let (_, calendar) = mina.get("/api/anniversaries").await;
    let today = calendar["today"].as_str().unwrap().to_owned();

    // Today (in the couple's time zone) starts with the first chat; so does any day before.
    for day in [today.as_str(), "2001-01-01"] {
        let (status, body) = mina.get(&format!("/api/chats?date={day}&limit=4")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["anchor"], first["seq"], "{day}");
        assert_eq!(texts(&body), ["the second words", "the first words"]);
    }
    // Nothing from a day to come: no anchor, and the newest page.
    let (_, body) = mina.get("/api/chats?date=2199-01-01").await;
    assert_eq!(body["anchor"], Value::Null);
    assert!(body.as_object().unwrap().contains_key("anchor"));
    assert_eq!(texts(&body), ["the second words", "the first words"]);

    let (status, body) = mina.get("/api/chats?date=2026-02-30").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_input");
}

/// Entries of the search index still in its pending list, waiting to be merged.
async fn pending_in_search_index(db: &sea_orm::DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT pending_tuples FROM pgstatginindex('idx_chats_text_search')",
        ))
        .await
        .expect("reading the search index's pending list");
    row.and_then(|r| r.try_get::<i64>("", "pending_tuples").ok())
        .expect("pgstatginindex answers")
}

/// Merged by a send that finds the list full, it would hold up that send and every one queued
/// behind it; the node merges it in the background instead, long before it fills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chats_reach_the_search_index_in_the_background_not_in_a_sends_commit() {
    for (merge_ms, merged) in [("0", false), ("100", true)] {
        let node = spawn_node_with(Backend::Postgres, &["--search-merge-ms", merge_ms]).await;
        let db = sea_orm::Database::connect(node.db.url.as_str())
            .await
            .expect("a connection of the test's own");
        db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pgstattuple")
            .await
            .expect("pgstattuple, which ships with Postgres");
        let (mina, _joon) = couple(&node).await;
        let mut m = mina.socket().await;
        for n in 0..20 {
            m.acked(&format!("zebra crossing {n}")).await;
        }
        // Searches see them whether merged or not.
        let found = search(&mina, "zebra").await;
        assert_eq!(texts(&found).len(), 20, "{found}");
        let since = Instant::now();
        let mut pending = pending_in_search_index(&db).await;
        while pending > 0 && since.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            pending = pending_in_search_index(&db).await;
        }
        if merged {
            assert_eq!(pending, 0, "merged in the background every 100 ms");
        } else {
            // Nothing else merges so small a list within seconds: this is what the node's
            // merging changes.
            assert!(pending > 0, "without the node's merges the list waits");
        }
    }
}
