//! Voice notes: a recording uploaded as one is measured from its bytes and refused when it
//! is not audio or lasts too long; its chat carries how long it lasts.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::files::blobs;
use crate::support::*;

both_backends!(
    a_voice_note_is_measured_and_its_chat_says_how_long_it_lasts,
    a_voice_note_that_is_not_audio_or_lasts_too_long_is_refused_and_nothing_kept,
    a_hostile_recording_is_refused_and_the_node_lives_on,
);

/// A silent mono WAV of `millis`, 8 kHz, 16 bits.
fn wav(millis: u32) -> Vec<u8> {
    let rate = 8000u32;
    let data = rate * millis / 1000 * 2;
    let mut bytes = b"RIFF".to_vec();
    bytes.extend_from_slice(&(36 + data).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * 2).to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data.to_le_bytes());
    bytes.resize(bytes.len() + data as usize, 0);
    bytes
}

async fn upload_voice(user: &User, bytes: Vec<u8>) -> (StatusCode, Value) {
    crate::files::upload_to(user, "/api/files?voice=true", "voice.webm", bytes).await
}

async fn a_voice_note_is_measured_and_its_chat_says_how_long_it_lasts(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (status, body) = upload_voice(&mina, wav(2750)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let file = &body["file"];
    assert_eq!(file["duration_ms"], 2750);
    assert!(
        file["content_type"].as_str().unwrap().starts_with("audio/"),
        "{file}"
    );

    let mut m = mina.socket().await;
    let mut j = joon.socket().await;
    m.send(json!({ "type": "send", "client_id": uuid::Uuid::new_v4(), "file_id": file["id"] }))
        .await;
    let chat = j.until("chat").await;
    assert_eq!(chat["file"]["duration_ms"], 2750, "{chat}");
    let (_, history) = joon.get("/api/chats").await;
    assert_eq!(history["chats"][0]["file"]["duration_ms"], 2750);
    // Only voice notes are measured: any other file, audio too, is kept as it came.
    let plain = crate::files::uploaded(&mina, "song.wav", &wav(1000)).await;
    assert!(plain.get("duration_ms").is_none(), "{plain}");
}

async fn a_voice_note_that_is_not_audio_or_lasts_too_long_is_refused_and_nothing_kept(
    backend: Backend,
) {
    let node = spawn_node_with(backend, &["--max-voice-secs=2"]).await;
    let (mina, _joon) = couple(&node).await;
    let (status, body) = upload_voice(&mina, b"not a recording at all".to_vec()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_input");
    let (status, body) = upload_voice(&mina, crate::files::PNG.to_vec()).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a photo is no voice note: {body}"
    );
    let (status, body) = upload_voice(&mina, wav(2500)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 seconds")
    );
    assert_eq!(blobs(&node), Vec::<std::path::PathBuf>::new());
    let (status, _) = upload_voice(&mina, wav(1900)).await;
    assert_eq!(status, StatusCode::CREATED);
}

/// An MP4 whose sample table claims four billion entries: a demuxer that believes it asks for
/// tens of gigabytes. It is measured in a process of its own, which may die of it; the node
/// answers `invalid_input` and goes on.
fn mp4_claiming_billions() -> Vec<u8> {
    fn atom(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(body.len() + 8)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }
    let ftyp = atom(b"ftyp", b"M4A \0\0\0\0M4A isom");
    let mut stsc = vec![0u8; 4];
    stsc.extend_from_slice(&u32::MAX.to_be_bytes());
    let stbl = atom(b"stbl", &atom(b"stsc", &stsc));
    let minf = atom(b"minf", &stbl);
    let mut hdlr = vec![0u8; 8];
    hdlr.extend_from_slice(b"soun");
    hdlr.extend_from_slice(&[0u8; 13]);
    let mut mdia_body = atom(b"hdlr", &hdlr);
    mdia_body.extend_from_slice(&minf);
    let trak = atom(b"trak", &atom(b"mdia", &mdia_body));
    let mut bytes = ftyp;
    bytes.extend_from_slice(&atom(b"moov", &trak));
    bytes
}

async fn a_hostile_recording_is_refused_and_the_node_lives_on(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let (status, body) = upload_voice(&mina, mp4_claiming_billions()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(blobs(&node), Vec::<std::path::PathBuf>::new());
    let (status, body) = upload_voice(&mina, wav(1000)).await;
    assert_eq!(status, StatusCode::CREATED, "the node goes on: {body}");
}
