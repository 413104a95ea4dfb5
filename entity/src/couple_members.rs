//! A user's membership of a couple. `user_id` is the primary key: a user is in at most one
//! couple, decided by the database even when two accepts race.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "couple_members")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub couple_id: Uuid,
    /// The highest `seq` this member has read.
    pub read_seq: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_delete = "Cascade"
    )]
    User,
    #[sea_orm(
        belongs_to = "super::couples::Entity",
        from = "Column::CoupleId",
        to = "super::couples::Column::Id",
        on_delete = "Cascade"
    )]
    Couple,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::couples::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Couple.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
