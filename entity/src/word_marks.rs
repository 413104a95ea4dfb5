//! How far the couple's words are counted: every chat with `seq <= counted_seq` is in
//! `word_counts` (and a deleted one taken out again).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "word_marks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub couple_id: Uuid,
    pub counted_seq: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
