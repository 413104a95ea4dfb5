//! The group commit: a node persists the sends that arrive together in one transaction, and
//! nothing of the promise is traded for it. These tests hold a commit open for a moment
//! (`--commit-window-us`) so that the sends they make land in one batch, and check through
//! `/metrics` that they did.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::files::uploaded;
use crate::support::*;

both_backends!(
    one_refused_send_never_fails_the_others_in_its_batch,
    a_chat_is_stored_by_the_time_its_ack_arrives,
    the_same_send_twice_in_one_batch_creates_one_chat,
    a_second_reaction_of_one_partner_in_one_batch_replaces_the_first,
    marking_ones_own_chats_read_tells_the_partner_nothing,
    a_lone_send_never_waits_for_company,
);

/// Long enough for a test's sends to meet in one batch, short enough not to slow it down;
/// open from the first send.
const WINDOW: &str = "--commit-window-us=300000";
const ALWAYS: &str = "--commit-window-after=1";

/// The values of `names` in the node's `/metrics` now (each line `name value`).
async fn metrics<const N: usize>(node: &TestNode, names: [&str; N]) -> [u64; N] {
    let text = reqwest::get(node.metrics_url())
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    names.map(|name| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_default() as u64
    })
}

/// `(batches committed, sends in them)` so far.
async fn batches(node: &TestNode) -> (u64, u64) {
    let [batches, sends] = metrics(
        node,
        ["duet_commit_batch_size_count", "duet_commit_batch_size_sum"],
    )
    .await;
    (batches, sends)
}

/// `(sends committed by the one statement, by the full rules)` so far.
async fn paths(node: &TestNode) -> (u64, u64) {
    let [statement, rules] = metrics(
        node,
        [
            "duet_sends_committed_total{path=\"statement\"}",
            "duet_sends_committed_total{path=\"rules\"}",
        ],
    )
    .await;
    (statement, rules)
}

async fn one_refused_send_never_fails_the_others_in_its_batch(backend: Backend) {
    let node = spawn_node_with(backend, &[WINDOW, ALWAYS]).await;
    let (mina, joon) = couple(&node).await;
    let joons_photo = uploaded(&joon, "joon.png", crate::files::PNG).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;

    // Within one window: a fine chat, someone else's photo, a chat too long to take, a chat
    // that asks a question, then (a moment later) Joon, who now owes its answer.
    let fine = mine.say("first").await;
    let stolen = Uuid::new_v4();
    mine.send(
        json!({ "type": "send", "client_id": stolen, "text": "", "file_id": joons_photo["id"] }),
    )
    .await;
    let long = mine.say(&"가".repeat(4001)).await;
    let asking = mine.say("이번 여행은 어디로 갈까?").await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let gated = theirs.say("hi").await;

    let mut outcomes = std::collections::HashMap::new();
    while outcomes.len() < 4 {
        let frame = mine.until_any(&["ack", "error"]).await;
        outcomes.insert(frame["client_id"].as_str().unwrap().to_owned(), frame);
    }
    let outcome = |id: Uuid| outcomes[&id.to_string()].clone();
    assert_eq!(outcome(fine)["type"], "ack");
    assert_eq!(outcome(fine)["seq"], 1);
    assert_eq!(outcome(stolen)["code"], "not_found");
    assert_eq!(outcome(long)["code"], "too_long");
    assert_eq!(outcome(asking)["type"], "ack");
    assert_eq!(outcome(asking)["seq"], 2);
    // What Joon saw: the two chats and the question, seqs 1, 2, 3, then his refusal.
    let mut seen = Vec::new();
    let refused = loop {
        let frame = theirs.until_any(&["chat", "question", "error"]).await;
        if frame["type"] == "error" {
            break frame;
        }
        seen.push((frame["type"].clone(), frame["seq"].clone()));
    };
    assert_eq!(refused["client_id"], gated.to_string());
    assert_eq!(refused["code"], "answer_required");
    assert_eq!(
        seen,
        [
            (json!("chat"), json!(1)),
            (json!("chat"), json!(2)),
            (json!("question"), json!(3))
        ]
    );
    // The four sends that reached the committer were decided in one batch.
    assert_eq!(batches(&node).await, (1, 4));
}

