//! The rules of the conversation: sending (idempotent on `client_id`), deleting one's own
//! chats, read marks, typing and presence, and reading events back for a resuming socket.
//! A send is checked here (length, emptiness, keywords) and handed to the node's committer,
//! which persists it with others (`committer`) under the rules of `plan`, then answers the
//! socket and publishes; nothing uncommitted is ever published. The socket session and the
//! HTTP handlers both come through here; neither writes SQL nor publishes by itself.

pub mod committer;
pub mod find;
pub mod plan;
pub mod reaction;

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::bus::Outbox;
use crate::couple::Member;
use crate::error::{Error, Result};
use crate::frame::ServerFrame;
use crate::publish;
use crate::services::Services;
use crate::store;
use crate::store::chats::Chat;
use crate::store::events::EventKind;
use crate::view::{ChatView, QuestionView, QuoteView, ReactionView, VersionView};
use crate::words;

pub use committer::{Committer, PendingSend};

/// Longest chat text, in characters, after trimming.
pub const MAX_TEXT_CHARS: usize = 4000;

/// What a send does to the conversation.
#[derive(Debug)]
pub enum Gesture {
    /// A new chat, perhaps with a file, perhaps answering an earlier one. `text` is trimmed
    /// and at most `MAX_TEXT_CHARS`.
    Chat {
        text: String,
        file_id: Option<Uuid>,
        reply_to: Option<Uuid>,
    },
    /// A reaction put on a chat (`Some`), or taken away.
    React {
        chat_id: Uuid,
        emoji: Option<String>,
    },
    /// A chat's new text.
    Edit { chat_id: Uuid, text: String },
}

/// Chats as the contract shows them, each with its file, the chat it quotes and its
/// reactions (read from `db`, the pool the chats came from).
async fn with_files(db: &DatabaseConnection, chats: Vec<Chat>) -> Result<Vec<ChatView>> {
    let ids = chats.iter().map(|c| c.id).collect();
    let mut files: HashMap<Uuid, store::files::File> = store::files::of_chats(db, ids)
        .await?
        .into_iter()
        .filter_map(|f| f.chat_id.map(|chat_id| (chat_id, f)))
        .collect();
    let chats = chats
        .into_iter()
        .map(|chat| {
            let file = files.remove(&chat.id);
            (chat, file)
        })
        .collect();
    dress(db, chats).await
}

/// Chats read back (one couple's) with their files, as the contract shows them: each with
/// the chat it quotes as it is now, and its reactions.
async fn dress(
    db: &DatabaseConnection,
    chats: Vec<(Chat, Option<store::files::File>)>,
) -> Result<Vec<ChatView>> {
    let Some(couple_id) = chats.first().map(|(chat, _)| chat.couple_id) else {
        return Ok(Vec::new());
    };
    let quoted_ids: Vec<Uuid> = chats.iter().filter_map(|(c, _)| c.reply_to).collect();
    let quoted: HashMap<Uuid, QuoteView> = store::chats::by_ids(db, couple_id, quoted_ids)
        .await?
        .iter()
        .map(|chat| (chat.id, QuoteView::from(chat)))
        .collect();
    let live: Vec<Uuid> = chats
        .iter()
        .filter(|(c, _)| c.deleted_at.is_none())
        .map(|(c, _)| c.id)
        .collect();
    let mut reactions: HashMap<Uuid, Vec<ReactionView>> = HashMap::new();
    for reaction in store::chats::reactions_on(db, live).await? {
        reactions
            .entry(reaction.chat_id)
            .or_default()
            .push(ReactionView {
                user_id: reaction.user_id,
                emoji: reaction.emoji,
            });
    }
    Ok(chats
        .into_iter()
        .map(|(chat, file)| {
            let reply_to = chat.reply_to.and_then(|id| quoted.get(&id).cloned());
            let reactions = reactions.remove(&chat.id).unwrap_or_default();
            ChatView {
                reply_to,
                reactions,
                ..ChatView::new(chat, file)
            }
        })
        .collect())
}

/// A chat about to be sent.
pub struct NewChat<'a> {
    pub text: &'a str,
    pub file_id: Option<Uuid>,
    /// The earlier chat it answers.
    pub reply_to: Option<Uuid>,
    /// The partner's client should not notify.
    pub silent: bool,
}

