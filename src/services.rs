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

use crate::bus::Bus;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::push::Pusher;
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
        reads: DatabaseConnection,
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
            reads,
            bus,
            metrics,
            files,
            push,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }))
    }
}

impl Deref for Services {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}
