//! File metadata. Attaching a file to a chat and marking it for removal are single guarded
//! UPDATEs, so a send, a delete and the sweepers of every node can race without harm.

use chrono::{DateTime, Utc};
use entity::{chats, couples, files};
use sea_orm::sea_query::{Alias, Expr, Func, LockType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    JoinType, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

pub use files::Model as File;

/// An upload to record, its bytes already in the blob store under `blob`.
pub struct NewFile {
    pub couple_id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub blob: String,
    /// A photo's thumbnail: its blob, width and height.
    pub thumb: Option<(String, i32, i32)>,
    /// A recording's length.
    pub duration_ms: Option<i64>,
}

pub async fn insert(db: &impl ConnectionTrait, new: NewFile) -> Result<File, DbErr> {
    files::ActiveModel {
        id: Set(Uuid::now_v7()),
        couple_id: Set(new.couple_id),
        owner_id: Set(new.owner_id),
        name: Set(new.name),
        size: Set(new.size),
        content_type: Set(new.content_type),
        width: Set(new.width),
        height: Set(new.height),
        blob: Set(new.blob),
        chat_id: Set(None),
        created_at: Set(Utc::now()),
        deleted_at: Set(None),
        thumb_blob: Set(new.thumb.as_ref().map(|t| t.0.clone())),
        thumb_width: Set(new.thumb.as_ref().map(|t| t.1)),
        thumb_height: Set(new.thumb.as_ref().map(|t| t.2)),
        duration_ms: Set(new.duration_ms),
    }
    .insert(db)
    .await
}

/// Bytes the couple's files take: sent or not yet, but not those on their way out.
pub async fn bytes_of_couple(db: &impl ConnectionTrait, couple_id: Uuid) -> Result<i64, DbErr> {
    // SUM of a bigint is a numeric on Postgres: cast it back so both backends give an i64.
    let total = Expr::from(Func::cast_as(
        Func::coalesce([
            Expr::from(Func::sum(Expr::col(files::Column::Size))),
            Expr::val(0i64),
        ]),
        Alias::new("BIGINT"),
    ));
    let total: Option<i64> = files::Entity::find()
        .select_only()
        .column_as(total, "total")
        .filter(files::Column::CoupleId.eq(couple_id))
        .filter(files::Column::DeletedAt.is_null())
        .into_tuple()
        .one(db)
        .await?;
    Ok(total.unwrap_or(0))
}

/// What became of an upload handed to `record`.
pub enum Recorded {
    Kept(Box<File>),
    /// The couple's files would then take more than its quota.
    OverQuota,
    /// The couple is gone or its break-up is due: the sweeper may have listed its files
    /// already, and a file recorded now would be an orphaned blob.
    BreakingUp,
}

/// Records an uploaded file, within the couple's `quota` of bytes if there is one. The
/// couple's row is locked first, so two uploads finishing at once cannot both squeeze under
/// the quota, and an upload cannot slip in between the break-up sweeper's listing of the
/// couple's files and its deletion of the couple (which takes the same lock). SQLite's one
/// writer does the same by itself.
pub async fn record(
    db: &DatabaseConnection,
    new: NewFile,
    quota: Option<i64>,
) -> Result<Recorded, DbErr> {
    let txn = db.begin().await?;
    let couple = couples::Entity::find_by_id(new.couple_id)
        .lock(LockType::NoKeyUpdate)
        .one(&txn)
        .await?;
    let due = |at: DateTime<Utc>| at <= Utc::now();
    if couple.is_none_or(|c| c.delete_at.is_some_and(due)) {
        return Ok(Recorded::BreakingUp);
    }
    if let Some(quota) = quota {
        let used = bytes_of_couple(&txn, new.couple_id).await?;
        if used.saturating_add(new.size) > quota {
            return Ok(Recorded::OverQuota);
        }
    }
    let file = insert(&txn, new).await?;
    txn.commit().await?;
    Ok(Recorded::Kept(Box::new(file)))
}

/// A live file of this couple; another couple's file is as absent as a missing one.
pub async fn find_in_couple(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    file_id: Uuid,
) -> Result<Option<File>, DbErr> {
    files::Entity::find_by_id(file_id)
        .filter(files::Column::CoupleId.eq(couple_id))
        .filter(files::Column::DeletedAt.is_null())
        .one(db)
        .await
}

/// The files carried by these chats.
pub async fn of_chats(db: &impl ConnectionTrait, chat_ids: Vec<Uuid>) -> Result<Vec<File>, DbErr> {
    if chat_ids.is_empty() {
        return Ok(Vec::new());
    }
    files::Entity::find()
        .filter(super::one_of(db, files::Column::ChatId, chat_ids))
        .filter(files::Column::DeletedAt.is_null())
        .all(db)
        .await
}

/// Marks the file of a deleted chat for removal; returns it so the caller can remove the
/// blob right away (the sweeper would otherwise).
pub async fn release_chat(db: &impl ConnectionTrait, chat_id: Uuid) -> Result<Option<File>, DbErr> {
    let file = files::Entity::find()
        .filter(files::Column::ChatId.eq(chat_id))
        .filter(files::Column::DeletedAt.is_null())
        .one(db)
        .await?;
    if file.is_some() {
        files::Entity::update_many()
            .col_expr(files::Column::DeletedAt, Expr::value(Some(Utc::now())))
            .filter(files::Column::ChatId.eq(chat_id))
            .exec(db)
            .await?;
    }
    Ok(file)
}

/// Marks uploads never sent and older than `cutoff` for removal. One statement: a send that
/// attaches the file at the same moment either wins (and the file stays) or finds it gone.
pub async fn release_orphans(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let result = files::Entity::update_many()
        .col_expr(files::Column::DeletedAt, Expr::value(Some(Utc::now())))
        .filter(files::Column::ChatId.is_null())
        .filter(files::Column::DeletedAt.is_null())
        .filter(files::Column::CreatedAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Files marked for removal, whose blobs are still to be deleted.
pub async fn released(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<File>, DbErr> {
    files::Entity::find()
        .filter(files::Column::DeletedAt.is_not_null())
        .limit(limit)
        .all(db)
        .await
}

/// Forgets a file whose blob is gone.
pub async fn forget(db: &impl ConnectionTrait, file_id: Uuid) -> Result<(), DbErr> {
    files::Entity::delete_by_id(file_id).exec(db).await?;
    Ok(())
}

/// Every file of a couple, sent or not: what a break-up must remove.
pub async fn all_of_couple(db: &impl ConnectionTrait, couple_id: Uuid) -> Result<Vec<File>, DbErr> {
    files::Entity::find()
        .filter(files::Column::CoupleId.eq(couple_id))
        .all(db)
        .await
}

/// The couple's files that chats carry, by id, `id > after`: the export's pages.
pub async fn sent_in_couple(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<File>, DbErr> {
    use sea_orm::QueryOrder;
    let mut query = files::Entity::find()
        .filter(files::Column::CoupleId.eq(couple_id))
        .filter(files::Column::ChatId.is_not_null())
        .filter(files::Column::DeletedAt.is_null());
    if let Some(after) = after {
        query = query.filter(files::Column::Id.gt(after));
    }
    query
        .order_by_asc(files::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// A photo of our album: the file, and the chat that sent it (which, seq, when, by whom).
pub struct Photo {
    pub file: File,
    pub chat_id: Uuid,
    pub seq: i64,
    pub sent_at: DateTime<Utc>,
    pub sender_id: Uuid,
}

/// The couple's photos (images sent in chats that are not deleted) with `seq < before` (or
/// the newest), newest first, at most `limit`.
pub async fn album(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<Photo>, DbErr> {
    let carried_by = files::Entity::belongs_to(chats::Entity)
        .from(files::Column::ChatId)
        .to(chats::Column::Id)
        .into();
    let mut query = files::Entity::find()
        .select_only()
        .column(files::Column::Id)
        .column(chats::Column::Id)
        .column(chats::Column::Seq)
        .column(chats::Column::SentAt)
        .column(chats::Column::SenderId)
        .join(JoinType::InnerJoin, carried_by)
        .filter(files::Column::CoupleId.eq(couple_id))
        .filter(files::Column::DeletedAt.is_null())
        .filter(files::Column::ContentType.starts_with("image/"))
        .filter(chats::Column::CoupleId.eq(couple_id))
        .filter(chats::Column::DeletedAt.is_null());
    if let Some(before) = before {
        query = query.filter(chats::Column::Seq.lt(before));
    }
    let found: Vec<(Uuid, Uuid, i64, DateTime<Utc>, Uuid)> = query
        .order_by_desc(chats::Column::Seq)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    let ids: Vec<Uuid> = found.iter().map(|f| f.0).collect();
    let mut files: std::collections::HashMap<Uuid, File> = files::Entity::find()
        .filter(files::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|f| (f.id, f))
        .collect();
    Ok(found
        .into_iter()
        .filter_map(|(id, chat_id, seq, sent_at, sender_id)| {
            Some(Photo {
                file: files.remove(&id)?,
                chat_id,
                seq,
                sent_at,
                sender_id,
            })
        })
        .collect())
}