/// Checks a send and hands it to the committer; its `ack` (or `error`) reaches `reply` once
/// it is committed. A repeat of a `client_id` this sender already used creates nothing and
/// gets the first chat's `ack`.
pub fn send(
    committer: &Committer,
    me: &Member,
    client_id: Uuid,
    chat: NewChat<'_>,
    reply: Arc<Outbox>,
) -> Result<()> {
    let text = checked_text(chat.text, chat.file_id.is_some())?;
    let triggers = committer.catalogue().find(text);
    committer.send(PendingSend {
        me: me.clone(),
        client_id,
        gesture: Gesture::Chat {
            text: text.to_owned(),
            file_id: chat.file_id,
            reply_to: chat.reply_to,
        },
        silent: chat.silent,
        triggers,
        reply,
        queued_at: tokio::time::Instant::now(),
    })
}

/// A chat's text, trimmed, within the length; empty only with a file.
fn checked_text(text: &str, with_file: bool) -> Result<&str> {
    let text = text.trim();
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::TooLong);
    }
    if text.is_empty() && !with_file {
        return Err(Error::InvalidInput("a chat needs some text".into()));
    }
    Ok(text)
}

/// Puts my reaction on a chat of ours (replacing mine), or takes it away (`None` or `""`).
/// Answered like a send, through the committer.
pub fn react(
    committer: &Committer,
    me: &Member,
    client_id: Uuid,
    chat_id: Uuid,
    emoji: Option<&str>,
    reply: Arc<Outbox>,
) -> Result<()> {
    let emoji = match emoji.map(str::trim) {
        None | Some("") => None,
        Some(emoji) => Some(reaction::checked(emoji)?.to_owned()),
    };
    committer.send(PendingSend {
        me: me.clone(),
        client_id,
        gesture: Gesture::React { chat_id, emoji },
        silent: false,
        triggers: Vec::new(),
        reply,
        queued_at: tokio::time::Instant::now(),
    })
}

/// Changes the text of a chat of mine. Answered like a send, through the committer; its new
/// keywords ask their questions like a chat's.
pub fn edit(
    committer: &Committer,
    me: &Member,
    client_id: Uuid,
    chat_id: Uuid,
    text: &str,
    reply: Arc<Outbox>,
) -> Result<()> {
    let text = checked_text(text, false)?;
    let triggers = committer.catalogue().find(text);
    committer.send(PendingSend {
        me: me.clone(),
        client_id,
        gesture: Gesture::Edit {
            chat_id,
            text: text.to_owned(),
        },
        silent: false,
        triggers,
        reply,
        queued_at: tokio::time::Instant::now(),
    })
}

/// A live chat's texts, first to latest, each with when it was written.
pub async fn versions(
    services: &Services,
    couple_id: Uuid,
    chat_id: Uuid,
) -> Result<Vec<VersionView>> {
    versions_on(&services.db, couple_id, chat_id).await
}

/// `versions` on the given pool: the export reads through the read pool.
pub async fn versions_on(
    db: &DatabaseConnection,
    couple_id: Uuid,
    chat_id: Uuid,
) -> Result<Vec<VersionView>> {
    Ok(store::chats::versions(db, couple_id, chat_id)
        .await?
        .ok_or(Error::NotFound)?
        .into_iter()
        .map(|(text, at)| VersionView { text, at })
        .collect())
}

/// Deletes one of my own chats for both of us.
pub async fn delete(services: &Services, me: &Member, chat_id: Uuid) -> Result<()> {
    let chat = store::chats::live_chat(&services.db, me.couple_id, chat_id)
        .await?
        .ok_or(Error::NotFound)?;
    if chat.sender_id != me.user_id {
        return Err(Error::Forbidden("only the sender may delete a chat"));
    }
    let (seq, file) = store::chats::delete(&services.db, me.couple_id, chat_id, words::words_of)
        .await?
        .ok_or(Error::NotFound)?;
    if let Some(file) = file {
        // The row stays marked until the blob is gone, so the sweeper retries a failure.
        match crate::file::remove_blobs(services, &file).await {
            Ok(()) => store::files::forget(&services.db, file.id).await?,
            Err(e) => {
                tracing::warn!(couple_id = %me.couple_id, file_id = %file.id, error = %e, "removing a file; the sweeper will retry")
            }
        }
    }
    tracing::debug!(couple_id = %me.couple_id, user_id = %me.user_id, seq, "chat deleted");
    publish::persisted(
        &services.bus,
        me.couple_id,
        seq,
        Some(me.user_id),
        &ServerFrame::Deleted { seq, chat_id },
    );
    Ok(())
}

