//! The Redis bus: Redis pub/sub carries each couple's events between nodes, Redis sorted sets
//! hold who is online where. Postgres is the truth; Redis is the doorbell.
//!
//! - One dedicated subscriber connection per node. A couple's channel is subscribed when its
//!   first local socket opens and unsubscribed when the last one closes. The connection is
//!   supervised: it PINGs every second, and when a PING or a (UN)SUBSCRIBE misses its deadline
//!   or the stream ends, it reconnects with backoff, resubscribes every local couple, and
//!   tells every local session to catch up from the database, so nothing acked is lost while
//!   Redis was away, dead or frozen.
//! - Every command has a deadline (`COMMAND_TIMEOUT`) and every connection TCP keepalive: a
//!   Redis that stops answering costs half a second, never a hung node.
//! - A publish that cannot be queued or kept for retry is not dropped silently: its couple is
//!   remembered and the next pipeline Redis takes carries a resync for it (`lose`).
//! - An event reaches this node's own sockets at once (through the hub), never waiting for
//!   Redis, and goes through a queue to one publisher task that sends each burst as a single
//!   pipeline over a `deadpool-redis` connection. Every message names the node that published
//!   it, and a node drops its own when they come back. While Redis is down, persisted events
//!   are kept and published again when it returns.
//! - Presence: `presence:<user>` is a sorted set of node ids scored by an expiry time, renewed
//!   by a heartbeat. A node that dies without a goodbye drops out when its entries expire, and
//!   each node's heartbeat notices a partner's change and tells its own sockets.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::BusEvent;
use super::hub::{Hub, Watch};
use crate::metrics::Metrics;