async fn a_chat_is_stored_by_the_time_its_ack_arrives(backend: Backend) {
    let node = spawn_node_with(backend, &[WINDOW, ALWAYS]).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    for text in ["one", "two", "three"] {
        mine.say(text).await;
    }
    for _ in 0..3 {
        let ack = mine.until("ack").await;
        let (_, history) = joon.get("/api/chats").await;
        let ids: Vec<&Value> = history["chats"]
            .as_array()
            .map(|chats| chats.iter().map(|c| &c["id"]).collect())
            .unwrap_or_default();
        assert!(ids.contains(&&ack["id"]), "acked but not stored: {ack}");
    }
    assert_eq!(batches(&node).await, (1, 3));
}

async fn the_same_send_twice_in_one_batch_creates_one_chat(backend: Backend) {
    let node = spawn_node_with(backend, &[WINDOW, ALWAYS]).await;
    let (mina, joon) = couple(&node).await;
    let mut laptop = mina.socket().await;
    let mut phone = mina.socket().await;
    let mut partner = joon.socket().await;

    let send = json!({ "type": "send", "client_id": Uuid::new_v4(), "text": "only once" });
    laptop.send(send.clone()).await;
    laptop.send(send.clone()).await;
    phone.send(send).await;
    let acks = [
        laptop.until("ack").await,
        laptop.until("ack").await,
        phone.until("ack").await,
    ];
    assert!(acks.iter().all(|a| a == &acks[0]), "{acks:?}");
    assert_eq!(acks[0]["seq"], 1);
    partner.say("marker").await;
    assert_eq!(partner.until("chat").await["text"], "only once");
    assert_eq!(partner.until("chat").await["seq"], 2);
    let (_, history) = joon.get("/api/chats").await;
    assert_eq!(history["chats"].as_array().map(Vec::len), Some(2));
}

/// Reactions of one batch are written together: a partner's second reaction to the same chat
/// in that batch is the one kept, and the batch does not fail over the two (Postgres refuses
/// to upsert one row twice in a statement).
async fn a_second_reaction_of_one_partner_in_one_batch_replaces_the_first(backend: Backend) {
    let node = spawn_node_with(backend, &[WINDOW, ALWAYS]).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    let chat = mine.acked("hi").await;
    let react = |emoji: &str| json!({ "type": "react", "client_id": Uuid::new_v4(), "chat_id": chat["id"], "emoji": emoji });
    mine.send(react("❤️")).await;
    mine.send(react("😂")).await;
    theirs.send(react("🙏")).await;
    let acks = [
        mine.until("ack").await,
        mine.until("ack").await,
        theirs.until("ack").await,
    ];
    let mut seqs: Vec<i64> = acks
        .iter()
        .map(|a| a["seq"].as_i64().unwrap_or(0))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [2, 3, 4], "{acks:?}");
    assert_eq!(
        batches(&node).await,
        (2, 4),
        "the three reactions were one batch"
    );
    let (_, history) = joon.get("/api/chats").await;
    let mut kept: Vec<(String, String)> = history["chats"][0]["reactions"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| (r["user_id"].to_string(), r["emoji"].to_string()))
                .collect()
        })
        .unwrap_or_default();
    kept.sort();
    let mut expected = vec![
        (json!(mina.id).to_string(), json!("😂").to_string()),
        (json!(joon.id).to_string(), json!("🙏").to_string()),
    ];
    expected.sort();
    assert_eq!(kept, expected);
}

