//! The couple's ordered log of everything that is not a chat (a chat is its own entry, by its
//! `seq`): one row per deletion, question asked and answer, keyed by `(couple_id, seq)`.
//! Replays read it beside the chats; the rows it points at hold the content.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub couple_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    /// `deleted`, `question`, `answered`, `reacted` or `edited` (`chat` only in rows written
    /// by older versions).
    pub kind: String,
    pub chat_id: Option<Uuid>,
    pub question_id: Option<i64>,
    pub user_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    /// What it set: an edit's new text, a reaction's emoji (`None`: taken away). Wiped when
    /// the chat is deleted.
    #[sea_orm(column_type = "Text", nullable)]
    pub text: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The chat a `chat` or `deleted` event is about; a replay reads both in one query.
    #[sea_orm(
        belongs_to = "super::chats::Entity",
        from = "Column::ChatId",
        to = "super::chats::Column::Id"
    )]
    Chat,
}

impl Related<super::chats::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Chat.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
