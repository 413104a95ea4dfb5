//! An account. `username_key` (the lowercased name) is unique, so names are unique
//! case-insensitively while `username` keeps the spelling its owner chose.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub username: String,
    #[sea_orm(unique)]
    pub username_key: String,
    pub password_hash: String,
    pub created_at: DateTimeUtc,
    /// Set when its owner deleted it while in a couple; the row goes with the couple.
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::sessions::Entity")]
    Sessions,
    #[sea_orm(has_one = "super::couple_members::Entity")]
    CoupleMember,
}

impl Related<super::sessions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Sessions.def()
    }
}

impl Related<super::couple_members::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CoupleMember.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
