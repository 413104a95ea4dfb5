//! The everyday gestures of a conversation: replying to a chat, reacting to one, editing
//! one's own. Each is an event of the couple's log with the promises of a chat: both see it
//! live, a resuming client gets it once in order, the export keeps it.

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::export::{entry, export, unzip};
use crate::support::*;

both_backends!(
    a_reply_quotes_the_original_and_shows_when_it_was_deleted_since,
    a_reply_to_another_couples_chat_or_to_nothing_is_not_found,
    a_reaction_reaches_both_and_replaces_the_same_partners_earlier_one,
    the_same_reaction_again_creates_nothing_and_a_reaction_is_one_emoji,
    a_reaction_or_an_edit_of_another_couples_chat_is_not_found,
    only_ones_own_chat_is_edited_and_the_partner_can_read_its_earlier_versions,
    an_edit_is_allowed_only_within_the_window_and_the_count,
    an_edit_adding_a_keyword_asks_its_question_once_and_an_owed_question_blocks_an_edit,
    search_and_our_words_follow_the_edit,
    a_deleted_chats_reactions_and_edits_go_with_it,
    a_resuming_client_gets_every_reaction_and_edit_exactly_once_in_order,
    the_export_holds_replies_reactions_and_edit_histories,
);

/// Sends a gesture frame with a fresh client_id and returns what answers it (its `ack` or
/// `error`), skipping other frames.
async fn answer(socket: &mut Socket, mut frame: Value) -> Value {
    let client_id = Uuid::new_v4().to_string();
    frame["client_id"] = json!(client_id);
    socket.send(frame).await;
    loop {
        let frame = socket.until_any(&["ack", "error"]).await;
        if frame["client_id"] == client_id.as_str() {
            return frame;
        }
    }
}

async fn react(socket: &mut Socket, chat_id: &Value, emoji: Value) -> Value {
    answer(
        socket,
        json!({ "type": "react", "chat_id": chat_id, "emoji": emoji }),
    )
    .await
}

async fn edit(socket: &mut Socket, chat_id: &Value, text: &str) -> Value {
    answer(
        socket,
        json!({ "type": "edit", "chat_id": chat_id, "text": text }),
    )
    .await
}

async fn reply(socket: &mut Socket, reply_to: &Value, text: &str) -> Value {
    answer(
        socket,
        json!({ "type": "send", "text": text, "reply_to": reply_to }),
    )
    .await
}

/// A second couple on the node; returns one of its partners.
async fn another_couple(node: &TestNode) -> User {
    let sora = User::signup(node, "sora").await;
    let hana = User::signup(node, "hana").await;
    pair(&sora, &hana).await;
    sora
}

fn code(frame: &Value) -> &str {
    assert_eq!(frame["type"], "error", "{frame}");
    frame["code"].as_str().unwrap_or_default()
}

/// The newest chats of the couple as the history API shows them, newest first.
async fn history(user: &User) -> Vec<Value> {
    let (status, body) = user.get("/api/chats").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["chats"].as_array().cloned().unwrap_or_default()
}

fn chat_with<'a>(chats: &'a [Value], id: &Value) -> &'a Value {
    chats
        .iter()
        .find(|c| c["id"] == *id)
        .unwrap_or_else(|| panic!("no chat {id} in {chats:?}"))
}

