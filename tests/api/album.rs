//! Our album: every photo we sent, newest first, in pages without gaps; thumbnails the
//! server makes, upright and without the original's metadata; the original byte for byte;
//! a decompression bomb refused before it is decoded.

use std::io::Cursor;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::files::{PNG, blobs, upload, uploaded};
use crate::support::*;

both_backends!(
    the_album_lists_only_photos_newest_first_in_pages_without_gaps,
    a_thumbnail_is_upright_and_keeps_no_location_while_the_original_keeps_every_byte,
    a_photo_that_is_a_decompression_bomb_is_refused_before_it_is_decoded,
    deleting_a_photos_chat_deletes_its_thumbnail,
);

/// Sends an upload as a chat; returns its ack.
async fn send_file(socket: &mut Socket, file: &Value) -> Value {
    let client_id = uuid::Uuid::new_v4().to_string();
    socket
        .send(json!({ "type": "send", "client_id": client_id, "file_id": file["id"] }))
        .await;
    let ack = socket.until("ack").await;
    assert_eq!(ack["client_id"], client_id.as_str());
    ack
}

async fn album(user: &User, query: &str) -> Vec<Value> {
    let (status, body) = user.get(&format!("/api/album{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["photos"].as_array().cloned().unwrap_or_default()
}

async fn get_bytes(user: &User, path: &str) -> (StatusCode, Vec<u8>) {
    let res = reqwest::Client::new()
        .get(format!("{}{path}", user.base))
        .header("cookie", format!("duet_session={}", user.token))
        .send()
        .await
        .expect("the node answers");
    let status = res.status();
    (
        status,
        res.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
    )
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(width, height, |x, _| {
        image::Rgb([u8::try_from(x % 256).unwrap_or(0), 90, 160])
    });
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Jpeg)
        .unwrap();
    bytes
}

/// An EXIF block (APP1) saying the camera was turned (orientation 6: rotate 90° clockwise to
/// show) and where the photo was taken (GPS latitude 37° 33' N: Seoul).
fn exif_app1() -> Vec<u8> {
    let mut tiff: Vec<u8> = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes());
    // IFD0 at 8: two entries, then the next-IFD offset (none).
    let gps_ifd_at: u32 = 8 + 2 + 2 * 12 + 4;
    tiff.extend_from_slice(&2u16.to_le_bytes());
    let entry = |tiff: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]| {
        tiff.extend_from_slice(&tag.to_le_bytes());
        tiff.extend_from_slice(&kind.to_le_bytes());
        tiff.extend_from_slice(&count.to_le_bytes());
        tiff.extend_from_slice(&value);
    };
    entry(&mut tiff, 0x0112, 3, 1, [6, 0, 0, 0]);
    entry(&mut tiff, 0x8825, 4, 1, gps_ifd_at.to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    // The GPS IFD: latitude reference and latitude (three rationals after it).
    let rationals_at: u32 = gps_ifd_at + 2 + 2 * 12 + 4;
    tiff.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut tiff, 0x0001, 2, 2, [b'N', 0, 0, 0]);
    entry(&mut tiff, 0x0002, 5, 3, rationals_at.to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    for (n, d) in [(37u32, 1u32), (33, 1), (0, 1)] {
        tiff.extend_from_slice(&n.to_le_bytes());
        tiff.extend_from_slice(&d.to_le_bytes());
    }
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    app1.extend_from_slice(&payload);
    app1
}

