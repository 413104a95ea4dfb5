//! The Redis bus: Redis pub/sub carries each couple's events between nodes, Redis sorted sets
//! hold who is online where. Postgres is the truth; Redis is the doorbell.
//!
//! - One dedicated subscriber connection per node. A couple's channel is subscribed when its
//!   first local socket opens and unsubscribed when the last one closes. The connection is
//!   supervised: when its stream ends it reconnects with backoff, resubscribes every local
//!   couple, and tells every local session to catch up from the database, so nothing acked is
//!   lost while Redis was away.
//! - Publishing goes through a queue to one publisher task that sends each burst as a single
//!   pipeline over a `deadpool-redis` connection. When Redis is down the event still reaches
//!   this node's sockets, and persisted events are retried until Redis takes them.
//! - Presence: `presence:<user>` is a sorted set of node ids scored by an expiry time, renewed
//!   by a heartbeat. A node that dies without a goodbye drops out when its entries expire, and
//!   each node's heartbeat notices a partner's change and tells its own sockets.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
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

pub struct RedisBus {
    hub: Arc<Hub>,
    pool: Pool,
    prefix: String,
    node_id: String,
    presence_ttl: Duration,
    outbox: mpsc::Sender<(Uuid, BusEvent)>,
    connected: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

pub struct RedisSettings {
    pub url: String,
    pub prefix: String,
    pub pool_size: usize,
    pub presence_ttl: Duration,
    pub channel_capacity: usize,
}

impl RedisBus {
    /// Connects (failing if Redis does not answer now) and starts the subscriber, the
    /// publisher and the presence heartbeat, all stopping with `stop`.
    pub async fn start(
        settings: RedisSettings,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let client = redis::Client::open(settings.url.as_str())?;
        let mut config = deadpool_redis::Config::from_url(settings.url.as_str());
        let mut pool_config = PoolConfig::new(settings.pool_size.max(2));
        // A Redis that is down must not stall sends: give up quickly, the database has it.
        pool_config.timeouts = Timeouts {
            wait: Some(Duration::from_secs(1)),
            create: Some(Duration::from_secs(1)),
            recycle: Some(Duration::from_secs(1)),
        };
        config.pool = Some(pool_config);
        let pool = config.create_pool(Some(Runtime::Tokio1))?;
        let mut conn = pool.get().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        drop(conn);

        let (watch_tx, watch_rx) = mpsc::unbounded_channel();
        let (outbox, outbox_rx) = mpsc::channel(PUBLISH_QUEUE);
        let bus = Arc::new(RedisBus {
            hub: Hub::new(settings.channel_capacity, Some(watch_tx)),
            pool,
            prefix: settings.prefix,
            node_id: Uuid::new_v4().simple().to_string(),
            presence_ttl: settings.presence_ttl,
            outbox,
            connected: Arc::new(AtomicBool::new(false)),
            metrics,
        });
        tokio::spawn(Arc::clone(&bus).subscriber(client, watch_rx, stop.clone()));
        tokio::spawn(Arc::clone(&bus).publisher(outbox_rx, stop.clone()));
        tokio::spawn(Arc::clone(&bus).heartbeat(stop));
        Ok(bus)
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
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

    /// Queues an event for the publisher without waiting for Redis.
    pub fn publish(&self, couple_id: Uuid, event: BusEvent) {
        if let Err(e) = self.outbox.try_send((couple_id, event)) {
            let (couple_id, event) = e.into_inner();
            self.metrics.publish_failures.inc();
            self.hub.deliver(couple_id, event);
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
            let mut burst: Vec<(Uuid, BusEvent, bool)> = Vec::new();
            if retry.is_empty() {
                tokio::select! {
                    next = outbox.recv() => match next {
                        Some((couple, event)) => burst.push((couple, event, false)),
                        None => return,
                    },
                    () = stop.cancelled() => return,
                }
            } else {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return,
                }
                while burst.len() < MAX_BURST {
                    let Some((couple, event)) = retry.pop_front() else {
                        break;
                    };
                    burst.push((couple, event, true));
                }
            }
            while burst.len() < MAX_BURST {
                match outbox.try_recv() {
                    Ok((couple, event)) => burst.push((couple, event, false)),
                    Err(_) => break,
                }
            }
            let started = Instant::now();
            let mut pipe = redis::pipe();
            for (couple, event, _) in &burst {
                if let Some(payload) = encode(event) {
                    pipe.cmd("PUBLISH")
                        .arg(self.channel(*couple))
                        .arg(payload)
                        .ignore();
                }
            }
            let sent = match self.pool.get().await {
                Ok(mut conn) => pipe.query_async::<()>(&mut conn).await.is_ok(),
                Err(_) => false,
            };
            if sent {
                let per_event = started.elapsed().as_secs_f64() / burst.len().max(1) as f64;
                for _ in &burst {
                    self.metrics.publish_seconds.observe(per_event);
                }
                backoff = BACKOFF_MIN;
                continue;
            }
            // Redis is away. This node's sockets get the events now (a first attempt only;
            // retries were delivered already), and what is persisted or ends a session is
            // kept to publish when Redis is back. Typing and presence are not worth keeping.
            backoff = (backoff * 2).min(BACKOFF_MAX);
            for (couple, event, retried) in burst {
                self.metrics.publish_failures.inc();
                if !retried {
                    self.hub.deliver(couple, event.clone());
                }
                let keep = matches!(
                    event,
                    BusEvent::Frame { seq: Some(_), .. }
                        | BusEvent::SessionEnded { .. }
                        | BusEvent::CoupleDeleted
                );
                if keep && retry.len() < RETRY_LIMIT {
                    retry.push_back((couple, event));
                }
            }
        }
    }

