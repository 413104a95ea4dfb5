//! The socket itself: who may open one, the handshake, and what bad input does (an error
//! frame, never a crash; a frame over the limit closes with 1009 and the node serves on).

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::both_backends;
use crate::support::*;

both_backends!(
    the_upgrade_is_refused_without_session_from_foreign_origin_or_unpaired,
    the_handshake_is_hello_then_synced,
    malformed_and_unknown_frames_get_error_frames_and_the_socket_stays_open,
    a_frame_over_64_kib_closes_with_1009_and_the_node_keeps_serving,
    too_many_frames_are_rate_limited,
    a_flood_of_sends_gets_an_answer_for_each_and_the_socket_stays_open,
    a_flood_of_typing_gets_one_rate_limited_per_window_and_the_socket_stays_open,
    invalid_utf8_in_a_text_frame_closes_with_1007,
    sockets_per_user_are_limited,
    a_stopping_node_says_not_ready_and_serves_on_for_the_drain_delay,
    a_client_that_stops_reading_finds_whole_frames_then_1013_and_is_counted,
    a_delete_that_meets_a_stalled_database_is_answered_unavailable_in_time,
);

async fn the_upgrade_is_refused_without_session_from_foreign_origin_or_unpaired(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let single = User::signup(&node, "sora").await;

    let (status, body) = try_socket(node.addr, "/ws", None, None)
        .await
        .err()
        .expect("refused");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (status, body) = try_socket(node.addr, "/ws", Some("forged"), None)
        .await
        .err()
        .expect("refused");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );

    let (status, body) = mina
        .try_socket("/ws", Some("http://evil.example"))
        .await
        .err()
        .expect("refused");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden_origin"))
    );

    let (status, body) = single.try_socket("/ws", None).await.err().expect("refused");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_paired"))
    );

    // The allowed origin gets in.
    assert!(
        mina.try_socket("/ws", Some("http://duet.test"))
            .await
            .is_ok()
    );
}

async fn the_handshake_is_hello_then_synced(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let socket = mina.socket().await;
    assert_eq!(socket.hello["user_id"], mina.id.to_string());
    assert_eq!(socket.hello["partner_id"], joon.id.to_string());
    assert_eq!(socket.hello["last_seq"], 0);
    assert_eq!(socket.hello["partner_online"], false);
    let (_, me) = mina.get("/api/me").await;
    assert_eq!(socket.hello["couple_id"], me["couple"]["id"]);
    assert!(socket.replay.is_empty());
    assert_eq!(socket.synced["last_seq"], 0);
}

async fn malformed_and_unknown_frames_get_error_frames_and_the_socket_stays_open(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let mut socket = mina.socket().await;

    socket.send_raw(Message::text("{not json")).await;
    assert_eq!(socket.expect("error").await["code"], "invalid_input");
    socket.send(json!({ "type": "dance" })).await;
    assert_eq!(socket.expect("error").await["code"], "invalid_input");
    socket.send(json!({ "no_type": true })).await;
    assert_eq!(socket.expect("error").await["code"], "invalid_input");
    socket.send(json!([1, 2, 3])).await;
    assert_eq!(socket.expect("error").await["code"], "invalid_input");
    socket
        .send_raw(Message::binary(vec![0u8, 159, 146, 150]))
        .await;
    assert_eq!(socket.expect("error").await["code"], "invalid_input");

    // A send without a valid client_id is refused; the error names what it could.
    socket
        .send(json!({ "type": "send", "client_id": "nope", "text": "hi" }))
        .await;
    let error = socket.expect("error").await;
    assert_eq!(error["code"], "invalid_input");
    assert_eq!(error["client_id"], "nope");
    socket.send(json!({ "type": "send", "text": "hi" })).await;
    assert_eq!(socket.expect("error").await["code"], "invalid_input");
    socket.send(json!({ "type": "read", "seq": "seven" })).await;
    assert_eq!(socket.expect("error").await["code"], "invalid_input");
    socket
        .send(json!({ "type": "delete", "chat_id": uuid::Uuid::new_v4() }))
        .await;
    assert_eq!(socket.expect("error").await["code"], "not_found");

    // Text rules: 1-4000 characters after trimming.
    let client_id = socket.say("   \n ").await;
    let error = socket.expect("error").await;
    assert_eq!(
        (error["code"].as_str(), error["client_id"].as_str()),
        (Some("invalid_input"), Some(client_id.to_string().as_str()))
    );
    socket.say(&"가".repeat(4001)).await;
    assert_eq!(socket.expect("error").await["code"], "too_long");
    socket.say(&format!("  {}  ", "가".repeat(4000))).await;
    assert_eq!(socket.expect("ack").await["seq"], 1);

    // After all that, the socket still works.
    socket.say("still open").await;
    assert_eq!(socket.expect("chat").await["seq"], 1);
    assert_eq!(socket.expect("ack").await["seq"], 2);
}

