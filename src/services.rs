//! What every part of a node shares: its config, the database, the bus, the blob store, the
//! pusher, the metrics and the owner of its background tasks. The domain modules (chat, question, file,
//! breakup, pairing, account) take `&Services`; `state::AppState`, which handlers and socket
//! sessions get, holds it next to the parts built from the domain (committer, catalogue,
//! login guard, socket limits), and derefs to it.

use std::ops::Deref;
use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::bus::Bus;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::push::Pusher;
use crate::store;
use crate::store::blobs::BlobStore;

#[derive(Clone)]
pub struct Services(Arc<Parts>);

/// What `Services` shares: the configuration, the database pools, the bus, the metrics, the
/// blob store and the stop signal.
pub struct Parts {
    pub config: Config,
    pub db: DatabaseConnection,
    /// The pool for heavy reads, with a statement timeout (`store::connect_reads`).
    pub reads: DatabaseConnection,
    /// The same on a standby (`DUET_DATABASE_READ_URL`); heavy reads take it through
    /// `Services::reads_for`.
    pub standby: Option<DatabaseConnection>,
    pub bus: Bus,
    pub metrics: Arc<Metrics>,
    /// Where file bytes live.
    pub files: Arc<dyn BlobStore>,
    /// Web Push to the devices of users who are not looking.
    pub push: Pusher,
    /// Turns to read an upload whole: a photo's thumbnail, a voice note's measuring
    /// (`DUET_THUMBNAIL_CONCURRENCY`).
    pub media: Arc<tokio::sync::Semaphore>,
    /// Fires when the node stops. HTTP graceful shutdown does not reach upgraded sockets
    /// (they run detached), so every session and background loop selects on this.
    pub shutdown: CancellationToken,
    /// Socket sessions, the committer's shards and the sweepers, so a stopping node can
    /// wait for them in one place (`Node::stop`).
    pub tasks: TaskTracker,
}

impl Services {
    pub fn new(
        config: Config,
        db: DatabaseConnection,
        reads: (DatabaseConnection, Option<DatabaseConnection>),
        bus: Bus,
        metrics: Arc<Metrics>,
        files: Arc<dyn BlobStore>,
        push: Pusher,
    ) -> Self {
        let media = Arc::new(tokio::sync::Semaphore::new(
            config.thumbnail_concurrency.max(1),
        ));
        Services(Arc::new(Parts {
            media,
            config,
            db,
            reads: reads.0,
            standby: reads.1,
            bus,
            metrics,
            files,
            push,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }))
    }
}

impl Services {
    /// Where a heavy read of this couple goes: the standby when it has replayed everything of
    /// the couple the primary has (each change to a couple's chats, events and answers moves
    /// `couples.last_seq`, so equal seqs mean nothing of the couple is missing: a client
    /// never reads less than it has seen), waiting up to `DUET_STANDBY_WAIT_MS` for it to
    /// catch up; else, or when the standby does not answer, the primary's read pool.
    pub async fn reads_for(&self, couple_id: Uuid) -> DatabaseConnection {
        let Some(standby) = &self.standby else {
            return self.reads.clone();
        };
        let on = |pool: &DatabaseConnection, served: &'static str| {
            self.metrics.database.heavy_reads(served).inc();
            pool.clone()
        };
        let timeout = self.config.db_timeout();
        let Ok(Ok(primary)) =
            tokio::time::timeout(timeout, store::couples::last_seq(&self.db, couple_id)).await
        else {
            return on(&self.reads, "primary");
        };
        let until = tokio::time::Instant::now() + self.config.standby_wait();
        loop {
            let replayed =
                tokio::time::timeout(timeout, store::couples::last_seq(standby, couple_id)).await;
            match replayed {
                Ok(Ok(seq)) if seq >= primary => return on(standby, "standby"),
                Ok(Ok(_)) if tokio::time::Instant::now() < until => {
                    tokio::time::sleep(STANDBY_POLL).await;
                }
                Ok(Ok(seq)) => {
                    tracing::debug!(%couple_id, lag = primary - seq, "the standby is behind");
                    return on(&self.reads, "primary");
                }
                Ok(Err(_)) | Err(_) => return on(&self.reads, "primary"),
            }
        }
    }
}

/// How often a read waiting for the standby asks it again.
const STANDBY_POLL: std::time::Duration = std::time::Duration::from_millis(10);

impl Deref for Services {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}
