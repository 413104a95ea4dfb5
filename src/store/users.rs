//! Accounts and their server-side sessions. A session is a row keyed by the SHA-256 of its
//! token, so deleting the row ends it on every node and a leaked database leaks no tokens.

use chrono::{DateTime, Utc};
use entity::{couples, sessions, users};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

pub use users::Model as User;

/// Adds an account; a username taken (as `username_key` compares it) is a unique violation.
pub async fn create(
    db: &impl ConnectionTrait,
    username: &str,
    password_hash: String,
) -> Result<User, sea_orm::DbErr> {
    users::ActiveModel {
        id: Set(Uuid::now_v7()),
        username: Set(username.to_owned()),
        username_key: Set(username_key(username)),
        password_hash: Set(password_hash),
        created_at: Set(Utc::now()),
        deleted_at: Set(None),
    }
    .insert(db)
    .await
}

/// The account a username names. Its key decides, except for the few accounts whose old key
/// (the lowercase alone) was kept because two look-alikes had signed up before the normal
/// form (`migration::username_key`): typed as before, such a name still finds its own account.
pub async fn by_username(
    db: &impl ConnectionTrait,
    username: &str,
) -> Result<Option<User>, sea_orm::DbErr> {
    let legacy = username.to_lowercase();
    let found = users::Entity::find()
        .filter(users::Column::UsernameKey.is_in([username_key(username), legacy.clone()]))
        .all(db)
        .await?;
    let legacy_match = found.iter().position(|u| u.username_key == legacy);
    Ok(match legacy_match {
        Some(i) => found.into_iter().nth(i),
        None => found.into_iter().next(),
    })
}

