//! Usernames compare by their NFKC form, lowercased (`crate::username_key`), no longer by their
//! lowercase alone: "Ｂｏｂ" (fullwidth) and "bob" are one name, so a look-alike cannot sign up
//! beside a partner and take their pairing requests. The unique index on `username_key` stays;
//! this recomputes the keys of the accounts that exist. Accounts whose new keys would collide
//! (two look-alikes that signed up before) keep their old keys, so both still log in as they
//! did; any newcomer's look-alike of them is refused, since its key is the new one.

use std::collections::HashMap;

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Username,
    UsernameKey,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let select = Query::select()
            .columns([Users::Username, Users::UsernameKey])
            .from(Users::Table)
            .to_owned();
        let mut keys: Vec<(String, String)> = Vec::new();
        for row in db.query_all_raw(backend.build(&select)).await? {
            let username: String = row.try_get("", "username")?;
            let old: String = row.try_get("", "username_key")?;
            keys.push((old, crate::username_key(&username)));
        }
        let mut holders: HashMap<&str, usize> = HashMap::new();
        for (_, new) in &keys {
            *holders.entry(new.as_str()).or_default() += 1;
        }
        for (old, new) in &keys {
            if old == new || holders.get(new.as_str()) != Some(&1) {
                continue;
            }
            let update = Query::update()
                .table(Users::Table)
                .value(Users::UsernameKey, new.clone())
                .and_where(Expr::col(Users::UsernameKey).eq(old.clone()))
                .to_owned();
            manager.exec_stmt(update).await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The new keys are as unique as the old ones and name the same accounts.
        Ok(())
    }
}
