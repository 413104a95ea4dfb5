//! Accounts, sessions, pairing, couples, chats and the per-couple event log.

use sea_orm_migration::{prelude::*, schema::*};

use crate::cascade;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    UsernameKey,
    PasswordHash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    TokenHash,
    UserId,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum PairRequests {
    Table,
    Id,
    FromUserId,
    ToUserId,
    PairKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Couples {
    Table,
    Id,
    Since,
    LastSeq,
    DeleteAt,
}

#[derive(DeriveIden)]
enum CoupleMembers {
    Table,
    UserId,
    CoupleId,
    ReadSeq,
}

#[derive(DeriveIden)]
enum Chats {
    Table,
    Id,
    CoupleId,
    Seq,
    SenderId,
    ClientId,
    Text,
    SentAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    CoupleId,
    Seq,
    Kind,
    ChatId,
    QuestionId,
    UserId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(pk_uuid(Users::Id))
                    .col(string_len(Users::Username, 64))
                    .col(string_len_uniq(Users::UsernameKey, 64))
                    .col(string(Users::PasswordHash))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(pk_uuid(Sessions::Id))
                    .col(string_len_uniq(Sessions::TokenHash, 64))
                    .col(uuid(Sessions::UserId))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                    .foreign_key(&mut cascade(
                        "fk_sessions_user",
                        (Sessions::Table, Sessions::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_user")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PairRequests::Table)
                    .col(pk_uuid(PairRequests::Id))
                    .col(uuid(PairRequests::FromUserId))
                    .col(uuid(PairRequests::ToUserId))
                    .col(string_len_uniq(PairRequests::PairKey, 80))
                    .col(timestamp_with_time_zone(PairRequests::CreatedAt))
                    .foreign_key(&mut cascade(
                        "fk_pair_requests_from",
                        (PairRequests::Table, PairRequests::FromUserId),
                        (Users::Table, Users::Id),
                    ))
                    .foreign_key(&mut cascade(
                        "fk_pair_requests_to",
                        (PairRequests::Table, PairRequests::ToUserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_pair_requests_from", PairRequests::FromUserId),
            ("idx_pair_requests_to", PairRequests::ToUserId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(PairRequests::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Couples::Table)
                    .col(pk_uuid(Couples::Id))
                    .col(timestamp_with_time_zone(Couples::Since))
                    .col(big_integer(Couples::LastSeq).default(0))
                    .col(timestamp_with_time_zone_null(Couples::DeleteAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CoupleMembers::Table)
                    .col(pk_uuid(CoupleMembers::UserId))
                    .col(uuid(CoupleMembers::CoupleId))
                    .col(big_integer(CoupleMembers::ReadSeq).default(0))
                    .foreign_key(&mut cascade(
                        "fk_couple_members_user",
                        (CoupleMembers::Table, CoupleMembers::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .foreign_key(&mut cascade(
                        "fk_couple_members_couple",
                        (CoupleMembers::Table, CoupleMembers::CoupleId),
                        (Couples::Table, Couples::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_couple_members_couple")
                    .table(CoupleMembers::Table)
                    .col(CoupleMembers::CoupleId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Chats::Table)
                    .col(pk_uuid(Chats::Id))
                    .col(uuid(Chats::CoupleId))
                    .col(big_integer(Chats::Seq))
                    .col(uuid(Chats::SenderId))
                    .col(uuid(Chats::ClientId))
                    .col(text(Chats::Text))
                    .col(timestamp_with_time_zone(Chats::SentAt))
                    .col(timestamp_with_time_zone_null(Chats::DeletedAt))
                    .foreign_key(&mut cascade(
                        "fk_chats_couple",
                        (Chats::Table, Chats::CoupleId),
                        (Couples::Table, Couples::Id),
                    ))
                    .foreign_key(&mut cascade(
                        "fk_chats_sender",
                        (Chats::Table, Chats::SenderId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("chats_sender_client_key")
                    .table(Chats::Table)
                    .col(Chats::SenderId)
                    .col(Chats::ClientId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("chats_couple_seq_key")
                    .table(Chats::Table)
                    .col(Chats::CoupleId)
                    .col(Chats::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .col(uuid(Events::CoupleId))
                    .col(big_integer(Events::Seq))
                    .col(string_len(Events::Kind, 16))
                    .col(uuid_null(Events::ChatId))
                    .col(big_integer_null(Events::QuestionId))
                    .col(uuid_null(Events::UserId))
                    .col(timestamp_with_time_zone(Events::CreatedAt))
                    .primary_key(Index::create().col(Events::CoupleId).col(Events::Seq))
                    .foreign_key(&mut cascade(
                        "fk_events_couple",
                        (Events::Table, Events::CoupleId),
                        (Couples::Table, Couples::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Events::Table.into_iden(),
            Chats::Table.into_iden(),
            CoupleMembers::Table.into_iden(),
            Couples::Table.into_iden(),
            PairRequests::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
