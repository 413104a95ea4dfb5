//! The couple's event log. Every persisted event takes the couple's next `seq` inside the
//! transaction that writes it (under the couple's row lock), so seqs are gapless and both
//! partners see one order. A chat is its own entry in that log (`chats.seq`); the `events`
//! table holds every other kind (deleted, question, answered, reacted, edited) and points at
//! the rows with their content (a reaction's emoji and an edit's text are its own). A replay reads both, merged by seq. (Chat rows in `events` written before
//! this was so are skipped.)

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{chats, couples, events, files};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    Iterable, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

type Chat = chats::Model;
type File = files::Model;

/// What an entry of the log is; stored as its name in `events.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Chat,
    Deleted,
    Question,
    Answered,
    Reacted,
    Edited,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Chat => "chat",
            EventKind::Deleted => "deleted",
            EventKind::Question => "question",
            EventKind::Answered => "answered",
            EventKind::Reacted => "reacted",
            EventKind::Edited => "edited",
        }
    }

    /// A stored kind this build does not know is an error, not a silent skip: a newer node
    /// wrote it, and the replay must not pretend the log has a hole.
    fn parse(stored: &str) -> Result<EventKind, DbErr> {
        [
            EventKind::Chat,
            EventKind::Deleted,
            EventKind::Question,
            EventKind::Answered,
            EventKind::Reacted,
            EventKind::Edited,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == stored)
        .ok_or_else(|| DbErr::Type(format!("unknown event kind {stored:?}")))
    }
}

/// Takes the couple's next seq; the row lock it holds until commit is what keeps seqs
/// gapless and ordered.
pub(super) async fn next_seq(txn: &DatabaseTransaction, couple_id: Uuid) -> Result<i64, DbErr> {
    let updated = couples::Entity::update_many()
        .col_expr(
            couples::Column::LastSeq,
            Expr::col(couples::Column::LastSeq).add(1),
        )
        .filter(couples::Column::Id.eq(couple_id))
        .exec_with_returning(txn)
        .await?;
    updated
        .into_iter()
        .next()
        .map(|c| c.last_seq)
        .ok_or_else(|| DbErr::RecordNotFound(format!("couple {couple_id}")))
}

/// What an event row points at: a chat, or a question (and who answered it).
#[derive(Default)]
pub(super) struct EventRef {
    pub chat_id: Option<Uuid>,
    pub question_id: Option<i64>,
    pub user_id: Option<Uuid>,
}

pub(super) async fn append(
    txn: &DatabaseTransaction,
    couple_id: Uuid,
    seq: i64,
    kind: EventKind,
    refs: EventRef,
) -> Result<(), DbErr> {
    events::ActiveModel {
        couple_id: Set(couple_id),
        seq: Set(seq),
        kind: Set(kind.as_str().to_owned()),
        chat_id: Set(refs.chat_id),
        question_id: Set(refs.question_id),
        user_id: Set(refs.user_id),
        created_at: Set(Utc::now()),
        text: Set(None),
    }
    .insert(txn)
    .await?;
    Ok(())
}

/// An event read back for a replay, with the chat it is about and that chat's file.
pub struct Replayed {
    pub seq: i64,
    pub kind: EventKind,
    pub chat_id: Option<Uuid>,
    pub question_id: Option<i64>,
    pub user_id: Option<Uuid>,
    /// What the event set (an edit's text, a reaction's emoji).
    pub text: Option<String>,
    pub created_at: DateTime<Utc>,
    pub chat: Option<Chat>,
    pub file: Option<File>,
}

