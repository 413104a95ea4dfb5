//! An uploaded file: metadata here, bytes in the blob store under `blob` (a generated name;
//! the client's file name is only `name`, shown to people).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "files")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub couple_id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub blob: String,
    /// The chat carrying it; `None` until sent (and swept after a day).
    #[sea_orm(unique)]
    pub chat_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    /// Set when its chat is deleted or it was never sent: the blob is to be removed.
    pub deleted_at: Option<DateTimeUtc>,
    /// A photo's thumbnail in the blob store (oriented, without metadata), and its size.
    pub thumb_blob: Option<String>,
    pub thumb_width: Option<i32>,
    pub thumb_height: Option<i32>,
    /// How long a recording lasts, measured from its bytes.
    pub duration_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
