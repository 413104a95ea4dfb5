//! The couple's calendar: its start date and time zone (on the couple's row) and its own
//! dates. Dates are calendar dates, stored as such.

use chrono::{NaiveDate, Utc};
use entity::{anniversaries, couples};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};
use uuid::Uuid;

pub use anniversaries::Model as Anniversary;
pub use couples::Model as Couple;

pub async fn couple(db: &impl ConnectionTrait, couple_id: Uuid) -> Result<Option<Couple>, DbErr> {
    couples::Entity::find_by_id(couple_id).one(db).await
}

/// Sets what is given of the start date and the time zone.
pub async fn set_start(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    started_on: Option<NaiveDate>,
    time_zone: Option<&str>,
) -> Result<(), DbErr> {
    let mut update = couples::Entity::update_many().filter(couples::Column::Id.eq(couple_id));
    if let Some(started_on) = started_on {
        update = update.col_expr(couples::Column::StartedOn, Expr::value(started_on));
    }
    if let Some(time_zone) = time_zone {
        update = update.col_expr(couples::Column::TimeZone, Expr::value(time_zone));
    }
    update.exec(db).await?;
    Ok(())
}

/// The couple's own dates, in date order.
pub async fn dates(db: &impl ConnectionTrait, couple_id: Uuid) -> Result<Vec<Anniversary>, DbErr> {
    anniversaries::Entity::find()
        .filter(anniversaries::Column::CoupleId.eq(couple_id))
        .order_by_asc(anniversaries::Column::Date)
        .order_by_asc(anniversaries::Column::CreatedAt)
        .all(db)
        .await
}

pub async fn add(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    created_by: Uuid,
    title: String,
    date: NaiveDate,
    yearly: bool,
) -> Result<Anniversary, DbErr> {
    anniversaries::ActiveModel {
        id: Set(Uuid::now_v7()),
        couple_id: Set(couple_id),
        title: Set(title),
        date: Set(date),
        yearly: Set(yearly),
        created_by: Set(created_by),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
}

/// Removes one of the couple's dates; `false` when the couple has no such date.
pub async fn remove(db: &impl ConnectionTrait, couple_id: Uuid, id: Uuid) -> Result<bool, DbErr> {
    let removed = anniversaries::Entity::delete_many()
        .filter(anniversaries::Column::Id.eq(id))
        .filter(anniversaries::Column::CoupleId.eq(couple_id))
        .exec(db)
        .await?;
    Ok(removed.rows_affected > 0)
}

/// How many dates the couple keeps (the limit on adding more).
pub async fn count(db: &impl ConnectionTrait, couple_id: Uuid) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    anniversaries::Entity::find()
        .filter(anniversaries::Column::CoupleId.eq(couple_id))
        .count(db)
        .await
}
