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
//!   (`couple:{<id>}`, `presence:{<id>}:<user>`), so they live on one shard; events go out
//!   with SPUBLISH (classic PUBLISH would be broadcast to every node of the cluster), and
//!   commands are pipelined per slot over redis-rs's cluster connection, which follows MOVED.
//! - Every command has a deadline (`COMMAND_TIMEOUT`) and every connection TCP keepalive: a
//!   Redis that stops answering costs half a second, never a hung node.
//! - A publish that cannot be queued or kept for retry is not dropped silently: its couple is
//!   remembered and the next pipeline Redis takes carries a resync for it (`lose`).
//! - An event reaches this node's own sockets at once (through the hub), never waiting for
//!   Redis, and goes through a queue to one publisher task that sends each burst as one
//!   pipeline (per slot on a cluster). Every message names the node that published it, and
//!   a node drops its own when they come back. While a Redis (or a shard) is down, persisted
//!   events of its couples are kept and published again when it returns, in order; the
//!   other couples' events do not wait for them.
//! - Presence: `presence:<user>` is a sorted set of node ids scored by an expiry time, renewed
//!   by a heartbeat. A node that dies without a goodbye drops out when its entries expire, and
//!   each node's heartbeat notices a partner's change and tells its own sockets.

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

use super::BusEvent;
use super::hub::{Hub, Watch};
use super::shards::{self, Shards, Topology};
use super::wire::{Wire, decode};
use crate::metrics::Metrics;

/// Events waiting for the publisher; beyond, an event reaches local sockets only (remote
/// sessions heal from the database on their next event or reconnect).
const PUBLISH_QUEUE: usize = 16 * 1024;
/// Events sent in one pipeline at most.
const MAX_BURST: usize = 256;
/// Persisted events kept for retry while Redis is down.
const RETRY_LIMIT: usize = 64 * 1024;
pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// On a cluster a failover takes a few seconds and trying a shard again is cheap (the other
/// shards are not held up meanwhile): a short backoff makes delivery resume soon after the
/// replica takes over.
pub(super) const SHARD_BACKOFF_MAX: Duration = Duration::from_millis(500);
/// How long a command may take before Redis counts as away (a frozen Redis accepts bytes
/// and never answers; only a deadline notices).
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long stopping waits for the last publishes.
const STOP_WAIT: Duration = Duration::from_secs(2);
/// The subscriber connection only receives, so it asks Redis for a sign of life this often.
const SUBSCRIBER_PING_EVERY: Duration = Duration::from_secs(1);

/// Publishes bound for one master (on one Redis, all of them).
struct ShardGroup<T> {
    /// A slot of the master, to route by.
    slot: u16,
    items: Vec<(Uuid, T)>,
    /// The subscriber cannot reach that master now: keep them for retry without a try.
    down: bool,
}

/// Which Redis the bus talks to.
pub enum RedisTarget {
    /// One server (`REDIS_URL`).
    Single(String),
    /// A Redis Cluster, by some of its nodes (`REDIS_CLUSTER_URLS`).
    Cluster(Vec<String>),
}

pub struct RedisSettings {
    pub target: RedisTarget,
    pub prefix: String,
    pub pool_size: usize,
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

pub struct RedisBus {
    hub: Arc<Hub>,
    commands: Commands,
    prefix: String,
    node_id: String,
    presence_ttl: Duration,
    outbox: mpsc::Sender<(Uuid, BusEvent)>,
    /// Couples with an event that could not be queued for Redis; see `lose`.
    lost: std::sync::Mutex<HashSet<Uuid>>,
    connected: Arc<AtomicBool>,
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
            RedisTarget::Single(url) => single(url, settings.pool_size).await?,
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

    pub(super) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn sharded(&self) -> bool {
        matches!(self.commands, Commands::Cluster { .. })
    }

    pub(super) fn set_down(&self, masters: HashSet<String>) {
        if let Commands::Cluster { down, .. } = &self.commands
            && **down.load() != masters
        {
            down.store(Arc::new(masters));
        }
    }

