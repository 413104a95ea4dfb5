//! The everyday gestures of a conversation: a chat that quotes an earlier one (`reply_to`),
//! an edited chat (its latest text in `text`, the first in `first_text`, each later one in
//! its `edited` event), and one reaction per partner on a chat. An event of the log now
//! carries the text it set (an edit's new text, a reaction's emoji), so a replay shows each
//! as it was.

use sea_orm_migration::{prelude::*, schema::*};

use crate::cascade;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Chats {
    Table,
    Id,
    ReplyTo,
    Edits,
    EditedSeq,
    FirstText,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    ChatId,
    Text,
}

#[derive(DeriveIden)]
enum Reactions {
    Table,
    ChatId,
    UserId,
    CoupleId,
    Emoji,
    Seq,
    ReactedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        let columns = [
            ColumnDef::new(Chats::ReplyTo).uuid().null().to_owned(),
            ColumnDef::new(Chats::Edits)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(Chats::EditedSeq)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Chats::FirstText).text().null().to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Chats::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Events::Table)
                    .add_column(ColumnDef::new(Events::Text).text().null())
                    .to_owned(),
            )
            .await?;
        // A chat's versions are its `edited` events; deleting it wipes them.
        manager
            .create_index(
                Index::create()
                    .name("idx_events_chat")
                    .table(Events::Table)
                    .col(Events::ChatId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Reactions::Table)
                    .col(uuid(Reactions::ChatId))
                    .col(uuid(Reactions::UserId))
                    .col(uuid(Reactions::CoupleId))
                    .col(string_len(Reactions::Emoji, 64))
                    .col(big_integer(Reactions::Seq))
                    .col(timestamp_with_time_zone(Reactions::ReactedAt))
                    .primary_key(
                        Index::create()
                            .col(Reactions::ChatId)
                            .col(Reactions::UserId),
                    )
                    .foreign_key(&mut cascade(
                        "fk_reactions_chat",
                        (Reactions::Table, Reactions::ChatId),
                        (Chats::Table, Chats::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        // The export reads a couple's reactions; the couple's deletion takes them.
        manager
            .create_index(
                Index::create()
                    .name("idx_reactions_couple")
                    .table(Reactions::Table)
                    .col(Reactions::CoupleId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Reactions::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_events_chat")
                    .table(Events::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Events::Table)
                    .drop_column(Events::Text)
                    .to_owned(),
            )
            .await?;
        for column in [
            Chats::ReplyTo,
            Chats::Edits,
            Chats::EditedSeq,
            Chats::FirstText,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Chats::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
