//! Photos and files: uploaded first, then sent as a chat; only the couple can read them;
//! the bytes decide the type; deleting the chat deletes the file; orphans are swept.

use std::path::Path;

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::support::*;

both_backends!(
    both_partners_upload_and_download_with_ranges,
    a_third_user_and_a_strangers_file_id_get_404,
    one_byte_over_the_limit_is_413_and_leaves_nothing_behind,
    hostile_file_names_are_stored_safely,
    the_content_type_comes_from_the_bytes_not_the_name,
    a_file_chat_carries_the_file_and_only_its_owner_may_send_it_once,
    deleting_a_file_chat_removes_the_blob,
    the_sweeper_removes_only_orphans,
    a_blob_that_cannot_be_removed_does_not_stop_the_sweeper,
    a_couples_files_stay_within_its_quota,
    a_long_replay_gives_every_chat_its_own_file_across_pages,
);

/// A 3x2 PNG, the smallest real image a browser shows.
pub(crate) const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0x12, 0x16, 0xF1,
    0x4D, 0x00, 0x00, 0x00, 0x12, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0,
    0x1F, 0x88, 0x19, 0x18, 0xFE, 0x03, 0x00, 0x1F, 0xEE, 0x04, 0xFC, 0x9D, 0x4C, 0x8A, 0x4F, 0x00,
    0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

pub(crate) async fn upload(user: &User, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    upload_to(user, "/api/files", name, bytes).await
}

/// An upload to `path` (`/api/files`, perhaps with a query).
pub(crate) async fn upload_to(
    user: &User,
    path: &str,
    name: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()));
    let res = reqwest::Client::new()
        .post(format!("{}{path}", user.base))
        .header("cookie", format!("duet_session={}", user.token))
        .multipart(form)
        .send()
        .await
        .expect("the node answers");
    let status = res.status();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// An upload with a hand-written `Content-Disposition` for the file part.
async fn upload_raw(user: &User, filename_param: &str) -> Value {
    let boundary = "duet-test-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; {filename_param}\r\n\
         Content-Type: application/octet-stream\r\n\r\nhi\r\n--{boundary}--\r\n"
    );
    let res = reqwest::Client::new()
        .post(format!("{}/api/files", user.base))
        .header("cookie", format!("duet_session={}", user.token))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("the node answers");
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().await.unwrap_or(Value::Null)["file"].clone()
}

pub(crate) async fn uploaded(user: &User, name: &str, bytes: &[u8]) -> Value {
    let (status, body) = upload(user, name, bytes.to_vec()).await;
    assert_eq!(status, StatusCode::CREATED, "upload of {name}: {body}");
    body["file"].clone()
}

/// Waits up to ten seconds for the sweeper to remove the file; false if it never does.
async fn swept(user: &User, file: &Value) -> bool {
    for _ in 0..40 {
        if download(user, file, None).await.status() == StatusCode::NOT_FOUND {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    false
}

async fn download(user: &User, file: &Value, range: Option<&str>) -> reqwest::Response {
    let id = file["id"].as_str().unwrap_or_default();
    let mut req = reqwest::Client::new()
        .get(format!("{}/api/files/{id}", user.base))
        .header("cookie", format!("duet_session={}", user.token));
    if let Some(range) = range {
        req = req.header("range", range);
    }
    req.send().await.expect("the node answers")
}

/// Blobs on disk under the node's files directory (uploads in progress excluded).
pub(crate) fn blobs(node: &TestNode) -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&node.db.data_dir().join("files"), &mut out);
    out
}

async fn file_rows(node: &TestNode) -> i64 {
    let db = Database::connect(&node.db.url)
        .await
        .expect("the test database");
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM files",
        ))
        .await
        .expect("counting files")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("a count")
}

async fn send_file(socket: &mut Socket, file: &Value, text: &str) -> Value {
    let client_id = Uuid::new_v4().to_string();
    socket
        .send(
            json!({ "type": "send", "client_id": client_id, "text": text, "file_id": file["id"] }),
        )
        .await;
    loop {
        let frame = socket.until_any(&["ack", "error"]).await;
        if frame["client_id"] == client_id.as_str() {
            return frame;
        }
    }
}

