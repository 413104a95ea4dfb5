//! The question catalogue (seeded with Duet's default set), the questions each couple was
//! asked, and their answers.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{cascade, catalogue};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Questions {
    Table,
    Id,
    Key,
    Text,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum QuestionKeywords {
    Table,
    QuestionId,
    Keyword,
}

#[derive(DeriveIden)]
enum CoupleQuestions {
    Table,
    CoupleId,
    QuestionId,
    Keyword,
    Seq,
    AskedAt,
}

#[derive(DeriveIden)]
enum Answers {
    Table,
    CoupleId,
    QuestionId,
    UserId,
    Text,
    Seq,
    AnsweredAt,
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
                    .table(Questions::Table)
                    .col(big_pk_auto(Questions::Id))
                    .col(string_len_uniq(Questions::Key, 64))
                    .col(text(Questions::Text))
                    .col(timestamp_with_time_zone(Questions::CreatedAt))
                    .col(timestamp_with_time_zone(Questions::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(QuestionKeywords::Table)
                    .col(big_integer(QuestionKeywords::QuestionId))
                    .col(string_len(QuestionKeywords::Keyword, 64))
                    .primary_key(
                        Index::create()
                            .col(QuestionKeywords::QuestionId)
                            .col(QuestionKeywords::Keyword),
                    )
                    .foreign_key(&mut cascade(
                        "fk_question_keywords_question",
                        (QuestionKeywords::Table, QuestionKeywords::QuestionId),
                        (Questions::Table, Questions::Id),
                    ))
                    .to_owned(),
            )
            .await?;

        // The primary key is the rule "a couple is asked a question at most once".
        manager
            .create_table(
                Table::create()
                    .table(CoupleQuestions::Table)
                    .col(uuid(CoupleQuestions::CoupleId))
                    .col(big_integer(CoupleQuestions::QuestionId))
                    .col(string_len(CoupleQuestions::Keyword, 64))
                    .col(big_integer(CoupleQuestions::Seq))
                    .col(timestamp_with_time_zone(CoupleQuestions::AskedAt))
                    .primary_key(
                        Index::create()
                            .col(CoupleQuestions::CoupleId)
                            .col(CoupleQuestions::QuestionId),
                    )
                    .foreign_key(&mut cascade(
                        "fk_couple_questions_couple",
                        (CoupleQuestions::Table, CoupleQuestions::CoupleId),
                        (Couples::Table, Couples::Id),
                    ))
                    .foreign_key(&mut cascade(
                        "fk_couple_questions_question",
                        (CoupleQuestions::Table, CoupleQuestions::QuestionId),
                        (Questions::Table, Questions::Id),
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Answers::Table)
                    .col(uuid(Answers::CoupleId))
                    .col(big_integer(Answers::QuestionId))
                    .col(uuid(Answers::UserId))
                    .col(text(Answers::Text))
                    .col(big_integer(Answers::Seq))
                    .col(timestamp_with_time_zone(Answers::AnsweredAt))
                    .primary_key(
                        Index::create()
                            .col(Answers::CoupleId)
                            .col(Answers::QuestionId)
                            .col(Answers::UserId),
                    )
                    .foreign_key(&mut cascade(
                        "fk_answers_asked",
                        (Answers::Table, Answers::CoupleId),
                        (Couples::Table, Couples::Id),
                    ))
                    .foreign_key(&mut cascade(
                        "fk_answers_user",
                        (Answers::Table, Answers::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;

        seed(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Answers::Table.into_iden(),
            CoupleQuestions::Table.into_iden(),
            QuestionKeywords::Table.into_iden(),
            Questions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Inserts the default catalogue. Keys already present are left alone, so the seed never
/// overwrites what an operator imported.
async fn seed(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let entries =
        catalogue::parse(catalogue::DEFAULT_TOML).map_err(|e| DbErr::Custom(e.to_string()))?;
    let db = manager.get_connection();
    let now = Expr::current_timestamp();
    for entry in entries {
        let insert = Query::insert()
            .into_table(Questions::Table)
            .columns([
                Questions::Key,
                Questions::Text,
                Questions::CreatedAt,
                Questions::UpdatedAt,
            ])
            .values_panic([
                entry.key.clone().into(),
                entry.text.into(),
                now.clone(),
                now.clone(),
            ])
            .on_conflict(OnConflict::column(Questions::Key).do_nothing().to_owned())
            .to_owned();
        db.execute(&insert).await?;
        for keyword in entry.keywords {
            let select = Query::select()
                .column(Questions::Id)
                .expr(Expr::val(keyword))
                .from(Questions::Table)
                .and_where(Expr::col(Questions::Key).eq(entry.key.clone()))
                .to_owned();
            let insert = Query::insert()
                .into_table(QuestionKeywords::Table)
                .columns([QuestionKeywords::QuestionId, QuestionKeywords::Keyword])
                .select_from(select)
                .map_err(|e| DbErr::Custom(e.to_string()))?
                .on_conflict(
                    OnConflict::columns([QuestionKeywords::QuestionId, QuestionKeywords::Keyword])
                        .do_nothing()
                        .to_owned(),
                )
                .to_owned();
            db.execute(&insert).await?;
        }
    }
    Ok(())
}
