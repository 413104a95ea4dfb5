//! Uploaded files. A file belongs to the couple it was uploaded in and to its uploader; it is
//! attached to at most one chat. `deleted_at` marks a blob to remove: the delete path and the
//! sweeper both act on it, so a crash between the database and the storage leaks nothing.

use sea_orm_migration::{prelude::*, schema::*};

use crate::cascade;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Files {
    Table,
    Id,
    CoupleId,
    OwnerId,
    Name,
    Size,
    ContentType,
    Width,
    Height,
    Blob,
    ChatId,
    CreatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Couples {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Files::Table)
                    .col(pk_uuid(Files::Id))
                    .col(uuid(Files::CoupleId))
                    .col(uuid(Files::OwnerId))
                    .col(string_len(Files::Name, 255))
                    .col(big_integer(Files::Size))
                    .col(string_len(Files::ContentType, 128))
                    .col(integer_null(Files::Width))
                    .col(integer_null(Files::Height))
                    .col(string_len(Files::Blob, 128))
                    .col(uuid_null(Files::ChatId))
                    .col(timestamp_with_time_zone(Files::CreatedAt))
                    .col(timestamp_with_time_zone_null(Files::DeletedAt))
                    .foreign_key(&mut cascade(
                        "fk_files_couple",
                        (Files::Table, Files::CoupleId),
                        (Couples::Table, Couples::Id),
                    ))
                    .foreign_key(&mut cascade(
                        "fk_files_owner",
                        (Files::Table, Files::OwnerId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("files_chat_key")
                    .table(Files::Table)
                    .col(Files::ChatId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_files_created")
                    .table(Files::Table)
                    .col(Files::CreatedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Files::Table).if_exists().to_owned())
            .await
    }
}