    pub(super) fn set_topology(&self, topology: &Topology) {
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

    /// Splits publishes by the master that owns their slot (as far as this node knows; a
    /// slot of unknown owner goes alone), each group with a slot of it to route by.
    fn by_master<T>(&self, items: impl IntoIterator<Item = (Uuid, T)>) -> Vec<ShardGroup<T>> {
        let Commands::Cluster { topology, down, .. } = &self.commands else {
            return vec![ShardGroup {
                slot: 0,
                items: items.into_iter().collect(),
                down: false,
            }];
        };
        let topology = topology.load();
        let down = down.load();
        // Keyed by the owner, or by the slot itself when the owner is unknown.
        let mut groups: HashMap<Result<&str, u16>, ShardGroup<T>> = HashMap::new();
        for (couple, item) in items {
            let slot = shards::slot(couple);
            let owner = topology.owner(slot).ok_or(slot);
            groups
                .entry(owner)
                .or_insert_with(|| ShardGroup {
                    slot,
                    items: Vec::new(),
                    down: owner.is_ok_and(|addr| down.contains(addr)),
                })
                .items
                .push((couple, item));
        }
        groups.into_values().collect()
    }

    /// Runs a pipeline of publishes on the master of `slot` (on one Redis, on the one
    /// connection) and says which of them Redis did not take: all when the pipeline failed,
    /// on a cluster also those refused one by one (MOVED, when a slot changed hands).
    async fn run_publishes(&self, slot: u16, pipe: redis::Pipeline) -> Vec<bool> {
        use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
        let n = pipe.len();
        match &self.commands {
            Commands::Single { .. } => {
                let failed = self.run::<()>(&pipe).await.is_err();
                vec![failed; n]
            }
            Commands::Cluster { conn, .. } => {
                let route = SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master));
                match conn.clone().route_pipeline(pipe, 0, n, route).await {
                    Ok(replies) if replies.len() == n => replies
                        .iter()
                        .map(|r| matches!(r, redis::Value::ServerError(_)))
                        .collect(),
                    _ => vec![true; n],
                }
            }
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub(super) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    pub(super) fn channel(&self, couple_id: Uuid) -> String {
        if self.sharded() {
            format!("{}couple:{{{}}}", self.prefix, couple_id.simple())
        } else {
            format!("{}couple:{}", self.prefix, couple_id.simple())
        }
    }

    /// The couple a channel belongs to, from its name.
    pub(super) fn couple_of(&self, channel: &[u8]) -> Option<Uuid> {
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
        if self.sharded() {
            format!(
                "{}presence:{{{}}}:{}",
                self.prefix,
                couple_id.simple(),
                user_id.simple()
            )
        } else {
            format!("{}presence:{}", self.prefix, user_id.simple())
        }
    }

    /// Delivers to this node's sockets and queues the event for the other nodes, without
    /// waiting for Redis.
    pub fn publish(&self, couple_id: Uuid, event: BusEvent) {
        self.hub.deliver(couple_id, event.clone());
        if let Err(full) = self.outbox.try_send((couple_id, event)) {
            let (_, event) = full.into_inner();
            if event.must_arrive() {
                self.lose(couple_id);
            } else {
                self.metrics.publish_failures.inc();
            }
        }
    }

    /// Sends what the queue holds, burst by burst. Events Redis did not take wait in `retry`
    /// (oldest first) with backoff; later events of the same couples queue behind them, so a
    /// couple's events go out in order, while other couples' events go out at once: one
    /// shard that is down does not hold up the others.
    async fn publisher(
        self: Arc<Self>,
        mut outbox: mpsc::Receiver<(Uuid, BusEvent)>,
        stop: CancellationToken,
    ) {
        let mut retry: VecDeque<(Uuid, BusEvent)> = VecDeque::new();
        let mut held: HashSet<Uuid> = HashSet::new();
        let mut backoff = BACKOFF_MIN;
        loop {
            tokio::select! {
                next = outbox.recv() => match next {
                    Some(item) => {
                        let mut burst = vec![item];
                        while burst.len() < MAX_BURST {
                            match outbox.try_recv() {
                                Ok(item) => burst.push(item),
                                Err(_) => break,
                            }
                        }
                        let (wait, now): (Vec<_>, Vec<_>) =
                            burst.into_iter().partition(|(couple, _)| held.contains(couple));
                        for item in wait {
                            keep(&mut retry, item, &self);
                        }
                        let failed = self.send_burst(now).await;
                        if !failed.is_empty() && retry.is_empty() {
                            backoff = BACKOFF_MIN;
                        }
                        for item in failed {
                            self.metrics.publish_failures.inc();
                            keep(&mut retry, item, &self);
                        }
                    }
                    None => return,
                },
                () = tokio::time::sleep(backoff), if !retry.is_empty() => {
                    let n = retry.len().min(MAX_BURST);
                    let burst: Vec<_> = retry.drain(..n).collect();
                    let failed = self.send_burst(burst).await;
                    backoff = if failed.is_empty() {
                        BACKOFF_MIN
                    } else if self.sharded() {
                        (backoff * 2).min(SHARD_BACKOFF_MAX)
                    } else {
                        (backoff * 2).min(BACKOFF_MAX)
                    };
                    // Back to the front, in their order: they are older than what is left.
                    for item in failed.into_iter().rev() {
                        self.metrics.publish_failures.inc();
                        retry.push_front(item);
                    }
                }
                () = stop.cancelled() => {
                    outbox.close();
                    retry.extend(std::iter::from_fn(|| outbox.try_recv().ok()));
                    return self.publish_rest(retry).await;
                }
            }
            if !retry.is_empty() || !held.is_empty() {
                held = retry.iter().map(|(couple, _)| *couple).collect();
            }
        }
    }

    /// Publishes a burst, then a resync for every couple whose events could not be queued,
    /// one pipeline per slot (on one Redis, one pipeline). Returns what Redis did not take
    /// and is worth another try.
    async fn send_burst(&self, burst: Vec<(Uuid, BusEvent)>) -> Vec<(Uuid, BusEvent)> {
        let lost: Vec<Uuid> = lock(&self.lost).drain().collect();
        if burst.is_empty() && lost.is_empty() {
            return Vec::new();
        }
        let started = Instant::now();
        let published = burst.len();
        let all = burst
            .into_iter()
            .chain(lost.into_iter().map(|couple| (couple, BusEvent::Resync)));
        let verb = if self.sharded() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let sends = self.by_master(all).into_iter().map(
            |ShardGroup {
                 slot,
                 items: group,
                 down,
             }| async move {
                if down {
                    return group;
                }
                let mut pipe = redis::pipe();
                for (couple, event) in &group {
                    pipe.cmd(verb).arg(self.channel(*couple)).arg(Wire {
                        origin: &self.node_id,
                        event,
                    });
                }
                let refused = self.run_publishes(slot, pipe).await;
                if refused.iter().any(|r| *r) {
                    tracing::debug!(events = group.len(), "publish failed");
                }
                group
                    .into_iter()
                    .zip(refused)
                    .filter_map(|(item, refused)| refused.then_some(item))
                    .collect::<Vec<_>>()
            },
        );
        let failed: Vec<_> = futures_util::future::join_all(sends)
            .await
            .into_iter()
            .flatten()
            .filter(|(_, event)| event.must_arrive())
            .collect();
        if failed.is_empty() {
            let per_event = started.elapsed().as_secs_f64() / published.max(1) as f64;
            for _ in 0..published {
                self.metrics.publish_seconds.observe(per_event);
            }
        }
        failed
    }

    /// On stop (after the node's sessions and commits are done): one attempt to publish what
    /// is still queued, so the other nodes hear this node's last events.
    async fn publish_rest(&self, mut rest: VecDeque<(Uuid, BusEvent)>) {
        while !rest.is_empty() || !lock(&self.lost).is_empty() {
            let n = rest.len().min(MAX_BURST);
            let failed = self.send_burst(rest.drain(..n).collect()).await;
            if !failed.is_empty() {
                return;
            }
        }
    }

    /// Remembers that a couple's event never reached Redis: its sessions on other nodes are
    /// told to catch up from the database as soon as Redis takes a publish again.
    fn lose(&self, couple_id: Uuid) {
        self.metrics.publish_failures.inc();
        lock(&self.lost).insert(couple_id);
    }

    async fn subscriber(
        self: Arc<Self>,
        client: redis::Client,
        mut watch: mpsc::UnboundedReceiver<Watch>,
        stop: CancellationToken,
    ) {
        let mut backoff = BACKOFF_MIN;
        // Sessions may open while no subscription exists (the first attempt failed, or Redis
        // went away): every connection after the first one tells them all to catch up.
        let mut first = true;
        loop {
            let reason = match self.listen(&client, &mut watch, &stop, first).await {
                Listening::Stopped => return,
                Listening::Failed(reason) => reason,
            };
            first = false;
            self.connected.store(false, Ordering::Relaxed);
            tracing::warn!(
                ?backoff,
                reason,
                "redis subscriber disconnected; reconnecting"
            );
            // While away, answer waiting sessions at once: they are resubscribed and caught
            // up on reconnect anyway.
            let pause = tokio::time::sleep(jitter(backoff));
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    () = &mut pause => break,
                    command = watch.recv() => match command {
                        Some(Watch::Listen(_, done)) => { let _ = done.send(()); }
                        Some(Watch::Forget(_)) => {}
                        None => return,
                    },
                    () = stop.cancelled() => return,
                }
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One subscriber connection's life: subscribe every local couple, then pass on messages
    /// and follow the hub's couples, PINGing on a period so that a Redis that stopped
    /// answering (frozen, or cut off without a reset) is noticed within seconds.
    async fn listen(
        &self,
        client: &redis::Client,
        watch: &mut mpsc::UnboundedReceiver<Watch>,
        stop: &CancellationToken,
        first: bool,
    ) -> Listening {
        let pubsub = match timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => pubsub,
            _ => return Listening::Failed("connect"),
        };
        let (mut sink, mut stream) = pubsub.split();
        let channels: Vec<String> = self
            .hub
            .couples()
            .into_iter()
            .map(|c| self.channel(c))
            .collect();
        if !channels.is_empty() && !ok(timeout(COMMAND_TIMEOUT, sink.subscribe(&channels)).await) {
            return Listening::Failed("subscribe");
        }
        self.connected.store(true, Ordering::Relaxed);
        if !first {
            self.metrics.redis_reconnects.inc();
            tracing::info!(
                couples = channels.len(),
                "redis subscriber reconnected; sessions catch up"
            );
            self.hub.resync_all();
        }
        let mut ping = tokio::time::interval(SUBSCRIBER_PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.on_payload(message.get_channel_name().as_bytes(), message.get_payload_bytes()),
                    None => return Listening::Failed("connection closed"),
                },
                command = watch.recv() => match command {
                    Some(Watch::Listen(couple, done)) => {
                        let subscribed = timeout(COMMAND_TIMEOUT, sink.subscribe(self.channel(couple))).await;
                        if !ok(subscribed) {
                            return Listening::Failed("subscribe");
                        }
                        if done.send(()).is_err() {
                            // The session stopped waiting and read the couple's state before
                            // this subscription began: what came in between, it must read.
                            self.hub.deliver(couple, BusEvent::Resync);
                        }
                    }
                    Some(Watch::Forget(couple)) => {
                        // It may have been wanted again since; its Listen is queued.
                        if !self.hub.has_couple(couple) {
                            let unsubscribed = timeout(COMMAND_TIMEOUT, sink.unsubscribe(self.channel(couple))).await;
                            if !ok(unsubscribed) {
                                return Listening::Failed("unsubscribe");
                            }
                        }
                    }
                    None => return Listening::Stopped,
                },
                _ = ping.tick() => {
                    let pong = timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !ok(pong) {
                        return Listening::Failed("no answer to ping");
                    }
                }
                () = stop.cancelled() => return Listening::Stopped,
            }
        }
    }

