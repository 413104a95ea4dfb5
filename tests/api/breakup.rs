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
    a_blob_that_cannot_be_removed_keeps_only_its_own_couple,
    no_upload_once_the_break_up_is_due,
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

/// A restore racing an account deletion: the restore has looked for deleted members and
/// found none, the deletion then schedules and marks its user, and only then does the
/// restore's cancel run. Forced by holding the couple's row from a connection of the test's
/// own (Postgres: SQLite has one writer and cannot interleave them). Whatever the order,
/// a member marked deleted means a break-up that stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_cannot_take_back_the_break_up_of_a_deleted_account() {
    use sea_orm::TransactionTrait;
    let node = spawn_node(Backend::Postgres).await;
    let (mina, joon) = couple(&node).await;
    let (status, _) = joon.delete("/api/couple").await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let db = Database::connect(&node.db.url)
        .await
        .expect("the test database");
    let watcher = Database::connect(&node.db.url)
        .await
        .expect("the test database");
    let waiting = || async {
        let row = watcher
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT COUNT(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            ))
            .await
            .expect("reading pg_stat_activity")
            .expect("a row");
        row.try_get::<i64>("", "n").expect("a count")
    };
    let hold = db.begin().await.expect("a transaction");
    hold.execute_unprepared("SELECT id FROM couples FOR UPDATE")
        .await
        .expect("holding the couple's row");

    let restoring = {
        let joon = joon.clone();
        tokio::spawn(async move { joon.post("/api/couple/restore", json!({})).await })
    };
    for _ in 0..200 {
        if waiting().await >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(waiting().await, 1, "the restore waits for the couple's row");
    let deleting = {
        let url = format!("{}/api/me", mina.base);
        let token = mina.token.clone();
        tokio::spawn(async move {
            let body = json!({ "password": PASSWORD });
            request(reqwest::Method::DELETE, &url, Some(&token), Some(body)).await
        })
    };
    // The deletion either finishes (it did not need the row) or waits for it too.
    for _ in 0..300 {
        if deleting.is_finished() || waiting().await >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    hold.rollback().await.expect("letting go of the row");
    let (deleted, _, _) = deleting.await.expect("the deletion");
    assert_eq!(deleted, StatusCode::NO_CONTENT);
    let (restored, body) = restoring.await.expect("the restore");
    assert!(
        restored == StatusCode::OK || restored == StatusCode::FORBIDDEN,
        "{restored}: {body}"
    );

    let (_, me) = joon.get("/api/me").await;
    assert!(
        me["couple"]["delete_at"].is_string(),
        "mina's account is deleted, yet the break-up was taken back: {me}"
    );
    let (status, body) = joon.post("/api/couple/restore", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

/// Two couples due, the first with a blob that cannot be removed: the second is deleted all
/// the same, the first keeps its rows until the blob can go.
async fn a_blob_that_cannot_be_removed_keeps_only_its_own_couple(backend: Backend) {
    let node = spawn_node_with(backend, &["--breakup-grace-secs=1", "--sweep-secs=1"]).await;
    let (mina, joon) = couple(&node).await;
    let ara = User::signup(&node, "ara").await;
    let bora = User::signup(&node, "bora").await;
    pair(&ara, &bora).await;
    crate::files::uploaded(&mina, "stuck.bin", b"stuck").await;
    let stuck = crate::files::blobs(&node).pop().expect("the stuck blob");
    std::fs::remove_file(&stuck).expect("removing the blob");
    std::fs::create_dir(&stuck).expect("a directory in its place");
    std::fs::write(stuck.join("keep"), b"x").expect("something in it");
    crate::files::uploaded(&mina, "fine.bin", b"fine").await;
    crate::files::uploaded(&ara, "theirs.bin", b"theirs").await;

    // mina's couple falls due first, so it comes first in every round.
    assert_eq!(mina.delete("/api/couple").await.0, StatusCode::ACCEPTED);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(ara.delete("/api/couple").await.0, StatusCode::ACCEPTED);

    let mut gone = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if ara.get("/api/me").await.1["couple"].is_null() {
            gone = true;
            break;
        }
    }
    assert!(gone, "the couple after the stuck one was never deleted");
    assert!(bora.get("/api/me").await.1["couple"].is_null());
    // mina's couple is still there, due, with the stuck blob; the others are gone.
    let (_, me) = joon.get("/api/me").await;
    assert!(me["couple"]["delete_at"].is_string(), "{me}");
    assert_eq!(crate::files::blobs(&node), vec![stuck.join("keep")]);

    // Once the blob can go, so does the couple.
    std::fs::remove_dir_all(&stuck).expect("unsticking");
    let mut gone = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if joon.get("/api/me").await.1["couple"].is_null() {
            gone = true;
            break;
        }
    }
    assert!(
        gone,
        "the stuck couple is deleted once its blob can be removed"
    );
}

/// Once the break-up is due the sweeper may have listed the couple's files: an upload then
/// would be a blob nobody deletes. It is refused, and nothing of it is kept.
async fn no_upload_once_the_break_up_is_due(backend: Backend) {
    // The sweeper runs at start, then not for an hour: the couple stays due meanwhile.
    let node = spawn_node_with(backend, &["--breakup-grace-secs=1", "--sweep-secs=3600"]).await;
    let (mina, _joon) = couple(&node).await;
    assert_eq!(mina.delete("/api/couple").await.0, StatusCode::ACCEPTED);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (status, body) = crate::files::upload(&mina, "late.bin", b"late".to_vec()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_paired")),
        "{body}"
    );
    assert_eq!(crate::files::blobs(&node), Vec::<std::path::PathBuf>::new());
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
