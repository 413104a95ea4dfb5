//! The listening side of the bus on a Redis Cluster. With sharded pub/sub a couple's channel
//! lives on the master that owns its slot, so a node listens on one connection per master
//! (RESP3, SSUBSCRIBE one channel per command) and keeps, per connection, the couples it
//! subscribed there.
//!
//! The cluster changes under us: a master dies and its replica takes over, a slot moves, a
//! shard is added. When a connection fails (its PING misses the deadline, it closes, a command
//! on it fails) the cure is the same as after a reconnect to a single Redis: its couples
//! become homeless, the slot map is read again (`CLUSTER SLOTS`), each homeless couple is
//! subscribed where its slot now lives, and only then are its sessions told to catch up from
//! the database. Other shards' couples are not disturbed. When a slot moves, the old master
//! unsubscribes its channels: only those couples move (and catch up), and the connection is
//! replaced make-before-break, because redis-rs may have taken that unasked push for the
//! reply to a command in flight.
//!
//! redis-rs's own cluster pub/sub is not used: it resubscribes with one multi-channel command
//! per node (refused as CROSSSLOT), and a master that dies without a MOVED never makes it
//! look at the slot map again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, ConnectionInfo, PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    BACKOFF_MIN, COMMAND_TIMEOUT, CONNECT_TIMEOUT, RedisBus, SHARD_BACKOFF_MAX,
    SHARD_CONNECT_TIMEOUT,
};
use crate::bus::BusEvent;
use crate::bus::hub::Watch;

/// How often the slot map is read even when nothing went wrong, so a shard that was added,
/// or a slot that moved without anyone telling this node, is noticed.
const TOPOLOGY_EVERY: Duration = Duration::from_secs(5);
const PING_EVERY: Duration = Duration::from_secs(1);
const SLOTS: u16 = 16384;
/// SSUBSCRIBEs in flight at once while a repair resubscribes couples.
const RESUBSCRIBE_CHUNK: usize = 512;

/// Why a subscription was not made.
enum Failed {
    /// MOVED, CLUSTERDOWN: the slot map is stale, the connection is fine.
    Refused,
    /// The connection failed or did not answer in time.
    Broken,
}

/// The slot a couple's keys and channel hash to: Redis Cluster's CRC16 of the hash tag, which
/// is the couple id (`{<id>}` in every key of the couple).
pub(super) fn slot(couple_id: Uuid) -> u16 {
    let mut tag = [0u8; 32];
    let tag = couple_id.simple().encode_lower(&mut tag);
    crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes()) % SLOTS
}

/// Which master serves which slots, as `CLUSTER SLOTS` said last.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub(super) struct Topology {
    ranges: Vec<(u16, u16, String)>,
}

impl Topology {
    pub(super) fn owner(&self, slot: u16) -> Option<&str> {
        self.ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, addr)| addr.as_str())
    }

    fn masters(&self) -> HashSet<String> {
        self.ranges.iter().map(|(_, _, a)| a.clone()).collect()
    }

    /// Reads a `CLUSTER SLOTS` reply; `asked` stands in for a master that names no host.
    fn parse(reply: &Value, asked: &str) -> Option<Topology> {
        let Value::Array(ranges) = reply else {
            return None;
        };
        let asked_host = asked.rsplit_once(':').map_or(asked, |(h, _)| h);
        let mut topology = Topology::default();
        for range in ranges {
            let Value::Array(fields) = range else {
                return None;
            };
            let [Value::Int(start), Value::Int(end), Value::Array(master), ..] = fields.as_slice()
            else {
                return None;
            };
            let host = match master.first()? {
                Value::BulkString(h) => String::from_utf8(h.clone()).ok()?,
                Value::SimpleString(h) => h.clone(),
                _ => return None,
            };
            let host = if host.is_empty() || host == "?" {
                asked_host.to_string()
            } else {
                host
            };
            let Some(Value::Int(port)) = master.get(1) else {
                return None;
            };
            topology.ranges.push((
                u16::try_from(*start).ok()?,
                u16::try_from(*end).ok()?,
                format!("{host}:{port}"),
            ));
        }
        topology.ranges.sort();
        Some(topology)
    }
}

/// What a connection's push messages tell the supervisor, tagged with the connection's
/// generation so news of a connection already replaced is ignored.
enum Trouble {
    Closed,
    Unsubscribed(Uuid),
}

/// One subscriber connection to a master.
struct Link {
    conn: MultiplexedConnection,
    generation: u64,
    couples: HashSet<Uuid>,
}

