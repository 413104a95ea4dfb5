//! Photos and files: uploaded over HTTP first (streamed to the blob store, never held whole
//! in memory), then sent as a chat that carries them. The client's file name is shown to
//! people and nothing else; the bytes decide the content type; only the two members of the
//! couple can read a file; a couple's files together stay within its quota; deleting its chat
//! deletes it.

pub mod recording;
pub mod sweeper;
pub mod thumbnail;

use axum::extract::multipart::Field;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use uuid::Uuid;

use crate::couple::Member;
use crate::error::{Error, Result};
use crate::services::Services;
use crate::store;
use crate::store::files::{File, NewFile, Recorded};
use crate::view::FileView;

pub use crate::store::blobs::{BlobStore, LocalDir};

/// Longest file name kept, in characters.
const MAX_NAME_CHARS: usize = 120;
/// Bytes looked at to tell the type and an image's size.
const SNIFF_BYTES: usize = 64 * 1024;

/// Streams one multipart field into a new blob, enforcing the size limit and the couple's
/// quota as bytes arrive. Over either, or on any failure, the partial blob is removed:
/// nothing is kept.
/// `voice`: the upload is a voice note, which must be a recording this server recognises, no
/// longer than `DUET_MAX_VOICE_SECS`.
pub async fn upload(
    services: &Services,
    me: &Member,
    mut field: Field<'_>,
    voice: bool,
) -> Result<FileView> {
    let name = clean_name(field.file_name().unwrap_or_default());
    let limit = services.config.max_upload_bytes;
    let quota = services.config.couple_quota_bytes;
    // Room left under the quota now; checked again, under the couple's lock, when the
    // upload is recorded, since the partner may be uploading too.
    let room = if quota == 0 {
        u64::MAX
    } else {
        let used = store::files::bytes_of_couple(&services.db, me.couple_id).await?;
        quota.saturating_sub(u64::try_from(used).unwrap_or(0))
    };
    let mut writer = services
        .files
        .create()
        .await
        .map_err(|e| Error::Internal(anyhow::Error::new(e).context("starting an upload")))?;
    let mut size: u64 = 0;
    let mut head: Vec<u8> = Vec::new();
    let outcome = async {
        while let Some(chunk) = field.chunk().await.map_err(upload_error)? {
            size += chunk.len() as u64;
            if size > limit {
                return Err(Error::TooLarge(format!(
                    "a file may have at most {limit} bytes"
                )));
            }
            if size > room {
                return Err(over_quota(quota));
            }
            if head.len() < SNIFF_BYTES {
                let take = (SNIFF_BYTES - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            writer
                .write(&chunk)
                .await
                .map_err(|e| Error::Internal(anyhow::Error::new(e).context("writing an upload")))?;
        }
        if size == 0 {
            return Err(Error::InvalidInput("the file is empty".into()));
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        writer.abort().await;
        return Err(e);
    }
    let blob = writer
        .finish()
        .await
        .map_err(|e| Error::Internal(anyhow::Error::new(e).context("storing an upload")))?;
    // From here the blob exists: what remains (measuring, a thumbnail, the row) runs to its end
    // in a task of its own, so a client that goes away meanwhile cannot leave blobs without a
    // row (an unsent upload's row is swept like any other).
    let kept = Kept {
        me: me.clone(),
        name,
        size,
        head,
        blob,
        voice,
    };
    let task = services.tasks.spawn(keep(services.clone(), kept));
    task.await
        .map_err(|e| Error::Internal(anyhow::Error::new(e).context("keeping an upload")))?
}

/// An upload whose bytes are stored, on its way to its row.
struct Kept {
    me: Member,
    name: String,
    size: u64,
    head: Vec<u8>,
    blob: String,
    voice: bool,
}

/// Measures a voice note, makes a photo's thumbnail and records the file; on any refusal or
/// failure the blobs are removed.
async fn keep(services: Services, kept: Kept) -> Result<FileView> {
    let Kept {
        me,
        name,
        size,
        head,
        blob,
        voice,
    } = kept;
    let quota = services.config.couple_quota_bytes;
    let (sniffed, dimensions) = sniff(&head);
    let (content_type, duration_ms) = match measure(&services, &blob, sniffed, voice).await {
        Ok(measured) => measured,
        Err(e) => {
            let _ = services.files.delete(&blob).await;
            return Err(e);
        }
    };
    let thumb = if content_type.starts_with("image/") {
        match thumbnail_of(&services, &blob, dimensions).await {
            Ok(thumb) => thumb,
            Err(e) => {
                let _ = services.files.delete(&blob).await;
                return Err(e);
            }
        }
    } else {
        None
    };
    let thumb_blob = thumb.as_ref().map(|t| t.0.clone());
    let new = NewFile {
        couple_id: me.couple_id,
        owner_id: me.user_id,
        name,
        size: i64::try_from(size).unwrap_or(i64::MAX),
        content_type,
        width: dimensions.map(|d| d.0),
        height: dimensions.map(|d| d.1),
        blob: blob.clone(),
        thumb,
        duration_ms,
    };
    let quota_bytes = (quota > 0).then(|| i64::try_from(quota).unwrap_or(i64::MAX));
    let refused = match store::files::record(&services.db, new, quota_bytes).await {
        Ok(Recorded::Kept(file)) => {
            tracing::debug!(couple_id = %me.couple_id, user_id = %me.user_id, file_id = %file.id, size, "file uploaded");
            return Ok(FileView::from(*file));
        }
        Ok(Recorded::OverQuota) => {
            tracing::debug!(couple_id = %me.couple_id, user_id = %me.user_id, size, "upload over the couple's quota");
            over_quota(quota)
        }
        Ok(Recorded::BreakingUp) => {
            tracing::debug!(couple_id = %me.couple_id, user_id = %me.user_id, "upload refused: the break-up is due");
            Error::NotPaired
        }
        Err(e) => e.into(),
    };
    let _ = services.files.delete(&blob).await;
    if let Some(thumb_blob) = thumb_blob {
        let _ = services.files.delete(&thumb_blob).await;
    }
    Err(refused)
}

/// Makes a photo's thumbnail and stores it: `(blob, width, height)`, or `None` for an image
/// that does not decode (it stays a file, without a place in the album). A photo over
/// `DUET_MAX_IMAGE_PIXELS` is `too_large`, refused before anything is decoded.
async fn thumbnail_of(
    services: &Services,
    blob: &str,
    dimensions: Option<(i32, i32)>,
) -> Result<Option<(String, i32, i32)>> {
    let max_pixels = services.config.max_image_pixels;
    let too_large = || Error::TooLarge(format!("a photo may have at most {max_pixels} pixels"));
    if let Some((width, height)) = dimensions
        && !thumbnail::allowed(width, height, max_pixels)
    {
        return Err(too_large());
    }
    let internal = |e: std::io::Error, what: &'static str| {
        Error::Internal(anyhow::Error::new(e).context(what))
    };
    // The turn first: it bounds how many uploads sit whole in memory, not only the CPU.
    let _turn = services
        .media
        .acquire()
        .await
        .map_err(|_| Error::Unavailable("the node is stopping".into()))?;
    let bytes = read_blob(services, blob).await?;
    let rendered = tokio::task::spawn_blocking(move || thumbnail::render(&bytes, max_pixels))
        .await
        .map_err(|e| Error::Internal(anyhow::Error::new(e).context("making a thumbnail")))?;
    let made = match rendered {
        Ok(made) => made,
        Err(image::ImageError::Limits(_)) => return Err(too_large()),
        Err(e) => {
            tracing::debug!(error = %e, "an image without a thumbnail");
            return Ok(None);
        }
    };
    let mut writer = services
        .files
        .create()
        .await
        .map_err(|e| internal(e, "storing a thumbnail"))?;
    if let Err(e) = writer.write(&made.bytes).await {
        writer.abort().await;
        return Err(internal(e, "storing a thumbnail"));
    }
    let thumb_blob = writer
        .finish()
        .await
        .map_err(|e| internal(e, "storing a thumbnail"))?;
    let size = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    Ok(Some((thumb_blob, size(made.width), size(made.height))))
}

/// The type a file is kept with and, for a voice note, how long it lasts. A voice note is
/// measured from its bytes in a process of its own (`duet measure-recording`, under memory and
/// CPU limits: a container can claim any size, and the demuxer believes it); one that holds no
/// audio this server recognises, or lasts longer than `DUET_MAX_VOICE_SECS`, is `invalid_input`.
/// Nothing else is measured.
async fn measure(
    services: &Services,
    blob: &str,
    sniffed: String,
    voice: bool,
) -> Result<(String, Option<i64>)> {
    if !voice {
        return Ok((sniffed, None));
    }
    let _turn = services
        .media
        .acquire()
        .await
        .map_err(|_| Error::Unavailable("the node is stopping".into()))?;
    let bytes = read_blob(services, blob).await?;
    let Some((content_type, duration_ms)) = probe_recording(services, bytes, &sniffed).await?
    else {
        return Err(Error::InvalidInput(
            "a voice note must be a recording: WebM, Ogg, MP4, MP3, WAV or FLAC audio".into(),
        ));
    };
    let max = services.config.max_voice_secs;
    if duration_ms > i64::try_from(max.saturating_mul(1000)).unwrap_or(i64::MAX) {
        return Err(Error::InvalidInput(format!(
            "a voice note may last at most {max} seconds"
        )));
    }
    Ok((content_type, Some(duration_ms)))
}

/// How long the measuring process may take before it is stopped (and the file refused).
const MEASURE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Runs `duet measure-recording` on the bytes: `(content type, milliseconds)`, or `None`
/// when they are no recording (or the process failed on them: a hostile file).
async fn probe_recording(
    services: &Services,
    bytes: Vec<u8>,
    sniffed: &str,
) -> Result<Option<(String, i64)>> {
    use tokio::io::AsyncWriteExt;
    let failed = |e: std::io::Error| {
        Error::Internal(anyhow::Error::new(e).context("starting duet measure-recording"))
    };
    let program = match &services.config.recording_probe {
        Some(program) => program.clone(),
        None => std::env::current_exe().map_err(failed)?,
    };
    let mut child = tokio::process::Command::new(program)
        .arg("measure-recording")
        .arg(sniffed)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(failed)?;
    let mut stdin = child.stdin.take();
    let run = async move {
        if let Some(stdin) = stdin.as_mut() {
            // A child that stops reading (it failed) makes this fail too: its answer decides.
            let _ = stdin.write_all(&bytes).await;
        }
        drop(stdin);
        child.wait_with_output().await
    };
    let output = match tokio::time::timeout(MEASURE_TIMEOUT, run).await {
        Ok(Ok(output)) if output.status.success() => output,
        Ok(Ok(_)) | Err(_) => {
            tracing::debug!("a voice note that could not be measured");
            return Ok(None);
        }
        Ok(Err(e)) => return Err(failed(e)),
    };
    #[derive(serde::Deserialize)]
    struct Measured {
        content_type: String,
        duration_ms: i64,
    }
    let measured: Option<Measured> = serde_json::from_slice(&output.stdout).unwrap_or(None);
    Ok(measured.map(|m| (m.content_type, m.duration_ms)))
}

/// A blob's bytes, whole (an upload, within the size limit).
async fn read_blob(services: &Services, blob: &str) -> Result<Vec<u8>> {
    let failed =
        |e: std::io::Error| Error::Internal(anyhow::Error::new(e).context("reading an upload"));
    let mut reader = services.files.open(blob).await.map_err(failed)?;
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes)
        .await
        .map_err(failed)?;
    Ok(bytes)
}

/// Removes a file's bytes from the blob store: its thumbnail, then the file itself.
pub async fn remove_blobs(services: &Services, file: &File) -> std::io::Result<()> {
    if let Some(thumb) = &file.thumb_blob {
        services.files.delete(thumb).await?;
    }
    services.files.delete(&file.blob).await
}

fn over_quota(quota: u64) -> Error {
    Error::TooLarge(format!(
        "your files together may take at most {quota} bytes: delete some file chats to make room"
    ))
}

fn upload_error(e: axum::extract::multipart::MultipartError) -> Error {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        Error::TooLarge("the upload is too large".into())
    } else {
        Error::BadRequest(format!("the upload broke off: {}", e.body_text()))
    }
}

