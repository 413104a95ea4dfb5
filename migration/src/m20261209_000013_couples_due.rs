//! The break-up sweeper finds the couples whose deletion is due through an index of their
//! `delete_at`, not by reading every couple: it runs on every node every `DUET_SWEEP_SECS`,
//! and a deployment's couples only grow. Partial: only couples with a break-up scheduled are
//! in it, a handful beside the rest.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Postgres and SQLite both take a partial index in this form; sea-query has none.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS idx_couples_delete_at ON couples (delete_at) \
                 WHERE delete_at IS NOT NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS idx_couples_delete_at")
            .await?;
        Ok(())
    }
}
