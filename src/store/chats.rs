//! Chats: one that is live, deleting one (its text wiped with its earlier versions and
//! reactions, a `deleted` event logged), history pages, and what decorates a page (the chats
//! quoted, the reactions). Their place in the couple's order is the event log's (`store::events`).

use chrono::{DateTime, Utc};
use entity::{chats, reactions};
use migration::SEARCH_EXPRESSION;
use sea_orm::sea_query::extension::postgres::PgExpr;
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::events::{self, EventKind, EventRef, now_millis};
use super::words;

pub use chats::Model as Chat;

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

/// Marks a chat deleted (its text is wiped: deleting means gone), releases its file, takes
/// its words out of the couple's counts (`words_of` splits a text into them) and logs a
/// `deleted` event. Returns the seq and the released file; `None` when it was deleted
/// meanwhile.
pub async fn delete(
    db: &DatabaseConnection,
    couple_id: Uuid,
    chat_id: Uuid,
    words_of: impl Fn(&str) -> Vec<String>,
) -> Result<Option<(i64, Option<super::files::File>)>, DbErr> {
    let txn = db.begin().await?;
    let seq = events::next_seq(&txn, couple_id).await?;
    // Read under the couple's row lock, which every delete of the couple takes first.
    let Some(chat) = live_chat(&txn, couple_id, chat_id).await? else {
        return Ok(None);
    };
    let wiped = chats::Entity::update_many()
        .col_expr(chats::Column::DeletedAt, Expr::value(Some(now_millis())))
        .col_expr(chats::Column::Text, Expr::value(String::new()))
        .col_expr(chats::Column::FirstText, Expr::value(None::<String>))
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
    // Its reactions and earlier versions go with it, the log's copies too.
    reactions::Entity::delete_many()
        .filter(reactions::Column::ChatId.eq(chat_id))
        .exec(&txn)
        .await?;
    // Reactions taken away before leave their emoji in the log too (`idx_events_chat`).
    entity::events::Entity::update_many()
        .col_expr(entity::events::Column::Text, Expr::value(None::<String>))
        .filter(entity::events::Column::ChatId.eq(chat_id))
        .filter(entity::events::Column::CoupleId.eq(couple_id))
        .filter(entity::events::Column::Text.is_not_null())
        .exec(&txn)
        .await?;
    words::uncount(&txn, &chat, words_of(&chat.text)).await?;
    let refs = EventRef {
        chat_id: Some(chat_id),
        ..EventRef::default()
    };
    events::append(&txn, couple_id, seq, EventKind::Deleted, refs).await?;
    txn.commit().await?;
    Ok(Some((seq, file)))
}

/// The chats of this couple with these ids (deleted ones too): what replies quote.
pub async fn by_ids(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    ids: Vec<Uuid>,
) -> Result<Vec<Chat>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    chats::Entity::find()
        .filter(chats::Column::CoupleId.eq(couple_id))
        .filter(super::one_of(db, chats::Column::Id, ids))
        .all(db)
        .await
}

/// The reactions on these chats.
pub async fn reactions_on(
    db: &impl ConnectionTrait,
    chat_ids: Vec<Uuid>,
) -> Result<Vec<reactions::Model>, DbErr> {
    if chat_ids.is_empty() {
        return Ok(Vec::new());
    }
    reactions::Entity::find()
        .filter(super::one_of(db, reactions::Column::ChatId, chat_ids))
        .order_by_asc(reactions::Column::Seq)
        .all(db)
        .await
}