/// The type from the bytes, never from the name or the client's header; and for images,
/// their pixel size.
fn sniff(head: &[u8]) -> (String, Option<(i32, i32)>) {
    let content_type = match infer::get(head) {
        Some(kind) => kind.mime_type().to_owned(),
        None if looks_like_text(head) => "text/plain; charset=utf-8".to_owned(),
        None => "application/octet-stream".to_owned(),
    };
    let dimensions = if content_type.starts_with("image/") {
        imagesize::blob_size(head).ok().and_then(|size| {
            Some((
                i32::try_from(size.width).ok()?,
                i32::try_from(size.height).ok()?,
            ))
        })
    } else {
        None
    };
    (content_type, dimensions)
}

/// UTF-8 without control characters other than whitespace (the head may end inside a
/// character).
fn looks_like_text(head: &[u8]) -> bool {
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() && head.len() >= SNIFF_BYTES => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\u{c}'))
}

/// A file name safe to store and show: no directories, control or reserved characters,
/// length-capped; never used as a path.
pub fn clean_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    // Control characters (DEL too, which the sanitizer's pattern misses) go first, and the
    // length is cut before the last trim, so the result never ends in a dot or a space.
    let mut name: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    // The sanitizer checks reserved names ("CON") before it trims trailing dots and spaces,
    // so "CON " would come out as "CON": clean until nothing changes (two rounds at most).
    loop {
        let cleaned = sanitize_filename::sanitize_with_options(
            &name,
            sanitize_filename::Options {
                windows: true,
                truncate: false,
                replacement: "",
            },
        );
        let cleaned = cleaned
            .trim_matches(|c: char| c == '.' || c.is_whitespace())
            .to_owned();
        if cleaned == name {
            break;
        }
        name = cleaned;
    }
    if name.is_empty() {
        return "file".to_owned();
    }
    // Windows also reads "CON .txt" as the device: the stem counts without trailing spaces.
    let stem = name.split('.').next().unwrap_or_default().trim_end();
    if sanitize_filename::is_sanitized_with_options(
        stem,
        sanitize_filename::OptionsForCheck {
            windows: true,
            truncate: false,
        },
    ) {
        name
    } else {
        format!("_{name}")
    }
}

