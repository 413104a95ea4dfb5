//! What `/metrics` shows, in Prometheus text format. One registry per node (tests run several
//! nodes in one process, so nothing here is global).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The node's Prometheus counters, gauges and histograms, served on `DUET_METRICS_BIND`.
pub struct Metrics {
    registry: Registry,
    pub sockets_open: Gauge,
    pub frames_sent: Counter,
    pub frames_received: Counter,
    pub publish_seconds: Histogram,
    pub persist_seconds: Histogram,
    pub commit_batch_size: Histogram,
    pub redis_reconnects: Counter,
    pub publish_failures: Counter,
    pub slow_client_disconnects: Counter,
    pub push_sent: Counter,
    pub push_failed: Counter,
    pub push_pruned: Counter,
    pub push_seconds: Histogram,
    pub stages: Stages,
    /// Sends committed by the one statement (`statement`) and by the full rules (`rules`):
    /// a batch that needs both takes both one after the other.
    pub sends_by_statement: Counter,
    pub sends_by_rules: Counter,
    pub database: Database,
}

/// The database a node writes to, when `DATABASE_URL` names a formation (`store::primary`).
pub struct Database {
    /// 1 for the host the node writes to now (label `host`, `name:port`), 0 for the others.
    pub primary: Family<Vec<(&'static str, String)>, Gauge>,
    /// Times the node moved its pools to a new primary.
    pub moves: Counter,
    /// The primary's slowest standby's replay lag in seconds, as the primary reports it
    /// (`pg_stat_replication`); -1 while it has no standby.
    pub standby_lag: Gauge<f64, AtomicU64>,
    /// Heavy reads by where they were served (`on`: `standby` or `primary`), with
    /// `DUET_DATABASE_READ_URL`.
    reads: Family<Vec<(&'static str, &'static str)>, Counter>,
}

impl Database {
    /// The counter of heavy reads served on `on` (`standby` or `primary`).
    pub fn heavy_reads(&self, on: &'static str) -> Counter {
        self.reads.get_or_create(&vec![("on", on)]).clone()
    }