async fn marking_ones_own_chats_read_tells_the_partner_nothing(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;

    mine.say("a").await;
    mine.say("b").await;
    mine.until("ack").await;
    mine.until("ack").await;
    mine.until_text("b").await;
    // Both chats are Mina's own: marking them read moves nothing anyone sees.
    mine.send(json!({ "type": "read", "seq": 2 })).await;
    mine.send(json!({ "type": "typing" })).await;
    theirs.until_text("b").await;
    let next = theirs.until_any(&["read", "typing"]).await;
    assert_eq!(next["type"], "typing", "{next}");

    // Joon's chat is news to Mina; her mark on it reaches him.
    theirs.say("c").await;
    mine.until_text("c").await;
    mine.send(json!({ "type": "read", "seq": 3 })).await;
    let read = theirs.until("read").await;
    assert_eq!(read["seq"], 3);
    assert_eq!(read["user_id"], mina.id.to_string());
}

/// The commit window is for traffic: under light load a send is committed at once. With a
/// window of a minute, a lone send still gets its ack straight away (the socket helper waits
/// ten seconds at most).
async fn a_lone_send_never_waits_for_company(backend: Backend) {
    let node = spawn_node_with(backend, &["--commit-window-us=60000000"]).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    for text in ["one", "two"] {
        assert_eq!(mine.outcome(text).await["type"], "ack");
        assert_eq!(theirs.until("chat").await["text"], text);
    }
    assert_eq!(batches(&node).await, (2, 2));
}

/// Locks the socket's couple row from a connection of the test's own, as a slow commit of
/// someone else would: the node's commits for the couple wait until the transaction ends.
/// Returns the connection, the transaction holding the lock, and the couple's id.
async fn hold_the_couple(
    node: &TestNode,
    socket: &Socket,
) -> (
    sea_orm::DatabaseConnection,
    sea_orm::DatabaseTransaction,
    String,
) {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let couple_id = socket.hello["couple_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let db = sea_orm::Database::connect(node.db.url.as_str())
        .await
        .expect("a connection of the test's own");
    let blocker = db.begin().await.expect("a transaction");
    blocker
        .execute_unprepared(&format!(
            "SELECT 1 FROM couples WHERE id = '{couple_id}' FOR UPDATE"
        ))
        .await
        .expect("locking the couple");
    (db, blocker, couple_id)
}

/// A commit that outlives the database timeout is answered `unavailable`, yet may land later.
/// The client sends again, gets the first chat's ack, and the partner must hear of the chat
/// then, not whenever a later event happens to reveal the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_whose_commit_timed_out_but_landed_reaches_the_partner_on_the_retry() {
    let node = spawn_node_with(Backend::Postgres, &["--db-timeout-ms=500"]).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    // Someone else holds the couple's row: the send's commit waits past the timeout.
    let (_db, blocker, _) = hold_the_couple(&node, &mine).await;
    let client_id = Uuid::new_v4();
    let send = json!({ "type": "send", "client_id": client_id, "text": "stalled" });
    mine.send(send.clone()).await;
    let answer = mine.until_any(&["ack", "error"]).await;
    assert_eq!(answer["code"], "unavailable", "{answer}");

    // The lock goes; the statement that waited for it commits after all.
    blocker.commit().await.expect("releasing the couple");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    mine.send(send).await;
    let ack = mine.until("ack").await;
    assert_eq!(ack["client_id"], client_id.to_string());
    let chat = tokio::time::timeout(std::time::Duration::from_secs(5), theirs.until("chat"))
        .await
        .expect("the partner hears of the chat right after the retry");
    assert_eq!(chat["text"], "stalled");
}

/// A race made to happen: Mina on a socket, a chat of Joon's, and the couple's row held by a
/// connection of the test's own that has just done `under_the_lock` (given the chat's and the
/// couple's ids), as another node's commit would while Mina's sends wait for the couple.
struct HeldCouple {
    node: TestNode,
    mina: User,
    mine: Socket,
    chat_id: String,
    db: sea_orm::DatabaseConnection,
    blocker: sea_orm::DatabaseTransaction,
}

