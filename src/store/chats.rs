//! Chats: one that is live, deleting one (its text wiped, a `deleted` event logged), and
//! history pages. Their place in the couple's order is the event log's (`store::events`).

use entity::{chats, files};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::events::{self, EventKind, EventRef, now_millis};

pub use chats::Model as Chat;
pub use files::Model as File;

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
    let seq = events::next_seq(&txn, couple_id).await?;
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
    events::append(&txn, couple_id, seq, EventKind::Deleted, refs).await?;
    txn.commit().await?;
    Ok(Some((seq, file)))
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