    async fn subscriber(
        self: Arc<Self>,
        client: redis::Client,
        mut watch: mpsc::UnboundedReceiver<Watch>,
        stop: CancellationToken,
    ) {
        let mut backoff = BACKOFF_MIN;
        let mut first = true;
        loop {
            if let Ok(pubsub) = client.get_async_pubsub().await {
                let (mut sink, mut stream) = pubsub.split();
                let channels: Vec<String> = self
                    .hub
                    .couples()
                    .into_iter()
                    .map(|c| self.channel(c))
                    .collect();
                let subscribed = channels.is_empty() || sink.subscribe(&channels).await.is_ok();
                if subscribed {
                    self.connected.store(true, Ordering::Relaxed);
                    backoff = BACKOFF_MIN;
                    if !first {
                        self.metrics.redis_reconnects.inc();
                        tracing::info!(
                            couples = channels.len(),
                            "redis subscriber reconnected; sessions catch up"
                        );
                        self.hub.resync_all();
                    }
                    first = false;
                    loop {
                        tokio::select! {
                            message = stream.next() => match message {
                                Some(message) => self.on_message(&message),
                                None => break,
                            },
                            command = watch.recv() => match command {
                                Some(Watch::Listen(couple, done)) => {
                                    let ok = sink.subscribe(self.channel(couple)).await.is_ok();
                                    let _ = done.send(());
                                    if !ok { break; }
                                }
                                Some(Watch::Forget(couple)) => {
                                    // It may have been wanted again since; its Listen is queued.
                                    if !self.hub.has_couple(couple)
                                        && sink.unsubscribe(self.channel(couple)).await.is_err()
                                    {
                                        break;
                                    }
                                }
                                None => return,
                            },
                            () = stop.cancelled() => return,
                        }
                    }
                }
            }
            self.connected.store(false, Ordering::Relaxed);
            tracing::warn!(?backoff, "redis subscriber disconnected; reconnecting");
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
            Some(event) => self.hub.deliver(couple, event),
            None => tracing::warn!(couple_id = %couple, "undecodable bus message"),
        }
    }

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    /// Registers this node as holding a socket of the user; true if nobody held one before.
    pub async fn came_online(&self, user_id: Uuid) -> bool {
        let key = self.presence_key(user_id);
        let mut pipe = redis::pipe();
        count_live(&mut pipe, &key);
        pipe.cmd("ZADD")
            .arg(&key)
            .arg(Self::now_ms() + self.ttl_ms())
            .arg(&self.node_id)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(self.ttl_ms() * 2)
            .ignore();
        // Unknown (Redis away) counts as a change: telling the partner twice is harmless.
        self.query_count(user_id, &pipe)
            .await
            .is_none_or(|before| before == 0)
    }

