//! The couple's words: counts per partner, kept up to `word_marks.counted_seq`, and the words
//! the couple leaves out. Counting is incremental and happens when someone looks (`count_more`),
//! never on the send path; a deleted chat takes its words out again (`uncount`). How a text is
//! split into words is the caller's (`words_of`): this layer only stores.

use std::collections::HashMap;

use chrono::Utc;
use entity::{chats, couples, excluded_words, word_counts, word_marks};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

/// Rows per `INSERT`: well under SQLite's limit on bound values.
const UPSERT_CHUNK: usize = 500;

/// One of the couple's words with its count per partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WordCount {
    pub word: String,
    pub total: i64,
    pub by_user: Vec<(Uuid, i64)>,
}

/// Takes the couple's counting mark, creating it at zero; on Postgres the row stays locked
/// until the transaction ends, so a count and a delete of the same couple take turns.
async fn lock_mark(txn: &DatabaseTransaction, couple_id: Uuid) -> Result<i64, DbErr> {
    word_marks::Entity::insert(word_marks::ActiveModel {
        couple_id: Set(couple_id),
        counted_seq: Set(0),
    })
    .on_conflict_do_nothing()
    .exec(txn)
    .await?;
    let mut query = word_marks::Entity::find_by_id(couple_id);
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        query = query.lock_exclusive();
    }
    Ok(query.one(txn).await?.map_or(0, |mark| mark.counted_seq))
}

