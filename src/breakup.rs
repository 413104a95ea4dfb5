//! The break-up: only ever scheduled, with a grace period to take it back. The schedule is a
//! column, so it survives restarts; when it falls due, a sweeper that every node runs deletes
//! the couple's files, then the couple with its chats, answers and pairing, and both can pair
//! again. Partners' open sockets hear of every step.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use crate::couple::Member;
use crate::error::{Error, Result};
use crate::frame::ServerFrame;
use crate::publish;
use crate::services::Services;
use crate::store;
use crate::store::couples::{Cancel, Deletion};

/// Couples deleted per sweep round at most.
const BATCH: u64 = 100;

/// Schedules our deletion after the grace period (again: keeps the first schedule).
pub async fn schedule(services: &Services, me: &Member) -> Result<DateTime<Utc>> {
    let delete_at = store::couples::schedule_deletion(&services.db, me.couple_id, due(services)?)
        .await?
        .ok_or(Error::NotPaired)?;
    tracing::info!(couple_id = %me.couple_id, user_id = %me.user_id, %delete_at, "break-up scheduled");
    announce(services, me.couple_id, Some(delete_at));
    Ok(delete_at)
}

/// When a break-up asked for now falls due.
pub fn due(services: &Services) -> Result<DateTime<Utc>> {
    let grace = chrono::Duration::from_std(services.config.breakup_grace())
        .map_err(|e| Error::Internal(e.into()))?;
    Ok(Utc::now() + grace)
}

/// Takes a scheduled break-up back, while it is not due and nobody deleted their account.
pub async fn restore(services: &Services, me: &Member) -> Result<()> {
    match store::couples::cancel_deletion(&services.db, me.couple_id).await? {
        Cancel::Cancelled => {}
        Cancel::Irrevocable => {
            return Err(Error::Forbidden(
                "your partner deleted their account; the break-up cannot be taken back",
            ));
        }
        Cancel::Gone => return Err(Error::NotPaired),
    }
    tracing::info!(couple_id = %me.couple_id, user_id = %me.user_id, "break-up cancelled");
    announce(services, me.couple_id, None);
    Ok(())
}

/// Tells both partners' sockets (extension frame `couple`, with `delete_at`).
pub fn announce(services: &Services, couple_id: Uuid, delete_at: Option<DateTime<Utc>>) {
    let delete_at = delete_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
    publish::to_both(&services.bus, couple_id, &ServerFrame::Couple { delete_at });
}

pub fn spawn_sweeper(services: Services) {
    let stop = services.shutdown.clone();
    services.tasks.clone().spawn(async move {
        let mut tick = tokio::time::interval(services.config.sweep_period());
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            match sweep(&services).await {
                Ok(Swept { kept: 0, .. }) => {}
                Ok(Swept { deleted, kept }) => {
                    tracing::warn!(deleted, kept, "couples due kept for the next round");
                }
                Err(e) => tracing::warn!(error = %e, "deleting couples whose break-up is due"),
            }
        }
    });
}

/// What one sweep round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Couples deleted.
    pub deleted: usize,
    /// Couples due but kept for the next round: a blob could not be removed, or a file
    /// appeared after the listing.
    pub kept: usize,
}

/// Deletes every couple whose break-up is due. Files first (their rows point at the blobs and
/// would go with the couple); deleting a blob twice is harmless, so nodes may race. A blob
/// that cannot be removed (a permission, a disk error) keeps its couple, with its file rows,
/// for the next round, and the round goes on with the other couples.
pub async fn sweep(services: &Services) -> anyhow::Result<Swept> {
    let mut swept = Swept::default();
    for couple_id in store::couples::due_for_deletion(&services.db, BATCH).await? {
        let mut removed = HashSet::new();
        let mut stuck = false;
        for file in store::files::all_of_couple(&services.db, couple_id).await? {
            match crate::file::remove_blobs(services, &file).await {
                Ok(()) => {
                    removed.insert(file.blob);
                }
                Err(e) => {
                    tracing::warn!(%couple_id, file_id = %file.id, error = %e, "removing a file's blob of a couple due failed; trying again next round");
                    stuck = true;
                }
            }
        }
        if stuck {
            swept.kept += 1;
            continue;
        }
        match store::couples::delete_due(&services.db, couple_id, &removed).await? {
            Deletion::Deleted => {
                tracing::info!(%couple_id, "couple deleted after its break-up");
                swept.deleted += 1;
                publish::couple_deleted(&services.bus, couple_id);
            }
            Deletion::FilesLeft => swept.kept += 1,
            Deletion::NotDue => {}
        }
    }
    Ok(swept)
}
