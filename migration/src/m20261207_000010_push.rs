//! Web Push: the cluster's one VAPID key pair (made by the first node that starts, so every
//! node signs with it), and each device's push subscription, tied to the session that made it
//! so it ends with the session (logout, password change, account deletion, expiry).

use sea_orm_migration::{prelude::*, schema::*};

use crate::cascade;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum PushKeys {
    Table,
    Id,
    PrivateKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PushSubscriptions {
    Table,
    Id,
    UserId,
    SessionId,
    Endpoint,
    P256dh,
    Auth,
    Device,
    Preview,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PushKeys::Table)
                    .col(small_integer(PushKeys::Id).primary_key())
                    .col(string_len(PushKeys::PrivateKey, 64))
                    .col(timestamp_with_time_zone(PushKeys::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PushSubscriptions::Table)
                    .col(pk_uuid(PushSubscriptions::Id))
                    .col(uuid(PushSubscriptions::UserId))
                    .col(uuid(PushSubscriptions::SessionId))
                    .col(string_len_uniq(PushSubscriptions::Endpoint, 1024))
                    .col(string_len(PushSubscriptions::P256dh, 128))
                    .col(string_len(PushSubscriptions::Auth, 64))
                    .col(string_len(PushSubscriptions::Device, 100))
                    .col(boolean(PushSubscriptions::Preview))
                    .col(timestamp_with_time_zone(PushSubscriptions::CreatedAt))
                    .foreign_key(&mut cascade(
                        "fk_push_subscriptions_session",
                        (PushSubscriptions::Table, PushSubscriptions::SessionId),
                        (Sessions::Table, Sessions::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_push_subscriptions_user")
                    .table(PushSubscriptions::Table)
                    .col(PushSubscriptions::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_push_subscriptions_session")
                    .table(PushSubscriptions::Table)
                    .col(PushSubscriptions::SessionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PushSubscriptions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PushKeys::Table).to_owned())
            .await
    }
}
