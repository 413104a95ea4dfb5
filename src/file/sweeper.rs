//! Removes blobs nobody needs: uploads never sent within the orphan age (a day by default) and
//! files whose chat was deleted but whose blob removal did not finish. Every node runs it; the
//! guarded UPDATE that marks orphans and the idempotent blob delete make that safe.

use std::time::Duration;

use chrono::Utc;

use crate::services::Services;
use crate::store;

/// Released files handled per round.
const BATCH: u64 = 500;

pub fn spawn(services: Services, period: Duration) {
    let stop = services.shutdown.clone();
    services.tasks.clone().spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            match sweep(&services).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "swept files"),
                Err(e) => tracing::warn!(error = %e, "sweeping files"),
            }
        }
    });
}

/// One round; returns how many blobs were removed.
pub async fn sweep(services: &Services) -> anyhow::Result<usize> {
    let age = chrono::Duration::from_std(services.config.orphan_age())?;
    store::files::release_orphans(&services.db, Utc::now() - age).await?;
    let mut removed = 0;
    for file in store::files::released(&services.db, BATCH).await? {
        // One blob that cannot be removed (a permission, a disk error) is logged and tried
        // again next round; it must not keep every other file from being removed.
        if let Err(e) = super::remove_blobs(services, &file).await {
            tracing::warn!(file_id = %file.id, couple_id = %file.couple_id, error = %e, "removing a file's blob failed; trying again next round");
            continue;
        }
        store::files::forget(&services.db, file.id).await?;
        removed += 1;
    }
    Ok(removed)
}
