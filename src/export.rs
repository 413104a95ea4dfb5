//! Taking our story with us: the couple's whole history as one zip, written while it is
//! sent (a page of chats, a file's bytes at a time), never held whole in memory. Either
//! partner may take it, also while a break-up is pending.
//!
//! ```text
//! manifest.json        what this is, who, when, and where everything is
//! chats.ndjson         every chat that is not deleted, oldest first, as the API shows it
//!                      (with the chat it replies to and its reactions), plus "file_path"
//!                      for a chat with a file and "versions" for an edited one
//! answers.json         every question asked and both answers (as the answers page)
//! anniversaries.json   day one, the time zone and our own dates (as GET /api/anniversaries)
//! files/<id>/<name>    the files themselves, byte for byte
//! ```

use std::io;

use async_zip::base::write::ZipFileWriter;
use async_zip::{Compression, ZipEntryBuilder};
use axum::body::{Body, Bytes};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncWrite, DuplexStream};
use tokio_util::compat::FuturesAsyncWriteCompatExt;
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use crate::anniversary;
use crate::chat;
use crate::couple::Member;
use crate::error::{Error, Result};
use crate::heavy::Permit;
use crate::pairing;
use crate::question;
use crate::services::Services;
use crate::store;
use crate::view::{ChatView, VersionView, rfc3339, rfc3339_opt};

/// Chats (and files) read per query.
const PAGE: u64 = 500;
/// What may sit between the writer and the socket.
const PIPE_BYTES: usize = 256 * 1024;

#[derive(Serialize)]
struct Manifest {
    format: &'static str,
    version: u32,
    #[serde(serialize_with = "rfc3339")]
    exported_at: DateTime<Utc>,
    exported_by: Uuid,
    couple: CoupleEntry,
    members: Vec<MemberEntry>,
    contents: Contents,
}

#[derive(Serialize)]
struct CoupleEntry {
    id: Uuid,
    #[serde(serialize_with = "rfc3339")]
    since: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_opt")]
    delete_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct MemberEntry {
    id: Uuid,
    username: String,
}

#[derive(Serialize)]
struct Contents {
    chats: &'static str,
    answers: &'static str,
    anniversaries: &'static str,
    files: &'static str,
}

#[derive(Serialize)]
struct ChatLine<'a> {
    #[serde(flatten)]
    chat: &'a ChatView,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_path: Option<String>,
    /// An edited chat's texts, as sent and after each edit.
    #[serde(skip_serializing_if = "Option::is_none")]
    versions: Option<Vec<VersionView>>,
}

/// Where a file goes in the archive.
fn file_path(file_id: Uuid, name: &str) -> String {
    format!("files/{file_id}/{name}")
}

/// The archive as a response body, and its file name. Checks membership before anything is
/// sent; a failure half-way ends the body with an error, so the download is seen to fail
/// rather than end as a short zip.
/// `turn` is the user's export turn (`crate::heavy`): it ends when the writing does, with
/// the last byte sent or the download abandoned.
pub async fn archive(services: &Services, me: &Member, turn: Permit) -> Result<(String, Body)> {
    let mine = pairing::my_couple(services, me.user_id)
        .await?
        .filter(|mine| mine.couple.id == me.couple_id)
        .ok_or(Error::NotFound)?;
    let me_user = store::users::by_id(&services.db, me.user_id)
        .await?
        .ok_or(Error::NotFound)?;
    let manifest = Manifest {
        format: "duet-export",
        // 2: chats carry replies (`reply_to`), reactions and edits (`edits`, `versions`).
        version: 2,
        exported_at: Utc::now(),
        exported_by: me.user_id,
        couple: CoupleEntry {
            id: mine.couple.id,
            since: mine.couple.since,
            delete_at: mine.couple.delete_at,
        },
        members: vec![
            MemberEntry {
                id: me_user.id,
                username: me_user.username,
            },
            MemberEntry {
                id: mine.partner.id,
                username: mine.partner.username,
            },
        ],
        contents: Contents {
            chats: "chats.ndjson",
            answers: "answers.json",
            anniversaries: "anniversaries.json",
            files: "files/<file id>/<name>",
        },
    };
    let (writer, reader) = tokio::io::duplex(PIPE_BYTES);
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<io::Error>();
    let task_services = services.clone();
    let task_me = me.clone();
    services.tasks.spawn(async move {
        let _turn = turn;
        if let Err(e) = write(&task_services, &task_me, manifest, writer).await {
            tracing::warn!(couple_id = %task_me.couple_id, user_id = %task_me.user_id, error = %e, "export failed half-way");
            let _ = failed_tx.send(io::Error::other("the export failed"));
        }
    });
    let failure = futures_util::stream::once(failed_rx)
        .filter_map(|outcome| async move { outcome.ok().map(Err::<Bytes, io::Error>) });
    let body = Body::from_stream(ReaderStream::new(reader).chain(failure));
    tracing::info!(couple_id = %me.couple_id, user_id = %me.user_id, "export started");
    let name = format!("duet-{}.zip", Utc::now().format("%Y-%m-%d"));
    Ok((name, body))
}

