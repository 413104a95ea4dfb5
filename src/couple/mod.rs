//! The break-up: only ever scheduled, with a grace period to take it back. The schedule is a
//! column, so it survives restarts; when it falls due, a sweeper that every node runs deletes
//! the couple's files, then the couple with its chats, answers and pairing, and both can pair
//! again. Partners' open sockets hear of every step.

use chrono::{DateTime, SecondsFormat, Utc};

use uuid::Uuid;

use crate::bus::BusEvent;
use crate::chat::Member;
use crate::error::{Error, Result};
use crate::frame::ServerFrame;
use crate::state::AppState;
use crate::store;

/// Couples deleted per sweep round at most.
const BATCH: u64 = 100;

/// Schedules our deletion after the grace period (again: keeps the first schedule).
pub async fn schedule(state: &AppState, me: &Member) -> Result<DateTime<Utc>> {
    let grace = chrono::Duration::from_std(state.config.breakup_grace())
        .map_err(|e| Error::Internal(e.into()))?;
    let delete_at = store::couples::schedule_deletion(&state.db, me.couple_id, Utc::now() + grace)
        .await?
        .ok_or(Error::NotPaired)?;
    tracing::info!(couple_id = %me.couple_id, user_id = %me.user_id, %delete_at, "break-up scheduled");
    announce(state, me.couple_id, Some(delete_at));
    Ok(delete_at)
}

/// Takes a scheduled break-up back, while it is not due.
pub async fn restore(state: &AppState, me: &Member) -> Result<()> {
    if !store::couples::cancel_deletion(&state.db, me.couple_id).await? {
        return Err(Error::NotPaired);
    }
    tracing::info!(couple_id = %me.couple_id, user_id = %me.user_id, "break-up cancelled");
    announce(state, me.couple_id, None);
    Ok(())
}

/// Tells both partners' sockets (extension frame `couple`, with `delete_at`).
fn announce(state: &AppState, couple_id: Uuid, delete_at: Option<DateTime<Utc>>) {
    let delete_at = delete_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
    let event = BusEvent::Frame {
        seq: None,
        skip_user: None,
        from: None,
        json: ServerFrame::Couple { delete_at }.to_text(),
    };
    state.bus.publish(couple_id, event);
}

pub fn spawn_sweeper(state: AppState) {
    let stop = state.shutdown.clone();
    state.tasks.clone().spawn(async move {
        let mut tick = tokio::time::interval(state.config.sweep_period());
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            if let Err(e) = sweep(&state).await {
                tracing::warn!(error = %e, "deleting couples whose break-up is due");
            }
        }
    });
}

/// Deletes every couple whose break-up is due. Files first (their rows point at the blobs and
/// would go with the couple); deleting a blob twice is harmless, so nodes may race.
pub async fn sweep(state: &AppState) -> anyhow::Result<usize> {
    let mut deleted = 0;
    for couple_id in store::couples::due_for_deletion(&state.db, BATCH).await? {
        for file in store::files::all_of_couple(&state.db, couple_id).await? {
            state.files.delete(&file.blob).await?;
        }
        if store::couples::delete_due(&state.db, couple_id).await? {
            tracing::info!(couple_id = %couple_id, "couple deleted after its break-up");
            deleted += 1;
            state.bus.publish(couple_id, BusEvent::CoupleDeleted);
        }
    }
    Ok(deleted)
}