/// A live chat's texts, first to latest, each with when it was written: the one it was
/// sent with, then each edit's.
pub async fn versions(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    chat_id: Uuid,
) -> Result<Option<Vec<(String, DateTime<Utc>)>>, DbErr> {
    let Some(chat) = live_chat(db, couple_id, chat_id).await? else {
        return Ok(None);
    };
    let Some(first) = chat.first_text else {
        return Ok(Some(vec![(chat.text, chat.sent_at)]));
    };
    let edits: Vec<(Option<String>, DateTime<Utc>)> = entity::events::Entity::find()
        .select_only()
        .columns([
            entity::events::Column::Text,
            entity::events::Column::CreatedAt,
        ])
        .filter(entity::events::Column::ChatId.eq(chat_id))
        .filter(entity::events::Column::CoupleId.eq(couple_id))
        .filter(entity::events::Column::Kind.eq(EventKind::Edited.as_str()))
        .order_by_asc(entity::events::Column::Seq)
        .into_tuple()
        .all(db)
        .await?;
    let mut versions = vec![(first, chat.sent_at)];
    versions.extend(
        edits
            .into_iter()
            .map(|(text, at)| (text.unwrap_or_default(), at)),
    );
    Ok(Some(versions))
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

/// Chats of `seq > after`, oldest first: the next page towards the present.
pub async fn after(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    after: i64,
    limit: u64,
) -> Result<Vec<Chat>, DbErr> {
    chats::Entity::find()
        .filter(chats::Column::CoupleId.eq(couple_id))
        .filter(chats::Column::DeletedAt.is_null())
        .filter(chats::Column::Seq.gt(after))
        .order_by_asc(chats::Column::Seq)
        .limit(limit)
        .all(db)
        .await
}

/// Chats that are not deleted and contain `needle` (case-insensitive: `ILIKE` on Postgres,
/// served by the trigram index over the doubled text; `LIKE` on SQLite, which folds ASCII
/// only and reads the couple's chats newest first), with `seq < before`, newest first.
pub async fn search(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    needle: &str,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<Chat>, DbErr> {
    let pattern = format!("%{}%", escape_like(needle));
    let matches = match db.get_database_backend() {
        // Backslash is Postgres's default escape in LIKE patterns.
        DbBackend::Postgres => {
            let mut matches = Condition::all().add(Expr::col(chats::Column::Text).ilike(pattern));
            // The index is over the doubled text (see the migration): asking for the doubled
            // needle there lets it serve needles of two characters as well as longer ones.
            // One character has no trigram either way: that search reads newest first.
            if needle.chars().nth(1).is_some() {
                let doubled: String = needle.chars().flat_map(|c| [c, c]).collect();
                matches = matches.add(Expr::cust_with_values(
                    format!("{SEARCH_EXPRESSION} ILIKE $1"),
                    [format!("%{}%", escape_like(&doubled))],
                ));
            }
            matches
        }
        _ => Condition::all()
            .add(Expr::col(chats::Column::Text).like(LikeExpr::new(pattern).escape('\\'))),
    };
    let mut query = chats::Entity::find()
        .filter(chats::Column::CoupleId.eq(couple_id))
        .filter(chats::Column::DeletedAt.is_null())
        .filter(matches);
    if let Some(before) = before {
        query = query.filter(chats::Column::Seq.lt(before));
    }
    query
        .order_by_desc(chats::Column::Seq)
        .limit(limit)
        .all(db)
        .await
}

/// `%`, `_` and the escape itself match literally in a search.
fn escape_like(needle: &str) -> String {
    let mut escaped = String::with_capacity(needle.len());
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The seq of the first chat (not deleted) sent at or after `at`. Chats are sent in seq
/// order, so this is a binary search over seqs: some twenty index probes, where a scan by
/// `sent_at` would need an index every send pays for.
pub async fn first_since(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    at: DateTime<Utc>,
    last_seq: i64,
) -> Result<Option<i64>, DbErr> {
    let (mut low, mut high) = (0, last_seq.saturating_add(1));
    while low < high {
        let mid = low + (high - low) / 2;
        let probe: Option<(i64, DateTime<Utc>)> = chats::Entity::find()
            .select_only()
            .columns([chats::Column::Seq, chats::Column::SentAt])
            .filter(chats::Column::CoupleId.eq(couple_id))
            .filter(chats::Column::Seq.gte(mid))
            .order_by_asc(chats::Column::Seq)
            .into_tuple()
            .one(db)
            .await?;
        match probe {
            Some((seq, sent_at)) if sent_at < at => low = seq + 1,
            _ => high = mid,
        }
    }
    let first = chats::Entity::find()
        .select_only()
        .column(chats::Column::Seq)
        .filter(chats::Column::CoupleId.eq(couple_id))
        .filter(chats::Column::DeletedAt.is_null())
        .filter(chats::Column::Seq.gte(low))
        .order_by_asc(chats::Column::Seq)
        .into_tuple()
        .one(db)
        .await?;
    Ok(first)
}

/// Merges the search index's pending list (GIN's `fastupdate`) into the index now. Left to
/// itself the list is merged by whichever insert finds it full, inside that chat's commit
/// (tens of milliseconds for every send queued behind it); merged often from here, it never
/// fills. Postgres only: SQLite has no such index.
pub async fn merge_search_pending(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    db.execute_unprepared("SELECT gin_clean_pending_list('idx_chats_text_search'::regclass)")
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_in_a_search_match_themselves() {
        assert_eq!(escape_like("100%_\\x"), "100\\%\\_\\\\x");
        assert_eq!(escape_like("여행"), "여행");
    }
}
