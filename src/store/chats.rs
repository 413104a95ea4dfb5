//! Chats and the per-couple event log. Every persisted event takes the couple's next `seq`
//! inside the transaction that writes it (`UPDATE couples SET last_seq = last_seq + 1
//! RETURNING`), so seqs are gapless and both partners see one order. The `events` table is
//! that order; replays read it, the rows it points at hold the content.

use chrono::{DateTime, Utc};
use entity::{chats, couples, events, files};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, Iterable, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

pub use chats::Model as Chat;
pub use events::Model as Event;
pub use files::Model as File;

pub const KIND_CHAT: &str = "chat";
pub const KIND_DELETED: &str = "deleted";
pub const KIND_QUESTION: &str = "question";
pub const KIND_ANSWERED: &str = "answered";

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

pub(super) async fn append_event(
    txn: &DatabaseTransaction,
    couple_id: Uuid,
    seq: i64,
    kind: &str,
    refs: EventRef,
) -> Result<(), DbErr> {
    events::ActiveModel {
        couple_id: Set(couple_id),
        seq: Set(seq),
        kind: Set(kind.to_owned()),
        chat_id: Set(refs.chat_id),
        question_id: Set(refs.question_id),
        user_id: Set(refs.user_id),
        created_at: Set(Utc::now()),
    }
    .insert(txn)
    .await?;
    Ok(())
}

/// A chat of this couple that is not deleted yet.
pub async fn live_chat(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    chat_id: Uuid,
) -> Result<Option<Chat>, DbErr> {
    chats::Entity::find_by_id(chat_id)
        .filter(chats::Column::CoupleId.eq(couple_id))
        .filter(chats::Column::DeletedAt.is_null())
        .one(db)
        .await
}

/// Marks a chat deleted (its text is wiped: deleting means gone), releases its file and logs
/// a `deleted` event. Returns the seq and the released file; `None` when it was deleted
/// meanwhile.
pub async fn delete(
    db: &DatabaseConnection,
    couple_id: Uuid,
    chat_id: Uuid,
) -> Result<Option<(i64, Option<super::files::File>)>, DbErr> {
    let txn = db.begin().await?;
    let seq = next_seq(&txn, couple_id).await?;
    let wiped = chats::Entity::update_many()
        .col_expr(chats::Column::DeletedAt, Expr::value(Some(now_millis())))
        .col_expr(chats::Column::Text, Expr::value(String::new()))
        .filter(chats::Column::Id.eq(chat_id))
        .filter(chats::Column::CoupleId.eq(couple_id))
        .filter(chats::Column::DeletedAt.is_null())
        .exec(&txn)
        .await?;
    if wiped.rows_affected == 0 {
        // Dropping the transaction rolls the seq back: no gap.
        return Ok(None);
    }
    let file = super::files::release_chat(&txn, chat_id).await?;
    let refs = EventRef {
        chat_id: Some(chat_id),
        ..EventRef::default()
    };
    append_event(&txn, couple_id, seq, KIND_DELETED, refs).await?;
    txn.commit().await?;
    Ok(Some((seq, file)))
}

/// An event read back for a replay, with the chat it is about and that chat's file.
pub struct Replayed {
    pub seq: i64,
    pub kind: String,
    pub chat_id: Option<Uuid>,
    pub question_id: Option<i64>,
    pub user_id: Option<Uuid>,
    pub chat: Option<Chat>,
    pub file: Option<File>,
}

/// Events with `after < seq <= upto`, oldest first, at most `limit`, each with its chat and
/// the chat's file: one query, so a resume of a thousand events is one round trip. Columns
/// are read by position (named lookups cost more than the query on a long replay).
pub async fn events_between(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    after: i64,
    upto: i64,
    limit: u64,
) -> Result<Vec<Replayed>, DbErr> {
    use sea_orm::sea_query::{Alias, JoinType, Order, Query};
    let (e, c, f) = (Alias::new("e"), Alias::new("c"), Alias::new("f"));
    let mut select = Query::select();
    select
        .columns([
            (e.clone(), events::Column::Seq),
            (e.clone(), events::Column::Kind),
            (e.clone(), events::Column::ChatId),
            (e.clone(), events::Column::QuestionId),
            (e.clone(), events::Column::UserId),
        ])
        .columns(chats::Column::iter().map(|col| (c.clone(), col)))
        .columns(files::Column::iter().map(|col| (f.clone(), col)))
        .from_as(events::Entity, e.clone())
        .join_as(
            JoinType::LeftJoin,
            chats::Entity,
            c.clone(),
            Expr::col((c.clone(), chats::Column::Id)).equals((e.clone(), events::Column::ChatId)),
        )
        .join_as(
            JoinType::LeftJoin,
            files::Entity,
            f.clone(),
            Expr::col((f.clone(), files::Column::ChatId))
                .equals((c.clone(), chats::Column::Id))
                .and(Expr::col((f.clone(), files::Column::DeletedAt)).is_null()),
        )
        .and_where(Expr::col((e.clone(), events::Column::CoupleId)).eq(couple_id))
        .and_where(Expr::col((e.clone(), events::Column::Seq)).gt(after))
        .and_where(Expr::col((e.clone(), events::Column::Seq)).lte(upto))
        .order_by((e, events::Column::Seq), Order::Asc)
        .limit(limit);
    let rows = db.query_all(&select).await?;
    rows.iter().map(replayed).collect()
}

fn replayed(row: &sea_orm::QueryResult) -> Result<Replayed, DbErr> {
    let chat = match row.try_get_by_index::<Option<Uuid>>(5)? {
        None => None,
        Some(id) => Some(Chat {
            id,
            couple_id: row.try_get_by_index(6)?,
            seq: row.try_get_by_index(7)?,
            sender_id: row.try_get_by_index(8)?,
            client_id: row.try_get_by_index(9)?,
            text: row.try_get_by_index(10)?,
            sent_at: row.try_get_by_index(11)?,
            deleted_at: row.try_get_by_index(12)?,
        }),
    };
    let file = match row.try_get_by_index::<Option<Uuid>>(13)? {
        None => None,
        Some(id) => Some(File {
            id,
            couple_id: row.try_get_by_index(14)?,
            owner_id: row.try_get_by_index(15)?,
            name: row.try_get_by_index(16)?,
            size: row.try_get_by_index(17)?,
            content_type: row.try_get_by_index(18)?,
            width: row.try_get_by_index(19)?,
            height: row.try_get_by_index(20)?,
            blob: row.try_get_by_index(21)?,
            chat_id: row.try_get_by_index(22)?,
            created_at: row.try_get_by_index(23)?,
            deleted_at: row.try_get_by_index(24)?,
        }),
    };
    Ok(Replayed {
        seq: row.try_get_by_index(0)?,
        kind: row.try_get_by_index(1)?,
        chat_id: row.try_get_by_index(2)?,
        question_id: row.try_get_by_index(3)?,
        user_id: row.try_get_by_index(4)?,
        chat,
        file,
    })
}

/// Chats that are not deleted with `seq < before` (or the newest), newest first.
pub async fn history(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<Chat>, DbErr> {
    let mut query = chats::Entity::find()
        .filter(chats::Column::CoupleId.eq(couple_id))
        .filter(chats::Column::DeletedAt.is_null());
    if let Some(before) = before {
        query = query.filter(chats::Column::Seq.lt(before));
    }
    query
        .order_by_desc(chats::Column::Seq)
        .limit(limit)
        .all(db)
        .await
}

/// Times go out as RFC 3339 with milliseconds; storing them at that precision means a replay
/// shows exactly the `sent_at` the live frame showed, on every backend.
pub fn now_millis() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}