async fn a_frame_over_64_kib_closes_with_1009_and_the_node_keeps_serving(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut big = mina.socket().await;
    let mut partner = joon.socket().await;

    let text = "a".repeat(100 * 1024);
    big.send_raw(Message::text(
        json!({ "type": "send", "client_id": uuid::Uuid::new_v4(), "text": text }).to_string(),
    ))
    .await;
    let frame = big.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1009);

    // The node serves the others, and the same user can come back.
    let mut again = mina.socket().await;
    again.say("back again").await;
    assert_eq!(partner.until("chat").await["text"], "back again");
    assert_eq!(again.until("ack").await["seq"], 1);
}

async fn too_many_frames_are_rate_limited(backend: Backend) {
    let node = spawn_node_with(backend, &["--frame-rate=1", "--frame-burst=3"]).await;
    let (mina, _joon) = couple(&node).await;
    let mut socket = mina.socket().await;
    for _ in 0..4 {
        socket.say("hi").await;
    }
    let mut codes = Vec::new();
    for _ in 0..4 {
        let frame = socket.until_any(&["ack", "error"]).await;
        codes.push(frame["code"].as_str().unwrap_or("ack").to_owned());
    }
    assert_eq!(codes.iter().filter(|c| *c == "ack").count(), 3, "{codes:?}");
    assert!(codes.contains(&"rate_limited".to_owned()), "{codes:?}");
}

/// A fast client is told to slow down, frame by frame, never disconnected as "slow" for the
/// answers to its own frames.
async fn a_flood_of_sends_gets_an_answer_for_each_and_the_socket_stays_open(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut theirs = joon.socket().await;
    let mut mine = mina.socket().await;
    let mut ids = Vec::new();
    for i in 0..300 {
        let client_id = uuid::Uuid::new_v4();
        mine.feed(json!({ "type": "send", "client_id": client_id, "text": format!("flood {i}") }))
            .await;
        ids.push(client_id.to_string());
    }
    mine.flush().await;
    let (mut acks, mut limited) = (0, 0);
    let mut answered = std::collections::HashSet::new();
    while answered.len() < ids.len() {
        let frame = mine.until_any(&["ack", "error"]).await;
        let client_id = frame["client_id"]
            .as_str()
            .expect("the answer names its send");
        assert!(
            answered.insert(client_id.to_owned()),
            "answered twice: {frame}"
        );
        match frame["type"].as_str() {
            Some("ack") => acks += 1,
            _ => {
                assert_eq!(frame["code"], "rate_limited", "{frame}");
                limited += 1;
            }
        }
    }
    assert!(
        acks > 0 && limited > 0,
        "acks {acks}, rate_limited {limited}"
    );
    // Still open, and still chatting once the client slows down.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(mine.outcome("after the flood").await["type"], "ack");
    assert_eq!(
        theirs.until_text("after the flood").await["text"],
        "after the flood"
    );
}

