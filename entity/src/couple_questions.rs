//! A question a couple was asked; the primary key makes "at most once per couple" a rule of
//! the database, whichever node or partner triggers it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "couple_questions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub couple_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub question_id: i64,
    /// The keyword that brought it up.
    pub keyword: String,
    /// The `question` event's seq.
    pub seq: i64,
    pub asked_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