    /// A message from a couple's channel: delivered to this node's sockets of the couple,
    /// unless this node published it.
    pub(super) fn on_payload(&self, channel: &[u8], payload: &[u8]) {
        let Some(couple) = self.couple_of(channel) else {
            return;
        };
        match decode(payload) {
            // Our own publish, delivered here when it was made.
            Some((origin, _)) if origin == self.node_id.as_bytes() => {}
            Some((_, event)) => self.hub.deliver(couple, event),
            None => tracing::warn!(couple_id = %couple, "undecodable bus message"),
        }
    }

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    /// Registers this node as holding a socket of the user and asks whether the partner is
    /// online, in one round trip: `(nobody held one before, partner online)`.
    pub async fn came_online(
        &self,
        couple_id: Uuid,
        user_id: Uuid,
        partner_id: Uuid,
    ) -> (bool, bool) {
        let key = self.presence_key(couple_id, user_id);
        let mut pipe = redis::pipe();
        count_live(&mut pipe, &key);
        self.renew(&mut pipe, &key, Self::now_ms());
        count_live(&mut pipe, &self.presence_key(couple_id, partner_id));
        match self.run::<(i64, i64)>(&pipe).await {
            Ok((before, partner)) => (
                before == 0,
                partner > 0 || self.hub.sockets_of(partner_id) > 0,
            ),
            Err(e) => {
                tracing::warn!(couple_id = %couple_id, user_id = %user_id, error = %e, "presence: redis unavailable");
                // Unknown counts as a change: telling the partner twice is harmless.
                (true, self.hub.sockets_of(partner_id) > 0)
            }
        }
    }