async fn both_partners_upload_and_download_with_ranges(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let photo = uploaded(&mina, "우리 사진.png", PNG).await;
    assert_eq!(photo["name"], "우리 사진.png");
    assert_eq!(photo["size"], PNG.len());
    assert_eq!(photo["content_type"], "image/png");
    assert_eq!(
        (photo["width"].as_i64(), photo["height"].as_i64()),
        (Some(3), Some(2))
    );
    let note = uploaded(&joon, "note.txt", b"see you at eight").await;

    for (user, file, bytes) in [
        (&joon, &photo, PNG),
        (&mina, &photo, PNG),
        (&mina, &note, b"see you at eight".as_slice()),
    ] {
        let res = download(user, file, None).await;
        assert_eq!(res.status(), StatusCode::OK);
        let headers = res.headers().clone();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        // Revalidated on every view, so a deleted file stops showing at once.
        assert_eq!(headers["cache-control"], "private, no-cache");
        assert_eq!(headers["content-length"], bytes.len().to_string().as_str());
        let disposition = headers["content-disposition"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        let inline = file["content_type"] == "image/png";
        assert!(
            disposition.starts_with(if inline { "inline" } else { "attachment" }),
            "{disposition}"
        );
        assert_eq!(res.bytes().await.expect("the bytes").as_ref(), bytes);
    }
    assert!(
        download(&joon, &photo, None).await.headers()["content-disposition"]
            .to_str()
            .unwrap_or_default()
            .contains("filename*=UTF-8''%EC%9A%B0%EB%A6%AC%20%EC%82%AC%EC%A7%84%2Epng")
    );

    let part = download(&joon, &photo, Some("bytes=1-3")).await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 1-3/{}", PNG.len()).as_str()
    );
    assert_eq!(part.headers()["content-type"], "image/png");
    assert_eq!(part.bytes().await.expect("the bytes").as_ref(), b"PNG");
}

