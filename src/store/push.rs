//! Web Push: the cluster's VAPID key and each device's subscription.

use chrono::Utc;
use entity::{chats, couple_members, push_keys, push_subscriptions};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

pub use push_subscriptions::Model as Subscription;

/// The one row the key lives in.
const KEY_ROW: i16 = 1;

/// The cluster's VAPID private key: the one stored, or `candidate` stored now. Nodes starting
/// together race to insert; all of them read back the winner's.
pub async fn vapid_key(db: &impl ConnectionTrait, candidate: String) -> Result<String, DbErr> {
    let row = push_keys::ActiveModel {
        id: Set(KEY_ROW),
        private_key: Set(candidate),
        created_at: Set(Utc::now()),
    };
    push_keys::Entity::insert(row)
        .on_conflict_do_nothing()
        .exec(db)
        .await?;
    push_keys::Entity::find_by_id(KEY_ROW)
        .one(db)
        .await?
        .map(|row| row.private_key)
        .ok_or_else(|| DbErr::RecordNotFound("push_keys".into()))
}

/// A device's subscription as the client gave it.
pub struct NewSubscription {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub device: String,
    pub preview: bool,
}

/// Keeps a subscription. An endpoint is one device's: subscribing it again (new keys, another
/// session, even another account on a shared device) replaces what it was.
pub async fn subscribe(
    db: &impl ConnectionTrait,
    new: NewSubscription,
) -> Result<Subscription, DbErr> {
    let row = push_subscriptions::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(new.user_id),
        session_id: Set(new.session_id),
        endpoint: Set(new.endpoint.clone()),
        p256dh: Set(new.p256dh),
        auth: Set(new.auth),
        device: Set(new.device),
        preview: Set(new.preview),
        created_at: Set(Utc::now()),
    };
    push_subscriptions::Entity::insert(row)
        .on_conflict(
            OnConflict::column(push_subscriptions::Column::Endpoint)
                .update_columns([
                    push_subscriptions::Column::UserId,
                    push_subscriptions::Column::SessionId,
                    push_subscriptions::Column::P256dh,
                    push_subscriptions::Column::Auth,
                    push_subscriptions::Column::Device,
                    push_subscriptions::Column::Preview,
                    push_subscriptions::Column::CreatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    push_subscriptions::Entity::find()
        .filter(push_subscriptions::Column::Endpoint.eq(new.endpoint))
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("push_subscriptions".into()))
}

/// The user's devices, oldest first.
pub async fn of_user(db: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<Subscription>, DbErr> {
    push_subscriptions::Entity::find()
        .filter(push_subscriptions::Column::UserId.eq(user_id))
        .order_by_asc(push_subscriptions::Column::CreatedAt)
        .order_by_asc(push_subscriptions::Column::Id)
        .all(db)
        .await
}

/// Removes one of the user's devices; false if it was not theirs or not there.
pub async fn remove(db: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> Result<bool, DbErr> {
    let removed = push_subscriptions::Entity::delete_many()
        .filter(push_subscriptions::Column::Id.eq(id))
        .filter(push_subscriptions::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(removed.rows_affected > 0)
}

/// Turns one of the user's devices' previews on or off; `None` if it is not theirs.
pub async fn set_preview(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    preview: bool,
) -> Result<Option<Subscription>, DbErr> {
    let found = push_subscriptions::Entity::find_by_id(id)
        .filter(push_subscriptions::Column::UserId.eq(user_id))
        .one(db)
        .await?;
    let Some(found) = found else {
        return Ok(None);
    };
    let mut row = found.into_active_model();
    row.preview = Set(preview);
    row.update(db).await.map(Some)
}

/// The partner's chats this member has not read: after their read mark, not deleted. The
/// range is the member's unread tail of the couple's `(couple_id, seq)` index.
pub async fn unread_chats(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    user_id: Uuid,
) -> Result<u64, DbErr> {
    let read: Option<i64> = couple_members::Entity::find()
        .select_only()
        .column(couple_members::Column::ReadSeq)
        .filter(couple_members::Column::UserId.eq(user_id))
        .filter(couple_members::Column::CoupleId.eq(couple_id))
        .into_tuple()
        .one(db)
        .await?;
    let Some(read) = read else {
        return Ok(0);
    };
    chats::Entity::find()
        .filter(chats::Column::CoupleId.eq(couple_id))
        .filter(chats::Column::Seq.gt(read))
        .filter(chats::Column::SenderId.ne(user_id))
        .filter(chats::Column::DeletedAt.is_null())
        .count(db)
        .await
}

/// Forgets a subscription its push service says is gone (404, 410).
pub async fn prune(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    push_subscriptions::Entity::delete_by_id(id)
        .exec(db)
        .await?;
    Ok(())
}