/// The account with this id, deleted or not.
pub async fn by_id(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<User>, sea_orm::DbErr> {
    users::Entity::find_by_id(id).one(db).await
}

/// Usernames are unique whatever their case and Unicode form: "Mina", "mina" and "ｍｉｎａ"
/// (fullwidth) are one person (see `migration::username_key`).
pub fn username_key(username: &str) -> String {
    migration::username_key(username)
}

/// A login session with the account it belongs to.
pub struct SessionUser {
    /// The session's id.
    pub session_id: Uuid,
    /// When the session ends unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Whose it is.
    pub user: User,
}

/// Starts a session for the account as the caller verified it: only while its password is
/// still the one verified (and it is not deleted), read under the account's row lock. A login
/// that checked the old password just before a change of it gets no session: the change either
/// committed first and is seen here, or waits and then ends this session with the others.
/// `None` when the account changed.
pub async fn create_session(
    db: &DatabaseConnection,
    verified: &User,
    token_hash: String,
    expires_at: DateTime<Utc>,
) -> Result<Option<Uuid>, sea_orm::DbErr> {
    let txn = db.begin().await?;
    let current = users::Entity::find_by_id(verified.id)
        .lock(sea_orm::sea_query::LockType::Update)
        .one(&txn)
        .await?;
    let unchanged = current
        .is_some_and(|u| u.deleted_at.is_none() && u.password_hash == verified.password_hash);
    if !unchanged {
        return Ok(None);
    }
    let id = Uuid::now_v7();
    sessions::ActiveModel {
        id: Set(id),
        token_hash: Set(token_hash),
        user_id: Set(verified.id),
        created_at: Set(Utc::now()),
        expires_at: Set(expires_at),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(Some(id))
}

/// The live session with this token hash and its user; expired sessions count as none.
pub async fn session_user(
    db: &impl ConnectionTrait,
    token_hash: &str,
) -> Result<Option<SessionUser>, sea_orm::DbErr> {
    let found = sessions::Entity::find()
        .filter(sessions::Column::TokenHash.eq(token_hash))
        .filter(sessions::Column::ExpiresAt.gt(Utc::now()))
        .find_also_related(users::Entity)
        .one(db)
        .await?;
    Ok(found.and_then(|(session, user)| {
        user.map(|user| SessionUser {
            session_id: session.id,
            expires_at: session.expires_at,
            user,
        })
    }))
}

/// Deletes an account: at once with everything it owns (sessions, requests) when it is in no
/// couple; otherwise its couple's break-up is scheduled for `break_up.1` (or stays when it
/// was already), the account is only marked (it can no longer log in) and its sessions end,
/// and the row goes with the couple (`couples::delete_due`). One transaction, which writes
/// the couple's row first: a partner's restore locks that row before it looks for deleted
/// members, so it can never take back a break-up whose member is marked. Returns the ended
/// sessions and, in a couple, when its break-up falls due.
pub async fn delete_account(
    db: &DatabaseConnection,
    user_id: Uuid,
    break_up: Option<(Uuid, DateTime<Utc>)>,
) -> Result<(Vec<Uuid>, Option<DateTime<Utc>>), sea_orm::DbErr> {
    let txn = db.begin().await?;
    let mut delete_at = None;
    if let Some((couple_id, at)) = break_up {
        // Always an UPDATE of the row (COALESCE keeps an earlier schedule): it takes the
        // row's lock even when a break-up is scheduled already.
        couples::Entity::update_many()
            .col_expr(
                couples::Column::DeleteAt,
                Expr::from(Func::coalesce([
                    Expr::col(couples::Column::DeleteAt),
                    Expr::value(at),
                ])),
            )
            .filter(couples::Column::Id.eq(couple_id))
            .exec(&txn)
            .await?;
        delete_at = couples::Entity::find_by_id(couple_id)
            .one(&txn)
            .await?
            .and_then(|c| c.delete_at);
    }
    let ended: Vec<Uuid> = sessions::Entity::find()
        .select_only()
        .column(sessions::Column::Id)
        .filter(sessions::Column::UserId.eq(user_id))
        .into_tuple()
        .all(&txn)
        .await?;
    if delete_at.is_some() {
        sessions::Entity::delete_many()
            .filter(sessions::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        users::Entity::update_many()
            .col_expr(users::Column::DeletedAt, Expr::value(Some(Utc::now())))
            .filter(users::Column::Id.eq(user_id))
            .exec(&txn)
            .await?;
    } else {
        // The foreign keys cascade: sessions and pairing requests go with the row.
        users::Entity::delete_by_id(user_id).exec(&txn).await?;
    }
    txn.commit().await?;
    Ok((ended, delete_at))
}

/// Whether an account has this username (compared as stored: lowercase).
pub async fn exists(db: &impl ConnectionTrait, username: &str) -> Result<bool, sea_orm::DbErr> {
    Ok(by_username(db, username).await?.is_some())
}

/// Sets a new password hash and ends every other session of the user, in one transaction:
/// no session opened with the old password outlives the change. Returns the ended sessions.
pub async fn change_password(
    db: &DatabaseConnection,
    user_id: Uuid,
    password_hash: String,
    keep_session: Uuid,
) -> Result<Vec<Uuid>, sea_orm::DbErr> {
    let txn = db.begin().await?;
    users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(password_hash))
        .filter(users::Column::Id.eq(user_id))
        .exec(&txn)
        .await?;
    let ended: Vec<Uuid> = sessions::Entity::find()
        .select_only()
        .column(sessions::Column::Id)
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::Id.ne(keep_session))
        .into_tuple()
        .all(&txn)
        .await?;
    sessions::Entity::delete_many()
        .filter(sessions::Column::Id.is_in(ended.clone()))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(ended)
}

/// Ends one login session (a logout).
pub async fn delete_session(db: &impl ConnectionTrait, id: Uuid) -> Result<(), sea_orm::DbErr> {
    sessions::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}

/// Deletes the sessions expired by `now`; they already count as none, this frees their rows.
pub async fn purge_expired_sessions(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    let purged = sessions::Entity::delete_many()
        .filter(sessions::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?;
    Ok(purged.rows_affected)
}
