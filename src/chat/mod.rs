//! The rules of the conversation: sending (idempotent on `client_id`), deleting one's own
//! chats, read marks, typing and presence, and reading events back for a resuming socket.
//! Order of a send: validate -> persist (seq) -> answer -> publish; nothing uncommitted is
//! ever published. The socket session and the HTTP handlers both come through here; neither
//! writes SQL nor publishes by itself.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::bus::BusEvent;
use crate::error::{Error, Result};
use crate::file::FileView;
use crate::frame::ServerFrame;
use crate::question::{self, QuestionView};
use crate::state::AppState;
use crate::store;
use crate::store::chats::{Chat, KIND_ANSWERED, KIND_CHAT, KIND_DELETED, KIND_QUESTION, NewChat};
use crate::store::files::File;

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
    fn new(chat: Chat, file: Option<File>) -> Self {
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
async fn views(state: &AppState, chats: Vec<Chat>) -> Result<Vec<ChatView>> {
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

async fn view(state: &AppState, chat: Chat) -> Result<ChatView> {
    let mut views = views(state, vec![chat]).await?;
    views
        .pop()
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("a chat went missing")))
}

pub fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Persists a chat and tells the couple. A repeat of a `client_id` this sender already used
/// creates nothing and returns the first chat, so a retry gets the same `ack`.
pub async fn send(
    state: &AppState,
    me: &Member,
    client_id: Uuid,
    text: &str,
    file_id: Option<Uuid>,
) -> Result<ChatView> {
    let text = text.trim();
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::TooLong);
    }
    if let Some(first) = store::chats::by_client_id(&state.db, me.user_id, client_id).await? {
        return view(state, first).await;
    }
    if text.is_empty() && file_id.is_none() {
        return Err(Error::InvalidInput("a chat needs some text".into()));
    }
    question::check_gate(state, me).await?;
    let triggers = state.catalogue.find(text);
    let new = NewChat {
        couple_id: me.couple_id,
        sender_id: me.user_id,
        client_id,
        text,
        file_id,
    };
    let started = std::time::Instant::now();
    let inserted = store::chats::insert(&state.db, new, &triggers).await;
    state
        .metrics
        .persist_seconds
        .observe(started.elapsed().as_secs_f64());
    let sent = match inserted {
        Ok(sent) => sent,
        Err(e) if is_unique_violation(&e) => {
            // The same send raced itself (two tabs retrying at once): the first one won.
            let first = store::chats::by_client_id(&state.db, me.user_id, client_id)
                .await?
                .ok_or(Error::Db(e))?;
            return view(state, first).await;
        }
        // Not my upload, already sent, or swept: as if it did not exist.
        Err(sea_orm::DbErr::RecordNotFound(_)) => return Err(Error::NotFound),
        Err(e) => return Err(e.into()),
    };
    let (chat, asked) = (sent.chat, sent.asked);
    tracing::debug!(couple_id = %me.couple_id, user_id = %me.user_id, seq = chat.seq, "chat sent");
    let view = ChatView::new(chat, sent.file);
    publish_persisted(
        state,
        me.couple_id,
        view.seq,
        &ServerFrame::Chat(view.clone()),
    )
    .await;
    for asked in asked {
        tracing::debug!(couple_id = %me.couple_id, user_id = %me.user_id, question_id = asked.question_id, seq = asked.seq, "question asked");
        let seq = asked.seq;
        publish_persisted(
            state,
            me.couple_id,
            seq,
            &ServerFrame::Question(asked.into()),
        )
        .await;
    }
    Ok(view)
}

fn is_unique_violation(e: &sea_orm::DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
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
        &ServerFrame::Deleted { seq, chat_id },
    )
    .await;
    Ok(())
}