/// Events with `after < seq <= upto`, oldest first, at most `limit`, each with its chat and
/// the chat's file. Most events are chats, and a chat's event has the chat's seq: the chats
/// come from one range scan of `(couple_id, seq)` and only the other events from `events`,
/// which costs a third of joining every event to its chat on a long replay. Columns are read
/// by position (named lookups cost more than the queries do).
pub async fn between(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    after: i64,
    upto: i64,
    limit: u64,
) -> Result<Vec<Replayed>, DbErr> {
    let in_range = || {
        Expr::col(chats::Column::Seq)
            .gt(after)
            .and(Expr::col(chats::Column::Seq).lte(upto))
    };
    let chat_rows = db
        .query_all(
            Query::select()
                .columns(chats::Column::iter())
                .from(chats::Entity)
                .and_where(chats::Column::CoupleId.eq(couple_id))
                .and_where(in_range())
                .order_by(chats::Column::Seq, Order::Asc)
                .limit(limit),
        )
        .await?;
    let others = events::Entity::find()
        .filter(events::Column::CoupleId.eq(couple_id))
        .filter(events::Column::Seq.gt(after))
        .filter(events::Column::Seq.lte(upto))
        .filter(events::Column::Kind.ne(EventKind::Chat.as_str()))
        .order_by_asc(events::Column::Seq)
        .limit(limit)
        .all(db)
        .await?;
    let chats: Vec<Chat> = chat_rows.iter().map(chat_at).collect::<Result<_, _>>()?;
    // The files of this page's chats only (deleted chats have none left), by chat: what a
    // page costs stays in proportion to what it sends, however long the rest of the log.
    let live: Vec<Uuid> = chats
        .iter()
        .filter(|c| c.deleted_at.is_none())
        .map(|c| c.id)
        .collect();
    let mut files: HashMap<Uuid, File> = if live.is_empty() {
        HashMap::new()
    } else {
        files::Entity::find()
            .filter(files::Column::CoupleId.eq(couple_id))
            .filter(super::one_of(db, files::Column::ChatId, live))
            .filter(files::Column::DeletedAt.is_null())
            .all(db)
            .await?
            .into_iter()
            .filter_map(|f| f.chat_id.map(|chat_id| (chat_id, f)))
            .collect()
    };
    // Merge the two seq-ordered lists, keeping the first `limit`.
    let mut replayed = Vec::with_capacity(chats.len() + others.len());
    let (mut chats, mut others) = (chats.into_iter().peekable(), others.into_iter().peekable());
    while replayed.len() < limit as usize {
        let chat_first = match (chats.peek(), others.peek()) {
            (Some(chat), Some(event)) => chat.seq < event.seq,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let row = match (
            chat_first,
            chats.next_if(|_| chat_first),
            others.next_if(|_| !chat_first),
        ) {
            (_, Some(chat), _) => {
                let file = files.remove(&chat.id);
                Replayed {
                    seq: chat.seq,
                    kind: EventKind::Chat,
                    chat_id: Some(chat.id),
                    question_id: None,
                    user_id: None,
                    text: None,
                    created_at: chat.sent_at,
                    chat: Some(chat),
                    file,
                }
            }
            (_, None, Some(event)) => Replayed {
                seq: event.seq,
                kind: EventKind::parse(&event.kind)?,
                chat_id: event.chat_id,
                question_id: event.question_id,
                user_id: event.user_id,
                text: event.text,
                created_at: event.created_at,
                chat: None,
                file: None,
            },
            _ => break,
        };
        replayed.push(row);
    }
    Ok(replayed)
}

fn chat_at(row: &sea_orm::QueryResult) -> Result<Chat, DbErr> {
    Ok(Chat {
        id: row.try_get_by_index(0)?,
        couple_id: row.try_get_by_index(1)?,
        seq: row.try_get_by_index(2)?,
        sender_id: row.try_get_by_index(3)?,
        client_id: row.try_get_by_index(4)?,
        text: row.try_get_by_index(5)?,
        sent_at: row.try_get_by_index(6)?,
        deleted_at: row.try_get_by_index(7)?,
        reply_to: row.try_get_by_index(8)?,
        edits: row.try_get_by_index(9)?,
        edited_seq: row.try_get_by_index(10)?,
        first_text: row.try_get_by_index(11)?,
    })
}

/// Times go out as RFC 3339 with milliseconds; storing them at that precision means a replay
/// shows exactly the `sent_at` the live frame showed, on every backend.
pub fn now_millis() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}
