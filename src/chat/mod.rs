//! The rules of the conversation: sending (idempotent on `client_id`), deleting one's own
//! chats, read marks, typing and presence, and reading events back for a resuming socket.
//! A send is checked here (length, emptiness, keywords) and handed to the node's committer,
//! which persists it with others (`committer`) under the rules of `plan`, then answers the
//! socket and publishes; nothing uncommitted is ever published. The socket session and the
//! HTTP handlers both come through here; neither writes SQL nor publishes by itself.

pub mod committer;
pub mod plan;

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::bus::{BusEvent, Outbox};
use crate::error::{Error, Result};
use crate::file::FileView;
use crate::frame::ServerFrame;
use crate::question::QuestionView;
use crate::state::AppState;
use crate::store;
use crate::store::chats::{Chat, KIND_ANSWERED, KIND_CHAT, KIND_DELETED, KIND_QUESTION};
use crate::store::files::File;

pub use committer::{Committer, PendingSend};

/// Longest chat text, in characters, after trimming.
pub const MAX_TEXT_CHARS: usize = 4000;

/// Who is acting, and in which couple: what every action needs to know.
#[derive(Clone, Debug)]
pub struct Member {
    pub user_id: Uuid,
    pub couple_id: Uuid,
    pub partner_id: Uuid,
    pub session_id: Uuid,
}

/// A chat as the contract shows it, in `chat` frames and in `GET /api/chats`.
#[derive(Serialize, Debug, Clone)]
pub struct ChatView {
    pub seq: i64,
    pub id: Uuid,
    pub sender_id: Uuid,
    pub text: String,
    pub file: Option<FileView>,
    #[serde(serialize_with = "rfc3339")]
    pub sent_at: DateTime<Utc>,
    pub client_id: Option<Uuid>,
    /// Extension: set only when a replay passes a chat deleted since (its text is gone).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl ChatView {
    pub(crate) fn new(chat: Chat, file: Option<File>) -> Self {
        ChatView {
            seq: chat.seq,
            id: chat.id,
            sender_id: chat.sender_id,
            deleted: chat.deleted_at.is_some(),
            text: chat.text,
            file: file.map(FileView::from),
            sent_at: chat.sent_at,
            client_id: Some(chat.client_id),
        }
    }
}

/// Chats as the contract shows them, each with its file.
async fn with_files(state: &AppState, chats: Vec<Chat>) -> Result<Vec<ChatView>> {
    let ids = chats.iter().map(|c| c.id).collect();
    let mut files = store::files::of_chats(&state.db, ids).await?;
    Ok(chats
        .into_iter()
        .map(|chat| {
            let file = files
                .iter()
                .position(|f| f.chat_id == Some(chat.id))
                .map(|i| files.swap_remove(i));
            ChatView::new(chat, file)
        })
        .collect())
}

pub fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Checks a send and hands it to the committer; its `ack` (or `error`) reaches `reply` once
/// it is committed. A repeat of a `client_id` this sender already used creates nothing and
/// gets the first chat's `ack`.
pub fn send(
    state: &AppState,
    me: &Member,
    client_id: Uuid,
    text: &str,
    file_id: Option<Uuid>,
    reply: Arc<Outbox>,
) -> Result<()> {
    let text = text.trim();
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::TooLong);
    }
    if text.is_empty() && file_id.is_none() {
        return Err(Error::InvalidInput("a chat needs some text".into()));
    }
    let triggers = state.catalogue.find(text);
    state.committer.send(PendingSend {
        me: me.clone(),
        client_id,
        text: text.to_owned(),
        file_id,
        triggers,
        reply,
        queued_at: tokio::time::Instant::now(),
    })
}

/// Deletes one of my own chats for both of us.
pub async fn delete(state: &AppState, me: &Member, chat_id: Uuid) -> Result<()> {
    let chat = store::chats::live_chat(&state.db, me.couple_id, chat_id)
        .await?
        .ok_or(Error::NotFound)?;
    if chat.sender_id != me.user_id {
        return Err(Error::Forbidden("only the sender may delete a chat"));
    }
    let (seq, file) = store::chats::delete(&state.db, me.couple_id, chat_id)
        .await?
        .ok_or(Error::NotFound)?;
    if let Some(file) = file {
        // The row stays marked until the blob is gone, so the sweeper retries a failure.
        match state.files.delete(&file.blob).await {
            Ok(()) => store::files::forget(&state.db, file.id).await?,
            Err(e) => {
                tracing::warn!(couple_id = %me.couple_id, file_id = %file.id, error = %e, "removing a file; the sweeper will retry")
            }
        }
    }
    tracing::debug!(couple_id = %me.couple_id, user_id = %me.user_id, seq, "chat deleted");
    publish_persisted(
        state,
        me.couple_id,
        seq,
        Some(me.user_id),
        &ServerFrame::Deleted { seq, chat_id },
    );
    Ok(())
}