    /// Removes this node from the user's presence; true if nobody holds a socket any more.
    pub async fn went_offline(&self, couple_id: Uuid, user_id: Uuid) -> bool {
        let key = self.presence_key(couple_id, user_id);
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM").arg(&key).arg(&self.node_id).ignore();
        count_live(&mut pipe, &key);
        let left = self.query_count(couple_id, user_id, &pipe).await;
        // A socket of the user may have opened here while the ZREM was on its way (a tab
        // closed as another opened): its entry was just removed, so put it back. Both go
        // over one connection (on a cluster, to the one master of the key), in order.
        if self.hub.sockets_of(user_id) > 0 {
            let mut pipe = redis::pipe();
            self.renew(&mut pipe, &key, Self::now_ms());
            if let Err(e) = self.run::<()>(&pipe).await {
                tracing::warn!(couple_id = %couple_id, user_id = %user_id, error = %e, "presence: redis unavailable");
            }
            return false;
        }
        left.is_none_or(|left| left == 0)
    }

    /// Appends "this node holds a socket of the user until the presence TTL from `now`".
    fn renew(&self, pipe: &mut redis::Pipeline, key: &str, now: i64) {
        pipe.cmd("ZADD")
            .arg(key)
            .arg(now + self.ttl_ms())
            .arg(&self.node_id)
            .ignore()
            .cmd("PEXPIRE")
            .arg(key)
            .arg(self.ttl_ms() * 2)
            .ignore();
    }

