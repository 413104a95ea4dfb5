//! The Redis bus: Redis pub/sub carries each couple's events between nodes, Redis sorted sets
//! hold who is online where. Postgres is the truth; Redis is the doorbell. It runs on one
//! Redis (`REDIS_URL`) or on a Redis Cluster (`REDIS_CLUSTER_URLS`); the differences are
//! where a couple's channel and keys live and who listens (see `shards` for the cluster).
//!
//! - One Redis: one dedicated subscriber connection per node. A couple's channel is
//!   subscribed when its first local socket opens and unsubscribed when the last one closes.
//!   The connection is supervised: it PINGs every second, and when a PING or a
//!   (UN)SUBSCRIBE misses its deadline or the stream ends, it reconnects with backoff,
//!   resubscribes every local couple, and tells every local session to catch up from the
//!   database, so nothing acked is lost while Redis was away, dead or frozen.
//! - A cluster: every key and the channel of a couple carry the couple id as hash tag
//!   (`couple:{<id>}`, `presence:{<id>}:<user>`, where `<id>` is the couple's UUID as
//!   32 hex digits without hyphens, as `CLUSTER KEYSLOT` must be given it), so they live on one shard; events go out
//!   with SPUBLISH (classic PUBLISH would be broadcast to every node of the cluster), and
//!   publishes are pipelined per master (presence per slot) over redis-rs's cluster
//!   connection, which follows MOVED.
//! - Every command has a deadline (`COMMAND_TIMEOUT`) and every connection TCP keepalive: a
//!   Redis that stops answering costs half a second, never a hung node.
//! - A publish that cannot be queued or kept for retry is not dropped silently: its couple is
//!   remembered and the next pipeline Redis takes carries a resync for it (`lose`).
//! - An event reaches this node's own sockets at once (through the hub), never waiting for
//!   Redis, and goes through a queue to one publisher task that sends each burst as one
//!   pipeline (per master on a cluster). Every message names the node that published it, and
//!   a node drops its own when they come back. While a Redis (or a shard) is down, persisted
//!   events of its couples are kept and published again when it returns, in order; the
//!   other couples' events do not wait for them.
//! - Presence: `presence:<user>` is a sorted set of node ids scored by an expiry time, renewed
//!   by a heartbeat. A node that dies without a goodbye drops out when its entries expire, and
//!   each node's heartbeat notices a partner's change and tells its own sockets.

mod presence;
mod publisher;
mod shards;
mod subscriber;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use self::shards::{Shards, Topology};
use super::BusEvent;
use super::hub::{Hub, Watch};
use super::wire::{Wire, decode, unix_micros};
use crate::config::RedisTarget;
use crate::metrics::Metrics;

/// Events waiting for the publisher; beyond, an event reaches local sockets only (remote
/// sessions heal from the database on their next event or reconnect).
const PUBLISH_QUEUE: usize = 16 * 1024;
/// Events sent in one pipeline at most.
const MAX_BURST: usize = 256;
/// Persisted events kept for retry while Redis is down.
const RETRY_LIMIT: usize = 64 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Between tries of a publish Redis refused. Short: a try is one pipeline, and a listener
/// on another node hears nothing of a held couple until it succeeds. A Redis that comes back
/// rings `usable` and the kept events go at once, whatever the backoff.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Between attempts of the subscriber to reconnect: one connection attempt, cheap, and
/// until it succeeds this node's listeners hear nothing from the other nodes.
const RECONNECT_MAX: Duration = Duration::from_millis(250);
/// On a cluster a failover takes a few seconds and trying a shard again is cheap (the other
/// shards are not held up meanwhile): a short backoff makes delivery resume soon after the
/// replica takes over.
const SHARD_BACKOFF_MAX: Duration = Duration::from_millis(250);
/// How long a command may take before Redis counts as away (a frozen Redis accepts bytes
/// and never answers; only a deadline notices).
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Connecting to a cluster master, which answers its handshake in a millisecond when it is
/// well. Short, because while a master hangs its shard's repair keeps trying it and cannot
/// see the promoted replica until the attempt gives up: with a second here a listener heard
/// the failover up to 0.9 s late.
const SHARD_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// How long stopping waits for the last publishes.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// How a node reaches Redis: one server or a cluster, the key prefix that isolates a
/// deployment (and each test), and how long a presence mark lives unrenewed.
pub struct RedisSettings {
    pub target: RedisTarget,
    pub prefix: String,
    pub presence_ttl: Duration,
}