/// Stores how far I have read (the committer coalesces marks and tells my partner when
/// mine moved). The session checks `seq` against what it has delivered.
pub fn read(state: &AppState, me: &Member, seq: i64) {
    state.committer.read(me.clone(), seq);
}

pub fn typing(state: &AppState, me: &Member) {
    publish_to_partner(
        state,
        me,
        &ServerFrame::Typing {
            user_id: me.user_id,
        },
    );
}

pub fn presence(state: &AppState, me: &Member, online: bool) {
    let event = BusEvent::Presence {
        user_id: me.user_id,
        online,
    };
    state.bus.publish(me.couple_id, event);
}

/// A persisted event for both partners; `from` is who it is by, when anyone.
pub(crate) fn publish_persisted(
    state: &AppState,
    couple_id: Uuid,
    seq: i64,
    from: Option<Uuid>,
    frame: &ServerFrame,
) {
    let event = BusEvent::Frame {
        seq: Some(seq),
        skip_user: None,
        from,
        json: frame.to_text(),
    };
    state.bus.publish(couple_id, event);
}

fn publish_to_partner(state: &AppState, me: &Member, frame: &ServerFrame) {
    let event = BusEvent::Frame {
        seq: None,
        skip_user: Some(me.user_id),
        from: Some(me.user_id),
        json: frame.to_text(),
    };
    state.bus.publish(me.couple_id, event);
}

/// A persisted event read back from the database: its seq, who it is by, its frame.
pub struct Replayed {
    pub seq: i64,
    pub from: Option<Uuid>,
    pub frame: ServerFrame,
}

/// Persisted events with `after < seq <= upto` as frames, oldest first, at most `limit`:
/// what a resuming socket missed.
pub async fn events_between(
    state: &AppState,
    couple_id: Uuid,
    after: i64,
    upto: i64,
    limit: u64,
) -> Result<Vec<Replayed>> {
    let rows = store::chats::events_between(&state.db, couple_id, after, upto, limit).await?;
    let question_seqs: Vec<i64> = rows
        .iter()
        .filter(|row| row.kind == KIND_QUESTION)
        .map(|row| row.seq)
        .collect();
    let mut asked = store::questions::asked_at_seqs(&state.db, couple_id, question_seqs).await?;
    let mut replayed = Vec::with_capacity(rows.len());
    for row in rows {
        let seq = row.seq;
        let (from, frame) = match (row.kind.as_str(), row.chat_id, row.chat) {
            (KIND_CHAT, _, Some(chat)) => (
                Some(chat.sender_id),
                ServerFrame::Chat(ChatView::new(chat, row.file)),
            ),
            (KIND_DELETED, Some(chat_id), chat) => (
                chat.map(|c| c.sender_id),
                ServerFrame::Deleted { seq, chat_id },
            ),
            (KIND_QUESTION, ..) if asked.iter().any(|a| a.seq == seq) => {
                let index = asked.iter().position(|a| a.seq == seq).unwrap_or(0);
                (
                    None,
                    ServerFrame::Question(QuestionView::from(asked.swap_remove(index))),
                )
            }
            (KIND_ANSWERED, ..) => match (row.question_id, row.user_id) {
                (Some(question_id), Some(user_id)) => (
                    Some(user_id),
                    ServerFrame::Answered {
                        seq,
                        question_id,
                        user_id,
                    },
                ),
                _ => continue,
            },
            (kind, ..) => {
                tracing::warn!(%couple_id, seq, kind, "event without its row");
                continue;
            }
        };
        replayed.push(Replayed { seq, from, frame });
    }
    Ok(replayed)
}

/// Chats not deleted, `seq < before` (or the newest), newest first.
pub async fn history(
    state: &AppState,
    couple_id: Uuid,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<ChatView>> {
    let chats = store::chats::history(&state.db, couple_id, before, limit).await?;
    with_files(state, chats).await
}
