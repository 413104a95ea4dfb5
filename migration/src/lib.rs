//! Duet's schema, one migration per step, run at start-up and by `duet migrate`.
//! The same code creates the schema on Postgres and SQLite.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_accounts_pairing_chat;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261124_000001_accounts_pairing_chat::Migration)]
    }
}