    fn register(registry: &mut Registry) -> Self {
        let database = Database {
            primary: Family::default(),
            moves: Counter::default(),
            standby_lag: Gauge::default(),
            reads: Family::default(),
        };
        registry.register(
            "db_primary",
            "1 for the database host this node writes to (with a multi-host DATABASE_URL)",
            database.primary.clone(),
        );
        registry.register(
            "db_primary_moves",
            "Times this node followed the database's primary to another host",
            database.moves.clone(),
        );
        registry.register(
            "heavy_reads",
            "Heavy reads (search, export, album, long replays) by where they were served",
            database.reads.clone(),
        );
        registry.register(
            "db_standby_lag_seconds",
            "Replay lag of the primary's slowest standby, as the primary reports it; -1 with none",
            database.standby_lag.clone(),
        );
        database
    }
}

/// Where an event's time goes between its sender's socket and its partner's, stage by stage
/// (`duet_event_stage_seconds{stage=...}`): a tail is found in the stage whose own tail
/// grows, not guessed from the total. Each handle is the family's histogram for its label,
/// taken once so the hot path does not look it up.
pub struct Stages {
    /// From a socket handing a send to the committer to the start of the commit holding it:
    /// the queue behind earlier batches, and the commit window.
    pub queued: Histogram,
    /// A batch's commit (the statement or transaction), once per batch.
    pub commit: Histogram,
    /// From a publish to the publisher taking it for Redis: the wait behind the burst in flight.
    pub publish_queue: Histogram,
    /// From writing a publish for Redis on one node to its decoding on another (wall clocks:
    /// meaningful between nodes whose clocks agree, as on one machine).
    pub bus: Histogram,
    /// From a frame entering a socket's outbox to its session taking it (the oldest of what
    /// it takes at once).
    pub outbox: Histogram,
    /// From a session taking frames to their flush to the socket.
    pub socket: Histogram,
}

impl Stages {
    fn register(registry: &mut Registry) -> Self {
        // 50 µs to ~0.6 s in steps of 1.5: a p99 read off these is within a quarter of the truth.
        let family =
            Family::<Vec<(&'static str, &'static str)>, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.00005, 1.5, 24))
            });
        let stage = |name: &'static str| family.get_or_create(&vec![("stage", name)]).clone();
        let stages = Stages {
            queued: stage("queued"),
            commit: stage("commit"),
            publish_queue: stage("publish_queue"),
            bus: stage("bus"),
            outbox: stage("outbox"),
            socket: stage("socket"),
        };
        registry.register(
            "event_stage_seconds",
            "Time an event spends in each stage from its sender's socket to its partner's",
            family,
        );
        stages
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("duet");
        let sockets_open = Gauge::default();
        let frames_sent = Counter::default();
        let frames_received = Counter::default();
        // 100 µs to ~3 s.
        let publish_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 15));
        let persist_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 15));
        // 1 to 1024 sends.
        let commit_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        let redis_reconnects = Counter::default();
        let publish_failures = Counter::default();
        let slow_client_disconnects = Counter::default();
        let push_sent = Counter::default();
        let push_failed = Counter::default();
        let push_pruned = Counter::default();
        // 1 ms to ~33 s: a push service may take seconds, retries longer.
        let push_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "push_sent",
            "Web Pushes a push service accepted (one per device)",
            push_sent.clone(),
        );
        registry.register(
            "push_failed",
            "Web Pushes given up: refused, retried past the bound, or dropped as the queue was full",
            push_failed.clone(),
        );
        registry.register(
            "push_pruned",
            "Push subscriptions removed because their push service said they are gone (404, 410)",
            push_pruned.clone(),
        );
        registry.register(
            "push_seconds",
            "From the commit of an event to the push service's answer to its push",
            push_seconds.clone(),
        );
        registry.register(
            "sockets_open",
            "WebSocket connections open on this node",
            sockets_open.clone(),
        );
        registry.register(
            "frames_sent",
            "Frames written to client sockets",
            frames_sent.clone(),
        );
        registry.register(
            "frames_received",
            "Frames received from client sockets",
            frames_received.clone(),
        );
        registry.register(
            "publish_seconds",
            "Time to publish an event on the bus",
            publish_seconds.clone(),
        );
        registry.register(
            "persist_seconds",
            "Time to commit a batch of sends (one transaction for all of them)",
            persist_seconds.clone(),
        );
        registry.register(
            "commit_batch_size",
            "Sends committed together",
            commit_batch_size.clone(),
        );
        registry.register(
            "redis_reconnects",
            "Times the Redis subscriber connection was re-established",
            redis_reconnects.clone(),
        );
        registry.register(
            "publish_failures",
            "Events whose publish failed (delivered locally, retried if persisted)",
            publish_failures.clone(),
        );
        registry.register(
            "slow_client_disconnects",
            "Sockets closed because the client did not keep up",
            slow_client_disconnects.clone(),
        );
        let stages = Stages::register(&mut registry);
        let paths = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        let sends_by_statement = paths.get_or_create(&vec![("path", "statement")]).clone();
        let sends_by_rules = paths.get_or_create(&vec![("path", "rules")]).clone();
        registry.register(
            "sends_committed",
            "Sends committed, by the one statement or by the full rules",
            paths,
        );
        let database = Database::register(&mut registry);
        Metrics {
            database,
            stages,
            sends_by_statement,
            sends_by_rules,
            registry,
            sockets_open,
            frames_sent,
            frames_received,
            publish_seconds,
            persist_seconds,
            commit_batch_size,
            redis_reconnects,
            publish_failures,
            slow_client_disconnects,
            push_sent,
            push_failed,
            push_pruned,
            push_seconds,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
