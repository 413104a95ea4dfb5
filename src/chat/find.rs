//! Finding our way back: search by words and opening the conversation anywhere (around a
//! chat, at a day, and the pages after it), always without deleted chats.

use chrono::{NaiveDate, TimeZone, Utc};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::with_files;
use crate::anniversary;
use crate::error::{Error, Result};
use crate::services::Services;
use crate::store;
use crate::view::ChatView;

/// Longest search, in characters.
pub const MAX_QUERY_CHARS: usize = 100;

/// Chats containing `query` (case-insensitive), `seq < before`, newest first, read on the
/// read pool (a one-character search reads the couple's whole history). The caller holds
/// the member's heavy-read turn (`crate::heavy`).
pub async fn search(
    services: &Services,
    couple_id: Uuid,
    query: &str,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<ChatView>> {
    let query = query.trim();
    if query.is_empty() || query.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::InvalidInput(format!(
            "q needs 1 to {MAX_QUERY_CHARS} characters"
        )));
    }
    let reads = services.reads_for(couple_id).await;
    let chats = store::chats::search(&reads, couple_id, query, before, limit).await?;
    with_files(&reads, chats).await
}

/// The `limit` chats right after `seq`, newest first (like every page).
pub async fn after(
    services: &Services,
    couple_id: Uuid,
    seq: i64,
    limit: u64,
) -> Result<Vec<ChatView>> {
    let mut chats = forward(services, couple_id, seq, limit).await?;
    chats.reverse();
    Ok(chats)
}

/// The `limit` chats right after `seq`, oldest first: reading the history from the start.
pub async fn forward(
    services: &Services,
    couple_id: Uuid,
    seq: i64,
    limit: u64,
) -> Result<Vec<ChatView>> {
    forward_on(&services.db, couple_id, seq, limit).await
}

/// `forward` on the given pool: the export reads its pages through the read pool.
pub async fn forward_on(
    db: &DatabaseConnection,
    couple_id: Uuid,
    seq: i64,
    limit: u64,
) -> Result<Vec<ChatView>> {
    let chats = store::chats::after(db, couple_id, seq, limit).await?;
    with_files(db, chats).await
}

/// The chats around `seq`: it and older ones (half the page, rounded up), and the newer half;
/// newest first.
pub async fn around(
    services: &Services,
    couple_id: Uuid,
    seq: i64,
    limit: u64,
) -> Result<Vec<ChatView>> {
    let newer_count = limit / 2;
    let older_count = limit - newer_count;
    let mut chats = store::chats::after(&services.db, couple_id, seq, newer_count).await?;
    chats.reverse();
    let older = store::chats::history(
        &services.db,
        couple_id,
        Some(seq.saturating_add(1)),
        older_count,
    )
    .await?;
    chats.extend(older);
    with_files(&services.db, chats).await
}

/// The seq of the first chat sent on `day` or later, `day` being a calendar day in the
/// couple's time zone.
pub async fn first_on(services: &Services, couple_id: Uuid, day: NaiveDate) -> Result<Option<i64>> {
    let zone = anniversary::time_zone(services, couple_id).await?;
    // A day starts at its first existing local instant (a DST gap can skip midnight).
    let start = (0..24)
        .filter_map(|hour| day.and_hms_opt(hour, 0, 0))
        .find_map(|local| zone.from_local_datetime(&local).earliest())
        .ok_or_else(|| Error::InvalidInput("this day does not exist in the time zone".into()))?;
    let last_seq = store::couples::last_seq(&services.db, couple_id).await?;
    Ok(
        store::chats::first_since(&services.db, couple_id, start.with_timezone(&Utc), last_seq)
            .await?,
    )
}

/// Keeps the search index's pending list short on Postgres, so that no send's commit is the
/// one that finds it full and merges it (docs/PERFORMANCE.md, "The search index's pending
/// list"). Every node runs it; a merge already under way makes another node's wait and find
/// little left.
pub fn spawn_index_upkeep(services: Services, period: Option<std::time::Duration>) {
    let Some(period) = period else { return };
    if services.db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return;
    }
    let stop = services.shutdown.clone();
    services.tasks.clone().spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Once a second would fill the log through an outage: said once until it works again.
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            match store::chats::merge_search_pending(&services.db).await {
                Ok(()) => failing = false,
                Err(e) if failing => {
                    tracing::debug!(error = %e, "merging the search index's pending list");
                }
                Err(e) => {
                    failing = true;
                    tracing::warn!(error = %e, "merging the search index's pending list failed; trying again every period");
                }
            }
        }
    });
}
