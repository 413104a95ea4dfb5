//! Both partners triggering and answering questions at once.

use super::*;

/// Both partners send `text` at the same moment. A send may land before the other's question
/// or be gated by it (`answer_required`); either way the questions come, wherever they fall
/// between the chats. Returns the questions `watcher` saw up to the chats that went through
/// (at least one); a second question could still be on its way, so callers that count
/// questions also count them on the answers page, which lists every one asked.
pub async fn both_say_at_once(
    a: &mut Socket,
    b: &mut Socket,
    watcher: &mut Socket,
    text: &str,
) -> Vec<Value> {
    let (a, b) = tokio::join!(a.outcome(text), b.outcome(text));
    let sent = [a, b].iter().filter(|r| r["type"] == "ack").count();
    assert!(sent >= 1, "{text}: neither send went through");
    let (mut chats, mut questions) = (0, Vec::new());
    while chats < sent || questions.is_empty() {
        let frame = watcher.until_any(&["chat", "question"]).await;
        match frame["type"].as_str() {
            Some("chat") => chats += 1,
            _ => questions.push(frame),
        }
    }
    questions
}

/// Both partners answer `question_id`; the watcher sees two `answered` frames and no second
/// question.
pub async fn both_answer(
    a: &mut Socket,
    b: &mut Socket,
    watcher: &mut Socket,
    question_id: &Value,
) {
    for socket in [a, b] {
        socket
            .send(json!({ "type": "answer", "question_id": question_id, "text": "yes" }))
            .await;
    }
    for _ in 0..2 {
        let frame = watcher.until_any(&["answered", "question"]).await;
        assert_eq!(frame["type"], "answered", "a second question: {frame}");
    }
}