/// A download for a member of the file's couple (anyone else: 404, as if it did not exist).
pub async fn download(
    services: &Services,
    couple_id: Uuid,
    file_id: Uuid,
    headers: &HeaderMap,
) -> Result<Response> {
    let file = store::files::find_in_couple(&services.db, couple_id, file_id)
        .await?
        .ok_or(Error::NotFound)?;
    serve(
        services,
        &file.blob,
        served_type(&file.content_type),
        &disposition(&file),
        headers,
    )
    .await
}

/// A photo's thumbnail (a JPEG without metadata), for the members of its couple.
pub async fn thumbnail(
    services: &Services,
    couple_id: Uuid,
    file_id: Uuid,
    headers: &HeaderMap,
) -> Result<Response> {
    let file = store::files::find_in_couple(&services.db, couple_id, file_id)
        .await?
        .ok_or(Error::NotFound)?;
    let thumb = file.thumb_blob.as_deref().ok_or(Error::NotFound)?;
    serve(services, thumb, "image/jpeg", "inline", headers).await
}

/// A blob as a response: ranges and conditional requests answered, the type given, never
/// sniffed, never kept unchecked in a cache.
async fn serve(
    services: &Services,
    blob: &str,
    content_type: &str,
    disposition: &str,
    headers: &HeaderMap,
) -> Result<Response> {
    let mut response = services
        .files
        .serve(blob, headers)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound,
            _ => Error::Internal(anyhow::Error::new(e).context("reading a file")),
        })?;
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        out.insert(header::CONTENT_TYPE, value);
    }
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(disposition) {
        out.insert(header::CONTENT_DISPOSITION, value);
    }
    out.insert(
        header::CACHE_CONTROL,
        // Revalidated on every view (a cheap 304): a deleted file must stop showing at once,
        // not linger in the partner's cache.
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(response)
}