    /// Removes this node from the user's presence; true if nobody holds a socket any more.
    pub async fn went_offline(&self, user_id: Uuid) -> bool {
        let key = self.presence_key(user_id);
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM").arg(&key).arg(&self.node_id).ignore();
        count_live(&mut pipe, &key);
        self.query_count(user_id, &pipe)
            .await
            .is_none_or(|left| left == 0)
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
        let result: redis::RedisResult<(i64,)> = async {
            let mut conn = self.pool.get().await.map_err(pool_error)?;
            pipe.query_async(&mut conn).await
        }
        .await;
        match result {
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
        let mut conn = self.pool.get().await.map_err(pool_error)?;
        let now = Self::now_ms();
        let users = self.hub.local_users();
        if !users.is_empty() {
            let mut pipe = redis::pipe();
            for user in &users {
                let key = self.presence_key(*user);
                pipe.cmd("ZADD")
                    .arg(&key)
                    .arg(now + self.ttl_ms())
                    .arg(&self.node_id)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(self.ttl_ms() * 2)
                    .ignore()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(now)
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn).await?;
        }
        let partners = self.hub.watched_partners();
        if !partners.is_empty() {
            let mut pipe = redis::pipe();
            for (_, partner) in &partners {
                count_live(&mut pipe, &self.presence_key(*partner));
            }
            let counts: Vec<i64> = pipe.query_async(&mut conn).await?;
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

fn pool_error(e: deadpool_redis::PoolError) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::other(e.to_string()))
}

fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.5..1.0))
}

/// The wire form of an event on a channel: a short header line, then the frame's JSON as is,
/// so the frame is serialized once and never re-escaped.
fn encode(event: &BusEvent) -> Option<Vec<u8>> {
    let text = match event {
        BusEvent::Frame {
            seq,
            skip_user,
            json,
        } => {
            let seq = seq.map_or("-".to_owned(), |s| s.to_string());
            let skip = skip_user.map_or("-".to_owned(), |u| u.simple().to_string());
            format!("F {seq} {skip}\n{}", json.as_str())
        }
        BusEvent::Presence { user_id, online } => {
            format!("P {} {}", user_id.simple(), u8::from(*online))
        }
        BusEvent::SessionEnded { session_id } => format!("E {}", session_id.simple()),
        BusEvent::CoupleDeleted => "D".to_owned(),
        BusEvent::Resync => return None,
    };
    Some(text.into_bytes())
}

fn decode(payload: &[u8]) -> Option<BusEvent> {
    let text = std::str::from_utf8(payload).ok()?;
    let (header, body) = text.split_once('\n').unwrap_or((text, ""));
    let mut parts = header.split(' ');
    match parts.next()? {
        "F" => {
            let seq = match parts.next()? {
                "-" => None,
                s => Some(s.parse().ok()?),
            };
            let skip_user = match parts.next()? {
                "-" => None,
                u => Some(Uuid::parse_str(u).ok()?),
            };
            Some(BusEvent::Frame {
                seq,
                skip_user,
                json: Utf8Bytes::from(body.to_owned()),
            })
        }
        "P" => Some(BusEvent::Presence {
            user_id: Uuid::parse_str(parts.next()?).ok()?,
            online: parts.next()? == "1",
        }),
        "E" => Some(BusEvent::SessionEnded {
            session_id: Uuid::parse_str(parts.next()?).ok()?,
        }),
        "D" => Some(BusEvent::CoupleDeleted),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_the_wire() {
        let user = Uuid::new_v4();
        let frame = BusEvent::Frame {
            seq: Some(7),
            skip_user: Some(user),
            json: Utf8Bytes::from_static("{\"type\":\"chat\",\"text\":\"a\\nb\"}"),
        };
        let back = encode(&frame).and_then(|bytes| decode(&bytes));
        assert!(
            matches!(back, Some(BusEvent::Frame { seq: Some(7), skip_user: Some(u), json }) if u == user && json.as_str() == "{\"type\":\"chat\",\"text\":\"a\\nb\"}")
        );
        let presence = encode(&BusEvent::Presence {
            user_id: user,
            online: true,
        })
        .and_then(|bytes| decode(&bytes));
        assert!(
            matches!(presence, Some(BusEvent::Presence { user_id, online: true }) if user_id == user)
        );
        assert!(decode(b"X junk").is_none());
        assert!(decode(b"F notanumber -\n{}").is_none());
    }
}