/// A JPEG taken with the phone turned, carrying where it was taken.
fn turned_photo_with_location(width: u32, height: u32) -> Vec<u8> {
    let plain = jpeg(width, height);
    let mut with_exif = plain[..2].to_vec();
    with_exif.extend_from_slice(&exif_app1());
    with_exif.extend_from_slice(&plain[2..]);
    with_exif
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn the_album_lists_only_photos_newest_first_in_pages_without_gaps(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (mut m, mut j) = (mina.socket().await, joon.socket().await);
    let mut sent = Vec::new();
    for i in 0..5 {
        let (user, socket) = if i % 2 == 0 {
            (&mina, &mut m)
        } else {
            (&joon, &mut j)
        };
        let photo = uploaded(user, &format!("photo{i}.jpg"), &jpeg(64 + i, 48)).await;
        sent.push(send_file(socket, &photo).await);
        socket.acked(&format!("a chat between photos {i}")).await;
    }
    // Not photos: a text file, and a photo uploaded but never sent.
    let notes = uploaded(&mina, "notes.txt", b"just words").await;
    send_file(&mut m, &notes).await;
    uploaded(&mina, "unsent.png", PNG).await;
    // A photo whose chat is deleted leaves the album.
    let gone = &sent[1];
    j.send(json!({ "type": "delete", "chat_id": gone["id"] }))
        .await;
    m.until("deleted").await;

    let all = album(&mina, "").await;
    let seqs: Vec<i64> = all.iter().map(|p| p["seq"].as_i64().unwrap()).collect();
    let mut expected: Vec<i64> = sent
        .iter()
        .filter(|a| a["id"] != gone["id"])
        .map(|a| a["seq"].as_i64().unwrap())
        .collect();
    expected.reverse();
    assert_eq!(seqs, expected, "newest first, only photos");
    for photo in &all {
        assert!(
            photo["file"]["content_type"]
                .as_str()
                .unwrap()
                .starts_with("image/")
        );
        assert!(photo["thumbnail"]["width"].as_i64().unwrap() > 0, "{photo}");
        assert!(photo["sent_at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(all[0]["sender_id"], mina.id.to_string());
    assert_eq!(all[0]["chat_id"], sent[4]["id"]);

    // Pages of two, each starting below the last: together exactly the whole album.
    let mut paged = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = album(&joon, &query).await;
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        query = format!("?limit=2&before={}", last["seq"]);
        paged.extend(page.iter().map(|p| p["seq"].as_i64().unwrap()));
    }
    assert_eq!(paged, expected);
    let (other, _) = {
        let sora = User::signup(&node, "sora").await;
        let hana = User::signup(&node, "hana").await;
        pair(&sora, &hana).await;
        (sora, hana)
    };
    assert_eq!(album(&other, "").await, Vec::<Value>::new());
    let (status, _) = other
        .get(&format!(
            "/api/files/{}/thumbnail",
            all[0]["file"]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another couple's thumbnail");
}

async fn a_thumbnail_is_upright_and_keeps_no_location_while_the_original_keeps_every_byte(
    backend: Backend,
) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut m = mina.socket().await;
    let original = turned_photo_with_location(800, 400);
    assert!(contains(&original, b"Exif"));
    let photo = uploaded(&mina, "seoul.jpg", &original).await;
    send_file(&mut m, &photo).await;

    let listed = album(&joon, "").await;
    let thumb = &listed[0]["thumbnail"];
    // Turned as the camera said: the 800x400 picture stands upright, 200x400 at most 400 high.
    assert_eq!(
        (thumb["width"].as_i64(), thumb["height"].as_i64()),
        (Some(200), Some(400))
    );
    let id = photo["id"].as_str().unwrap();
    let (status, bytes) = get_bytes(&joon, &format!("/api/files/{id}/thumbnail")).await;
    assert_eq!(status, StatusCode::OK);
    let decoded = image::load_from_memory(&bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (200, 400));
    assert!(
        !contains(&bytes, b"Exif"),
        "the thumbnail carries no EXIF at all"
    );
    assert!(!contains(&bytes, &exif_app1()[10..30]), "nor the GPS block");

    let (status, kept) = get_bytes(&joon, &format!("/api/files/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kept, original, "the original stays byte for byte");
}

async fn a_photo_that_is_a_decompression_bomb_is_refused_before_it_is_decoded(backend: Backend) {
    let node = spawn_node_with(backend, &["--max-image-pixels=1000000"]).await;
    let (mina, _joon) = couple(&node).await;
    // A GIF that says it is 60000 x 60000 (3.6 billion pixels) in a few bytes.
    let mut bomb = b"GIF89a".to_vec();
    bomb.extend_from_slice(&60000u16.to_le_bytes());
    bomb.extend_from_slice(&60000u16.to_le_bytes());
    bomb.extend_from_slice(&[0x00, 0x00, 0x00]);
    bomb.extend_from_slice(&[0x2C, 0, 0, 0, 0, 0x60, 0xEA, 0x60, 0xEA, 0x00]);
    bomb.extend_from_slice(&[0x02, 0x02, 0x4C, 0x01, 0x00, 0x3B]);
    let (status, body) = upload(&mina, "bomb.gif", bomb).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "too_large");
    // A real photo just over the limit is refused the same way; nothing of either is kept.
    let (status, _) = upload(&mina, "big.jpg", jpeg(1001, 1000)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(blobs(&node).len(), 0);
    // The node goes on: a photo within the limit is kept with its thumbnail.
    uploaded(&mina, "fine.jpg", &jpeg(1000, 1000)).await;
    assert_eq!(blobs(&node).len(), 2);
}

async fn deleting_a_photos_chat_deletes_its_thumbnail(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut m = mina.socket().await;
    let photo = uploaded(&mina, "x.jpg", &jpeg(100, 80)).await;
    let ack = send_file(&mut m, &photo).await;
    let id = photo["id"].as_str().unwrap();
    assert_eq!(
        get_bytes(&joon, &format!("/api/files/{id}/thumbnail"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(blobs(&node).len(), 2, "the photo and its thumbnail");

    m.send(json!({ "type": "delete", "chat_id": ack["id"] }))
        .await;
    m.until("deleted").await;
    assert_eq!(
        get_bytes(&joon, &format!("/api/files/{id}/thumbnail"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(blobs(&node), Vec::<std::path::PathBuf>::new());
    assert_eq!(album(&joon, "").await, Vec::<Value>::new());
}