pub(super) struct Shards {
    bus: Arc<RedisBus>,
    /// Where to ask for the slot map when no link answers; also the template (credentials,
    /// TLS) for connecting to any master.
    seeds: Vec<ConnectionInfo>,
    topology: Topology,
    links: HashMap<String, Link>,
    /// Couples with local sessions that are not subscribed anywhere right now; each is
    /// subscribed and caught up by the next repair.
    homeless: HashSet<Uuid>,
    /// Connections to replace at the next repair (see `replace_suspects`).
    suspect: HashSet<String>,
    needs_repair: bool,
    generation: u64,
    troubles: mpsc::UnboundedSender<(u64, Trouble)>,
}

impl Shards {
    /// Runs until `stop`: follows the hub's couples, the cluster's slot map and the health of
    /// every master's connection.
    pub(super) async fn run(
        bus: Arc<RedisBus>,
        seeds: Vec<ConnectionInfo>,
        mut watch: mpsc::UnboundedReceiver<Watch>,
        stop: CancellationToken,
    ) {
        let (troubles, mut trouble_rx) = mpsc::unbounded_channel();
        let mut shards = Shards {
            bus,
            seeds,
            topology: Topology::default(),
            links: HashMap::new(),
            homeless: HashSet::new(),
            suspect: HashSet::new(),
            needs_repair: true,
            generation: 0,
            troubles,
        };
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refresh = tokio::time::interval(TOPOLOGY_EVERY);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Duration::ZERO;
        // A deadline, not a sleep made anew each turn: pings and messages wake the loop far
        // more often than a long backoff lasts.
        let mut repair_at = tokio::time::Instant::now();
        loop {
            tokio::select! {
                Some((generation, trouble)) = trouble_rx.recv() => shards.on_trouble(generation, trouble),
                command = watch.recv() => match command {
                    Some(Watch::Listen(couple, done)) => shards.listen(couple, done).await,
                    Some(Watch::Forget(couple)) => shards.forget(couple).await,
                    None => return,
                },
                _ = ping.tick() => shards.ping_all().await,
                _ = refresh.tick() => shards.refresh().await,
                () = tokio::time::sleep_until(repair_at), if shards.needs_repair => {
                    shards.repair().await;
                    backoff = if shards.needs_repair {
                        (backoff * 2).clamp(BACKOFF_MIN, SHARD_BACKOFF_MAX)
                    } else {
                        Duration::ZERO
                    };
                    repair_at = tokio::time::Instant::now() + backoff;
                }
                () = stop.cancelled() => return,
            }
            // Runs after every event (a socket opening is one): allocates nothing while every
            // master is reachable.
            let unreachable = shards.unreachable();
            shards.bus.set_connected(
                !shards.needs_repair
                    && !shards.topology.ranges.is_empty()
                    && shards.homeless.is_empty()
                    && unreachable.is_empty(),
            );
            shards.bus.set_down(unreachable);
        }
    }

    /// Masters of the slot map without a live connection.
    fn unreachable(&self) -> HashSet<String> {
        self.topology
            .ranges
            .iter()
            .filter(|(_, _, addr)| !self.links.contains_key(addr))
            .map(|(_, _, addr)| addr.clone())
            .collect()
    }

    async fn listen(&mut self, couple: Uuid, done: tokio::sync::oneshot::Sender<()>) {
        let subscribed = self.subscribe(couple).await;
        if done.send(()).is_err() && subscribed {
            // The session stopped waiting and read the couple's state before this
            // subscription began: what came in between, it must read.
            self.bus.hub().deliver(couple, BusEvent::Resync);
        }
    }

    /// SSUBSCRIBEs the couple where its slot lives; if that cannot be done now the couple is
    /// homeless (and caught up once it is subscribed).
    async fn subscribe(&mut self, couple: Uuid) -> bool {
        match self.topology.owner(slot(couple)) {
            Some(addr) if self.links.contains_key(addr) => {
                let addr = addr.to_string();
                !self.subscribe_on(&addr, &[couple]).await.is_empty()
            }
            _ => {
                self.make_homeless([couple]);
                false
            }
        }
    }

