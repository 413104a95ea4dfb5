//! A chat. `(sender_id, client_id)` is unique, which makes `send` idempotent; `(couple_id,
//! seq)` is unique, the couple's order. A deleted chat keeps its row (its seq stays taken)
//! with the text wiped.

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
