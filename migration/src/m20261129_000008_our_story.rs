//! What a couple keeps besides its chats: its start date and time zone, its own dates, the
//! words it uses (counted incrementally, with the ones it chose to leave out), and the index
//! that makes searching a long history quick on Postgres.

use sea_orm_migration::{prelude::*, schema::*};

use crate::cascade;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The indexed form of a chat's text on Postgres: every character doubled. A search must
/// spell the expression the same way for the planner to use the index
/// (`src/store/chats.rs`).
pub const SEARCH_EXPRESSION: &str = r"regexp_replace(text, '(.)', '\1\1', 'g')";

#[derive(DeriveIden)]
enum Couples {
    Table,
    Id,
    StartedOn,
    TimeZone,
}

#[derive(DeriveIden)]
enum Anniversaries {
    Table,
    Id,
    CoupleId,
    Title,
    Date,
    Yearly,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WordCounts {
    Table,
    CoupleId,
    UserId,
    Word,
    Count,
}

#[derive(DeriveIden)]
enum WordMarks {
    Table,
    CoupleId,
    CountedSeq,
}

#[derive(DeriveIden)]
enum ExcludedWords {
    Table,
    CoupleId,
    Word,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Couples::Table)
                    .add_column(date_null(Couples::StartedOn))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Couples::Table)
                    .add_column(string_len_null(Couples::TimeZone, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Anniversaries::Table)
                    .col(pk_uuid(Anniversaries::Id))
                    .col(uuid(Anniversaries::CoupleId))
                    .col(string_len(Anniversaries::Title, 100))
                    .col(date(Anniversaries::Date))
                    .col(boolean(Anniversaries::Yearly))
                    .col(uuid(Anniversaries::CreatedBy))
                    .col(timestamp_with_time_zone(Anniversaries::CreatedAt))
                    .foreign_key(&mut cascade(
                        "fk_anniversaries_couple",
                        (Anniversaries::Table, Anniversaries::CoupleId),
                        (Couples::Table, Couples::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_anniversaries_couple")
                    .table(Anniversaries::Table)
                    .col(Anniversaries::CoupleId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WordCounts::Table)
                    .col(uuid(WordCounts::CoupleId))
                    .col(uuid(WordCounts::UserId))
                    .col(string_len(WordCounts::Word, 64))
                    .col(big_integer(WordCounts::Count))
                    .primary_key(
                        Index::create()
                            .col(WordCounts::CoupleId)
                            .col(WordCounts::Word)
                            .col(WordCounts::UserId),
                    )
                    .foreign_key(&mut cascade(
                        "fk_word_counts_couple",
                        (WordCounts::Table, WordCounts::CoupleId),
                        (Couples::Table, Couples::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        // Its own table, not a column of `couples`: every send locks the couple's row, and
        // counting words must not wait for (or hold up) sends.
        manager
            .create_table(
                Table::create()
                    .table(WordMarks::Table)
                    .col(pk_uuid(WordMarks::CoupleId))
                    .col(big_integer(WordMarks::CountedSeq))
                    .foreign_key(&mut cascade(
                        "fk_word_marks_couple",
                        (WordMarks::Table, WordMarks::CoupleId),
                        (Couples::Table, Couples::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ExcludedWords::Table)
                    .col(uuid(ExcludedWords::CoupleId))
                    .col(string_len(ExcludedWords::Word, 64))
                    .col(timestamp_with_time_zone(ExcludedWords::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(ExcludedWords::CoupleId)
                            .col(ExcludedWords::Word),
                    )
                    .foreign_key(&mut cascade(
                        "fk_excluded_words_couple",
                        (ExcludedWords::Table, ExcludedWords::CoupleId),
                        (Couples::Table, Couples::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            // Search is `ILIKE '%...%'`, served by trigrams (pg_trgm) for Hangul and Latin
            // alike; btree_gin puts the couple in the same index, so a search reads only its
            // couple's entries. Trigrams need three characters, and Korean words are often
            // two ("여행"): the index is over the text with every character doubled
            // ("여여행행을을"), where a two-character needle is four characters with two
            // trigrams. Doubling keeps substrings (the text holds the needle exactly when the
            // doubled text holds the doubled needle, and the real text is checked again).
            // It costs about 4 µs of Postgres CPU per chat written (measured: 200,000 chats
            // in 0.8 s). GIN's pending list (fastupdate) defers most of that to autovacuum,
            // but not all: an insert that finds the list full (gin_pending_list_limit, 4 MB)
            // merges it into the index within its own commit, an occasional slower commit.
            let db = manager.get_connection();
            db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                .await?;
            db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS btree_gin")
                .await?;
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS idx_chats_text_search \
                 ON chats USING gin (couple_id, ({SEARCH_EXPRESSION}) gin_trgm_ops)"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP INDEX IF EXISTS idx_chats_text_search")
                .await?;
        }
        for table in [
            ExcludedWords::Table.into_iden(),
            WordMarks::Table.into_iden(),
            WordCounts::Table.into_iden(),
            Anniversaries::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for column in [
            Couples::TimeZone.into_iden(),
            Couples::StartedOn.into_iden(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Couples::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
