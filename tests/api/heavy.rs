//! Heavy reads cannot starve the database: one search (or look at our words) and one export
//! per member at a time, a bounded rate of new sockets per user, and heavy reads cut off at
//! the read timeout with the contract's error.

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::files::uploaded;
use crate::support::*;

both_backends!(
    a_second_search_of_a_member_at_once_is_429_while_the_partner_searches_on,
    a_second_export_of_a_user_at_once_is_429_until_the_first_ends,
    a_user_opening_sockets_past_the_rate_gets_429_with_retry_after,
    a_heavy_read_past_the_read_timeout_is_cut_off_with_unavailable,
);

/// A GET with the user's session: status, `Retry-After` and the JSON body.
async fn get(user: &User, path: &str) -> (StatusCode, Option<String>, Value) {
    let res = reqwest::Client::new()
        .get(format!("{}{path}", user.base))
        .header("cookie", format!("duet_session={}", user.token))
        .send()
        .await
        .expect("the node answers");
    let status = res.status();
    let retry = res
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = res.json().await.unwrap_or(Value::Null);
    (status, retry, body)
}

async fn a_second_search_of_a_member_at_once_is_429_while_the_partner_searches_on(
    backend: Backend,
) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    // A one-character search that matches nothing reads every chat: tens of milliseconds.
    seed_history(&node, &mina, &joon, 40_000, |_| false).await;
    let search = "/api/chats/search?q=Z";
    let mut refused = None;
    for _ in 0..20 {
        let (first, second, partner) =
            tokio::join!(get(&mina, search), get(&mina, search), get(&joon, search));
        assert_eq!(
            partner.0,
            StatusCode::OK,
            "the partner's search: {}",
            partner.2
        );
        for (status, retry, body) in [first, second] {
            match status {
                StatusCode::OK => {}
                StatusCode::TOO_MANY_REQUESTS => refused = Some((retry, body)),
                other => panic!("a search answered {other}: {body}"),
            }
        }
        if refused.is_some() {
            break;
        }
    }
    let (retry, body) = refused.expect("two searches at once: the second is refused");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"]["code"], "rate_limited");
    // The turn ends with the search: the next one is served.
    let (status, _, body) = get(&mina, search).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["chats"], json!([]));
}

async fn a_second_export_of_a_user_at_once_is_429_until_the_first_ends(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    // 32 MB of files, stored as they are in the zip: more than every buffer between the
    // node and a client that does not read, so an unread export stays half-sent.
    let mut socket = mina.socket().await;
    for name in ["a.bin", "b.bin"] {
        let file = uploaded(&mina, name, &vec![7u8; 16 * 1024 * 1024]).await;
        socket
            .send(json!({ "type": "send", "client_id": Uuid::new_v4(), "text": "", "file_id": file["id"] }))
            .await;
        socket.until("ack").await;
    }
    let export = |user: &User| {
        reqwest::Client::new()
            .get(format!("{}/api/export", user.base))
            .header("cookie", format!("duet_session={}", user.token))
            .send()
    };
    let first = export(&mina).await.expect("the node answers");
    assert_eq!(first.status(), StatusCode::OK);

    let second = export(&mina).await.expect("the node answers");
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        second
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("10")
    );
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    // The partner's export is theirs: it goes through, whole.
    let theirs = export(&joon).await.expect("the node answers");
    assert_eq!(theirs.status(), StatusCode::OK);
    assert!(theirs.bytes().await.unwrap().len() > 32 * 1024 * 1024);

    // Abandoning the first download ends its turn.
    drop(first);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let again = export(&mina).await.expect("the node answers");
        if again.status() == StatusCode::OK {
            assert!(again.bytes().await.unwrap().len() > 32 * 1024 * 1024);
            break;
        }
        assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the turn never ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn a_user_opening_sockets_past_the_rate_gets_429_with_retry_after(backend: Backend) {
    let node = spawn_node_with(backend, &["--socket-rate-per-user=3"]).await;
    let (mina, joon) = couple(&node).await;
    // Refused upgrades open nothing and use up nothing.
    for _ in 0..5 {
        let refused = mina.try_socket("/ws?after=-1", None).await;
        assert_eq!(refused.err().map(|(status, _)| status), Some(400));
    }
    for _ in 0..3 {
        drop(mina.socket().await);
    }
    let (status, body) = mina
        .try_socket("/ws", None)
        .await
        .err()
        .expect("the fourth socket in a minute is refused");
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "rate_limited");
    // The Retry-After of a refused upgrade, read by hand (the WebSocket client hides it).
    let res = reqwest::Client::new()
        .get(format!("{}/ws", mina.base))
        .header("cookie", format!("duet_session={}", mina.token))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("the node answers");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=20).contains(&retry), "Retry-After: {retry}");
    // The partner's share is their own.
    joon.socket().await;
}

async fn a_heavy_read_past_the_read_timeout_is_cut_off_with_unavailable(backend: Backend) {
    let node = spawn_node_with(backend, &["--read-timeout-ms=1"]).await;
    let (mina, joon) = couple(&node).await;
    seed_history(&node, &mina, &joon, 40_000, |_| false).await;
    let (status, _, body) = get(&mina, "/api/chats/search?q=Z").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    // The main pool is not the read pool: pages of history are served as ever.
    let (status, _, body) = get(&mina, "/api/chats?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["chats"][0]["text"], "chat 40000");
}
