//! The one state every handler and socket session is given: the node's `Services` (which it
//! derefs to, so `state.db` reads as before) and the parts built from the domain that only
//! handlers and sessions use.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Semaphore;

use crate::account;
use crate::chat::Committer;
use crate::heavy::Heavy;
use crate::question::Catalogue;
use crate::seats::{PerMinute, Seats};
use crate::services::Services;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What `AppState` shares: the services and the parts of a node that serve sockets.
pub struct Inner {
    pub services: Services,
    /// Persists the node's sends in batches (see `chat::committer`).
    pub committer: Committer,
    /// The question catalogue's matcher, reloaded when the catalogue changes.
    pub catalogue: Arc<Catalogue>,
    /// Origins allowed to change state or open sockets (resolved against the bound port).
    pub origins: Vec<String>,
    /// Set first when stopping: `/readyz` fails so the load balancer stops sending traffic,
    /// and new upgrades are refused while the sockets drain.
    draining: AtomicBool,
    /// Whether the database answered the last background ping (`http::health`): `/readyz`
    /// reads this instead of waiting for a ping of its own.
    database_answers: AtomicBool,
    /// One permit per open socket: the node-wide socket limit.
    pub sockets: Arc<Semaphore>,
    /// Each user's sockets on this node: the per-user limit.
    pub seats: Arc<Seats>,
    /// Rate limits and the hashing bound every login and sign-up passes.
    pub logins: Arc<account::Guard>,
    /// Each member's running search, count of words or export: one of each at a time.
    pub heavy: Arc<Heavy>,
    /// Nudges per user per minute (`DUET_NUDGES_PER_MINUTE`).
    pub nudges: Arc<PerMinute>,
}

impl AppState {
    pub fn new(
        services: Services,
        committer: Committer,
        catalogue: Arc<Catalogue>,
        origins: Vec<String>,
        logins: Arc<account::Guard>,
    ) -> Self {
        let sockets = Arc::new(Semaphore::new(services.config.max_sockets));
        let seats = Arc::new(Seats::new(services.config.socket_rate_per_user));
        let nudges = Arc::new(PerMinute::new(services.config.nudges_per_minute));
        AppState(Arc::new(Inner {
            services,
            committer,
            catalogue,
            origins,
            draining: AtomicBool::new(false),
            // The node has just connected and migrated.
            database_answers: AtomicBool::new(true),
            sockets,
            seats,
            logins,
            heavy: Arc::default(),
            nudges,
        }))
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn database_answers(&self) -> bool {
        self.database_answers.load(Ordering::Relaxed)
    }

    pub fn set_database_answers(&self, answers: bool) {
        self.database_answers.store(answers, Ordering::Relaxed);
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Deref for Inner {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}