/// Events waiting for the publisher; beyond, an event reaches local sockets only (remote
/// sessions heal from the database on their next event or reconnect).
const PUBLISH_QUEUE: usize = 16 * 1024;
/// Events sent in one pipeline at most.
const MAX_BURST: usize = 256;
/// Persisted events kept for retry while Redis is down.
const RETRY_LIMIT: usize = 64 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a command may take before Redis counts as away (a frozen Redis accepts bytes
/// and never answers; only a deadline notices).
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The subscriber connection only receives, so it asks Redis for a sign of life this often.
/// How long stopping waits for the last publishes.
const STOP_WAIT: Duration = Duration::from_secs(2);
const SUBSCRIBER_PING_EVERY: Duration = Duration::from_secs(1);

pub struct RedisBus {
    hub: Arc<Hub>,
    pool: Pool,
    /// The connection publishes and presence go through. A multiplexed connection carries
    /// concurrent commands on one socket, so one is enough; it is kept while it works, since
    /// the pool PINGs a connection every time it hands one out (a round trip per command).
    shared: std::sync::Mutex<Option<MultiplexedConnection>>,
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

pub struct RedisSettings {
    pub url: String,
    pub prefix: String,
    pub pool_size: usize,
    pub presence_ttl: Duration,
}

impl RedisBus {
    /// Connects (failing if Redis does not answer now) and starts the subscriber, the
    /// publisher and the presence heartbeat, which run until `stop`.
    pub async fn start(
        settings: RedisSettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<Self>> {
        let stop = CancellationToken::new();
        let info = redis::IntoConnectionInfo::into_connection_info(settings.url.as_str())?
            .set_tcp_settings(tcp_settings());
        let client = redis::Client::open(info.clone())?;
        let commands = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));
        let mut pool_config = PoolConfig::new(settings.pool_size.max(2));
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

        let (watch_tx, watch_rx) = mpsc::unbounded_channel();
        let (outbox, outbox_rx) = mpsc::channel(PUBLISH_QUEUE);
        let bus = Arc::new(RedisBus {
            hub: Hub::new(Some(watch_tx)),
            pool,
            shared: std::sync::Mutex::new(None),
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
        bus.tasks
            .spawn(Arc::clone(&bus).subscriber(client, watch_rx, stop.clone()));
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

    /// The shared connection, from the pool the first time and after a failure.
    async fn connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        if let Some(conn) = lock(&self.shared).clone() {
            return Ok(conn);
        }
        let conn = self.pool.get().await.map_err(pool_error)?;
        let conn = deadpool_redis::Connection::take(conn);
        *lock(&self.shared) = Some(conn.clone());
        Ok(conn)
    }

    /// Runs a pipeline on the shared connection; a failure drops the connection, so the next
    /// command starts on a fresh one.
    async fn run<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> redis::RedisResult<T> {
        let mut conn = self.connection().await?;
        let result = pipe.query_async(&mut conn).await;
        if result.is_err() {
            lock(&self.shared).take();
        }
        result
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    fn channel(&self, couple_id: Uuid) -> String {
        format!("{}couple:{}", self.prefix, couple_id.simple())
    }

    fn presence_key(&self, user_id: Uuid) -> String {
        format!("{}presence:{}", self.prefix, user_id.simple())
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

    async fn publisher(
        self: Arc<Self>,
        mut outbox: mpsc::Receiver<(Uuid, BusEvent)>,
        stop: CancellationToken,
    ) {
        let mut retry: VecDeque<(Uuid, BusEvent)> = VecDeque::new();
        let mut backoff = BACKOFF_MIN;
        loop {
            let mut burst: Vec<(Uuid, BusEvent)> = Vec::new();
            if retry.is_empty() {
                tokio::select! {
                    next = outbox.recv() => match next {
                        Some(item) => burst.push(item),
                        None => return,
                    },
                    () = stop.cancelled() => return self.publish_rest(outbox).await,
                }
            } else {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return self.publish_rest(outbox).await,
                }
                let n = retry.len().min(MAX_BURST);
                burst.extend(retry.drain(..n));
            }
            while burst.len() < MAX_BURST {
                match outbox.try_recv() {
                    Ok(item) => burst.push(item),
                    Err(_) => break,
                }
            }
            if self.send_burst(&burst).await {
                backoff = BACKOFF_MIN;
                continue;
            }
            // Redis is away. This node's sockets have the events already; what is persisted
            // or ends a session is kept to publish when Redis is back. Typing and presence
            // are not worth keeping.
            backoff = (backoff * 2).min(BACKOFF_MAX);
            for (couple, event) in burst {
                self.metrics.publish_failures.inc();
                if !event.must_arrive() {
                    continue;
                }
                if retry.len() < RETRY_LIMIT {
                    retry.push_back((couple, event));
                } else {
                    // The other nodes' sessions of this couple will catch up instead.
                    self.lose(couple);
                }
            }
        }
    }

    /// Publishes one pipeline: the burst, then a resync for every couple whose events could
    /// not be queued. False if Redis did not take it (the resyncs are kept for next time).
    async fn send_burst(&self, burst: &[(Uuid, BusEvent)]) -> bool {
        let lost: Vec<Uuid> = lock(&self.lost).drain().collect();
        let started = Instant::now();
        let mut pipe = redis::pipe();
        let resync = BusEvent::Resync;
        let all = burst
            .iter()
            .map(|(couple, event)| (*couple, event))
            .chain(lost.iter().map(|couple| (*couple, &resync)));
        for (couple, event) in all {
            pipe.cmd("PUBLISH")
                .arg(self.channel(couple))
                .arg(Wire {
                    origin: &self.node_id,
                    event,
                })
                .ignore();
        }
        if self.run::<()>(&pipe).await.is_err() {
            lock(&self.lost).extend(lost);
            return false;
        }
        let per_event = started.elapsed().as_secs_f64() / burst.len().max(1) as f64;
        for _ in burst {
            self.metrics.publish_seconds.observe(per_event);
        }
        true
    }

    /// On stop (after the node's sessions and commits are done): one attempt to publish what
    /// is still queued, so the other nodes hear this node's last events.
    async fn publish_rest(&self, mut outbox: mpsc::Receiver<(Uuid, BusEvent)>) {
        outbox.close();
        let mut burst = Vec::new();
        while let Ok(item) = outbox.try_recv() {
            burst.push(item);
            if burst.len() == MAX_BURST {
                self.send_burst(&std::mem::take(&mut burst)).await;
            }
        }
        if !burst.is_empty() || !lock(&self.lost).is_empty() {
            self.send_burst(&burst).await;
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
                    Some(message) => self.on_message(&message),
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

    fn on_message(&self, message: &redis::Msg) {
        let Some(couple) = message
            .get_channel_name()
            .strip_prefix(&self.prefix)
            .and_then(|c| c.strip_prefix("couple:"))
            .and_then(|c| Uuid::parse_str(c).ok())
        else {
            return;
        };
        match decode(message.get_payload_bytes()) {
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
    pub async fn came_online(&self, user_id: Uuid, partner_id: Uuid) -> (bool, bool) {
        let key = self.presence_key(user_id);
        let mut pipe = redis::pipe();
        count_live(&mut pipe, &key);
        self.renew(&mut pipe, &key, Self::now_ms());
        count_live(&mut pipe, &self.presence_key(partner_id));
        match self.run::<(i64, i64)>(&pipe).await {
            Ok((before, partner)) => (
                before == 0,
                partner > 0 || self.hub.sockets_of(partner_id) > 0,
            ),
            Err(e) => {
                tracing::warn!(user_id = %user_id, error = %e, "presence: redis unavailable");
                // Unknown counts as a change: telling the partner twice is harmless.
                (true, self.hub.sockets_of(partner_id) > 0)
            }
        }
    }

    /// Removes this node from the user's presence; true if nobody holds a socket any more.
    pub async fn went_offline(&self, user_id: Uuid) -> bool {
        let key = self.presence_key(user_id);
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM").arg(&key).arg(&self.node_id).ignore();
        count_live(&mut pipe, &key);
        let left = self.query_count(user_id, &pipe).await;
        // A socket of the user may have opened here while the ZREM was on its way (a tab
        // closed as another opened): its entry was just removed, so put it back. Both go
        // over the one shared connection, in the order they were issued.
        if self.hub.sockets_of(user_id) > 0 {
            let mut pipe = redis::pipe();
            self.renew(&mut pipe, &key, Self::now_ms());
            if let Err(e) = self.run::<()>(&pipe).await {
                tracing::warn!(user_id = %user_id, error = %e, "presence: redis unavailable");
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

    pub async fn is_online(&self, user_id: Uuid) -> bool {
        if self.hub.sockets_of(user_id) > 0 {
            return true;
        }
        let mut pipe = redis::pipe();
        count_live(&mut pipe, &self.presence_key(user_id));
        self.query_count(user_id, &pipe)
            .await
            .is_some_and(|n| n > 0)
    }

    /// Runs a presence pipeline whose one unignored reply is a count; `None` if Redis is away.
    async fn query_count(&self, user_id: Uuid, pipe: &redis::Pipeline) -> Option<i64> {
        match self.run::<(i64,)>(pipe).await {
            Ok((count,)) => Some(count),
            Err(e) => {
                tracing::warn!(user_id = %user_id, error = %e, "presence: redis unavailable");
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
            if let Err(e) = self.beat().await {
                tracing::debug!(error = %e, "presence heartbeat failed");
            }
        }
    }

    async fn beat(&self) -> redis::RedisResult<()> {
        let now = Self::now_ms();
        let users = self.hub.local_users();
        if !users.is_empty() {
            let mut pipe = redis::pipe();
            for user in &users {
                let key = self.presence_key(*user);
                self.renew(&mut pipe, &key, now);
                pipe.cmd("ZREMRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(now)
                    .ignore();
            }
            self.run::<()>(&pipe).await?;
        }
        let partners = self.hub.watched_partners();
        if !partners.is_empty() {
            let mut pipe = redis::pipe();
            for (_, partner) in &partners {
                count_live(&mut pipe, &self.presence_key(*partner));
            }
            let counts: Vec<i64> = self.run(&pipe).await?;
            for ((couple, partner), count) in partners.into_iter().zip(counts) {
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
        Ok(())
    }
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

/// The wire form of an event on a channel: a header line naming the publishing node and the
/// event, then the frame's JSON as is. It is written straight into the pipeline's buffer, so
/// a frame is serialized once and copied once on its way to Redis.
struct Wire<'a> {
    origin: &'a str,
    event: &'a BusEvent,
}

impl redis::ToRedisArgs for Wire<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        use std::io::Write;
        let mut w = out.writer_for_next_arg();
        // Writing into a Vec cannot fail.
        let _ = match self.event {
            BusEvent::Frame {
                seq,
                skip_user,
                from,
                json,
            } => {
                let _ = write!(w, "{} F ", self.origin);
                let _ = write_opt(&mut w, seq.map(|s| s.to_string()));
                let _ = write_opt(&mut w, skip_user.map(|u| u.simple().to_string()));
                let _ = write_opt(&mut w, from.map(|u| u.simple().to_string()));
                w.write_all(b"\n")
                    .and_then(|()| w.write_all(json.as_bytes()))
            }
            BusEvent::Presence { user_id, online } => {
                write!(
                    w,
                    "{} P {} {}",
                    self.origin,
                    user_id.simple(),
                    u8::from(*online)
                )
            }
            BusEvent::SessionEnded { session_id } => {
                write!(w, "{} E {}", self.origin, session_id.simple())
            }
            BusEvent::CoupleDeleted => write!(w, "{} D", self.origin),
            BusEvent::Resync => write!(w, "{} R", self.origin),
        };
    }

    fn num_of_args(&self) -> usize {
        1
    }
}

/// Writes a header field and its separator; `-` stands for none.
fn write_opt(w: &mut impl std::io::Write, value: Option<String>) -> std::io::Result<()> {
    match value {
        Some(v) => write!(w, "{v} "),
        None => w.write_all(b"- "),
    }
}

/// Reads a message: `(origin node, event)`.
fn decode(payload: &[u8]) -> Option<(&[u8], BusEvent)> {
    let (header, body) = match payload.iter().position(|&b| b == b'\n') {
        Some(i) => (&payload[..i], &payload[i + 1..]),
        None => (payload, &payload[payload.len()..]),
    };
    let header = std::str::from_utf8(header).ok()?;
    let mut parts = header.split_ascii_whitespace();
    let origin = parts.next()?;
    let event = match parts.next()? {
        "F" => {
            let seq = match parts.next()? {
                "-" => None,
                s => Some(s.parse().ok()?),
            };
            let skip_user = uuid_field(parts.next()?)?;
            let from = uuid_field(parts.next()?)?;
            let json = String::from_utf8(body.to_vec()).ok()?;
            BusEvent::Frame {
                seq,
                skip_user,
                from,
                json: Utf8Bytes::from(json),
            }
        }
        "P" => BusEvent::Presence {
            user_id: Uuid::parse_str(parts.next()?).ok()?,
            online: parts.next()? == "1",
        },
        "E" => BusEvent::SessionEnded {
            session_id: Uuid::parse_str(parts.next()?).ok()?,
        },
        "D" => BusEvent::CoupleDeleted,
        "R" => BusEvent::Resync,
        _ => return None,
    };
    Some((&payload[..origin.len()], event))
}

/// `-` or a uuid; `None` when it is neither.
fn uuid_field(field: &str) -> Option<Option<Uuid>> {
    match field {
        "-" => Some(None),
        u => Uuid::parse_str(u).ok().map(Some),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn wire(event: &BusEvent) -> Vec<u8> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        redis::ToRedisArgs::write_redis_args(
            &Wire {
                origin: "node1",
                event,
            },
            &mut out,
        );
        out.concat()
    }

    #[test]
    fn events_survive_the_wire_with_their_origin() {
        let user = Uuid::new_v4();
        let frame = BusEvent::Frame {
            seq: Some(7),
            skip_user: Some(user),
            from: None,
            json: Utf8Bytes::from_static("{\"type\":\"chat\",\"text\":\"a\\nb\"}"),
        };
        let bytes = wire(&frame);
        let (origin, back) = decode(&bytes).unwrap();
        assert_eq!(origin, b"node1");
        assert!(
            matches!(back, BusEvent::Frame { seq: Some(7), skip_user: Some(u), from: None, json } if u == user && json.as_str() == "{\"type\":\"chat\",\"text\":\"a\\nb\"}")
        );
        let presence = wire(&BusEvent::Presence {
            user_id: user,
            online: true,
        });
        assert!(
            matches!(decode(&presence), Some((_, BusEvent::Presence { user_id, online: true })) if user_id == user)
        );
        assert!(decode(b"node X junk").is_none());
        assert!(decode(b"node F notanumber - -\n{}").is_none());
    }
}
