//! A couple. `last_seq` is the counter every persisted event of the couple takes its `seq`
//! from, inside the event's own transaction; locking this row is what orders a couple's events.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "couples")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub since: DateTimeUtc,
    pub last_seq: i64,
    /// When a scheduled break-up falls due; `None` while the couple is together.
    pub delete_at: Option<DateTimeUtc>,
    /// Questions asked that one of the two has not answered yet. Zero means nobody owes an
    /// answer, which a send learns from the row it locks anyway.
    pub open_questions: i32,
    /// The couple's day one, a calendar date; `None` means the day they paired.
    pub started_on: Option<Date>,
    /// The IANA time zone the couple's dates are in; `None` means the server's default.
    pub time_zone: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::couple_members::Entity")]
    CoupleMembers,
}

impl Related<super::couple_members::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CoupleMembers.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
