//! Taking our story with us: one zip with every chat, answer, date and file byte for byte,
//! also while a break-up is pending; nothing of anyone else's.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::files::{PNG, blobs, uploaded};
use crate::support::*;

both_backends!(
    the_export_holds_every_chat_answer_date_and_file_byte_for_byte,
    an_unpaired_user_gets_404_and_another_couple_none_of_ours,
    a_failure_half_way_breaks_the_download_rather_than_ending_it_short,
);

pub(crate) async fn export(user: &User) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/api/export", user.base))
        .header("cookie", format!("duet_session={}", user.token))
        .send()
        .await
        .expect("the node answers")
}

/// Every entry of the archive, by name, read by another implementation than the one that
/// wrote it (Python's `zipfile`, which also checks every CRC).
pub(crate) async fn unzip(bytes: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    const READ: &str = "import base64, json, sys, zipfile\n\
        z = zipfile.ZipFile(sys.argv[1])\n\
        assert z.testzip() is None\n\
        print(json.dumps([[n, base64.b64encode(z.read(n)).decode()] for n in z.namelist()]))";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.zip");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-c", READ])
        .arg(&path)
        .output()
        .expect("python3 reads the zip (apt-get install python3)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<(String, String)> = serde_json::from_slice(&out.stdout).unwrap();
    listed
        .into_iter()
        .map(|(name, data)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap();
            (name, bytes)
        })
        .collect()
}

pub(crate) fn entry<'a>(entries: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    entries
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, data)| data.as_slice())
        .unwrap_or_else(|| panic!("no {name} in the archive"))
}

async fn the_export_holds_every_chat_answer_date_and_file_byte_for_byte(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (mut m, mut j) = (mina.socket().await, joon.socket().await);
    let mut watcher = mina.socket().await;
    // Bytes no compressor shrinks, big enough to take many writes.
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let photo = uploaded(&mina, "우리 사진.png", PNG).await;
    let notes = uploaded(&joon, "notes.bin", &big).await;
    for (socket, file, text) in [(&mut m, &photo, "the photo"), (&mut j, &notes, "")] {
        let client_id = uuid::Uuid::new_v4();
        socket
            .send(json!({ "type": "send", "client_id": client_id, "text": text, "file_id": file["id"] }))
            .await;
        assert_eq!(
            socket.until("ack").await["client_id"],
            client_id.to_string()
        );
    }
    m.acked("여행을 가자").await;
    let question = watcher.until("question").await;
    both_answer(&mut m, &mut j, &mut watcher, &question["question_id"]).await;
    let gone = j.acked("never mind").await;
    j.send(json!({ "type": "delete", "chat_id": gone["id"] }))
        .await;
    j.until("deleted").await;
    mina.post(
        "/api/anniversaries/dates",
        json!({ "title": "first trip", "date": "2025-06-01", "yearly": true }),
    )
    .await;
    // A pending break-up does not stop either of us taking our story.
    let (status, _) = mina.delete("/api/couple").await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let res = export(&joon).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"duet-"),
        "{disposition}"
    );
    let entries = unzip(res.bytes().await.unwrap().to_vec()).await;

    let manifest: Value = serde_json::from_slice(entry(&entries, "manifest.json")).unwrap();
    assert_eq!(manifest["format"], "duet-export");
    assert_eq!(manifest["exported_by"], joon.id.to_string());
    assert!(manifest["couple"]["delete_at"].is_string(), "{manifest}");
    let chats: Vec<Value> = std::str::from_utf8(entry(&entries, "chats.ndjson"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let texts: Vec<&str> = chats.iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        ["the photo", "", "여행을 가자"],
        "oldest first, deleted left out"
    );
    let photo_path = format!("files/{}/우리 사진.png", photo["id"].as_str().unwrap());
    assert_eq!(chats[0]["file_path"], photo_path.as_str());
    assert_eq!(chats[0]["file"]["id"], photo["id"]);
    let notes_path = format!("files/{}/notes.bin", notes["id"].as_str().unwrap());
    assert_eq!(chats[1]["file_path"], notes_path.as_str());
    assert_eq!(entry(&entries, &photo_path), PNG);
    assert_eq!(entry(&entries, &notes_path), big.as_slice());

    let answers: Value = serde_json::from_slice(entry(&entries, "answers.json")).unwrap();
    assert_eq!(answers[0]["keyword"], "여행");
    assert_eq!(answers[0]["mine"]["text"], "yes");
    assert_eq!(answers[0]["partner"]["text"], "yes");
    let calendar: Value = serde_json::from_slice(entry(&entries, "anniversaries.json")).unwrap();
    assert_eq!(calendar["dates"][0]["title"], "first trip");
    assert_eq!(
        entries.len(),
        6,
        "manifest, chats, answers, anniversaries, two files"
    );
}

async fn an_unpaired_user_gets_404_and_another_couple_none_of_ours(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let photo = uploaded(&mina, "ours.png", PNG).await;
    let mut m = mina.socket().await;
    m.send(json!({ "type": "send", "client_id": uuid::Uuid::new_v4(), "text": "our picnic", "file_id": photo["id"] }))
        .await;
    m.until("ack").await;

    let single = User::signup(&node, "single").await;
    let res = export(&single).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _, _) = request(
        reqwest::Method::GET,
        &format!("{}/api/export", node.base()),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (sora, hana) = (
        User::signup(&node, "sora").await,
        User::signup(&node, "hana").await,
    );
    pair(&sora, &hana).await;
    sora.socket().await.acked("their picnic").await;
    let res = export(&hana).await;
    assert_eq!(res.status(), StatusCode::OK);
    let entries = unzip(res.bytes().await.unwrap().to_vec()).await;
    let chats = String::from_utf8(entry(&entries, "chats.ndjson").to_vec()).unwrap();
    assert!(chats.contains("their picnic"));
    assert!(!chats.contains("our picnic"), "{chats}");
    assert!(entries.iter().all(|(name, _)| !name.starts_with("files/")));
}

async fn a_failure_half_way_breaks_the_download_rather_than_ending_it_short(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let photo = uploaded(&mina, "lost.png", PNG).await;
    let mut m = mina.socket().await;
    m.send(json!({ "type": "send", "client_id": uuid::Uuid::new_v4(), "text": "a photo", "file_id": photo["id"] }))
        .await;
    m.until("ack").await;
    // The blob vanishes from storage: the chats are written, then its entry cannot be.
    for blob in blobs(&node) {
        std::fs::remove_file(blob).unwrap();
    }

    let res = export(&joon).await;
    assert_eq!(res.status(), StatusCode::OK, "the archive had started");
    assert!(
        res.bytes().await.is_err(),
        "a broken export must fail the download, not look like a complete zip"
    );
}
