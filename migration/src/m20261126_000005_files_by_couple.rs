//! An index of files by couple: a replay finds the files of the chats it sends among the
//! couple's few files, and a break-up finds every file of the couple, without scanning all.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Files {
    Table,
    CoupleId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_files_couple")
                    .table(Files::Table)
                    .col(Files::CoupleId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_files_couple")
                    .table(Files::Table)
                    .to_owned(),
            )
            .await
    }
}