async fn a_flood_of_typing_gets_one_rate_limited_per_window_and_the_socket_stays_open(
    backend: Backend,
) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    for _ in 0..1000 {
        mine.feed(json!({ "type": "typing" })).await;
    }
    mine.flush().await;
    let first = mine.until("error").await;
    assert_eq!(first["code"], "rate_limited", "{first}");
    // The ack of a later send comes after every error the flood caused: count them.
    let client_id = mine.say("still here").await.to_string();
    let mut errors = 1;
    loop {
        let frame = mine.until_any(&["ack", "error"]).await;
        if frame["client_id"] == client_id.as_str() {
            break;
        }
        errors += 1;
    }
    assert!(errors <= 3, "{errors} rate_limited errors for one flood");
}

async fn invalid_utf8_in_a_text_frame_closes_with_1007(backend: Backend) {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let payload = vec![b'"', 0xff, 0xfe, b'"'];
    mine.send_raw(Message::Frame(Frame::message(
        payload,
        OpCode::Data(Data::Text),
        true,
    )))
    .await;
    let close = mine.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1007, "{close:?}");
    // The node serves on.
    assert_eq!(mina.socket().await.hello["type"], "hello");
}

async fn sockets_per_user_are_limited(backend: Backend) {
    let node = spawn_node_with(backend, &["--max-sockets-per-user=2"]).await;
    let (mina, joon) = couple(&node).await;
    let _one = mina.socket().await;
    let mut two = mina.socket().await;
    let (status, body) = mina.try_socket("/ws", None).await.err().expect("refused");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    // The partner's sockets are counted apart.
    let _partner = joon.socket().await;
    // Closing one makes room again.
    two.send_raw(Message::Close(None)).await;
    let _ = two.closed().await;
    let mut tries = 0;
    while mina.try_socket("/ws", None).await.is_err() {
        tries += 1;
        assert!(tries < 50, "the closed socket's place was never freed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A load balancer polls `/readyz`: a stopping node fails it at once but keeps serving (and
/// its sockets open) for the drain delay, so the balancer stops sending before the port closes.
async fn a_stopping_node_says_not_ready_and_serves_on_for_the_drain_delay(backend: Backend) {
    let mut node = spawn_node_with(backend, &["--drain-delay-secs=2"]).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let stopping = node.begin_stop();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let (status, body) = mina.get("/readyz").await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );
    let (status, _) = mina.get("/healthz").await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(mine.outcome("still here").await["type"], "ack");
    let (status, body) = joon
        .try_socket("/ws", None)
        .await
        .err()
        .expect("refused while draining");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );

    let closed = mine.closed().await;
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(1012));
    stopping.await.expect("the node stops");
}

