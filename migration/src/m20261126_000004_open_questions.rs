//! `couples.open_questions`: how many questions the couple was asked that one of the two has
//! not answered yet. It lives on the couple's row because that row is what every send locks:
//! a send that finds it at zero owes nothing and needs no other read, which lets a node commit
//! a batch of plain chats in one statement (see `store::sends`). Kept by the transactions that
//! ask (+1) and that store the second answer (-1), both under the same row lock.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Couples {
    Table,
    OpenQuestions,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Couples::Table)
                    .add_column(integer(Couples::OpenQuestions).default(0))
                    .to_owned(),
            )
            .await?;
        // Couples asked before this column existed: count what is still open.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE couples SET open_questions = (
                    SELECT count(*) FROM couple_questions cq
                    WHERE cq.couple_id = couples.id
                      AND (SELECT count(*) FROM answers a
                           WHERE a.couple_id = cq.couple_id AND a.question_id = cq.question_id) < 2)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Couples::Table)
                    .drop_column(Couples::OpenQuestions)
                    .to_owned(),
            )
            .await
    }
}