async fn a_third_user_and_a_strangers_file_id_get_404(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let photo = uploaded(&mina, "p.png", PNG).await;

    let loner = User::signup(&node, "loner").await;
    let sora = User::signup(&node, "sora").await;
    let hyun = User::signup(&node, "hyun").await;
    pair(&sora, &hyun).await;
    for outsider in [&loner, &sora] {
        let res = download(outsider, &photo, None).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!(body["error"]["code"], "not_found");
    }
    let stranger = json!({ "id": Uuid::new_v4() });
    assert_eq!(
        download(&mina, &stranger, None).await.status(),
        StatusCode::NOT_FOUND
    );
    // A malformed id names nothing that exists.
    let (status, body) = mina.get("/api/files/not-a-uuid").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    // Without a session there is nothing to see at all.
    let res = reqwest::get(format!(
        "{}/api/files/{}",
        node.base(),
        photo["id"].as_str().unwrap_or_default()
    ))
    .await
    .expect("the node answers");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

async fn one_byte_over_the_limit_is_413_and_leaves_nothing_behind(backend: Backend) {
    let node = spawn_node_with(backend, &["--max-upload-bytes=100000"]).await;
    let (mina, _joon) = couple(&node).await;

    let (status, body) = upload(&mina, "big.bin", vec![7u8; 100_001]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "too_large");
    assert_eq!(blobs(&node), Vec::<std::path::PathBuf>::new());
    assert_eq!(file_rows(&node).await, 0);

    let exact = uploaded(&mina, "exact.bin", &vec![7u8; 100_000]).await;
    assert_eq!(exact["size"], 100_000);
    assert_eq!(exact["content_type"], "application/octet-stream");
    assert_eq!(blobs(&node).len(), 1);
    assert_eq!(file_rows(&node).await, 1);

    // No file part, or not multipart at all: a clear refusal, nothing stored.
    let res = reqwest::Client::new()
        .post(format!("{}/api/files", mina.base))
        .header("cookie", format!("duet_session={}", mina.token))
        .multipart(Form::new().text("other", "x"))
        .send()
        .await
        .expect("the node answers");
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = mina.post("/api/files", json!({ "file": "no" })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    assert_eq!(file_rows(&node).await, 1);
}

async fn hostile_file_names_are_stored_safely(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let passwd = uploaded(&mina, "../../etc/passwd", b"root:x:0:0").await;
    assert_eq!(passwd["name"], "passwd");
    // An encoded name (RFC 5987) full of control characters ends up without them ...
    let encoded = upload_raw(&mina, "filename*=UTF-8''a%00b%01c%0A%2F.txt").await;
    let name = encoded["name"].as_str().unwrap_or_default();
    assert!(
        !name.is_empty() && !name.contains(['/', '\\']) && !name.chars().any(char::is_control),
        "{name:?}"
    );
    // ... and a raw NUL in the header is a malformed request: refused, nothing kept.
    let (status, body) = upload(&mina, "a\u{0}b.txt", b"hi".to_vec()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    let dots = uploaded(&mina, "..", b"hi").await;
    assert_eq!(dots["name"], "file");
    let long = uploaded(&mina, &format!("{}.txt", "가".repeat(300)), b"hi").await;
    assert!(
        long["name"]
            .as_str()
            .is_some_and(|n| n.chars().count() <= 120)
    );

    // Every blob is inside the files directory under a generated name.
    let blobs = blobs(&node);
    assert_eq!(blobs.len(), 4);
    for blob in &blobs {
        let name = blob
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(
            name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}"
        );
    }
    let res = download(&joon, &passwd, None).await;
    assert_eq!(
        res.bytes().await.expect("the bytes").as_ref(),
        b"root:x:0:0"
    );
}

async fn the_content_type_comes_from_the_bytes_not_the_name(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let disguised = uploaded(&mina, "x.txt", PNG).await;
    assert_eq!(disguised["content_type"], "image/png");
    let script = uploaded(&mina, "photo.png", b"<script>alert(1)</script>").await;
    assert_ne!(script["content_type"], "image/png");
    let res = download(&joon, &script, None).await;
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap_or_default()
            .starts_with("attachment")
    );
    assert!(
        !res.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .contains("html")
    );
}

async fn a_file_chat_carries_the_file_and_only_its_owner_may_send_it_once(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let photo = uploaded(&mina, "p.png", PNG).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;

    // Not Joon's upload: as if it did not exist.
    let refused = send_file(&mut theirs, &photo, "").await;
    assert_eq!(refused["code"], "not_found");

    let ack = send_file(&mut mine, &photo, "").await;
    assert_eq!(ack["type"], "ack");
    let chat = theirs.until("chat").await;
    assert_eq!(chat["text"], "");
    assert_eq!(chat["file"]["id"], photo["id"]);
    assert_eq!(chat["file"]["content_type"], "image/png");
    assert_eq!(chat["file"]["width"], 3);

    // A file goes out once.
    let twice = send_file(&mut mine, &photo, "again").await;
    assert_eq!(twice["code"], "not_found");

    // History and a fresh connect show it too.
    let (_, page) = joon.get("/api/chats").await;
    assert_eq!(page["chats"][0]["file"]["id"], photo["id"]);
    let again = joon.socket().await;
    assert_eq!(again.replay[0]["file"]["name"], "p.png");
}

async fn deleting_a_file_chat_removes_the_blob(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let photo = uploaded(&mina, "p.png", PNG).await;
    let mut mine = mina.socket().await;
    let ack = send_file(&mut mine, &photo, "look").await;
    assert_eq!(blobs(&node).len(), 1);

    mine.send(json!({ "type": "delete", "chat_id": ack["id"] }))
        .await;
    mine.until("deleted").await;
    assert_eq!(blobs(&node), Vec::<std::path::PathBuf>::new());
    assert_eq!(file_rows(&node).await, 0);
    assert_eq!(
        download(&joon, &photo, None).await.status(),
        StatusCode::NOT_FOUND
    );
}

async fn the_sweeper_removes_only_orphans(backend: Backend) {
    let node = spawn_node_with(backend, &["--orphan-age-secs=1", "--sweep-secs=1"]).await;
    let (mina, joon) = couple(&node).await;
    let sent = uploaded(&mina, "sent.png", PNG).await;
    let mut mine = mina.socket().await;
    assert_eq!(send_file(&mut mine, &sent, "").await["type"], "ack");
    let orphan = uploaded(&mina, "orphan.png", PNG).await;
    assert_eq!(blobs(&node).len(), 2);

    assert!(swept(&joon, &orphan).await, "the orphan was never swept");
    // Give the round that removed it time to finish, then look at what is left.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(blobs(&node).len(), 1);
    assert_eq!(file_rows(&node).await, 1);
    assert_eq!(download(&joon, &sent, None).await.status(), StatusCode::OK);
    // A swept upload cannot be sent any more.
    assert_eq!(send_file(&mut mine, &orphan, "").await["code"], "not_found");
}

async fn a_blob_that_cannot_be_removed_does_not_stop_the_sweeper(backend: Backend) {
    let node = spawn_node_with(backend, &["--orphan-age-secs=1", "--sweep-secs=1"]).await;
    let (mina, joon) = couple(&node).await;
    // The first orphan's blob turns into a directory with something in it: removing it fails
    // every round.
    uploaded(&mina, "stuck.png", PNG).await;
    let stuck = blobs(&node).pop().expect("the stuck blob");
    std::fs::remove_file(&stuck).expect("removing the blob");
    std::fs::create_dir(&stuck).expect("a directory in its place");
    std::fs::write(stuck.join("keep"), b"x").expect("something in it");
    let orphan = uploaded(&mina, "orphan.png", PNG).await;

    assert!(
        swept(&joon, &orphan).await,
        "the orphan after the stuck one was never swept"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    // The stuck file is kept (and retried); the other is gone, row and blob.
    assert_eq!(file_rows(&node).await, 1);
    assert_eq!(blobs(&node), vec![stuck.join("keep")]);
}

async fn a_couples_files_stay_within_its_quota(backend: Backend) {
    let node = spawn_node_with(backend, &["--couple-quota-bytes=1000"]).await;
    let (mina, joon) = couple(&node).await;
    let photo = uploaded(&mina, "a.bin", &[1; 600]).await;

    // The quota is the couple's, not each partner's: joon has 400 bytes left, not 1000.
    let (status, body) = upload(&joon, "b.bin", vec![2; 401]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "too_large");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("1000"),
        "the message names the quota: {message}"
    );
    assert_eq!(
        blobs(&node).len(),
        1,
        "nothing of the refused upload is kept"
    );
    assert_eq!(file_rows(&node).await, 1);
    uploaded(&joon, "b.bin", &[2; 400]).await;
    let (status, _) = upload(&mina, "c.bin", vec![3; 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "the quota is full");

    // Deleting a file chat gives its room back.
    let mut mine = mina.socket().await;
    let ack = send_file(&mut mine, &photo, "").await;
    mine.send(json!({ "type": "delete", "chat_id": ack["id"] }))
        .await;
    mine.until("deleted").await;
    uploaded(&mina, "c.bin", &[3; 600]).await;

    // Another couple has a quota of its own.
    let sora = User::signup(&node, "sora").await;
    let hana = User::signup(&node, "hana").await;
    pair(&sora, &hana).await;
    uploaded(&sora, "d.bin", &[4; 1000]).await;
}

/// The replay reads the log in pages of 1,000; each page must find the files of its own
/// chats, those next to a page's edge included, and no other chat's.
async fn a_long_replay_gives_every_chat_its_own_file_across_pages(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let carries = |seq: i64| seq % 7 == 0 || seq % 1000 == 0 || seq % 1000 == 1;
    seed_history(&node, &mina, &joon, 2500, carries).await;

    let replay = joon.socket_at("/ws?after=0").await.replay;
    assert_eq!(replay.len(), 2500);
    for (i, frame) in replay.iter().enumerate() {
        let seq = i as i64 + 1;
        assert_eq!(frame["seq"], seq, "in order: {frame}");
        assert_eq!(frame["text"], format!("chat {seq}"));
        if carries(seq) {
            assert_eq!(frame["file"]["name"], format!("f{seq}.png"), "{frame}");
        } else {
            assert!(frame["file"].is_null(), "{frame}");
        }
    }
}
