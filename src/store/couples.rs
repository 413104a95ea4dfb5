//! Couples and the requests that make them. A user is in at most one couple because
//! `couple_members.user_id` is a primary key: two accepts racing for the same person cannot
//! both commit. One pending request per pair is likewise a unique `pair_key`. An accept locks
//! its two people (lower id first) before writing, so accepts never wait on each other in a
//! circle.

use chrono::{DateTime, Utc};
use entity::{couple_members, couples, files, pair_requests, sessions, users};
use sea_orm::sea_query::{Expr, LockType, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

use super::users::User;

pub use couples::Model as Couple;
pub use pair_requests::Model as PairRequest;

/// A user's couple as they see it: the couple and the partner, for `/api/me`, pairing and the
/// export. (Who is acting, by ids only, is `chat::Member`.)
#[derive(Clone, Debug)]
pub struct MyCouple {
    pub couple: Couple,
    pub partner: User,
}

pub async fn my_couple(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<Option<MyCouple>, DbErr> {
    let Some(mine) = couple_members::Entity::find_by_id(user_id).one(db).await? else {
        return Ok(None);
    };
    let members = couple_members::Entity::find()
        .filter(couple_members::Column::CoupleId.eq(mine.couple_id))
        .filter(couple_members::Column::UserId.ne(user_id))
        .find_also_related(users::Entity)
        .one(db)
        .await?;
    let couple = couples::Entity::find_by_id(mine.couple_id).one(db).await?;
    Ok(match (members, couple) {
        (Some((_, Some(partner))), Some(couple)) => Some(MyCouple { couple, partner }),
        _ => None,
    })
}

/// `(couple, partner)` of a user, in one query: what a socket or a couple-only route needs.
pub async fn partner_of(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<Option<(Uuid, Uuid)>, DbErr> {
    let mine = Query::select()
        .column(couple_members::Column::CoupleId)
        .from(couple_members::Entity)
        .and_where(couple_members::Column::UserId.eq(user_id))
        .to_owned();
    Ok(couple_members::Entity::find()
        .filter(couple_members::Column::CoupleId.in_subquery(mine))
        .filter(couple_members::Column::UserId.ne(user_id))
        .one(db)
        .await?
        .map(|partner| (partner.couple_id, partner.user_id)))
}

/// Where a couple stands when a socket opens: read after the socket listens to the couple,
/// so nothing falls between this and the live events.
pub struct Standing {
    pub last_seq: i64,
    pub open_questions: i32,
    pub partner_read_seq: i64,
}

pub async fn standing(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    partner_id: Uuid,
) -> Result<Option<Standing>, DbErr> {
    let found = couple_members::Entity::find_by_id(partner_id)
        .filter(couple_members::Column::CoupleId.eq(couple_id))
        .find_also_related(couples::Entity)
        .one(db)
        .await?;
    Ok(match found {
        Some((partner, Some(couple))) => Some(Standing {
            last_seq: couple.last_seq,
            open_questions: couple.open_questions,
            partner_read_seq: partner.read_seq,
        }),
        _ => None,
    })
}

pub async fn is_paired(db: &impl ConnectionTrait, user_id: Uuid) -> Result<bool, DbErr> {
    Ok(couple_members::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .is_some())
}

/// The key that makes "one pending request between two people" a unique constraint,
/// whichever of them asked.
fn pair_key(a: Uuid, b: Uuid) -> String {
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    format!("{low}:{high}")
}

pub async fn create_request(
    db: &impl ConnectionTrait,
    from: Uuid,
    to: Uuid,
) -> Result<PairRequest, DbErr> {
    pair_requests::ActiveModel {
        id: Set(Uuid::now_v7()),
        from_user_id: Set(from),
        to_user_id: Set(to),
        pair_key: Set(pair_key(from, to)),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
}

/// A pending request with both people resolved.
pub struct RequestView {
    pub request: PairRequest,
    pub from: User,
    pub to: User,
}

/// Requests sent to and by this user, newest first.
pub async fn requests_of(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<(Vec<RequestView>, Vec<RequestView>), DbErr> {
    let rows = pair_requests::Entity::find()
        .filter(
            Condition::any()
                .add(pair_requests::Column::FromUserId.eq(user_id))
                .add(pair_requests::Column::ToUserId.eq(user_id)),
        )
        .order_by_desc(pair_requests::Column::CreatedAt)
        .all(db)
        .await?;
    let ids: Vec<Uuid> = rows
        .iter()
        .flat_map(|r| [r.from_user_id, r.to_user_id])
        .collect();
    let people = users::Entity::find()
        .filter(users::Column::Id.is_in(ids))
        .all(db)
        .await?;
    let person = |id: Uuid| people.iter().find(|u| u.id == id).cloned();
    let (mut received, mut sent) = (Vec::new(), Vec::new());
    for request in rows {
        let (Some(from), Some(to)) = (person(request.from_user_id), person(request.to_user_id))
        else {
            continue;
        };
        let view = RequestView { request, from, to };
        if view.to.id == user_id {
            received.push(view);
        } else {
            sent.push(view);
        }
    }
    Ok((received, sent))
}

/// Turns a request addressed to `receiver` into a couple and clears every other pending
/// request of both people. `None` when there is no such request for this receiver (or no
/// longer: an accept that got there first cleared it). A unique violation means one of them
/// was paired meanwhile (the caller says `already_paired`).
pub async fn accept_request(
    db: &DatabaseConnection,
    request_id: Uuid,
    receiver: Uuid,
) -> Result<Option<Couple>, DbErr> {
    let txn = db.begin().await?;
    let Some(request) = pending_request(&txn, request_id, receiver).await? else {
        return Ok(None);
    };
    // Both people are locked before anything is written, the lower id first, so accepts that
    // share a person queue here in one order. Without it each accept took its two people in
    // its own order (the request's sender, then its receiver) through the members' primary
    // key, and crossing requests accepted at once (A->B, B->C, C->A) waited on each other in
    // a circle until Postgres killed one as a deadlock. NO KEY UPDATE: rows that merely point
    // at a user (a new session, a chat) are not held up. SQLite has one writer: no locks.
    let mut people = [request.from_user_id, request.to_user_id];
    people.sort();
    for user_id in people {
        users::Entity::find_by_id(user_id)
            .lock(LockType::NoKeyUpdate)
            .one(&txn)
            .await?;
    }
    // Read again after the wait: another accept or a withdrawal may have cleared it.
    let Some(request) = pending_request(&txn, request_id, receiver).await? else {
        return Ok(None);
    };
    let couple = couples::ActiveModel {
        id: Set(Uuid::now_v7()),
        since: Set(Utc::now()),
        last_seq: Set(0),
        delete_at: Set(None),
        open_questions: Set(0),
        started_on: Set(None),
        time_zone: Set(None),
    }
    .insert(&txn)
    .await?;
    for user_id in [request.from_user_id, request.to_user_id] {
        couple_members::ActiveModel {
            user_id: Set(user_id),
            couple_id: Set(couple.id),
            read_seq: Set(0),
        }
        .insert(&txn)
        .await?;
    }
    let both = [request.from_user_id, request.to_user_id];
    pair_requests::Entity::delete_many()
        .filter(
            Condition::any()
                .add(pair_requests::Column::FromUserId.is_in(both))
                .add(pair_requests::Column::ToUserId.is_in(both)),
        )
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(Some(couple))
}

async fn pending_request(
    db: &impl ConnectionTrait,
    request_id: Uuid,
    receiver: Uuid,
) -> Result<Option<PairRequest>, DbErr> {
    pair_requests::Entity::find_by_id(request_id)
        .filter(pair_requests::Column::ToUserId.eq(receiver))
        .one(db)
        .await
}

/// Withdraws (by the sender) or declines (by the receiver) a request. False when this user
/// has no such request.
pub async fn delete_request(
    db: &impl ConnectionTrait,
    request_id: Uuid,
    user_id: Uuid,
) -> Result<bool, DbErr> {
    let result = pair_requests::Entity::delete_many()
        .filter(pair_requests::Column::Id.eq(request_id))
        .filter(
            Condition::any()
                .add(pair_requests::Column::FromUserId.eq(user_id))
                .add(pair_requests::Column::ToUserId.eq(user_id)),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Whether an open socket may go on, as its periodic catch-up finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketStanding {
    /// Signed in and still in the couple, whose latest seq this is.
    Paired { last_seq: i64 },
    /// The login is gone (logged out, password changed, expired) or its account deleted.
    SessionEnded,
    /// The couple is gone (its break-up fell due), or this user is no longer in it.
    CoupleGone,
}

/// Where a socket stands, in one statement of primary-key lookups: its session (unexpired,
/// of this user, whose account is not deleted) and the couple's last seq (NULL once the
/// couple or this user's membership is gone). The ending of a session or a couple is also
/// pushed over the bus; this read is what still closes the socket when that push was lost.
pub async fn socket_standing(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    user_id: Uuid,
    couple_id: Uuid,
) -> Result<SocketStanding, DbErr> {
    let signed_in = Query::select()
        .expr(Expr::val(1))
        .from(sessions::Entity)
        .inner_join(
            users::Entity,
            Expr::col((users::Entity, users::Column::Id))
                .equals((sessions::Entity, sessions::Column::UserId)),
        )
        .and_where(sessions::Column::Id.eq(session_id))
        .and_where(sessions::Column::UserId.eq(user_id))
        .and_where(sessions::Column::ExpiresAt.gt(Utc::now()))
        .and_where(users::Column::DeletedAt.is_null())
        .to_owned();
    let last_seq = Query::select()
        .column((couples::Entity, couples::Column::LastSeq))
        .from(couple_members::Entity)
        .inner_join(
            couples::Entity,
            Expr::col((couples::Entity, couples::Column::Id))
                .equals((couple_members::Entity, couple_members::Column::CoupleId)),
        )
        .and_where(couple_members::Column::UserId.eq(user_id))
        .and_where(couple_members::Column::CoupleId.eq(couple_id))
        .to_owned();
    let row = db
        .query_one(
            Query::select()
                .expr_as(Expr::exists(signed_in), "signed_in")
                .expr_as(Expr::SubQuery(None, Box::new(last_seq.into())), "last_seq"),
        )
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("a SELECT without FROM returned no row".into()))?;
    let signed_in: bool = row.try_get_by_index(0)?;
    let last_seq: Option<i64> = row.try_get_by_index(1)?;
    Ok(match (signed_in, last_seq) {
        (false, _) => SocketStanding::SessionEnded,
        (true, None) => SocketStanding::CoupleGone,
        (true, Some(last_seq)) => SocketStanding::Paired { last_seq },
    })
}

pub async fn last_seq(db: &impl ConnectionTrait, couple_id: Uuid) -> Result<i64, DbErr> {
    Ok(couples::Entity::find_by_id(couple_id)
        .one(db)
        .await?
        .map(|c| c.last_seq)
        .unwrap_or_default())
}

/// Schedules the couple's deletion at `at`, unless it is scheduled already; returns the
/// time it is scheduled for.
pub async fn schedule_deletion(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    couples::Entity::update_many()
        .col_expr(couples::Column::DeleteAt, Expr::value(Some(at)))
        .filter(couples::Column::Id.eq(couple_id))
        .filter(couples::Column::DeleteAt.is_null())
        .exec(db)
        .await?;
    Ok(couples::Entity::find_by_id(couple_id)
        .one(db)
        .await?
        .and_then(|c| c.delete_at))
}

/// What became of a restore.
#[derive(Debug, PartialEq, Eq)]
pub enum Cancel {
    /// Nothing is scheduled now.
    Cancelled,
    /// A member deleted their account: the break-up stands.
    Irrevocable,
    /// No such couple, or its break-up is due already (the sweeper may be removing files).
    Gone,
}

/// Takes the couple's row lock for the rest of `txn` (Postgres; SQLite has one writer and
/// the transaction alone serialises): a count and the insert it allows, made under it, cannot
/// be passed by two requests at once. `false` when the couple is gone.
pub async fn lock(txn: &impl ConnectionTrait, couple_id: Uuid) -> Result<bool, DbErr> {
    Ok(couples::Entity::find_by_id(couple_id)
        .lock(LockType::Update)
        .one(txn)
        .await?
        .is_some())
}

/// Cancels a scheduled deletion that is not due yet, unless a member deleted their account.
/// The couple's row is locked before the members are read: an account deletion schedules
/// and marks its user in one transaction that writes this row (`users::delete_account`), so
/// either it committed before and is seen here, or it waits and schedules again after us.
/// Checked outside the lock, a deletion landing between the check and the UPDATE was taken
/// back. SQLite has one writer: the transaction alone serialises.
pub async fn cancel_deletion(db: &DatabaseConnection, couple_id: Uuid) -> Result<Cancel, DbErr> {
    let txn = db.begin().await?;
    let Some(couple) = couples::Entity::find_by_id(couple_id)
        .lock(LockType::Update)
        .one(&txn)
        .await?
    else {
        return Ok(Cancel::Gone);
    };
    if !deleted_members(&txn, couple_id).await?.is_empty() {
        return Ok(Cancel::Irrevocable);
    }
    if couple.delete_at.is_none() {
        return Ok(Cancel::Cancelled);
    }
    // Guarded as well: once due it is irrevocable.
    let updated = couples::Entity::update_many()
        .col_expr(
            couples::Column::DeleteAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(couples::Column::Id.eq(couple_id))
        .filter(couples::Column::DeleteAt.gt(Utc::now()))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(if updated.rows_affected > 0 {
        Cancel::Cancelled
    } else {
        Cancel::Gone
    })
}

/// Couples whose deletion is due, the longest due first.
pub async fn due_for_deletion(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<Uuid>, DbErr> {
    Ok(couples::Entity::find()
        .filter(couples::Column::DeleteAt.lte(Utc::now()))
        .order_by_asc(couples::Column::DeleteAt)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect())
}

/// What became of a due couple handed to `delete_due`.
#[derive(Debug, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// Not due (restored meanwhile) or gone already (another node was first).
    NotDue,
    /// It has a file whose blob was not removed (an upload that landed after the listing):
    /// kept for the next round, which lists again.
    FilesLeft,
}

/// Deletes a due couple with everything it owns (the foreign keys cascade: members, chats,
/// events, questions asked, answers, file rows), and the accounts of members who deleted
/// theirs. The others can pair again. `removed` are the blobs already deleted: the files
/// are listed again under the couple's lock (which uploads take too), so a file row never
/// goes with the couple while its blob stays.
pub async fn delete_due(
    db: &DatabaseConnection,
    couple_id: Uuid,
    removed: &std::collections::HashSet<String>,
) -> Result<Deletion, DbErr> {
    let txn = db.begin().await?;
    let due = couples::Entity::find_by_id(couple_id)
        .filter(couples::Column::DeleteAt.lte(Utc::now()))
        .lock(LockType::Update)
        .one(&txn)
        .await?;
    if due.is_none() {
        return Ok(Deletion::NotDue);
    }
    let blobs: Vec<String> = files::Entity::find()
        .select_only()
        .column(files::Column::Blob)
        .filter(files::Column::CoupleId.eq(couple_id))
        .into_tuple()
        .all(&txn)
        .await?;
    if blobs.iter().any(|blob| !removed.contains(blob)) {
        return Ok(Deletion::FilesLeft);
    }
    let deleted_members: Vec<Uuid> = deleted_members(&txn, couple_id).await?;
    let deleted = couples::Entity::delete_many()
        .filter(couples::Column::Id.eq(couple_id))
        .exec(&txn)
        .await?;
    if deleted.rows_affected == 0 {
        return Ok(Deletion::NotDue);
    }
    if !deleted_members.is_empty() {
        users::Entity::delete_many()
            .filter(users::Column::Id.is_in(deleted_members))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(Deletion::Deleted)
}

/// Members of the couple who deleted their account (its break-up then cannot be taken back).
pub async fn deleted_members(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
) -> Result<Vec<Uuid>, DbErr> {
    users::Entity::find()
        .select_only()
        .column(users::Column::Id)
        .inner_join(couple_members::Entity)
        .filter(couple_members::Column::CoupleId.eq(couple_id))
        .filter(users::Column::DeletedAt.is_not_null())
        .into_tuple()
        .all(db)
        .await
}
