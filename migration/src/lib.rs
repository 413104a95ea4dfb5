//! Duet's schema, one migration per step, run at start-up and by `duet migrate`.
//! The same code creates the schema on Postgres and SQLite.

pub use sea_orm_migration::prelude::*;

pub mod catalogue;
mod m20261124_000001_accounts_pairing_chat;
mod m20261125_000002_questions;
mod m20261125_000003_files;
mod m20261126_000004_open_questions;
mod m20261126_000005_files_by_couple;
mod m20261127_000006_sessions_by_expiry;
mod m20261128_000007_accounts_deleted;
mod m20261129_000008_our_story;
mod m20261207_000009_username_keys;
mod m20261207_000010_push;
mod m20261208_000011_gestures;
mod m20261208_000012_media;
mod m20261209_000013_couples_due;

pub use m20261129_000008_our_story::SEARCH_EXPRESSION;

/// The key a username is unique and found by: its NFKC form (compatibility characters such
/// as fullwidth letters become the plain ones), lowercased, and NFKC again (lowercasing can
/// undo the normal form). Look-alikes that differ only so are one name. Here, not in the
/// store, because a migration computes the keys of existing accounts with it.
pub fn username_key(username: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded = username.nfkc().collect::<String>().to_lowercase();
    folded.nfkc().collect()
}

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_accounts_pairing_chat::Migration),
            Box::new(m20261125_000002_questions::Migration),
            Box::new(m20261125_000003_files::Migration),
            Box::new(m20261126_000004_open_questions::Migration),
            Box::new(m20261126_000005_files_by_couple::Migration),
            Box::new(m20261127_000006_sessions_by_expiry::Migration),
            Box::new(m20261128_000007_accounts_deleted::Migration),
            Box::new(m20261129_000008_our_story::Migration),
            Box::new(m20261207_000009_username_keys::Migration),
            Box::new(m20261207_000010_push::Migration),
            Box::new(m20261208_000011_gestures::Migration),
            Box::new(m20261208_000012_media::Migration),
            Box::new(m20261209_000013_couples_due::Migration),
        ]
    }
}

/// A foreign key whose rows go when the row they point at goes (a couple's chats with it).
pub(crate) fn cascade(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Cascade)
        .take()
}
