//! Our album and voice notes: a photo's thumbnail, made by the server when it is uploaded
//! (oriented, without its metadata), kept in the blob store beside the original and removed
//! with it; and how long a recording lasts, measured from its bytes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Files {
    Table,
    ThumbBlob,
    ThumbWidth,
    ThumbHeight,
    DurationMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        let columns = [
            ColumnDef::new(Files::ThumbBlob)
                .string_len(128)
                .null()
                .to_owned(),
            ColumnDef::new(Files::ThumbWidth)
                .integer()
                .null()
                .to_owned(),
            ColumnDef::new(Files::ThumbHeight)
                .integer()
                .null()
                .to_owned(),
            ColumnDef::new(Files::DurationMs)
                .big_integer()
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Files::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Files::ThumbBlob,
            Files::ThumbWidth,
            Files::ThumbHeight,
            Files::DurationMs,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Files::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
