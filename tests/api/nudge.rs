//! "Thinking of you": a one-tap nudge reaches the partner's sockets live, never the sender's
//! own, is not stored, and is limited to a few per minute.

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

both_backends!(
    a_nudge_reaches_the_partners_sockets_live_and_not_the_senders_others,
    the_nudge_past_the_limit_is_rate_limited_and_the_socket_stays_open,
);

/// Frames a socket gets up to and including the next chat.
async fn frames_until_chat(socket: &mut Socket) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = socket.next().await;
        let done = frame["type"] == "chat";
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

async fn a_nudge_reaches_the_partners_sockets_live_and_not_the_senders_others(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut laptop = mina.socket().await;
    let mut phone = mina.socket().await;
    let mut j = joon.socket().await;

    laptop.send(json!({ "type": "nudge" })).await;
    let nudge = j.until("nudge").await;
    assert_eq!(nudge["user_id"], mina.id.to_string());
    // Mina's phone hears nothing of it: the next thing it gets is Joon's chat.
    j.say("me too").await;
    let seen = frames_until_chat(&mut phone).await;
    assert!(seen.iter().all(|f| f["type"] != "nudge"), "{seen:?}");
    let seen = frames_until_chat(&mut laptop).await;
    assert!(
        seen.iter()
            .all(|f| f["type"] != "nudge" && f["type"] != "error"),
        "{seen:?}"
    );

    // Not stored: a socket that resumes from the start replays the chat, not the nudge.
    let later = joon.socket_at("/ws?after=0").await;
    assert_eq!(later.replay.len(), 1, "{:?}", later.replay);
    assert_eq!(later.replay[0]["type"], "chat");
}

async fn the_nudge_past_the_limit_is_rate_limited_and_the_socket_stays_open(backend: Backend) {
    let node = spawn_node_with(backend, &["--nudges-per-minute=2"]).await;
    let (mina, joon) = couple(&node).await;
    let mut m = mina.socket().await;
    let mut j = joon.socket().await;
    for _ in 0..3 {
        m.send(json!({ "type": "nudge" })).await;
    }
    let refused = m.until("error").await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    // The socket is still good for chatting, and Joon got exactly the two.
    m.acked("still here").await;
    let seen = frames_until_chat(&mut j).await;
    let nudges = seen.iter().filter(|f| f["type"] == "nudge").count();
    assert_eq!(nudges, 2, "{seen:?}");
}