async fn a_reply_quotes_the_original_and_shows_when_it_was_deleted_since(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (mut m, mut j) = (mina.socket().await, joon.socket().await);
    let original = m.acked("내일 산책 갈래?").await;
    let id = original["id"].clone();

    let ack = reply(&mut j, &id, "좋아!").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    for socket in [&mut m, &mut j] {
        let chat = socket.until_text("좋아!").await;
        assert_eq!(chat["reply_to"]["id"], id);
        assert_eq!(chat["reply_to"]["seq"], original["seq"]);
        assert_eq!(chat["reply_to"]["sender_id"], mina.id.to_string());
        assert_eq!(chat["reply_to"]["text"], "내일 산책 갈래?");
        assert!(chat["reply_to"].get("deleted").is_none(), "{chat}");
    }
    // A long original is quoted by its beginning.
    let long = "가".repeat(300);
    let long_ack = m.acked(&long).await;
    reply(&mut j, &long_ack["id"], "응").await;
    let quoted = j.until_text("응").await;
    assert_eq!(quoted["reply_to"]["text"], "가".repeat(100));

    // The original is deleted: the reply stays, its quote says so and shows nothing of it.
    m.send(json!({ "type": "delete", "chat_id": id })).await;
    j.until("deleted").await;
    let chats = history(&joon).await;
    let answer = chats.iter().find(|c| c["text"] == "좋아!").unwrap();
    assert_eq!(answer["reply_to"]["deleted"], true, "{answer}");
    assert_eq!(answer["reply_to"]["text"], "");
    // A fresh connect's replay shows it the same way.
    let fresh = joon.socket().await;
    let replayed = fresh.replay.iter().find(|c| c["text"] == "좋아!").unwrap();
    assert_eq!(replayed["reply_to"]["deleted"], true, "{replayed}");
    // A deleted chat cannot be replied to any more.
    assert_eq!(code(&reply(&mut j, &id, "늦었다").await), "not_found");
}

async fn a_reply_to_another_couples_chat_or_to_nothing_is_not_found(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let other = another_couple(&node).await;
    let mut theirs = other.socket().await;
    let foreign = theirs.acked("우리끼리 얘기").await;
    let mut m = mina.socket().await;

    let refused = reply(&mut m, &foreign["id"], "엿보기").await;
    assert_eq!(code(&refused), "not_found");
    let refused = reply(&mut m, &json!(Uuid::now_v7()), "허공에").await;
    assert_eq!(code(&refused), "not_found");
    // Nothing was written: the next chat takes seq 1.
    assert_eq!(m.acked("첫 마디").await["seq"], 1);
}

async fn a_reaction_reaches_both_and_replaces_the_same_partners_earlier_one(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (mut m, mut j) = (mina.socket().await, joon.socket().await);
    let chat = m.acked("오늘 하늘 예쁘다").await;
    let id = chat["id"].clone();

    let ack = react(&mut j, &id, json!("❤️")).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["id"], id);
    assert_eq!(ack["seq"], 2);
    for socket in [&mut m, &mut j] {
        let reacted = socket.until("reacted").await;
        assert_eq!(reacted["seq"], 2);
        assert_eq!(reacted["chat_id"], id);
        assert_eq!(reacted["user_id"], joon.id.to_string());
        assert_eq!(reacted["emoji"], "❤️");
    }
    // Joon changes his mind; Mina reacts to her own chat too.
    assert_eq!(react(&mut j, &id, json!("😂")).await["seq"], 3);
    assert_eq!(react(&mut m, &id, json!("👍🏽")).await["seq"], 4);
    let chats = history(&mina).await;
    let reactions = &chat_with(&chats, &id)["reactions"];
    assert_eq!(
        reactions,
        &json!([
            { "user_id": joon.id, "emoji": "😂" },
            { "user_id": mina.id, "emoji": "👍🏽" },
        ])
    );
    // Taking it away: null (or "") leaves only Mina's.
    let removed = react(&mut j, &id, Value::Null).await;
    assert_eq!(removed["seq"], 5);
    let gone = m.until("reacted").await;
    let gone = if gone["seq"] == 5 {
        gone
    } else {
        m.until("reacted").await
    };
    assert_eq!(gone["emoji"], Value::Null, "{gone}");
    let chats = history(&joon).await;
    assert_eq!(
        chat_with(&chats, &id)["reactions"],
        json!([{ "user_id": mina.id, "emoji": "👍🏽" }])
    );
    assert_eq!(react(&mut m, &id, json!("")).await["seq"], 6);
    let chats = history(&joon).await;
    assert!(chat_with(&chats, &id).get("reactions").is_none());
}