async fn write(
    services: &Services,
    me: &Member,
    manifest: Manifest,
    writer: DuplexStream,
) -> Result<()> {
    // Chosen once: a standby that has the couple now only moves on.
    let reads = services.reads_for(me.couple_id).await;
    let mut zip = ZipFileWriter::with_tokio(writer);
    whole(&mut zip, "manifest.json", &json(&manifest)?).await?;

    let entry = ZipEntryBuilder::new("chats.ndjson".into(), Compression::Deflate)
        .last_modification_date(Utc::now().into());
    let mut chats = zip
        .write_entry_stream(entry)
        .await
        .map_err(zip_error)?
        .compat_write();
    let mut after = 0;
    loop {
        let page = chat::find::forward_on(&reads, me.couple_id, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        let mut lines = Vec::new();
        for view in &page {
            let versions = if view.edits > 0 {
                Some(chat::versions_on(&reads, me.couple_id, view.id).await?)
            } else {
                None
            };
            let line = ChatLine {
                chat: view,
                file_path: view.file.as_ref().map(|f| file_path(f.id, &f.name)),
                versions,
            };
            serde_json::to_writer(&mut lines, &line).map_err(|e| Error::Internal(e.into()))?;
            lines.push(b'\n');
        }
        write_all(&mut chats, &lines).await?;
    }
    chats.into_inner().close().await.map_err(zip_error)?;

    let answers = question::answers_page(services, me).await?;
    whole(&mut zip, "answers.json", &json(&answers)?).await?;
    let anniversaries = anniversary::view(services, me.couple_id).await?;
    whole(&mut zip, "anniversaries.json", &json(&anniversaries)?).await?;

    let mut after = None;
    loop {
        let page = store::files::sent_in_couple(&reads, me.couple_id, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for file in page {
            let mut blob = services.files.open(&file.blob).await.map_err(io_error)?;
            let entry =
                ZipEntryBuilder::new(file_path(file.id, &file.name).into(), Compression::Stored)
                    .last_modification_date(file.created_at.into());
            let mut out = zip
                .write_entry_stream(entry)
                .await
                .map_err(zip_error)?
                .compat_write();
            tokio::io::copy(&mut blob, &mut out)
                .await
                .map_err(io_error)?;
            out.into_inner().close().await.map_err(zip_error)?;
        }
    }
    let mut writer = zip.close().await.map_err(zip_error)?.into_inner();
    tokio::io::AsyncWriteExt::shutdown(&mut writer)
        .await
        .map_err(io_error)?;
    Ok(())
}

async fn whole<W: AsyncWrite + Unpin>(
    zip: &mut ZipFileWriter<tokio_util::compat::Compat<W>>,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    let entry = ZipEntryBuilder::new(name.to_owned().into(), Compression::Deflate)
        .last_modification_date(Utc::now().into());
    zip.write_entry_whole(entry, bytes).await.map_err(zip_error)
}

async fn write_all(out: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> Result<()> {
    tokio::io::AsyncWriteExt::write_all(out, bytes)
        .await
        .map_err(io_error)
}

fn zip_error(e: async_zip::error::ZipError) -> Error {
    Error::Internal(anyhow::anyhow!("writing the zip: {e}"))
}

fn io_error(e: io::Error) -> Error {
    Error::Internal(anyhow::anyhow!("export: {e}"))
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| Error::Internal(e.into()))
}
