//! The conversation: a chat reaches both partners and every tab, once, in one order; retries
//! create nothing; only the sender deletes; a resuming client misses nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::support::*;

both_backends!(
    a_chat_reaches_the_partner_and_the_senders_second_tab,
    the_sender_gets_the_ack_before_the_chat,
    a_second_send_with_the_same_client_id_creates_nothing,
    only_the_sender_may_delete_a_chat_and_both_see_it_go,
    a_client_resuming_with_after_gets_exactly_what_it_missed,
    a_fresh_connect_replays_the_latest_fifty_chats_oldest_first,
    seqs_are_gapless_and_in_one_order_for_both_when_both_type_at_once,
    typing_and_read_marks_reach_the_partner_only,
    the_partner_is_seen_coming_online_and_going_offline,
    older_history_pages_backwards_without_deleted_chats,
    a_silent_chat_reaches_the_partner_marked_silent_and_a_plain_one_does_not,
    a_read_mark_from_an_old_couple_never_moves_the_new_couples,
);

async fn a_chat_reaches_the_partner_and_the_senders_second_tab(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut laptop = mina.socket().await;
    let mut phone = mina.socket().await;
    let mut partner = joon.socket().await;

    let client_id = laptop.say("안녕, 오늘 저녁 뭐 먹을까?").await;
    for socket in [&mut laptop, &mut phone, &mut partner] {
        let chat = socket.until("chat").await;
        assert_eq!(chat["text"], "안녕, 오늘 저녁 뭐 먹을까?");
        assert_eq!(chat["sender_id"], mina.id.to_string());
        assert_eq!(chat["client_id"], client_id.to_string());
        assert_eq!(chat["seq"], 1);
        assert_eq!(chat["file"], Value::Null);
        assert!(chat["sent_at"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(
            chat["id"]
                .as_str()
                .and_then(|s| s.parse::<Uuid>().ok())
                .is_some()
        );
    }
}

async fn the_sender_gets_the_ack_before_the_chat(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let mut socket = mina.socket().await;
    let client_id = socket.say("first").await;
    let ack = socket.expect("ack").await;
    assert_eq!(ack["client_id"], client_id.to_string());
    assert_eq!(ack["seq"], 1);
    let chat = socket.expect("chat").await;
    assert_eq!(chat["id"], ack["id"]);
}

async fn a_second_send_with_the_same_client_id_creates_nothing(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut socket = mina.socket().await;
    let mut partner = joon.socket().await;

    let client_id = Uuid::new_v4();
    let send = json!({ "type": "send", "client_id": client_id, "text": "only once" });
    socket.send(send.clone()).await;
    let first = socket.until("ack").await;

    // A retry after a reconnect, on a new socket: same ack, nothing new.
    drop(socket);
    let mut retry = mina.socket().await;
    retry.send(send).await;
    let second = retry.until("ack").await;
    assert_eq!(first, second);

    // The partner got exactly one chat: the next one they see is the marker.
    retry.say("marker").await;
    assert_eq!(partner.until("chat").await["text"], "only once");
    let next = partner.until("chat").await;
    assert_eq!(
        (next["text"].as_str(), next["seq"].as_i64()),
        (Some("marker"), Some(2))
    );
    let (_, history) = joon.get("/api/chats").await;
    assert_eq!(history["chats"].as_array().map(Vec::len), Some(2));
}

async fn only_the_sender_may_delete_a_chat_and_both_see_it_go(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;

    mine.say("oops, wrong chat").await;
    let chat = theirs.until("chat").await;
    let chat_id = chat["id"].as_str().expect("an id").to_owned();

    theirs
        .send(json!({ "type": "delete", "chat_id": chat_id }))
        .await;
    let error = theirs.until("error").await;
    assert_eq!(error["code"], "forbidden");

    mine.send(json!({ "type": "delete", "chat_id": chat_id }))
        .await;
    for socket in [&mut mine, &mut theirs] {
        let deleted = socket.until("deleted").await;
        assert_eq!(deleted["chat_id"], chat_id.as_str());
        assert_eq!(deleted["seq"], 2);
    }
    // Deleting it again finds nothing.
    mine.send(json!({ "type": "delete", "chat_id": chat_id }))
        .await;
    assert_eq!(mine.until("error").await["code"], "not_found");
    let (_, history) = joon.get("/api/chats").await;
    assert_eq!(history["chats"].as_array().map(Vec::len), Some(0));
}

async fn a_client_resuming_with_after_gets_exactly_what_it_missed(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;

    mine.say("one").await;
    mine.say("two").await;
    let seen = theirs.until("chat").await;
    assert_eq!(seen["seq"], 1);
    let second = theirs.until("chat").await;
    assert_eq!(second["seq"], 2);
    drop(theirs); // Joon walks into a tunnel, having seen up to seq 2.

    mine.say("three").await;
    let three = mine.until_text("three").await;
    mine.send(json!({ "type": "delete", "chat_id": second["id"] }))
        .await;
    mine.until("deleted").await;
    mine.say("four").await;
    mine.until_text("four").await;

    let back = joon.socket_at("/ws?after=2").await;
    let seqs: Vec<i64> = back
        .replay
        .iter()
        .filter_map(|f| f["seq"].as_i64())
        .collect();
    assert_eq!(seqs, vec![3, 4, 5], "replay: {:?}", back.replay);
    assert_eq!(back.replay[0]["type"], "chat");
    assert_eq!(back.replay[0]["id"], three["id"]);
    assert_eq!(back.replay[1]["type"], "deleted");
    assert_eq!(back.replay[1]["chat_id"], second["id"]);
    assert_eq!(back.replay[2]["text"], "four");
    assert_eq!(back.synced["last_seq"], 5);
    assert_eq!(back.hello["last_seq"], 5);

    // Nothing is replayed twice: the next live chat is seq 6, right after the replay.
    let mut back = back;
    mine.say("five").await;
    let next = back.until("chat").await;
    assert_eq!(
        (next["text"].as_str(), next["seq"].as_i64()),
        (Some("five"), Some(6))
    );

    // Resuming from a seq newer than the couple's (a stale client) replays nothing.
    let ahead = joon.socket_at("/ws?after=99").await;
    assert!(ahead.replay.is_empty());
    assert_eq!(ahead.synced["last_seq"], 6);
    let refused = joon
        .try_socket("/ws?after=-1", None)
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.0, 400);
}

async fn a_fresh_connect_replays_the_latest_fifty_chats_oldest_first(backend: Backend) {
    let node = spawn_node_with(backend, &["--frame-burst=200"]).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    for i in 1..=55 {
        mine.say(&format!("chat {i}")).await;
        mine.until("ack").await;
    }
    // Delete chat 55: the replay shows chats 5..=54, the 50 latest that still exist.
    let last = mine.until_text("chat 55").await;
    mine.send(json!({ "type": "delete", "chat_id": last["id"] }))
        .await;
    mine.until("deleted").await;

    let fresh = joon.socket().await;
    let texts: Vec<&str> = fresh
        .replay
        .iter()
        .filter_map(|f| f["text"].as_str())
        .collect();
    assert_eq!(texts.len(), 50);
    assert_eq!(texts[0], "chat 5");
    assert_eq!(texts[49], "chat 54");
    assert!(fresh.replay.iter().all(|f| f["type"] == "chat"));
    assert_eq!(fresh.synced["last_seq"], 56);
}

async fn seqs_are_gapless_and_in_one_order_for_both_when_both_type_at_once(backend: Backend) {
    let node = spawn_node_with(backend, &["--frame-burst=200"]).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    const EACH: usize = 40;

    for i in 0..EACH {
        mine.say(&format!("m{i}")).await;
        theirs.say(&format!("j{i}")).await;
    }
    let seen_by_mina = chats(&mut mine, 2 * EACH).await;
    let seen_by_joon = chats(&mut theirs, 2 * EACH).await;
    let expected: Vec<i64> = (1..=(2 * EACH) as i64).collect();
    assert_eq!(
        seen_by_mina.iter().map(|c| c.0).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(seen_by_mina, seen_by_joon);
    // Each sender's chats keep the order they were sent in.
    let mine_only: Vec<&str> = seen_by_mina
        .iter()
        .map(|c| c.1.as_str())
        .filter(|t| t.starts_with('m'))
        .collect();
    let wanted: Vec<String> = (0..EACH).map(|i| format!("m{i}")).collect();
    assert_eq!(
        mine_only,
        wanted.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

/// The next `n` chats a socket receives, as (seq, text).
async fn chats(socket: &mut Socket, n: usize) -> Vec<(i64, String)> {
    let mut chats = Vec::with_capacity(n);
    while chats.len() < n {
        let frame = socket.until("chat").await;
        let seq = frame["seq"].as_i64().unwrap_or(-1);
        chats.push((seq, frame["text"].as_str().unwrap_or_default().to_owned()));
    }
    chats
}

async fn typing_and_read_marks_reach_the_partner_only(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut other_tab = mina.socket().await;
    let mut theirs = joon.socket().await;

    mine.send(json!({ "type": "typing" })).await;
    let typing = theirs.until("typing").await;
    assert_eq!(typing["user_id"], mina.id.to_string());

    mine.say("did you see this?").await;
    theirs.until("chat").await;
    theirs.send(json!({ "type": "read", "seq": 1 })).await;
    let read = mine.until("read").await;
    assert_eq!(
        (read["user_id"].as_str(), read["seq"].as_i64()),
        (Some(joon.id.to_string().as_str()), Some(1))
    );

    // A read mark beyond the conversation is refused; one going backwards is ignored.
    theirs.send(json!({ "type": "read", "seq": 7 })).await;
    assert_eq!(theirs.until("error").await["code"], "invalid_input");

    // Mina's own tab saw the chat but neither her typing nor a read of her own.
    let frames = [other_tab.next().await, other_tab.next().await];
    assert_eq!(frames[0]["type"], "presence", "{frames:?}");
    assert_eq!(frames[1]["type"], "chat", "{frames:?}");

    // The read mark is stored: a new socket's hello carries it.
    let fresh = mina.socket().await;
    assert_eq!(fresh.hello["partner_read_seq"], 1);
}

async fn the_partner_is_seen_coming_online_and_going_offline(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    assert_eq!(mine.hello["partner_online"], false);

    let theirs = joon.socket().await;
    assert_eq!(theirs.hello["partner_online"], true);
    let online = mine.until("presence").await;
    assert_eq!(
        (online["user_id"].as_str(), online["online"].as_bool()),
        (Some(joon.id.to_string().as_str()), Some(true))
    );

    // A second tab is no news; closing one of two is none either; closing the last is.
    let second = joon.socket().await;
    drop(second);
    drop(theirs);
    let offline = mine.until("presence").await;
    assert_eq!(offline["online"], false, "{offline}");
}

async fn older_history_pages_backwards_without_deleted_chats(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut acks = Vec::new();
    for i in 1..=5 {
        mine.say(&format!("chat {i}")).await;
        acks.push(mine.until("ack").await);
    }
    mine.send(json!({ "type": "delete", "chat_id": acks[2]["id"] }))
        .await;
    mine.until("deleted").await;

    let (status, page) = joon.get("/api/chats?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let seqs = |page: &Value| -> Vec<i64> {
        page["chats"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["seq"].as_i64()).collect())
            .unwrap_or_default()
    };
    assert_eq!(seqs(&page), vec![5, 4]);
    let (_, page) = joon.get("/api/chats?before=4&limit=2").await;
    assert_eq!(seqs(&page), vec![2, 1]);
    let (_, page) = joon.get("/api/chats?before=1").await;
    assert_eq!(seqs(&page), Vec::<i64>::new());
    let (status, body) = joon.get("/api/chats?limit=0").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_input"))
    );
    let (status, body) = joon.get("/api/chats?before=abc").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
}

async fn a_silent_chat_reaches_the_partner_marked_silent_and_a_plain_one_does_not(
    backend: Backend,
) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;

    let quiet = Uuid::new_v4();
    mine.send(json!({ "type": "send", "client_id": quiet, "text": "shh", "silent": true }))
        .await;
    let chat = theirs.until("chat").await;
    assert_eq!(chat["text"], "shh");
    assert_eq!(chat["silent"], true, "{chat}");

    mine.say("hello!").await;
    let chat = theirs.until("chat").await;
    assert_eq!(chat["text"], "hello!");
    assert!(chat.get("silent").is_none(), "{chat}");
}

/// A socket of a user's old couple may still send a read mark on its way out (the break-up
/// closes it, the mark is queued already): stored, it must not move the user's mark in the
/// couple they are in now. The store is asked directly, as the committer asks it.
async fn a_read_mark_from_an_old_couple_never_moves_the_new_couples(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let couple_id = mina.couple_id().await;
    let old_couple = Uuid::now_v7();
    let db = sea_orm::Database::connect(&node.db.url)
        .await
        .expect("the test database");

    let moved = duet::store::sends::mark_read(&db, &[(mina.id, old_couple, 5)])
        .await
        .expect("storing the mark");
    assert_eq!(moved, vec![]);
    assert_eq!(joon.socket().await.hello["partner_read_seq"], 0);

    let moved = duet::store::sends::mark_read(&db, &[(mina.id, couple_id, 3)])
        .await
        .expect("storing the mark");
    assert_eq!(moved, vec![(mina.id, couple_id, 3)]);
    assert_eq!(joon.socket().await.hello["partner_read_seq"], 3);
}