async fn the_same_reaction_again_creates_nothing_and_a_reaction_is_one_emoji(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (mut m, mut j) = (mina.socket().await, joon.socket().await);
    let chat = m.acked("오늘 고생했어").await;
    let id = chat["id"].clone();

    let first = react(&mut j, &id, json!("🥰")).await;
    assert_eq!(first["seq"], 2);
    // A retry (a lost ack, a reconnect) is the same ack, and no event.
    let again = react(&mut j, &id, json!("🥰")).await;
    assert_eq!(again["type"], "ack");
    assert_eq!(again["seq"], 2);
    // Taking away what is not there creates nothing either.
    assert_eq!(react(&mut m, &id, Value::Null).await["seq"], chat["seq"]);

    for not_one in ["ㅋㅋ", "🥰🥰", "<3", "a"] {
        let refused = react(&mut j, &id, json!(not_one)).await;
        assert_eq!(code(&refused), "invalid_input", "{not_one}");
    }
    let refused = react(&mut j, &id, json!(7)).await;
    assert_eq!(code(&refused), "invalid_input");
    // The log holds the chat and one reaction: the next event is seq 3.
    assert_eq!(m.acked("다음").await["seq"], 3);
}

async fn a_reaction_or_an_edit_of_another_couples_chat_is_not_found(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let other = another_couple(&node).await;
    let mut theirs = other.socket().await;
    let foreign = theirs.acked("남의 대화").await;
    let mut m = mina.socket().await;

    assert_eq!(
        code(&react(&mut m, &foreign["id"], json!("❤️")).await),
        "not_found"
    );
    assert_eq!(
        code(&edit(&mut m, &foreign["id"], "바꿔치기").await),
        "not_found"
    );
    let nothing = json!(Uuid::now_v7());
    assert_eq!(
        code(&react(&mut m, &nothing, json!("❤️")).await),
        "not_found"
    );
    assert_eq!(code(&edit(&mut m, &nothing, "없음").await), "not_found");
    let chats = history(&other).await;
    assert_eq!(chats[0]["text"], "남의 대화");
    assert!(chats[0].get("reactions").is_none());
    assert!(chats[0].get("edits").is_none());
}

