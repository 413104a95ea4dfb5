//! The break-up: only ever scheduled, with a grace period to take it back. The schedule is a
//! column, so it survives restarts; when it falls due, a sweeper that every node runs deletes
//! the couple's files, then the couple with its chats, answers and pairing, and both can pair
//! again. Partners' open sockets hear of every step.

use chrono::{DateTime, SecondsFormat, Utc};

use uuid::Uuid;

use crate::couple::Member;
use crate::error::{Error, Result};
use crate::frame::ServerFrame;
use crate::publish;
use crate::services::Services;
use crate::store;

/// Couples deleted per sweep round at most.
const BATCH: u64 = 100;

/// Schedules our deletion after the grace period (again: keeps the first schedule).
pub async fn schedule(services: &Services, me: &Member) -> Result<DateTime<Utc>> {
    let grace = chrono::Duration::from_std(services.config.breakup_grace())
        .map_err(|e| Error::Internal(e.into()))?;
    let delete_at =
        store::couples::schedule_deletion(&services.db, me.couple_id, Utc::now() + grace)
            .await?
            .ok_or(Error::NotPaired)?;
    tracing::info!(couple_id = %me.couple_id, user_id = %me.user_id, %delete_at, "break-up scheduled");
    announce(services, me.couple_id, Some(delete_at));
    Ok(delete_at)
}

/// Takes a scheduled break-up back, while it is not due.
pub async fn restore(services: &Services, me: &Member) -> Result<()> {
    if !store::couples::deleted_members(&services.db, me.couple_id)
        .await?
        .is_empty()
    {
        return Err(Error::Forbidden(
            "your partner deleted their account; the break-up cannot be taken back",
        ));
    }
    if !store::couples::cancel_deletion(&services.db, me.couple_id).await? {
        return Err(Error::NotPaired);
    }
    tracing::info!(couple_id = %me.couple_id, user_id = %me.user_id, "break-up cancelled");
    announce(services, me.couple_id, None);
    Ok(())
}

/// Tells both partners' sockets (extension frame `couple`, with `delete_at`).
fn announce(services: &Services, couple_id: Uuid, delete_at: Option<DateTime<Utc>>) {
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
            if let Err(e) = sweep(&services).await {
                tracing::warn!(error = %e, "deleting couples whose break-up is due");
            }
        }
    });
}

/// Deletes every couple whose break-up is due. Files first (their rows point at the blobs and
/// would go with the couple); deleting a blob twice is harmless, so nodes may race.
pub async fn sweep(services: &Services) -> anyhow::Result<usize> {
    let mut deleted = 0;
    for couple_id in store::couples::due_for_deletion(&services.db, BATCH).await? {
        for file in store::files::all_of_couple(&services.db, couple_id).await? {
            services.files.delete(&file.blob).await?;
        }
        if store::couples::delete_due(&services.db, couple_id).await? {
            tracing::info!(couple_id = %couple_id, "couple deleted after its break-up");
            deleted += 1;
            publish::couple_deleted(&services.bus, couple_id);
        }
    }
    Ok(deleted)
}