    pub async fn is_online(&self, couple_id: Uuid, user_id: Uuid) -> bool {
        if self.hub.sockets_of(user_id) > 0 {
            return true;
        }
        let mut pipe = redis::pipe();
        count_live(&mut pipe, &self.presence_key(couple_id, user_id));
        self.query_count(couple_id, user_id, &pipe)
            .await
            .is_some_and(|n| n > 0)
    }

    /// Runs a presence pipeline whose one unignored reply is a count; `None` if Redis is away.
    async fn query_count(
        &self,
        couple_id: Uuid,
        user_id: Uuid,
        pipe: &redis::Pipeline,
    ) -> Option<i64> {
        match self.run::<(i64,)>(pipe).await {
            Ok((count,)) => Some(count),
            Err(e) => {
                tracing::warn!(couple_id = %couple_id, user_id = %user_id, error = %e, "presence: redis unavailable");
                None
            }
        }
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.presence_ttl.as_millis()).unwrap_or(30_000)
    }

    /// Every third of the presence TTL: renew this node's entries, and look at every partner
    /// this node's sockets care about, passing on any change (a node that died silently shows
    /// up here as its users' entries expire).
    async fn heartbeat(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.presence_ttl / 3);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            self.beat().await;
        }
    }

    /// One heartbeat: per local user, renew its entry, drop expired ones and count the
    /// partner's live entries, one pipeline per slot.
    async fn beat(&self) {
        let now = Self::now_ms();
        let users = self.hub.local_users();
        let beats = self.by_slot(users).into_iter().map(|group| async move {
            let mut pipe = redis::pipe();
            for (couple, (user, partner)) in &group {
                let key = self.presence_key(*couple, *user);
                self.renew(&mut pipe, &key, now);
                pipe.cmd("ZREMRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(now)
                    .ignore();
                count_live(&mut pipe, &self.presence_key(*couple, *partner));
            }
            match self.run::<Vec<i64>>(&pipe).await {
                Ok(counts) => {
                    for ((couple, (_, partner)), count) in group.into_iter().zip(counts) {
                        let online = count > 0 || self.hub.sockets_of(partner) > 0;
                        self.hub.deliver(
                            couple,
                            BusEvent::Presence {
                                user_id: partner,
                                online,
                            },
                        );
                    }
                }
                Err(e) => tracing::debug!(error = %e, "presence heartbeat failed"),
            }
        });
        futures_util::future::join_all(beats).await;
    }
}

/// Keeps an event for another try; beyond the limit (or for an event not worth keeping) the
/// couple's other sessions are told to catch up instead.
fn keep(retry: &mut VecDeque<(Uuid, BusEvent)>, item: (Uuid, BusEvent), bus: &RedisBus) {
    if !item.1.must_arrive() {
        return;
    }
    if retry.len() < RETRY_LIMIT {
        retry.push_back(item);
    } else {
        bus.lose(item.0);
    }
}

/// Connections to one Redis: the publishing pool and the subscriber's client.
async fn single(url: &str, pool_size: usize) -> anyhow::Result<(Commands, Listener)> {
    let info =
        redis::IntoConnectionInfo::into_connection_info(url)?.set_tcp_settings(tcp_settings());
    let client = redis::Client::open(info.clone())?;
    let commands = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    let mut pool_config = PoolConfig::new(pool_size.max(2));
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

/// Appends "how many nodes hold a live entry in this presence set".
fn count_live(pipe: &mut redis::Pipeline, key: &str) {
    pipe.cmd("ZCOUNT")
        .arg(key)
        .arg(chrono::Utc::now().timestamp_millis())
        .arg("+inf");
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

/// How a subscriber connection ended.
enum Listening {
    Stopped,
    Failed(&'static str),
}

/// A command that finished in time and succeeded.
fn ok<T>(result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>) -> bool {
    matches!(result, Ok(Ok(_)))
}

fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.5..1.0))
}
