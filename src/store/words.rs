//! The couple's words: counts per partner, kept up to `word_marks.counted_seq`, and the words
//! the couple leaves out. Counting is incremental and happens when someone looks
//! (`next_batch`, `tally`, `record`), never on the send path; a deleted chat takes its words out again (`uncount`). How a text is
//! split into words is the caller's (`words_of`): this layer only stores.

use std::collections::HashMap;

use chrono::Utc;
use entity::{chats, couples, excluded_words, word_counts, word_marks};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

/// Chats read per query when reading a batch to count: what a batch may hold beyond its
/// byte bound, at most (the rest of the chunk after the chat that crosses it is dropped).
const READ_CHUNK: u64 = 512;

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

/// Chats read for counting, past the couple's mark.
pub struct Batch {
    /// The mark they were read past; counting them is recorded only if it is still there.
    pub counted: i64,
    /// The mark once they are counted.
    pub reached: i64,
    /// Seq, sender and text of each, in seq order.
    pub chats: Vec<(i64, Uuid, String)>,
    /// Whether the counts have caught up with the couple once these are counted.
    pub last: bool,
}

/// The next chats to count: past the mark, at most `limit` of them and about `max_bytes` of
/// text (the chat that crosses it is the last), read in chunks so a history of long chats
/// never sits in memory much beyond that. `None` when everything is counted. Reads only, so it
/// can run on the read pool and take no lock: `record` checks that the mark has not moved.
pub async fn next_batch(
    db: &DatabaseConnection,
    couple_id: Uuid,
    limit: u64,
    max_bytes: usize,
) -> Result<Option<Batch>, DbErr> {
    let counted: i64 = word_marks::Entity::find_by_id(couple_id)
        .select_only()
        .column(word_marks::Column::CountedSeq)
        .into_tuple()
        .one(db)
        .await?
        .unwrap_or(0);
    // Every seq up to a committed `last_seq` is committed too (seqs are taken under the
    // couple's row lock), so nothing below it can still appear.
    let last_seq: i64 = couples::Entity::find_by_id(couple_id)
        .select_only()
        .column(couples::Column::LastSeq)
        .into_tuple()
        .one(db)
        .await?
        .unwrap_or(0);
    if counted >= last_seq {
        return Ok(None);
    }
    let (mut chats, mut bytes, mut full) = (Vec::new(), 0usize, false);
    let mut after = counted;
    'read: while !full {
        let wanted = Ord::min(
            limit.saturating_sub(u64::try_from(chats.len()).unwrap_or(u64::MAX)),
            READ_CHUNK,
        );
        let rows: Vec<(i64, Uuid, String)> = chats::Entity::find()
            .select_only()
            .columns([
                chats::Column::Seq,
                chats::Column::SenderId,
                chats::Column::Text,
            ])
            .filter(chats::Column::CoupleId.eq(couple_id))
            .filter(chats::Column::DeletedAt.is_null())
            .filter(chats::Column::Seq.gt(after))
            .filter(chats::Column::Seq.lte(last_seq))
            .order_by_asc(chats::Column::Seq)
            .limit(wanted)
            .into_tuple()
            .all(db)
            .await?;
        let Some((seq, _, _)) = rows.last() else {
            break;
        };
        after = *seq;
        let short = u64::try_from(rows.len()).unwrap_or(u64::MAX) < wanted;
        for row in rows {
            bytes = bytes.saturating_add(row.2.len());
            chats.push(row);
            if bytes >= max_bytes || u64::try_from(chats.len()).unwrap_or(u64::MAX) >= limit {
                full = true;
                continue 'read;
            }
        }
        if short {
            break;
        }
    }
    let reached = match chats.last() {
        Some((seq, _, _)) if full => *seq,
        _ => last_seq,
    };
    Ok(Some(Batch {
        counted,
        reached,
        chats,
        last: !full,
    }))
}

/// Each word's count per sender in these chats.
pub fn tally(
    chats: &[(i64, Uuid, String)],
    words_of: impl Fn(&str) -> Vec<String>,
) -> HashMap<(String, Uuid), i64> {
    let mut counts: HashMap<(String, Uuid), i64> = HashMap::new();
    for (_, sender, text) in chats {
        for word in words_of(text) {
            *counts.entry((word, *sender)).or_default() += 1;
        }
    }
    counts
}

/// Adds a batch's `counts` (its `tally`) and moves the mark past it, in one short
/// transaction. Returns `false`, changing nothing, when the mark moved since the batch was
/// read (another look counted it first). A chat of the batch deleted or edited since it was
/// read is counted as it is now.
pub async fn record(
    db: &DatabaseConnection,
    couple_id: Uuid,
    batch: &Batch,
    mut counts: HashMap<(String, Uuid), i64>,
    words_of: impl Fn(&str) -> Vec<String>,
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    if lock_mark(&txn, couple_id).await? != batch.counted {
        return Ok(false);
    }
    // Chats deleted or edited since the batch was read found the mark below them and left
    // the counts alone (`recount`): they are counted here as they are now.
    let changed: Vec<(i64, String)> = chats::Entity::find()
        .select_only()
        .columns([chats::Column::Seq, chats::Column::Text])
        .filter(chats::Column::CoupleId.eq(couple_id))
        .filter(chats::Column::Seq.gt(batch.counted))
        .filter(chats::Column::Seq.lte(batch.reached))
        .filter(
            Condition::any()
                .add(chats::Column::DeletedAt.is_not_null())
                .add(chats::Column::Edits.gt(0)),
        )
        .into_tuple()
        .all(&txn)
        .await?;
    for (seq, now) in changed {
        let Ok(at) = batch.chats.binary_search_by_key(&seq, |(seq, _, _)| *seq) else {
            continue;
        };
        let (_, sender, read) = &batch.chats[at];
        if *read == now {
            continue;
        }
        for word in words_of(read) {
            *counts.entry((word, *sender)).or_default() -= 1;
        }
        for word in words_of(&now) {
            *counts.entry((word, *sender)).or_default() += 1;
        }
    }
    counts.retain(|_, count| *count > 0);
    add(&txn, couple_id, counts).await?;
    word_marks::Entity::update_many()
        .col_expr(word_marks::Column::CountedSeq, Expr::value(batch.reached))
        .filter(word_marks::Column::CoupleId.eq(couple_id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(true)
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
    recount(txn, chat, words, Vec::new()).await
}

/// Replaces a chat's words `before` with its words `after` in the counts, if it was counted
/// (an edit; a deletion has none after). Runs inside the transaction that changes the chat.
/// A chat not counted yet is counted as it is when its turn comes (`record`).
pub(super) async fn recount(
    txn: &DatabaseTransaction,
    chat: &chats::Model,
    before: Vec<String>,
    after: Vec<String>,
) -> Result<(), DbErr> {
    if (before.is_empty() && after.is_empty()) || lock_mark(txn, chat.couple_id).await? < chat.seq {
        return Ok(());
    }
    let mut counts: HashMap<(String, Uuid), i64> = HashMap::new();
    for word in before {
        *counts.entry((word, chat.sender_id)).or_default() -= 1;
    }
    for word in after {
        *counts.entry((word, chat.sender_id)).or_default() += 1;
    }
    counts.retain(|_, count| *count != 0);
    if counts.is_empty() {
        return Ok(());
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