    /// SSUBSCRIBEs couples on the link to `addr` and returns those subscribed. The others are
    /// homeless; a failed connection is broken, a refusal (MOVED, CLUSTERDOWN: the slot map is
    /// stale, the connection is fine) only calls for a repair.
    async fn subscribe_on(&mut self, addr: &str, couples: &[Uuid]) -> Vec<Uuid> {
        let Some(conn) = self.links.get(addr).map(|l| l.conn.clone()) else {
            self.make_homeless(couples.iter().copied());
            return Vec::new();
        };
        let mut placed = Vec::with_capacity(couples.len());
        let mut broken = false;
        for (couple, outcome) in self.ssubscribe_many(&conn, couples).await {
            match (outcome, self.links.get_mut(addr)) {
                (Ok(()), Some(link)) => {
                    link.couples.insert(couple);
                    placed.push(couple);
                }
                (outcome, _) => {
                    broken |= matches!(outcome, Err(Failed::Broken));
                    self.make_homeless([couple]);
                }
            }
        }
        if broken {
            self.break_link(addr, "subscribe failed");
        }
        placed
    }

    async fn forget(&mut self, couple: Uuid) {
        // It may have been wanted again since; its Listen is queued.
        if self.bus.hub().has_couple(couple) {
            return;
        }
        self.homeless.remove(&couple);
        let Some(addr) = self
            .links
            .iter()
            .find(|(_, link)| link.couples.contains(&couple))
            .map(|(addr, _)| addr.clone())
        else {
            return;
        };
        let Some(link) = self.links.get_mut(&addr) else {
            return;
        };
        link.couples.remove(&couple);
        let mut conn = link.conn.clone();
        let channel = self.bus.channel(couple);
        let reply = timeout(
            COMMAND_TIMEOUT,
            redis::cmd("SUNSUBSCRIBE")
                .arg(&channel)
                .exec_async(&mut conn),
        )
        .await;
        if !matches!(reply, Ok(Ok(()))) {
            self.break_link(&addr, "unsubscribe failed");
        }
    }

    fn on_trouble(&mut self, generation: u64, trouble: Trouble) {
        let Some(addr) = self
            .links
            .iter()
            .find(|(_, link)| link.generation == generation)
            .map(|(addr, _)| addr.clone())
        else {
            return;
        };
        match trouble {
            Trouble::Closed => self.break_link(&addr, "connection closed"),
            Trouble::Unsubscribed(couple) => {
                // Not asked for: the couple's slot left that master. The couple is subscribed
                // again where it lives now; the connection is replaced, since redis-rs may
                // have taken the push for the reply to a command in flight.
                let unasked = self
                    .links
                    .get_mut(&addr)
                    .is_some_and(|link| link.couples.remove(&couple));
                if unasked {
                    tracing::info!(couple_id = %couple, master = %addr, "the server unsubscribed a channel (its slot moved)");
                    self.make_homeless([couple]);
                    self.suspect.insert(addr);
                }
            }
        }
    }

    async fn ping_all(&mut self) {
        let pings = self.links.iter().map(|(addr, link)| {
            let mut conn = link.conn.clone();
            async move {
                let pong = timeout(
                    COMMAND_TIMEOUT,
                    redis::cmd("PING").query_async::<Value>(&mut conn),
                )
                .await;
                (addr.clone(), matches!(pong, Ok(Ok(_))))
            }
        });
        for (addr, alive) in futures_util::future::join_all(pings).await {
            if !alive {
                self.break_link(&addr, "no answer to ping");
            }
        }
    }

    /// Reads the slot map on a period; couples whose slot moved are moved with it.
    async fn refresh(&mut self) {
        if self.needs_repair {
            return;
        }
        match self.read_topology().await {
            Some(topology) if topology != self.topology => {
                tracing::info!(
                    masters = topology.masters().len(),
                    "the cluster's slot map changed"
                );
                self.adopt(topology);
            }
            Some(_) => {}
            None => self.needs_repair = true,
        }
    }

    /// Takes a new slot map: connections to nodes that are no longer masters are dropped, and
    /// couples whose slot now lives elsewhere become homeless until repaired.
    fn adopt(&mut self, topology: Topology) {
        self.topology = topology;
        self.bus.set_topology(&self.topology);
        let masters = self.topology.masters();
        let gone: Vec<String> = self
            .links
            .keys()
            .filter(|addr| !masters.contains(*addr))
            .cloned()
            .collect();
        for addr in gone {
            self.break_link(&addr, "no longer a master");
        }
        let mut moved = Vec::new();
        for (addr, link) in &mut self.links {
            link.couples.retain(|couple| {
                let stays = self.topology.owner(slot(*couple)) == Some(addr.as_str());
                if !stays {
                    moved.push(*couple);
                }
                stays
            });
        }
        self.make_homeless(moved);
        if masters.iter().any(|m| !self.links.contains_key(m)) {
            self.needs_repair = true;
        }
    }

