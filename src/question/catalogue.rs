//! The node's copy of the catalogue: a matcher swapped atomically when the database's
//! catalogue changes, so an import reaches running nodes without a restart. Sends read it
//! without locking.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::matcher::Matcher;
use crate::store;
use crate::store::questions::Trigger;

type Version = (u64, Option<DateTime<Utc>>);

/// The question catalogue as this node knows it: a matcher over every keyword, swapped for a
/// new one when the catalogue in the database changes, so sends never wait for a reload.
pub struct Catalogue {
    matcher: ArcSwap<Matcher>,
    loaded: Mutex<Option<Version>>,
}

impl Catalogue {
    /// Loads the catalogue from the database.
    pub async fn load(db: &DatabaseConnection) -> anyhow::Result<Arc<Self>> {
        let catalogue = Arc::new(Catalogue {
            matcher: ArcSwap::from_pointee(Matcher::empty()),
            loaded: Mutex::new(None),
        });
        catalogue.refresh(db).await?;
        Ok(catalogue)
    }

    pub fn find(&self, text: &str) -> Vec<Trigger> {
        self.matcher.load().find(text)
    }

    /// Rebuilds the matcher if the catalogue changed since it was last loaded.
    pub async fn refresh(&self, db: &DatabaseConnection) -> anyhow::Result<()> {
        let mut loaded = self.loaded.lock().await;
        let version = store::questions::version(db).await?;
        if loaded.as_ref() == Some(&version) {
            return Ok(());
        }
        let keywords = store::questions::keywords(db).await?;
        // Building is CPU work proportional to the catalogue; keep it off the async workers.
        let matcher = tokio::task::spawn_blocking(move || Matcher::new(keywords)).await?;
        tracing::info!(keywords = matcher.len(), "question catalogue loaded");
        self.matcher.store(Arc::new(matcher));
        *loaded = Some(version);
        Ok(())
    }

    /// Checks for catalogue changes every `period` until the node stops.
    pub fn watch(
        self: Arc<Self>,
        db: DatabaseConnection,
        period: Duration,
        stop: CancellationToken,
        tasks: &TaskTracker,
    ) {
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.cancelled() => return,
                }
                if let Err(e) = self.refresh(&db).await {
                    tracing::warn!(error = %e, "reloading the question catalogue");
                }
            }
        });
    }
}