/// Counts the words of up to `limit` chats past the mark, in one transaction. Returns whether
/// the counts have caught up with the couple's last committed event.
pub async fn count_more(
    db: &DatabaseConnection,
    couple_id: Uuid,
    limit: u64,
    words_of: impl Fn(&str) -> Vec<String>,
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let counted = lock_mark(&txn, couple_id).await?;
    // Every seq up to a committed `last_seq` is committed too (seqs are taken under the
    // couple's row lock), so nothing below it can still appear.
    let last_seq: i64 = couples::Entity::find_by_id(couple_id)
        .select_only()
        .column(couples::Column::LastSeq)
        .into_tuple()
        .one(&txn)
        .await?
        .unwrap_or(0);
    if counted >= last_seq {
        return Ok(true);
    }
    let rows: Vec<(i64, Uuid, String)> = chats::Entity::find()
        .select_only()
        .columns([
            chats::Column::Seq,
            chats::Column::SenderId,
            chats::Column::Text,
        ])
        .filter(chats::Column::CoupleId.eq(couple_id))
        .filter(chats::Column::DeletedAt.is_null())
        .filter(chats::Column::Seq.gt(counted))
        .filter(chats::Column::Seq.lte(last_seq))
        .order_by_asc(chats::Column::Seq)
        .limit(limit)
        .into_tuple()
        .all(&txn)
        .await?;
    let full = u64::try_from(rows.len()).unwrap_or(u64::MAX) >= limit;
    let reached = match rows.last() {
        Some((seq, _, _)) if full => *seq,
        _ => last_seq,
    };
    let mut counts: HashMap<(String, Uuid), i64> = HashMap::new();
    for (_, sender, text) in &rows {
        for word in words_of(text) {
            *counts.entry((word, *sender)).or_default() += 1;
        }
    }
    add(&txn, couple_id, counts).await?;
    word_marks::Entity::update_many()
        .col_expr(word_marks::Column::CountedSeq, Expr::value(reached))
        .filter(word_marks::Column::CoupleId.eq(couple_id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(!full)
}

/// Adds `counts` (negative to take away) to the stored ones.
async fn add(
    txn: &DatabaseTransaction,
    couple_id: Uuid,
    counts: HashMap<(String, Uuid), i64>,
) -> Result<(), DbErr> {
    let rows: Vec<_> = counts
        .into_iter()
        .map(|((word, user_id), count)| word_counts::ActiveModel {
            couple_id: Set(couple_id),
            word: Set(word),
            user_id: Set(user_id),
            count: Set(count),
        })
        .collect();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(UPSERT_CHUNK).collect();
        word_counts::Entity::insert_many(chunk)
            .on_conflict(
                OnConflict::columns([
                    word_counts::Column::CoupleId,
                    word_counts::Column::Word,
                    word_counts::Column::UserId,
                ])
                .value(
                    word_counts::Column::Count,
                    Expr::col((word_counts::Entity, word_counts::Column::Count)).add(Expr::col((
                        Alias::new("excluded"),
                        word_counts::Column::Count,
                    ))),
                )
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Takes a deleted chat's words out of the counts, if they were counted; runs inside the
/// delete's transaction.
pub(super) async fn uncount(
    txn: &DatabaseTransaction,
    chat: &chats::Model,
    words: Vec<String>,
) -> Result<(), DbErr> {
    if words.is_empty() || lock_mark(txn, chat.couple_id).await? < chat.seq {
        return Ok(());
    }
    let mut counts: HashMap<(String, Uuid), i64> = HashMap::new();
    for word in words {
        *counts.entry((word, chat.sender_id)).or_default() -= 1;
    }
    let touched: Vec<String> = counts.keys().map(|(word, _)| word.clone()).collect();
    add(txn, chat.couple_id, counts).await?;
    word_counts::Entity::delete_many()
        .filter(word_counts::Column::CoupleId.eq(chat.couple_id))
        .filter(word_counts::Column::Word.is_in(touched))
        .filter(word_counts::Column::Count.lte(0))
        .exec(txn)
        .await?;
    Ok(())
}

/// The couple's `limit` most used words that it has not left out, most used first (ties in
/// word order), each with its count per partner.
pub async fn top(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    limit: u64,
) -> Result<Vec<WordCount>, DbErr> {
    let excluded = Query::select()
        .column(excluded_words::Column::Word)
        .from(excluded_words::Entity)
        .and_where(excluded_words::Column::CoupleId.eq(couple_id))
        .to_owned();
    // Summed as BIGINT: Postgres sums BIGINTs into NUMERIC otherwise.
    let total = Expr::cust("CAST(SUM(\"count\") AS BIGINT)");
    let top: Vec<(String, i64)> = word_counts::Entity::find()
        .select_only()
        .column(word_counts::Column::Word)
        .column_as(total.clone(), "total")
        .filter(word_counts::Column::CoupleId.eq(couple_id))
        .filter(word_counts::Column::Word.not_in_subquery(excluded))
        .group_by(word_counts::Column::Word)
        .order_by_desc(total)
        .order_by_asc(word_counts::Column::Word)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    let words: Vec<String> = top.iter().map(|(word, _)| word.clone()).collect();
    let per_user: Vec<(String, Uuid, i64)> = word_counts::Entity::find()
        .select_only()
        .columns([
            word_counts::Column::Word,
            word_counts::Column::UserId,
            word_counts::Column::Count,
        ])
        .filter(word_counts::Column::CoupleId.eq(couple_id))
        .filter(word_counts::Column::Word.is_in(words))
        .into_tuple()
        .all(db)
        .await?;
    Ok(top
        .into_iter()
        .map(|(word, total)| {
            let by_user = per_user
                .iter()
                .filter(|(w, _, _)| *w == word)
                .map(|(_, user, count)| (*user, *count))
                .collect();
            WordCount {
                word,
                total,
                by_user,
            }
        })
        .collect())
}

/// The words the couple leaves out, in word order.
pub async fn excluded(db: &impl ConnectionTrait, couple_id: Uuid) -> Result<Vec<String>, DbErr> {
    excluded_words::Entity::find()
        .select_only()
        .column(excluded_words::Column::Word)
        .filter(excluded_words::Column::CoupleId.eq(couple_id))
        .order_by_asc(excluded_words::Column::Word)
        .into_tuple()
        .all(db)
        .await
}

/// How many words the couple leaves out.
pub async fn excluded_count(db: &impl ConnectionTrait, couple_id: Uuid) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    excluded_words::Entity::find()
        .filter(excluded_words::Column::CoupleId.eq(couple_id))
        .count(db)
        .await
}

/// Leaves a word out; doing it twice is the same as once.
pub async fn exclude(db: &impl ConnectionTrait, couple_id: Uuid, word: &str) -> Result<(), DbErr> {
    excluded_words::Entity::insert(excluded_words::ActiveModel {
        couple_id: Set(couple_id),
        word: Set(word.to_owned()),
        created_at: Set(Utc::now()),
    })
    .on_conflict_do_nothing()
    .exec(db)
    .await?;
    Ok(())
}

/// Takes a word back in; returns whether it was left out.
pub async fn include(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    word: &str,
) -> Result<bool, DbErr> {
    let removed = excluded_words::Entity::delete_many()
        .filter(excluded_words::Column::CoupleId.eq(couple_id))
        .filter(excluded_words::Column::Word.eq(word))
        .exec(db)
        .await?;
    Ok(removed.rows_affected > 0)
}