    /// Reads the slot map, connects every master that has no connection, subscribes every
    /// homeless couple, and tells the sessions of those it subscribed to catch up.
    async fn repair(&mut self) {
        let Some(topology) = self.read_topology().await else {
            tracing::warn!("no cluster node answered CLUSTER SLOTS");
            return;
        };
        self.adopt(topology);
        self.needs_repair = false;
        for addr in self.topology.masters() {
            if self.links.contains_key(&addr) {
                continue;
            }
            match self.connect(&addr).await {
                Ok(link) => {
                    self.links.insert(addr, link);
                }
                Err(e) => {
                    tracing::warn!(master = %addr, error = %e, "cannot reach a cluster master");
                    self.needs_repair = true;
                }
            }
        }
        self.replace_suspects().await;
        let homeless: Vec<Uuid> = self
            .homeless
            .drain()
            .filter(|couple| self.bus.hub().has_couple(*couple))
            .collect();
        let mut by_owner: HashMap<String, Vec<Uuid>> = HashMap::new();
        for couple in homeless {
            match self.topology.owner(slot(couple)) {
                Some(addr) if self.links.contains_key(addr) => {
                    by_owner.entry(addr.to_string()).or_default().push(couple);
                }
                _ => self.make_homeless([couple]),
            }
        }
        let mut placed = Vec::new();
        for (addr, couples) in by_owner {
            placed.extend(self.subscribe_on(&addr, &couples).await);
        }
        if !placed.is_empty() {
            self.bus.metrics().redis_reconnects.inc();
            tracing::info!(
                couples = placed.len(),
                "shard subscriptions restored; sessions catch up"
            );
            self.bus.hub().resync(placed);
        }
        if !self.homeless.is_empty() {
            self.needs_repair = true;
        }
    }