/// The type a download is served with: types a browser would run script in (HTML, SVG, XML)
/// go out as plain bytes, whatever the disposition, in case a browser ignores it.
fn served_type(content_type: &str) -> &str {
    let active = ["html", "svg", "xml", "javascript"];
    if active.iter().any(|a| content_type.contains(a)) {
        "application/octet-stream"
    } else {
        content_type
    }
}

/// Images a browser renders without running anything are shown inline; everything else
/// (SVG included: it can carry script) is a download.
fn disposition(file: &File) -> String {
    let inline = matches!(
        file.content_type.as_str(),
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/avif" | "image/bmp"
    );
    let ascii: String = file
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded =
        percent_encoding::utf8_percent_encode(&file.name, percent_encoding::NON_ALPHANUMERIC);
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_paths_control_characters_and_length() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("a\0b\nc.txt"), "abc.txt");
        assert_eq!(clean_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(clean_name(""), "file");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name("사진 1.png"), "사진 1.png");
        assert_eq!(clean_name(&"x".repeat(500)).chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn the_type_comes_from_the_bytes() {
        let png = [
            0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R', 0,
            0, 0, 3, 0, 0, 0, 2, 8, 6, 0, 0, 0,
        ];
        assert_eq!(sniff(&png), ("image/png".to_owned(), Some((3, 2))));
        assert_eq!(sniff(b"hello").0, "text/plain; charset=utf-8");
        assert_eq!(sniff(&[0, 159, 146, 150]).0, "application/octet-stream");
    }

    /// Names a hostile or careless client may send: traversal, separators of both kinds,
    /// NUL and other controls, reserved characters and names, bidi overrides, emoji, Hangul,
    /// and long runs of them.
    fn hostile_name() -> impl proptest::strategy::Strategy<Value = String> {
        let piece = prop_oneof![
            Just("../"),
            Just("..\\"),
            Just("/"),
            Just("\\"),
            Just("\0"),
            Just("."),
            Just(" "),
            Just("\t"),
            Just("\n"),
            Just("\r"),
            Just("\u{7f}"),
            Just("\u{85}"),
            Just("\u{202e}"),
            Just("\u{feff}"),
            Just(":"),
            Just("*"),
            Just("?"),
            Just("\""),
            Just("<>|"),
            Just("%2e%2e%2f"),
            Just("CON"),
            Just("nul.txt"),
            Just("사진"),
            Just("😀"),
            Just("e\u{301}"),
            Just("a"),
            Just("report.pdf"),
        ];
        prop_oneof![
            any::<String>(),
            proptest::collection::vec(piece, 0..200).prop_map(|p| p.concat()),
            "\\PC{100,400}",
            // Names about as long as the limit, with dots and spaces where it cuts.
            "[a-z]{110,125}[. ]{1,3}[a-z]{0,5}",
        ]
    }

    /// Names Windows keeps for devices, with or without an extension: a download saved
    /// under one is not a file.
    fn is_reserved_on_windows(name: &str) -> bool {
        let stem = name
            .split('.')
            .next()
            .unwrap_or_default()
            .trim_end()
            .to_ascii_uppercase();
        matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
            || ((stem.starts_with("COM") || stem.starts_with("LPT"))
                && stem.len() == 4
                && stem.ends_with(|c: char| c.is_ascii_digit()))
    }

    fn file_named(name: String, content_type: &str) -> File {
        File {
            id: Uuid::nil(),
            couple_id: Uuid::nil(),
            owner_id: Uuid::nil(),
            name,
            size: 1,
            content_type: content_type.to_owned(),
            width: None,
            height: None,
            blob: "0".repeat(32),
            chat_id: None,
            created_at: chrono::Utc::now(),
            deleted_at: None,
            thumb_blob: None,
            thumb_width: None,
            thumb_height: None,
            duration_ms: None,
        }
    }

    use proptest::prelude::*;

    proptest::proptest! {
        // No regressions file: the layout of the repository is fixed; a failure prints its
        // minimal input, which belongs in `names_lose_paths_control_characters_and_length`.
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Whatever the client calls its file, what is kept is one plain, short, printable
        /// name: never a path, never empty.
        #[test]
        fn any_name_is_cleaned_to_one_plain_name(raw in hostile_name()) {
            let name = clean_name(&raw);
            proptest::prop_assert!(!name.is_empty());
            proptest::prop_assert!(name.chars().count() <= MAX_NAME_CHARS, "{name:?}");
            proptest::prop_assert!(
                !name.chars().any(|c| c == '/' || c == '\\' || c.is_control()),
                "{name:?}"
            );
            let components: Vec<_> = std::path::Path::new(&name).components().collect();
            proptest::prop_assert!(
                matches!(components.as_slice(), [std::path::Component::Normal(n)] if *n == name.as_str()),
                "{name:?} is not one plain path component: {components:?}"
            );
        }

        /// Dots and spaces are trimmed from both ends, also where the length limit cuts.
        #[test]
        fn a_cleaned_name_neither_starts_nor_ends_with_a_dot_or_a_space(raw in hostile_name()) {
            let name = clean_name(&raw);
            proptest::prop_assert!(
                !name.starts_with(['.', ' ']) && !name.ends_with(['.', ' ']),
                "{name:?} (from {raw:?}) starts or ends with a dot or a space"
            );
        }

        /// Windows' device names are removed (what `sanitize_filename`'s `windows` option is
        /// for), also when a control character hid them from it.
        #[test]
        fn no_name_is_cleaned_into_a_windows_device_name(
            raw in prop_oneof![
                hostile_name(),
                "[\\x00-\\x1f\\x7f ]{0,2}(CON|con|PRN|AUX|NUL|COM1|LPT9)[\\x00-\\x1f\\x7f .]{0,2}(\\.txt)?",
            ],
        ) {
            let name = clean_name(&raw);
            proptest::prop_assert!(
                !is_reserved_on_windows(&name),
                "{name:?} (from {raw:?}) is a device name on Windows"
            );
        }

        /// The download's `Content-Disposition` is a valid header for any stored name (even
        /// one that never went through `clean_name`), its quoted form cannot be broken out
        /// of, and its UTF-8 form gives back the name exactly.
        #[test]
        fn any_name_gives_a_safe_content_disposition(
            raw in hostile_name(),
            cleaned in proptest::bool::ANY,
            content_type in proptest::sample::select(vec!["image/png", "image/svg+xml", "text/html", "application/pdf"]),
        ) {
            let name = if cleaned { clean_name(&raw) } else { raw };
            let value = disposition(&file_named(name.clone(), content_type));
            proptest::prop_assert!(HeaderValue::from_str(&value).is_ok(), "{value:?}");
            let inline = value.starts_with("inline;");
            proptest::prop_assert!(inline || value.starts_with("attachment;"));
            proptest::prop_assert!(!inline || content_type == "image/png", "{content_type} shown inline");
            let quoted = value
                .split_once("filename=\"")
                .and_then(|(_, rest)| rest.split_once("\"; filename*=UTF-8''"))
                .map(|(quoted, _)| quoted);
            let Some(quoted) = quoted else {
                return Err(proptest::test_runner::TestCaseError::fail(format!("{value:?}")));
            };
            proptest::prop_assert!(!quoted.contains(['"', '\\']), "{value:?}");
            let encoded = value.rsplit_once("UTF-8''").map(|(_, e)| e).unwrap_or_default();
            let decoded = percent_encoding::percent_decode_str(encoded)
                .decode_utf8()
                .map(|d| d.into_owned())
                .ok();
            proptest::prop_assert_eq!(decoded.as_deref(), Some(name.as_str()));
        }
    }
}