async fn behind_a_commit(chat: &str, under_the_lock: impl Fn(&str, &str) -> String) -> HeldCouple {
    use sea_orm::ConnectionTrait;
    let node = spawn_node(Backend::Postgres).await;
    let (mina, joon) = couple(&node).await;
    let mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    let chat = theirs.acked(chat).await;
    let chat_id = chat["id"].as_str().unwrap_or_default().to_owned();
    let (db, blocker, couple_id) = hold_the_couple(&node, &mine).await;
    blocker
        .execute_unprepared(&under_the_lock(&chat_id, &couple_id))
        .await
        .expect("the other commit's writes");
    HeldCouple {
        node,
        mina,
        mine,
        chat_id,
        db,
        blocker,
    }
}

/// A reply or a reaction is decided on what its couple is when it commits. Here the chat
/// they name is deleted by a commit (another node's, say) that holds the couple while they
/// wait: both must be refused, not quote or mark a chat that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_or_reaction_that_waited_for_the_couple_sees_its_chat_deleted_meanwhile() {
    use sea_orm::ConnectionTrait;
    // What a delete does to the rows the two sends read, under the couple's lock.
    let HeldCouple {
        node: _node,
        mina,
        mut mine,
        chat_id,
        db,
        blocker,
    } = behind_a_commit("soon gone", |chat_id, couple_id| {
        format!(
            "UPDATE chats SET deleted_at = now(), text = '' WHERE id = '{chat_id}';
             UPDATE couples SET last_seq = last_seq + 1 WHERE id = '{couple_id}'"
        )
    })
    .await;
    let reply = Uuid::new_v4();
    mine.send(json!({ "type": "send", "client_id": reply, "text": "me too", "reply_to": chat_id }))
        .await;
    let reaction = Uuid::new_v4();
    mine.send(json!({ "type": "react", "client_id": reaction, "chat_id": chat_id, "emoji": "❤️" }))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    blocker.commit().await.expect("releasing the couple");
    for client_id in [reply, reaction] {
        let answer = mine.until_any(&["ack", "error"]).await;
        assert_eq!(answer["client_id"], client_id.to_string(), "{answer}");
        assert_eq!(answer["code"], "not_found", "{answer}");
    }
    let (_, history) = mina.get("/api/chats").await;
    assert_eq!(history["chats"], json!([]), "no reply was kept: {history}");
    let reactions = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT count(*) AS n FROM reactions WHERE chat_id = '{chat_id}'"),
        ))
        .await
        .expect("counting reactions")
        .and_then(|row| row.try_get::<i64>("", "n").ok());
    assert_eq!(reactions, Some(0), "no reaction was kept");
}

/// Partners on two nodes often send at the same moment: a reaction whose couple the
/// partner's node committed while it waited for the couple's lock is taken by the one
/// statement on its second go, in a fresh snapshot, not by the slower full rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reaction_that_waited_behind_the_partners_commit_still_takes_the_one_statement() {
    // What the partner's commit does under the couple's lock: the couple's seq moves on.
    let HeldCouple {
        node,
        mut mine,
        chat_id,
        blocker,
        ..
    } = behind_a_commit("react to me", |_, couple_id| {
        format!("UPDATE couples SET last_seq = last_seq + 1 WHERE id = '{couple_id}'")
    })
    .await;
    let (statement, rules) = paths(&node).await;
    let reaction = Uuid::new_v4();
    mine.send(json!({ "type": "react", "client_id": reaction, "chat_id": chat_id, "emoji": "❤️" }))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    blocker.commit().await.expect("releasing the couple");
    let answer = mine.until_any(&["ack", "error"]).await;
    assert_eq!(answer["type"], "ack", "{answer}");
    assert_eq!(answer["client_id"], reaction.to_string(), "{answer}");
    assert_eq!(
        paths(&node).await,
        (statement + 1, rules),
        "the reaction went by the statement"
    );
}