    /// SSUBSCRIBEs many couples on one connection: they go out together (pipelined on the
    /// connection), a chunk at a time.
    async fn ssubscribe_many(
        &self,
        conn: &MultiplexedConnection,
        couples: &[Uuid],
    ) -> Vec<(Uuid, Result<(), Failed>)> {
        let mut outcomes = Vec::with_capacity(couples.len());
        for chunk in couples.chunks(RESUBSCRIBE_CHUNK) {
            let attempts = chunk.iter().map(|couple| {
                let mut conn = conn.clone();
                let channel = self.bus.channel(*couple);
                async move {
                    let reply = timeout(
                        COMMAND_TIMEOUT,
                        redis::cmd("SSUBSCRIBE").arg(&channel).exec_async(&mut conn),
                    )
                    .await;
                    let outcome = match reply {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) if !e.is_io_error() && !e.is_timeout() => Err(Failed::Refused),
                        _ => Err(Failed::Broken),
                    };
                    (*couple, outcome)
                }
            });
            outcomes.extend(futures_util::future::join_all(attempts).await);
        }
        outcomes
    }

    /// Replaces each suspect connection by a fresh one, make before break: the fresh one
    /// subscribes every couple of the old one while the old one still delivers, so those
    /// couples lose nothing and need no catch-up. If that fails, the old one is broken the
    /// usual way (its couples are caught up once resubscribed).
    async fn replace_suspects(&mut self) {
        for addr in std::mem::take(&mut self.suspect) {
            let Some(couples) = self
                .links
                .get(&addr)
                .map(|l| l.couples.iter().copied().collect::<Vec<_>>())
            else {
                continue;
            };
            let mut fresh = match self.connect(&addr).await {
                Ok(fresh) => fresh,
                Err(_) => {
                    self.break_link(&addr, "cannot replace a suspect connection");
                    continue;
                }
            };
            let outcomes = self.ssubscribe_many(&fresh.conn, &couples).await;
            if outcomes.iter().all(|(_, outcome)| outcome.is_ok()) {
                fresh.couples = couples.into_iter().collect();
                self.links.insert(addr, fresh);
            } else {
                self.break_link(&addr, "cannot replace a suspect connection");
            }
        }
    }

    fn make_homeless(&mut self, couples: impl IntoIterator<Item = Uuid>) {
        self.homeless.extend(couples);
        if !self.homeless.is_empty() {
            self.needs_repair = true;
        }
    }

    fn break_link(&mut self, addr: &str, reason: &'static str) {
        if let Some(link) = self.links.remove(addr) {
            tracing::warn!(
                master = %addr,
                couples = link.couples.len(),
                reason,
                "shard subscriber lost; resubscribing where the slots live now"
            );
            self.homeless.extend(link.couples);
        }
        self.needs_repair = true;
    }

    /// Asks the masters this node is connected to, then the seeds, for the slot map.
    async fn read_topology(&self) -> Option<Topology> {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SLOTS");
        for (addr, link) in &self.links {
            let mut conn = link.conn.clone();
            if let Ok(Ok(reply)) =
                timeout(COMMAND_TIMEOUT, cmd.query_async::<Value>(&mut conn)).await
                && let Some(topology) = Topology::parse(&reply, addr)
                && !topology.ranges.is_empty()
            {
                return Some(topology);
            }
        }
        for seed in &self.seeds {
            let addr = seed.addr().to_string();
            let Ok(client) = redis::Client::open(seed.clone()) else {
                continue;
            };
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(COMMAND_TIMEOUT));
            let Ok(mut conn) = client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            else {
                continue;
            };
            if let Ok(reply) = cmd.query_async::<Value>(&mut conn).await
                && let Some(topology) = Topology::parse(&reply, &addr)
                && !topology.ranges.is_empty()
            {
                return Some(topology);
            }
        }
        None
    }

    /// A RESP3 connection to a master whose pushes are handled as they arrive: messages go
    /// straight to the hub, anything else to the supervisor.
    async fn connect(&mut self, addr: &str) -> redis::RedisResult<Link> {
        self.generation += 1;
        let generation = self.generation;
        let info = at_address(self.seeds.first(), addr)?;
        let client = redis::Client::open(info)?;
        let bus = Arc::clone(&self.bus);
        let troubles = self.troubles.clone();
        let on_push = move |push: PushInfo| -> Result<(), ()> {
            match push.kind {
                PushKind::SMessage => {
                    if let [Value::BulkString(channel), Value::BulkString(payload)] =
                        push.data.as_slice()
                    {
                        bus.on_payload(channel, payload);
                    }
                }
                PushKind::Disconnection => {
                    let _ = troubles.send((generation, Trouble::Closed));
                }
                PushKind::SUnsubscribe => {
                    if let Some(Value::BulkString(channel)) = push.data.first()
                        && let Some(couple) = bus.couple_of(channel)
                    {
                        let _ = troubles.send((generation, Trouble::Unsubscribed(couple)));
                    }
                }
                _ => {}
            }
            Ok(())
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(SHARD_CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_push_sender(on_push);
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(Link {
            conn,
            generation,
            couples: HashSet::new(),
        })
    }
}

/// The seed's connection settings (credentials, TLS, RESP3) pointed at another node.
fn at_address(seed: Option<&ConnectionInfo>, addr: &str) -> redis::RedisResult<ConnectionInfo> {
    let bad = || redis::RedisError::from(std::io::Error::other(format!("bad node address {addr}")));
    let seed = seed.ok_or_else(bad)?;
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.to_string();
    let target = match seed.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host, port),
    };
    Ok(seed.clone().set_addr(target))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_couple_hashes_to_the_slot_redis_computes_for_its_tag() {
        // CLUSTER KEYSLOT "{3d2e...}" on a real Redis gives the CRC16 of the tag alone.
        let couple = Uuid::parse_str("0195f3a8-7c1e-7d41-9a2b-5c6d7e8f9a0b").unwrap();
        let key = format!("duet:couple:{{{}}}", couple.simple());
        let tagged = redis::cluster_routing::Route::with_key(
            key.as_bytes(),
            redis::cluster_routing::SlotAddr::Master,
        );
        let expected = redis::cluster_routing::Route::new(
            slot(couple),
            redis::cluster_routing::SlotAddr::Master,
        );
        assert_eq!(tagged, expected);
    }

    #[test]
    fn the_slot_map_is_read_from_cluster_slots() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                node("", 7001),
                node("10.0.0.9", 7004),
            ]),
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("10.0.0.1", 7000),
            ]),
        ]);
        let topology = Topology::parse(&reply, "10.0.0.2:7001").unwrap();
        assert_eq!(topology.owner(0), Some("10.0.0.1:7000"));
        assert_eq!(topology.owner(16383), Some("10.0.0.2:7001"));
        assert_eq!(topology.masters().len(), 2);
        assert!(Topology::parse(&Value::Int(1), "x:1").is_none());
    }
}
