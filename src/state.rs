//! The one shared state every handler and socket session is given.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::DatabaseConnection;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::account;
use crate::bus::Bus;
use crate::chat::Committer;
use crate::config::Config;
use crate::file::BlobStore;
use crate::metrics::Metrics;
use crate::question::Catalogue;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub db: DatabaseConnection,
    pub bus: Bus,
    /// Persists the node's sends in batches (see `chat::committer`).
    pub committer: Committer,
    pub metrics: Arc<Metrics>,
    /// Where file bytes live.
    pub files: Arc<dyn BlobStore>,
    /// The question catalogue's matcher, reloaded when the catalogue changes.
    pub catalogue: Arc<Catalogue>,
    /// Origins allowed to change state or open sockets (resolved against the bound port).
    pub origins: Vec<String>,
    /// Fires when the node stops. HTTP graceful shutdown does not reach upgraded sockets
    /// (they run detached), so every session selects on this and closes with 1012.
    pub shutdown: CancellationToken,
    /// Set first when stopping: `/readyz` fails so the load balancer stops sending traffic,
    /// and new upgrades are refused while the sockets drain.
    draining: AtomicBool,
    /// One permit per open socket: the node-wide socket limit.
    pub sockets: Arc<Semaphore>,
    /// Each user's sockets on this node: the per-user limit.
    pub seats: Arc<crate::ws::Seats>,
    /// Socket sessions and the committer's shards, so a stopping node can wait for them.
    pub tasks: TaskTracker,
    /// Rate limits and the hashing bound every login and sign-up passes.
    pub logins: account::Guard,
}

impl AppState {
    // One argument per part of a node; `lib::start` is the only caller.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        db: DatabaseConnection,
        bus: Bus,
        committer: Committer,
        metrics: Arc<Metrics>,
        files: Arc<dyn BlobStore>,
        catalogue: Arc<Catalogue>,
        origins: Vec<String>,
    ) -> Self {
        let sockets = Arc::new(Semaphore::new(config.max_sockets));
        let logins = account::Guard::new(&config);
        AppState(Arc::new(Inner {
            config,
            db,
            bus,
            committer,
            metrics,
            files,
            catalogue,
            origins,
            shutdown: CancellationToken::new(),
            draining: AtomicBool::new(false),
            sockets,
            seats: Arc::default(),
            tasks: TaskTracker::new(),
            logins,
        }))
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
