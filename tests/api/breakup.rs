//! The break-up: only ever scheduled, with a grace period to take it back; when it falls due
//! the couple and everything it shared are gone, and both can pair again.

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

both_backends!(
    a_break_up_is_only_scheduled_and_can_be_taken_back,
    a_scheduled_break_up_survives_a_restart,
    when_the_grace_period_ends_everything_goes_and_both_can_pair_again,
    only_a_couple_can_break_up,
);

async fn a_break_up_is_only_scheduled_and_can_be_taken_back(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut theirs = joon.socket().await;

    let (status, body) = mina.delete("/api/couple").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let delete_at = body["delete_at"].as_str().unwrap_or_default().to_owned();
    let when = chrono::DateTime::parse_from_rfc3339(&delete_at).expect("an RFC 3339 time");
    let days = (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!(
        (6.9..=7.0).contains(&days),
        "the default grace is 7 days, got {days}"
    );
    assert_eq!(
        theirs.until("couple").await["delete_at"],
        delete_at.as_str()
    );
    for user in [&mina, &joon] {
        let (_, me) = user.get("/api/me").await;
        assert_eq!(me["couple"]["delete_at"], delete_at.as_str());
    }
    // Scheduling again keeps the first date.
    let (_, again) = joon.delete("/api/couple").await;
    assert_eq!(again["delete_at"], delete_at.as_str());

    // Still a couple meanwhile.
    let mut mine = mina.socket().await;
    mine.say("are we really doing this?").await;
    assert_eq!(
        theirs.until("chat").await["text"],
        "are we really doing this?"
    );

    let (status, body) = joon.post("/api/couple/restore", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["couple"]["delete_at"], Value::Null);
    assert_eq!(body["couple"]["partner"]["username"], "mina");
    assert_eq!(mine.until("couple").await["delete_at"], Value::Null);
    let (_, me) = mina.get("/api/me").await;
    assert_eq!(me["couple"]["delete_at"], Value::Null);
}

async fn a_scheduled_break_up_survives_a_restart(backend: Backend) {
    let mut node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let (status, body) = mina.delete("/api/couple").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let delete_at = body["delete_at"]
        .as_str()
        .expect("a deletion date")
        .to_owned();
    let addr = node.restart(&[]).await;
    let (_, me) = mina.on(addr).get("/api/me").await;
    assert_eq!(me["couple"]["delete_at"], delete_at.as_str());
}

async fn when_the_grace_period_ends_everything_goes_and_both_can_pair_again(backend: Backend) {
    let node = spawn_node_with(backend, &["--breakup-grace-secs=1", "--sweep-secs=1"]).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    // Something of everything: a chat, a question and its answer, a file chat.
    mine.say("여행 가자").await;
    let question = mine.until("question").await;
    mine.send(json!({ "type": "answer", "question_id": question["question_id"], "text": "제주" }))
        .await;
    mine.until("answered").await;
    let form = Form::new().part("file", Part::bytes(b"memories".to_vec()).file_name("m.txt"));
    let upload: Value = reqwest::Client::new()
        .post(format!("{}/api/files", mina.base))
        .header("cookie", format!("duet_session={}", mina.token))
        .multipart(form)
        .send()
        .await
        .expect("uploading")
        .json()
        .await
        .expect("the file");
    mine.send(json!({ "type": "send", "client_id": uuid::Uuid::new_v4(), "text": "", "file_id": upload["file"]["id"] })).await;
    mine.until("ack").await;
    let files_dir = node.db.data_dir().join("files");
    assert!(count_files(&files_dir) >= 1);

    let (status, _) = mina.delete("/api/couple").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The sockets are told, then closed.
    for socket in [&mut mine, &mut theirs] {
        let closed = socket.closed().await.expect("a close frame");
        assert_eq!(u16::from(closed.code), 4002);
    }
    for user in [&mina, &joon] {
        let (_, me) = user.get("/api/me").await;
        assert_eq!(me["couple"], Value::Null);
    }
    assert_eq!(count_files(&files_dir), 0, "the couple's files are removed");
    let db = Database::connect(&node.db.url)
        .await
        .expect("the test database");
    for table in [
        "chats",
        "answers",
        "couple_questions",
        "events",
        "files",
        "couples",
        "couple_members",
    ] {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .expect("counting")
            .expect("a row");
        assert_eq!(
            row.try_get::<i64>("", "n").expect("a count"),
            0,
            "{table} is empty"
        );
    }

    // A fresh start: they may pair again, and nothing of before comes back.
    pair(&joon, &mina).await;
    let again = mina.socket().await;
    assert_eq!(again.replay, Vec::<Value>::new());
    assert_eq!(again.hello["last_seq"], 0);
    let (_, page) = mina.get("/api/answers").await;
    assert_eq!(page["answers"], json!([]));
}

async fn only_a_couple_can_break_up(backend: Backend) {
    let node = spawn_node(backend).await;
    let loner = User::signup(&node, "loner").await;
    let (status, body) = loner.delete("/api/couple").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_paired"))
    );
    let (status, body) = loner.post("/api/couple/restore", json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_paired"))
    );
}

fn count_files(dir: &std::path::Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            count += count_files(&path);
        } else {
            count += 1;
        }
    }
    count
}
