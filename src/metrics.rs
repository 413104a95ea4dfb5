//! What `/metrics` shows, in Prometheus text format. One registry per node (tests run several
//! nodes in one process, so nothing here is global).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
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
        Metrics {
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
