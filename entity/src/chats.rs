//! A chat. `(sender_id, client_id)` is unique, which makes `send` idempotent; `(couple_id,
//! seq)` is unique, the couple's order. A deleted chat keeps its row (its seq stays taken)
//! with the text wiped. An edited chat holds its latest text in `text` and its first in
//! `first_text`; the texts between are its `edited` events'.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chats")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub couple_id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    pub client_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub text: String,
    pub sent_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
    /// The earlier chat of the couple this one quotes.
    pub reply_to: Option<Uuid>,
    /// How many times its sender edited it.
    pub edits: i32,
    /// The seq of its latest edit.
    pub edited_seq: Option<i64>,
    /// Its text as it was sent, once it was edited.
    #[sea_orm(column_type = "Text", nullable)]
    pub first_text: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::couples::Entity",
        from = "Column::CoupleId",
        to = "super::couples::Column::Id",
        on_delete = "Cascade"
    )]
    Couple,
}

impl Related<super::couples::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Couple.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