/// Stores how far I have read (the committer coalesces marks and tells my partner when
/// mine moved). The session checks `seq` against what it has delivered.
pub fn read(committer: &Committer, me: &Member, seq: i64) {
    committer.read(me.clone(), seq);
}

pub fn typing(services: &Services, me: &Member) {
    let frame = ServerFrame::Typing {
        user_id: me.user_id,
    };
    publish::to_partner(&services.bus, me.couple_id, me.user_id, &frame);
}

pub fn presence(services: &Services, me: &Member, online: bool) {
    publish::presence(&services.bus, me, online);
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
    services: &Services,
    couple_id: Uuid,
    after: i64,
    upto: i64,
    limit: u64,
) -> Result<Vec<Replayed>> {
    // A replay of more than a page (a long absence, `after=0` on a long history) is a heavy
    // read: it goes to the read pool, under its statement timeout, and cannot take the
    // connections sends need. A short catch-up stays on the main pool.
    let db = if upto.saturating_sub(after) > i64::try_from(limit).unwrap_or(i64::MAX) {
        services.reads_for(couple_id).await
    } else {
        services.db.clone()
    };
    let rows = store::events::between(&db, couple_id, after, upto, limit).await?;
    let question_seqs: Vec<i64> = rows
        .iter()
        .filter(|row| row.kind == EventKind::Question)
        .map(|row| row.seq)
        .collect();
    let mut asked: HashMap<i64, _> =
        store::questions::asked_at_seqs(&services.db, couple_id, question_seqs)
            .await?
            .into_iter()
            .map(|asked| (asked.seq, asked))
            .collect();
    // The page's chats, dressed (quotes, reactions) in one go, then put back in order.
    let mut rows = rows;
    let chats: Vec<(Chat, Option<store::files::File>)> = rows
        .iter_mut()
        .filter_map(|row| row.chat.take().map(|chat| (chat, row.file.take())))
        .collect();
    let mut views: HashMap<i64, ChatView> = dress(&db, chats)
        .await?
        .into_iter()
        .map(|view| (view.seq, view))
        .collect();
    let mut replayed = Vec::with_capacity(rows.len());
    for row in rows {
        let seq = row.seq;
        let (from, frame) = match (row.kind, row.chat_id) {
            (EventKind::Chat, _) => match views.remove(&seq) {
                Some(view) => (Some(view.sender_id), ServerFrame::Chat(view)),
                None => continue,
            },
            (EventKind::Deleted, Some(chat_id)) => (None, ServerFrame::Deleted { seq, chat_id }),
            (EventKind::Question, _) if asked.contains_key(&seq) => match asked.remove(&seq) {
                Some(question) => (None, ServerFrame::Question(QuestionView::from(question))),
                None => continue,
            },
            (EventKind::Answered, _) => match (row.question_id, row.user_id) {
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
            (EventKind::Reacted, Some(chat_id)) => match row.user_id {
                Some(user_id) => (
                    Some(user_id),
                    ServerFrame::Reacted {
                        seq,
                        chat_id,
                        user_id,
                        emoji: row.text,
                    },
                ),
                None => continue,
            },
            (EventKind::Edited, Some(chat_id)) => match row.user_id {
                // A deleted chat's edits lost their text with it; the `deleted` follows.
                Some(user_id) => (
                    Some(user_id),
                    ServerFrame::Edited {
                        seq,
                        chat_id,
                        user_id,
                        text: row.text.unwrap_or_default(),
                        edited_at: row.created_at,
                    },
                ),
                None => continue,
            },
            (kind, _) => {
                tracing::warn!(%couple_id, seq, kind = kind.as_str(), "event without its row");
                continue;
            }
        };
        replayed.push(Replayed { seq, from, frame });
    }
    Ok(replayed)
}

/// Chats not deleted, `seq < before` (or the newest), newest first.
pub async fn history(
    services: &Services,
    couple_id: Uuid,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<ChatView>> {
    let chats = store::chats::history(&services.db, couple_id, before, limit).await?;
    with_files(&services.db, chats).await
}