/// Stores how far I have read and tells my partner, when it moved forward.
pub async fn read(state: &AppState, me: &Member, seq: i64) -> Result<()> {
    let last = store::couples::last_seq(&state.db, me.couple_id).await?;
    if seq < 0 || seq > last {
        return Err(Error::InvalidInput(format!(
            "read seq must be between 0 and {last}"
        )));
    }
    if store::couples::mark_read(&state.db, me.user_id, seq).await? {
        let frame = ServerFrame::Read {
            user_id: me.user_id,
            seq,
        };
        publish_to_partner(state, me, &frame).await;
    }
    Ok(())
}

pub async fn typing(state: &AppState, me: &Member) {
    publish_to_partner(
        state,
        me,
        &ServerFrame::Typing {
            user_id: me.user_id,
        },
    )
    .await;
}

pub async fn presence(state: &AppState, me: &Member, online: bool) {
    let event = BusEvent::Presence {
        user_id: me.user_id,
        online,
    };
    state.bus.publish(me.couple_id, event).await;
}

pub(crate) async fn publish_persisted(
    state: &AppState,
    couple_id: Uuid,
    seq: i64,
    frame: &ServerFrame,
) {
    let event = BusEvent::Frame {
        seq: Some(seq),
        skip_user: None,
        json: frame.to_text(),
    };
    state.bus.publish(couple_id, event).await;
}

async fn publish_to_partner(state: &AppState, me: &Member, frame: &ServerFrame) {
    let event = BusEvent::Frame {
        seq: None,
        skip_user: Some(me.user_id),
        json: frame.to_text(),
    };
    state.bus.publish(me.couple_id, event).await;
}

/// Persisted events with `after < seq <= upto` as frames, oldest first, at most `limit`:
/// what a resuming socket missed. Returns `(seq, frame)` pairs.
pub async fn events_between(
    state: &AppState,
    couple_id: Uuid,
    after: i64,
    upto: i64,
    limit: u64,
) -> Result<Vec<(i64, ServerFrame)>> {
    let rows = store::chats::events_between(&state.db, couple_id, after, upto, limit).await?;
    let chat_ids = rows
        .iter()
        .filter_map(|(_, chat)| chat.as_ref().map(|c| c.id))
        .collect();
    let mut files = store::files::of_chats(&state.db, chat_ids).await?;
    let question_seqs = rows
        .iter()
        .filter(|(event, _)| event.kind == KIND_QUESTION)
        .map(|(event, _)| event.seq)
        .collect();
    let mut asked = store::questions::asked_at_seqs(&state.db, couple_id, question_seqs).await?;
    let mut frames = Vec::with_capacity(rows.len());
    for (event, chat) in rows {
        let frame = match (event.kind.as_str(), event.chat_id, chat) {
            (KIND_CHAT, _, Some(chat)) => {
                let file = files
                    .iter()
                    .position(|f| f.chat_id == Some(chat.id))
                    .map(|i| files.swap_remove(i));
                ServerFrame::Chat(ChatView::new(chat, file))
            }
            (KIND_DELETED, Some(chat_id), _) => ServerFrame::Deleted {
                seq: event.seq,
                chat_id,
            },
            (KIND_QUESTION, ..) if asked.iter().any(|a| a.seq == event.seq) => {
                let index = asked.iter().position(|a| a.seq == event.seq).unwrap_or(0);
                ServerFrame::Question(QuestionView::from(asked.swap_remove(index)))
            }
            (KIND_ANSWERED, ..) => match (event.question_id, event.user_id) {
                (Some(question_id), Some(user_id)) => ServerFrame::Answered {
                    seq: event.seq,
                    question_id,
                    user_id,
                },
                _ => continue,
            },
            (kind, ..) => {
                tracing::warn!(%couple_id, seq = event.seq, kind, "event without its row");
                continue;
            }
        };
        frames.push((event.seq, frame));
    }
    Ok(frames)
}

/// Chats not deleted, `seq < before` (or the newest), newest first.
pub async fn history(
    state: &AppState,
    couple_id: Uuid,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<ChatView>> {
    let chats = store::chats::history(&state.db, couple_id, before, limit).await?;
    views(state, chats).await
}