async fn only_ones_own_chat_is_edited_and_the_partner_can_read_its_earlier_versions(
    backend: Backend,
) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (mut m, mut j) = (mina.socket().await, joon.socket().await);
    let chat = m.acked("내일 7시에 만나").await;
    let id = chat["id"].clone();

    assert_eq!(
        code(&edit(&mut j, &id, "내일 6시에 만나").await),
        "forbidden"
    );
    let ack = edit(&mut m, &id, "  내일 8시에 만나  ").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["seq"], 2);
    for socket in [&mut m, &mut j] {
        let edited = socket.until("edited").await;
        assert_eq!(edited["seq"], 2);
        assert_eq!(edited["chat_id"], id);
        assert_eq!(edited["user_id"], mina.id.to_string());
        assert_eq!(edited["text"], "내일 8시에 만나");
        assert!(
            edited["edited_at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
    }
    // The same text again changes nothing.
    assert_eq!(edit(&mut m, &id, "내일 8시에 만나").await["seq"], 2);
    assert_eq!(code(&edit(&mut m, &id, "   ").await), "invalid_input");
    assert_eq!(
        code(&edit(&mut m, &id, &"x".repeat(4001)).await),
        "too_long"
    );
    edit(&mut m, &id, "내일 9시!").await;

    let chats = history(&joon).await;
    let shown = chat_with(&chats, &id);
    assert_eq!(shown["text"], "내일 9시!");
    assert_eq!(shown["edits"], 2);
    assert_eq!(shown["seq"], chat["seq"], "an edit keeps the chat's place");
    let (status, body) = joon
        .get(&format!("/api/chats/{}/versions", id.as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let texts: Vec<&str> = body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["내일 7시에 만나", "내일 8시에 만나", "내일 9시!"]);
    let other = another_couple(&node).await;
    let (status, _) = other
        .get(&format!("/api/chats/{}/versions", id.as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn an_edit_is_allowed_only_within_the_window_and_the_count(backend: Backend) {
    let node = spawn_node_with(backend, &["--max-edits=2", "--edit-window-secs=2"]).await;
    let (mina, _joon) = couple(&node).await;
    let mut m = mina.socket().await;
    let chat = m.acked("하나").await;
    let id = chat["id"].clone();
    assert_eq!(edit(&mut m, &id, "둘").await["type"], "ack");
    assert_eq!(edit(&mut m, &id, "셋").await["type"], "ack");
    let refused = edit(&mut m, &id, "넷").await;
    assert_eq!(code(&refused), "forbidden", "{refused}");

    let later = m.acked("나중").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let refused = edit(&mut m, &later["id"], "너무 늦게").await;
    assert_eq!(code(&refused), "forbidden", "{refused}");
    let chats = history(&mina).await;
    assert_eq!(chat_with(&chats, &id)["text"], "셋");
    assert_eq!(chat_with(&chats, &later["id"])["text"], "나중");
}

async fn an_edit_adding_a_keyword_asks_its_question_once_and_an_owed_question_blocks_an_edit(
    backend: Backend,
) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (mut m, mut j) = (mina.socket().await, joon.socket().await);
    let chat = m.acked("오늘 뭐 할까").await;
    let id = chat["id"].clone();

    assert_eq!(edit(&mut m, &id, "오늘 여행 갈까").await["type"], "ack");
    let question = j.until("question").await;
    assert_eq!(question["keyword"], "여행");
    assert_eq!(
        question["seq"], 3,
        "the question comes right after the edit"
    );
    // Both owe it now: an edit is gated like a chat, for both.
    let blocked = edit(&mut m, &id, "오늘 여행 가자").await;
    assert_eq!(code(&blocked), "answer_required");
    assert_eq!(blocked["question_id"], question["question_id"]);
    assert_eq!(code(&j.outcome("응").await), "answer_required");
    let mut watcher = mina.socket().await;
    // A socket opened while a question is owed is shown it after its replay.
    watcher.until("question").await;
    both_answer(&mut m, &mut j, &mut watcher, &question["question_id"]).await;

    // Saying the keyword again in an edit asks nothing new.
    assert_eq!(edit(&mut m, &id, "오늘 여행 가자").await["type"], "ack");
    let edited = watcher.until("edited").await;
    assert_eq!(edited["text"], "오늘 여행 가자");
    assert_eq!(m.acked("좋아").await["type"], "ack");
    let (_, page) = joon.get("/api/answers").await;
    assert_eq!(page["answers"].as_array().map(Vec::len), Some(1), "{page}");
}

async fn search_and_our_words_follow_the_edit(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut m = mina.socket().await;
    let counted = m.acked("산책 가자 산책").await;
    // Counted before the edit (a look at our words counts what was said so far)...
    let (_, words) = joon.get("/api/words").await;
    assert!(words.to_string().contains("산책"), "{words}");
    edit(&mut m, &counted["id"], "피크닉 가자").await;
    // ...and one not counted yet when it is edited.
    let fresh = m.acked("구름 구름").await;
    edit(&mut m, &fresh["id"], "노을 노을").await;

    let (_, words) = joon.get("/api/words").await;
    let count = |word: &str| {
        words["words"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["word"] == word)
            .map(|w| w["count"].as_i64().unwrap())
    };
    assert_eq!(count("산책"), None, "{words}");
    assert_eq!(count("구름"), None, "{words}");
    assert_eq!(count("피크닉"), Some(1), "{words}");
    assert_eq!(count("노을"), Some(2), "{words}");

    let (status, found) = joon.get("/api/chats/search?q=%EC%82%B0%EC%B1%85").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["chats"], json!([]), "the old text is not found");
    let (_, found) = joon
        .get("/api/chats/search?q=%ED%94%BC%ED%81%AC%EB%8B%89")
        .await;
    assert_eq!(found["chats"][0]["id"], counted["id"]);
}

async fn a_deleted_chats_reactions_and_edits_go_with_it(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (mut m, mut j) = (mina.socket().await, joon.socket().await);
    let chat = m.acked("비밀 하나").await;
    let id = chat["id"].clone();
    edit(&mut m, &id, "비밀 둘").await;
    react(&mut j, &id, json!("😮")).await;
    m.send(json!({ "type": "delete", "chat_id": id })).await;
    j.until("deleted").await;

    let path = format!("/api/chats/{}/versions", id.as_str().unwrap());
    assert_eq!(joon.get(&path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(code(&react(&mut j, &id, json!("❤️")).await), "not_found");
    assert_eq!(code(&edit(&mut m, &id, "되살리기").await), "not_found");
    // Nothing of its texts or reactions is left in the database.
    let db = Database::connect(&node.db.url).await.unwrap();
    let backend = db.get_database_backend();
    let left = |sql: &str| Statement::from_string(backend, sql.to_owned());
    let reactions = db
        .query_one_raw(left("SELECT COUNT(*) AS n FROM reactions"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reactions.try_get::<i64>("", "n").unwrap(), 0);
    let texts = db
        .query_one_raw(left(
            "SELECT COUNT(*) AS n FROM events WHERE text IS NOT NULL",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(texts.try_get::<i64>("", "n").unwrap(), 0);
    let chat_row = db
        .query_one_raw(left("SELECT text, first_text FROM chats"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(chat_row.try_get::<String>("", "text").unwrap(), "");
    assert_eq!(
        chat_row
            .try_get::<Option<String>>("", "first_text")
            .unwrap(),
        None
    );
    // A replay from the start passes its events without its words.
    let replay = joon.socket_at("/ws?after=0").await.replay;
    let kinds: Vec<&str> = replay.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["chat", "edited", "reacted", "deleted"]);
    assert!(!serde_json::to_string(&replay).unwrap().contains("비밀"));
}

async fn a_resuming_client_gets_every_reaction_and_edit_exactly_once_in_order(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut m = mina.socket().await;
    let first = m.acked("하나").await;
    let seen = first["seq"].as_i64().unwrap();
    // Joon is away while this happens.
    let second = m.acked("둘").await;
    edit(&mut m, &first["id"], "하나!").await;
    react(&mut m, &second["id"], json!("🙏")).await;
    reply(&mut m, &first["id"], "셋").await;
    react(&mut m, &second["id"], Value::Null).await;

    let back = joon.socket_at(&format!("/ws?after={seen}")).await;
    let got: Vec<(i64, &str)> = back
        .replay
        .iter()
        .map(|f| (f["seq"].as_i64().unwrap(), f["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (2, "chat"),
            (3, "edited"),
            (4, "reacted"),
            (5, "chat"),
            (6, "reacted")
        ]
    );
    assert_eq!(back.replay[1]["text"], "하나!");
    assert_eq!(back.replay[2]["emoji"], "🙏");
    assert_eq!(back.replay[3]["reply_to"]["text"], "하나!");
    assert_eq!(back.replay[4]["emoji"], Value::Null);
    assert_eq!(back.synced["last_seq"], 6);
}

async fn the_export_holds_replies_reactions_and_edit_histories(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (mut m, mut j) = (mina.socket().await, joon.socket().await);
    let first = m.acked("첫 번째").await;
    edit(&mut m, &first["id"], "첫 번째 (고침)").await;
    react(&mut j, &first["id"], json!("❤️")).await;
    reply(&mut j, &first["id"], "답장").await;

    let response = export(&joon).await;
    assert_eq!(response.status(), StatusCode::OK);
    let entries = unzip(response.bytes().await.unwrap().to_vec()).await;
    let manifest: Value = serde_json::from_slice(entry(&entries, "manifest.json")).unwrap();
    assert_eq!(manifest["version"], 2);
    let lines: Vec<Value> = std::str::from_utf8(entry(&entries, "chats.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["text"], "첫 번째 (고침)");
    assert_eq!(lines[0]["edits"], 1);
    let versions: Vec<&str> = lines[0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["text"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["첫 번째", "첫 번째 (고침)"]);
    assert_eq!(
        lines[0]["reactions"],
        json!([{ "user_id": joon.id, "emoji": "❤️" }])
    );
    assert_eq!(lines[1]["reply_to"]["id"], first["id"]);
    assert!(lines[1].get("versions").is_none());
}

/// On Postgres a batch of plain sends is one statement holding only the parts its sends
/// need, so each mix of chats, replies, reactions and edits is its own statement: every one
/// of them writes what the full rules would, and numbers the sends in order.
#[tokio::test]
async fn every_mix_of_gestures_in_one_batch_is_written_by_the_one_statement() {
    use duet::store::sends::{EditRule, Plain, PlainChat, PlainEdit, PlainReaction, append_plain};

    let node = spawn_node(Backend::Postgres).await;
    let (mina, joon) = couple(&node).await;
    let couple_id = mina.couple_id().await;
    let mut m = mina.socket().await;
    let db = Database::connect(&node.db.url)
        .await
        .expect("the test database");
    let rule = EditRule {
        sent_since: chrono::Utc::now() - chrono::Duration::days(1),
        max_edits: 100,
    };
    let last_seq = async || -> i64 {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT last_seq FROM couples WHERE id = $1",
                [couple_id.into()],
            ))
            .await
            .expect("the couple's row")
            .expect("the couple");
        row.try_get::<i64>("", "last_seq").expect("last_seq")
    };

    for mix in 1..16u8 {
        let (chat, reply, reaction, edit) =
            (mix & 1 != 0, mix & 2 != 0, mix & 4 != 0, mix & 8 != 0);
        if !(reply || reaction || edit) {
            continue;
        }
        let said = format!("mix {mix}");
        let target = m.acked(&said).await;
        let target_id: Uuid = target["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("id");
        let edited = format!("mix {mix}, edited");
        let emoji = if mix % 2 == 0 { "🥰" } else { "👍" };
        let mut sends = Vec::new();
        let said_by = |sender_id, text, reply_to| {
            Plain::Chat(PlainChat {
                id: Uuid::new_v4(),
                couple_id,
                sender_id,
                client_id: Uuid::new_v4(),
                text,
                reply_to,
            })
        };
        if chat {
            sends.push(said_by(mina.id, "a plain chat", None));
        }
        if reply {
            sends.push(said_by(joon.id, "a reply", Some(target_id)));
        }
        if reaction {
            sends.push(Plain::React(PlainReaction {
                couple_id,
                user_id: joon.id,
                chat_id: target_id,
                emoji: Some(emoji),
            }));
        }
        if edit {
            sends.push(Plain::Edit(PlainEdit {
                couple_id,
                user_id: mina.id,
                chat_id: target_id,
                text: &edited,
            }));
        }
        let before = last_seq().await;
        let appended = append_plain(&db, &sends, chrono::Utc::now(), rule)
            .await
            .unwrap_or_else(|e| panic!("mix {mix}: {e}"))
            .unwrap_or_else(|| panic!("mix {mix}: nothing written"));
        assert_eq!(
            appended.last_seqs.get(&couple_id),
            Some(&(before + sends.len() as i64)),
            "mix {mix}: every send took the couple's next seq"
        );
        assert_eq!(last_seq().await, before + sends.len() as i64);
        if reply {
            let (seq, sender, text) = &appended.quoted[&target_id];
            assert_eq!(
                (*seq, *sender, text.as_str()),
                (target["seq"].as_i64().unwrap_or(-1), mina.id, said.as_str()),
                "mix {mix}: the reply, before the edit in the batch, quotes the text it answered"
            );
        }
        let chats = history(&mina).await;
        let shown = chat_with(&chats, &target["id"]);
        if edit {
            assert_eq!(shown["text"], edited.as_str(), "mix {mix}: {shown}");
        }
        if reaction {
            assert_eq!(
                shown["reactions"],
                json!([{ "user_id": joon.id, "emoji": emoji }]),
                "mix {mix}: {shown}"
            );
        }
        if reply {
            assert!(
                chats
                    .iter()
                    .any(|c| c["text"] == "a reply" && c["reply_to"]["id"] == target["id"]),
                "mix {mix}"
            );
        }
    }
}