/// Where publishes and presence commands go.
enum Commands {
    /// A multiplexed connection carries concurrent commands on one socket, so one is enough;
    /// it is kept while it works, since the pool PINGs a connection every time it hands one
    /// out (a round trip per command).
    Single {
        pool: Pool,
        shared: std::sync::Mutex<Option<MultiplexedConnection>>,
    },
    /// redis-rs routes each pipeline to the master of a slot and follows MOVED.
    Cluster {
        conn: ClusterConnection,
        /// The slot map as the shard subscriber last read it: publishes are grouped by the
        /// master that owns their slot, one pipeline per master.
        topology: ArcSwap<Topology>,
        /// Masters the subscriber cannot reach: publishes for them are kept for retry without
        /// a try, so a master that hangs costs no timeout per burst.
        down: ArcSwap<HashSet<String>>,
    },
}

/// The bus across nodes: every event of a couple is published on the couple's channel and
/// reaches the hub of each node subscribed to it. Publishes that fail are kept per couple and
/// retried, and a couple that may have missed one is told to catch up from the database, so
/// the bus only rings the doorbell: the database holds what is said.
pub struct RedisBus {
    hub: Arc<Hub>,
    commands: Commands,
    prefix: String,
    node_id: String,
    presence_ttl: Duration,
    /// Events for Redis, with when they were published.
    outbox: mpsc::Sender<(Uuid, BusEvent, Instant)>,
    /// Couples with an event that could not be queued for Redis; see `lose`.
    lost: std::sync::Mutex<HashSet<Uuid>>,
    connected: Arc<AtomicBool>,
    /// Rung when Redis (or a master of the cluster) is reachable again: the publisher then
    /// tries what it keeps at once instead of at the end of its backoff.
    usable: tokio::sync::Notify,
    stop: CancellationToken,
    /// The subscriber, publisher and heartbeat, so stopping can wait for them.
    tasks: TaskTracker,
    metrics: Arc<Metrics>,
}