/// A writer may have a second batch under way while one waits for the database (another
/// node holding its couple, a slow flush): another couple's chat commits meanwhile, while the
/// waiting couple's next sends stay behind its first, never in a batch beside it, and come
/// out in the order they were sent. One send per batch, so that two of Mina's sends in two
/// batches under way would take both and hold Sora up as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_couple_whose_commit_waits_holds_up_no_other_couple_and_keeps_its_order() {
    let node = spawn_node_with(
        Backend::Postgres,
        &[
            "--commit-pipeline=2",
            "--commit-max-batch=1",
            // Mina's commit waits for as long as the test holds her couple.
            "--db-timeout-ms=30000",
        ],
    )
    .await;
    let (mina, joon) = couple(&node).await;
    let sora = User::signup(&node, "sora").await;
    pair(&sora, &User::signup(&node, "jin").await).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    let mut soras = sora.socket().await;
    let (_db, blocker, _) = hold_the_couple(&node, &mine).await;

    let texts = ["one", "two", "three"];
    let mut sent = Vec::new();
    for text in texts {
        sent.push(mine.say(text).await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let meanwhile = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        soras.outcome("meanwhile"),
    )
    .await
    .expect("another couple's chat commits while Mina's waits");
    assert_eq!(meanwhile["type"], "ack", "{meanwhile}");

    blocker.commit().await.expect("releasing the couple");
    for (n, client_id) in sent.iter().enumerate() {
        let ack = mine.until_any(&["ack", "error"]).await;
        assert_eq!(ack["client_id"], client_id.to_string(), "{ack}");
        assert_eq!(ack["seq"], n + 1, "{ack}");
    }
    for (n, text) in texts.iter().enumerate() {
        let chat = theirs.until("chat").await;
        assert_eq!((&chat["text"], &chat["seq"]), (&json!(text), &json!(n + 1)));
    }
}

/// On SQLite an `ack` must mean what it means on Postgres: committed and on disk. With
/// `synchronous=NORMAL` in WAL mode the last commits before a power loss may be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_every_commit_is_synced_to_disk() {
    let db = TestDb::new(Backend::Sqlite).await;
    let config = config(&db.url, db.data_dir(), &[]);
    let conn = duet::store::connect(&config).await.expect("connecting");
    use sea_orm::ConnectionTrait;
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "PRAGMA synchronous",
        ))
        .await
        .expect("asking")
        .expect("a row");
    // 2 is FULL (1 NORMAL, 0 OFF, 3 EXTRA).
    assert_eq!(row.try_get::<i64>("", "synchronous").expect("a level"), 2);
}

/// Stopping: a send the socket already handed to the committer may still be waiting for its
/// ack, so the node commits it before it exits, even queued behind a batch that waits for the
/// database; only sends arriving after the stop began are refused (and sent again elsewhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_queued_when_the_node_stops_are_committed_before_it_exits() {
    use sea_orm::ConnectionTrait;
    // One send per batch: each queued send is one more turn of the committer's loop at which
    // a stop that dropped the queue would drop it.
    let mut node = spawn_node_with(Backend::Postgres, &["--commit-max-batch=1"]).await;
    let (mina, _joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let (db, blocker, couple_id) = hold_the_couple(&node, &mine).await;

    // The first send's commit waits for the couple's row; the others queue behind it.
    const QUEUED: usize = 6;
    for n in 0..QUEUED {
        mine.send(
            json!({ "type": "send", "client_id": Uuid::new_v4(), "text": format!("queued {n}") }),
        )
        .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let stopped = node.begin_stop();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    blocker.commit().await.expect("releasing the couple");
    tokio::time::timeout(std::time::Duration::from_secs(20), stopped)
        .await
        .expect("the node stops within its drain time")
        .expect("stopping");

    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT count(*) AS n FROM chats WHERE couple_id = '{couple_id}'"),
        ))
        .await
        .expect("counting")
        .expect("a row");
    assert_eq!(
        row.try_get::<i64>("", "n").expect("a count"),
        QUEUED as i64,
        "every send queued before the stop is committed"
    );
}