/// A client that stops reading (a phone put in the background, a 4 KiB receive buffer) while
/// its partner sends some 15 MB, and reads again 7 s after the last, finds whole frames in seq order
/// and then the 1013 close that tells it to resume; the node counts the drop.
async fn a_client_that_stops_reading_finds_whole_frames_then_1013_and_is_counted(backend: Backend) {
    use futures_util::{SinkExt, StreamExt};
    use std::time::Duration;

    let node = spawn_node_with(backend, &["--frame-rate=100000", "--frame-burst=100000"]).await;
    let (mina, joon) = couple(&node).await;
    let mut slow = joon.raw_socket("/ws", Some(4096)).await;
    // Through `synced`, then it reads nothing more.
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), slow.next())
            .await
            .expect("the handshake arrives")
            .expect("the socket is open")
            .expect("a valid frame");
        if message.to_text().is_ok_and(|t| t.contains("\"synced\"")) {
            break;
        }
    }
    let mut talker = mina.raw_socket("/ws", None).await;
    let padding = "x".repeat(3000);
    let started = std::time::Instant::now();
    // In windows of 100, each acked before the next: the talker keeps up with its own socket,
    // so only the silent partner falls behind.
    for window in 0..50 {
        for i in 0..100 {
            let text = format!("{} {padding}", window * 100 + i);
            let frame = json!({ "type": "send", "client_id": uuid::Uuid::new_v4(), "text": text });
            talker
                .feed(Message::text(frame.to_string()))
                .await
                .expect("feeding a send");
        }
        talker.flush().await.expect("flushing sends");
        let mut acks = 0;
        while acks < 100 {
            let message = tokio::time::timeout(Duration::from_secs(10), talker.next())
                .await
                .expect("the talker's sends are answered")
                .expect("the talker's socket is open")
                .expect("a valid frame");
            let text = message.to_text().unwrap_or_default();
            assert!(!text.contains("\"error\""), "{text}");
            if text.contains("\"ack\"") {
                acks += 1;
            }
        }
    }
    // Silent for 7 s after the last chat, and 11 s in all: by then the node's write to it
    // has waited past the write timeout (10 s by default), counted from when its buffers
    // filled, early in the stream.
    let sent_in = started.elapsed();
    let silent_for = (sent_in + Duration::from_secs(7)).max(Duration::from_secs(11));
    tokio::time::sleep(silent_for.saturating_sub(sent_in)).await;

    let mut last_seq = 0;
    let close = loop {
        let message = tokio::time::timeout(Duration::from_secs(30), slow.next())
            .await
            .expect("the node ends the socket in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                let frame: serde_json::Value =
                    serde_json::from_str(&text).expect("a whole JSON frame");
                if let Some(seq) = frame["seq"].as_i64() {
                    assert!(seq > last_seq, "seq {seq} after {last_seq}");
                    last_seq = seq;
                }
            }
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                panic!("the stream broke after seq {last_seq} (sent in {sent_in:?}): {e}")
            }
            None => panic!("the stream ended after seq {last_seq} without a close frame"),
        }
    };
    let code = close.map(|c| u16::from(c.code));
    assert_eq!(code, Some(1013), "after seq {last_seq}");
    assert!(last_seq > 0, "some chats arrived before the close");
    assert_eq!(node.slow_client_disconnects(), 1);
}

/// A `delete` waits inside the socket's loop: one that meets a stalled database (its couple's
/// row held by another connection) is answered `unavailable` within the database timeout, not
/// waited out, and the socket serves on; sent again once the database moves, it goes through.
async fn a_delete_that_meets_a_stalled_database_is_answered_unavailable_in_time(backend: Backend) {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    use std::time::{Duration, Instant};

    let node = spawn_node_with(backend, &["--db-timeout-ms=500"]).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    let chat_id = mine.acked("soon gone").await["id"].clone();
    theirs.until_text("soon gone").await;

    let db = sea_orm::Database::connect(node.db.url.as_str())
        .await
        .expect("a connection of the test's own");
    let blocker = db.begin().await.expect("a transaction");
    // Takes the couple's row on Postgres and the write lock on SQLite.
    blocker
        .execute_unprepared("UPDATE couples SET id = id")
        .await
        .expect("holding the couple");
    let asked = Instant::now();
    mine.send(json!({ "type": "delete", "chat_id": chat_id }))
        .await;
    let answer = mine.until("error").await;
    let waited = asked.elapsed();
    assert_eq!(answer["code"], "unavailable", "{answer}");
    assert!(
        waited < Duration::from_secs(2),
        "answered after {waited:?}, the database timeout is 500 ms"
    );
    // The socket still answers while the database is stalled.
    mine.send(json!({ "type": "read", "seq": -1 })).await;
    assert_eq!(mine.until("error").await["code"], "invalid_input");

    blocker.rollback().await.expect("releasing the couple");
    mine.send(json!({ "type": "delete", "chat_id": chat_id }))
        .await;
    let deleted = theirs.until("deleted").await;
    assert_eq!(deleted["chat_id"], chat_id);
}