impl RedisBus {
    /// Connects (failing if Redis does not answer now) and starts the subscriber, the
    /// publisher and the presence heartbeat, which run until `stop`.
    pub async fn start(
        settings: RedisSettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<Self>> {
        let stop = CancellationToken::new();
        if matches!(settings.target, RedisTarget::Cluster(_)) {
            // The couple id in braces is the hash tag; a brace in the prefix would be taken
            // for it, and every couple would land on one shard.
            anyhow::ensure!(
                !settings.prefix.contains(['{', '}']),
                "DUET_REDIS_PREFIX must not contain braces on a Redis Cluster"
            );
        }
        let (commands, listener) = match &settings.target {
            RedisTarget::Single(url) => single(url).await?,
            RedisTarget::Cluster(urls) => cluster(urls).await?,
        };
        let (watch_tx, watch_rx) = mpsc::unbounded_channel();
        let (outbox, outbox_rx) = mpsc::channel(PUBLISH_QUEUE);
        let bus = Arc::new(RedisBus {
            hub: Hub::new(Some(watch_tx)),
            commands,
            prefix: settings.prefix,
            node_id: Uuid::new_v4().simple().to_string(),
            presence_ttl: settings.presence_ttl,
            outbox,
            lost: std::sync::Mutex::new(HashSet::new()),
            connected: Arc::new(AtomicBool::new(false)),
            usable: tokio::sync::Notify::new(),
            stop: stop.clone(),
            tasks: TaskTracker::new(),
            metrics,
        });
        match listener {
            Listener::Single(client) => {
                bus.tasks
                    .spawn(Arc::clone(&bus).subscriber(client, watch_rx, stop.clone()))
            }
            Listener::Cluster(seeds) => {
                bus.tasks
                    .spawn(Shards::run(Arc::clone(&bus), seeds, watch_rx, stop.clone()))
            }
        };
        bus.tasks
            .spawn(Arc::clone(&bus).publisher(outbox_rx, stop.clone()));
        bus.tasks.spawn(Arc::clone(&bus).heartbeat(stop));
        bus.tasks.close();
        Ok(bus)
    }

    /// Stops the subscriber, the heartbeat and the publisher (which publishes what is still
    /// queued first), waiting for them a bounded time.
    pub async fn stop(&self) {
        self.stop.cancel();
        if timeout(STOP_WAIT, self.tasks.wait()).await.is_err() {
            tracing::warn!("the redis bus did not stop in time");
        }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn sharded(&self) -> bool {
        matches!(self.commands, Commands::Cluster { .. })
    }

    fn set_down(&self, masters: HashSet<String>) {
        if let Commands::Cluster { down, .. } = &self.commands {
            let before = down.load();
            if **before != masters {
                let back = before.iter().any(|master| !masters.contains(master));
                down.store(Arc::new(masters));
                if back {
                    self.usable.notify_one();
                }
            }
        }
    }

    fn set_topology(&self, topology: &Topology) {
        if let Commands::Cluster {
            topology: current, ..
        } = &self.commands
        {
            current.store(Arc::new(topology.clone()));
        }
    }

    /// Runs a pipeline (on a cluster, all its keys in one slot). On one Redis a failure drops
    /// the shared connection, so the next command starts on a fresh one.
    async fn run<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> redis::RedisResult<T> {
        match &self.commands {
            Commands::Cluster { conn, .. } => pipe.query_async(&mut conn.clone()).await,
            Commands::Single { pool, shared } => {
                let conn = lock(shared).clone();
                let mut conn = match conn {
                    Some(conn) => conn,
                    None => {
                        let conn = pool.get().await.map_err(pool_error)?;
                        let conn = deadpool_redis::Connection::take(conn);
                        *lock(shared) = Some(conn.clone());
                        conn
                    }
                };
                let result = pipe.query_async(&mut conn).await;
                if result.is_err() {
                    lock(shared).take();
                }
                result
            }
        }
    }

    /// Splits work by the slot of its couple on a cluster (a pipeline must stay in one
    /// slot); on one Redis it all goes in one pipeline.
    fn by_slot<T>(&self, items: impl IntoIterator<Item = (Uuid, T)>) -> Vec<Vec<(Uuid, T)>> {
        if !self.sharded() {
            return vec![items.into_iter().collect()];
        }
        let mut groups: HashMap<u16, Vec<(Uuid, T)>> = HashMap::new();
        for (couple, item) in items {
            groups
                .entry(shards::slot(couple))
                .or_default()
                .push((couple, item));
        }
        groups.into_values().collect()
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    fn set_connected(&self, connected: bool) {
        let was = self.connected.swap(connected, Ordering::Relaxed);
        if connected && !was {
            self.usable.notify_one();
        }
    }

    fn channel(&self, couple_id: Uuid) -> String {
        if self.sharded() {
            format!("{}couple:{{{}}}", self.prefix, couple_id.simple())
        } else {
            format!("{}couple:{}", self.prefix, couple_id.simple())
        }
    }

    /// The couple a channel belongs to, from its name.
    fn couple_of(&self, channel: &[u8]) -> Option<Uuid> {
        let id = channel
            .strip_prefix(self.prefix.as_bytes())?
            .strip_prefix(b"couple:")?;
        let id = id
            .strip_prefix(b"{")
            .and_then(|id| id.strip_suffix(b"}"))
            .unwrap_or(id);
        Uuid::try_parse_ascii(id).ok()
    }

    fn presence_key(&self, couple_id: Uuid, user_id: Uuid) -> String {
        self.user_key("presence", couple_id, user_id)
    }

    /// Nodes where a socket of the user looks at the conversation (`presence.rs`).
    fn looking_key(&self, couple_id: Uuid, user_id: Uuid) -> String {
        self.user_key("looking", couple_id, user_id)
    }

    fn user_key(&self, kind: &str, couple_id: Uuid, user_id: Uuid) -> String {
        if self.sharded() {
            format!(
                "{}{kind}:{{{}}}:{}",
                self.prefix,
                couple_id.simple(),
                user_id.simple()
            )
        } else {
            format!("{}{kind}:{}", self.prefix, user_id.simple())
        }
    }
}

/// Connections to one Redis: the publishing pool and the subscriber's client.
async fn single(url: &str) -> anyhow::Result<(Commands, Listener)> {
    let info =
        redis::IntoConnectionInfo::into_connection_info(url)?.set_tcp_settings(tcp_settings());
    let client = redis::Client::open(info.clone())?;
    let commands = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    // The pool only makes the one multiplexed connection every command shares (and a new
    // one after a failure), so it needs no more than that.
    let mut pool_config = PoolConfig::new(1);
    // A Redis that is down must not stall sends: give up quickly, the database has it.
    pool_config.timeouts = Timeouts {
        wait: Some(CONNECT_TIMEOUT),
        create: Some(CONNECT_TIMEOUT),
        recycle: Some(CONNECT_TIMEOUT),
    };
    let pool = Pool::builder(deadpool_redis::Manager::new_with_config(info, commands)?)
        .config(pool_config)
        .runtime(Runtime::Tokio1)
        .build()?;
    let mut conn = pool.get().await?;
    let _: String = redis::cmd("PING").query_async(&mut conn).await?;
    drop(conn);
    let commands = Commands::Single {
        pool,
        shared: std::sync::Mutex::new(None),
    };
    Ok((commands, Listener::Single(client)))
}

/// Connections to a Redis Cluster: redis-rs's cluster connection for commands, and the seeds
/// (in RESP3, which sharded pub/sub needs) for the shard subscribers.
async fn cluster(urls: &[String]) -> anyhow::Result<(Commands, Listener)> {
    let seeds = urls
        .iter()
        .map(|url| {
            redis::IntoConnectionInfo::into_connection_info(url.as_str()).map(|info| {
                let settings = info
                    .redis_settings()
                    .clone()
                    .set_protocol(redis::ProtocolVersion::RESP3);
                info.set_tcp_settings(tcp_settings())
                    .set_redis_settings(settings)
            })
        })
        .collect::<redis::RedisResult<Vec<_>>>()?;
    anyhow::ensure!(!seeds.is_empty(), "REDIS_CLUSTER_URLS names no node");
    // Few, quick retries: a failed publish is kept and tried again by the publisher, which
    // does not make other couples wait; redis-rs's default would hold a command for seconds.
    let client = redis::cluster::ClusterClientBuilder::new(urls.iter().map(String::as_str))
        .retries(2)
        .min_retry_wait(20)
        .max_retry_wait(200)
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(COMMAND_TIMEOUT)
        .overall_response_timeout(Some(COMMAND_TIMEOUT * 2))
        .tcp_settings(tcp_settings())
        .build()?;
    let mut conn = client.get_async_connection().await?;
    let _: String = redis::cmd("PING").query_async(&mut conn).await?;
    let commands = Commands::Cluster {
        conn,
        topology: ArcSwap::from_pointee(Topology::default()),
        down: ArcSwap::from_pointee(HashSet::new()),
    };
    Ok((commands, Listener::Cluster(seeds)))
}

/// Who listens to the couples' channels.
enum Listener {
    Single(redis::Client),
    Cluster(Vec<redis::ConnectionInfo>),
}

/// Spreads retries of many nodes that lost Redis at the same moment.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.5..1.0))
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn pool_error(e: deadpool_redis::PoolError) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::other(e.to_string()))
}

/// Keepalive probes find a Redis that vanished without a reset (a network partition, a
/// host that died) in about half a minute even on a connection that is only listening.
fn tcp_settings() -> redis::io::tcp::TcpSettings {
    use redis::io::tcp::socket2::TcpKeepalive;
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    redis::io::tcp::TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive)
}
