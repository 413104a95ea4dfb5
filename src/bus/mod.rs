//! The doorbell between nodes. Every event of a couple is delivered at once to the couple's
//! sockets on this node and published to the couple's channel for the other nodes, which
//! deliver it to theirs (a node ignores its own publishes coming back). The bus is
//! at-most-once by design: what matters is in the database, and sessions heal any gap from
//! there by `seq`.
//!
//! `Bus` is an enum, not a trait object: the backend is chosen once at start-up, and "go to
//! definition" lands on real code. Nothing above this module knows which backend it talks to.

mod hub;
mod outbox;
mod redis;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use uuid::Uuid;

pub use self::redis::{RedisBus, RedisSettings};
pub use hub::{Hub, Subscription};
pub use outbox::{Delivery, Outbox};

/// How long a new session waits for the backend to listen to its couple's channel before
/// going on anyway (the subscriber tells it to catch up from the database once it listens).
/// A healthy Redis answers in a millisecond; this is what opening the app costs while it hangs.
const LISTEN_WAIT: Duration = Duration::from_secs(1);

/// What travels on a couple's channel.
#[derive(Clone, Debug)]
pub enum BusEvent {
    /// A frame for the couple's sockets, serialized once by the publisher.
    Frame {
        /// Set for persisted events; sessions use it to drop duplicates and detect gaps.
        seq: Option<i64>,
        /// Sockets of this user skip the frame (typing and read marks go to the partner only).
        skip_user: Option<Uuid>,
        /// Who the event is by (a chat's sender): a read mark never needs to cover one's own.
        from: Option<Uuid>,
        json: Utf8Bytes,
    },
    /// A user came online or went offline; each node passes on changes only.
    Presence { user_id: Uuid, online: bool },
    /// A session was ended (logout): every socket opened with it closes, on every node.
    SessionEnded { session_id: Uuid },
    /// The couple no longer exists (its break-up fell due): its sockets close.
    CoupleDeleted,
    /// Events of the couple may have been lost on their way (a queue was full, Redis was
    /// away): its sessions catch up from the database.
    Resync,
}

impl BusEvent {
    /// Whether losing it matters: a persisted event, or one that ends sockets. Typing and
    /// presence are stale by the time they could be sent again.
    pub fn must_arrive(&self) -> bool {
        matches!(
            self,
            BusEvent::Frame { seq: Some(_), .. }
                | BusEvent::SessionEnded { .. }
                | BusEvent::CoupleDeleted
                | BusEvent::Resync
        )
    }
}

#[derive(Clone)]
pub enum Bus {
    /// One process: the hub is the whole bus.
    Local(Arc<Hub>),
    /// Many nodes: Redis pub/sub between them, a hub within each.
    Redis(Arc<RedisBus>),
}

impl Bus {
    pub fn local() -> Self {
        Bus::Local(Hub::new(None))
    }

    fn hub(&self) -> &Arc<Hub> {
        match self {
            Bus::Local(hub) => hub,
            Bus::Redis(redis) => redis.hub(),
        }
    }

    /// Delivers to this node's sockets now and, with Redis, queues the event for the others
    /// without waiting for Redis.
    pub fn publish(&self, couple_id: Uuid, event: BusEvent) {
        match self {
            Bus::Local(hub) => hub.deliver(couple_id, event),
            Bus::Redis(redis) => redis.publish(couple_id, event),
        }
    }

    /// Starts delivering the couple's events to this outbox; dropping the subscription stops.
    pub async fn subscribe(
        &self,
        couple_id: Uuid,
        user_id: Uuid,
        outbox: Arc<Outbox>,
    ) -> Subscription {
        let (subscription, ready) = self.hub().subscribe(couple_id, user_id, outbox);
        if let Some(ready) = ready {
            let _ = tokio::time::timeout(LISTEN_WAIT, ready).await;
        }
        subscription
    }

    /// Counts a socket: `(the user's first anywhere, so they came online; the partner is
    /// online)`, asked of Redis in one round trip.
    pub async fn socket_opened(
        &self,
        user_id: Uuid,
        couple_id: Uuid,
        partner_id: Uuid,
    ) -> (bool, bool) {
        let (here, looking) = self.hub().socket_opened(user_id, couple_id, partner_id);
        if looking == 1 {
            self.sync_looking(couple_id, user_id);
        }
        let (came_online, partner_online) = match self {
            Bus::Local(hub) => (here == 1, hub.sockets_of(partner_id) > 0),
            Bus::Redis(redis) if here == 1 => {
                redis.came_online(couple_id, user_id, partner_id).await
            }
            Bus::Redis(redis) => (false, redis.is_online(couple_id, partner_id).await),
        };
        self.hub()
            .note_presence(couple_id, partner_id, partner_online);
        (came_online, partner_online)
    }

    /// Uncounts a socket (`looking`: its client was looking at the conversation); true when
    /// it was the user's last anywhere (went offline).
    pub async fn socket_closed(&self, user_id: Uuid, couple_id: Uuid, looking: bool) -> bool {
        let (here, looking_here) = self.hub().socket_closed(user_id, looking);
        if looking && looking_here == 0 {
            self.sync_looking(couple_id, user_id);
        }
        match self {
            Bus::Local(_) => here == 0,
            Bus::Redis(redis) => here == 0 && redis.went_offline(couple_id, user_id).await,
        }
    }

    /// A socket's client started or stopped looking at the conversation (a tab shown or
    /// hidden). Other nodes learn it when Redis has it, without the socket waiting.
    pub fn looking(&self, user_id: Uuid, couple_id: Uuid, looking: bool) {
        let now = self.hub().looking_changed(user_id, looking);
        if (looking && now == 1) || (!looking && now == 0) {
            self.sync_looking(couple_id, user_id);
        }
    }

    fn sync_looking(&self, couple_id: Uuid, user_id: Uuid) {
        if let Bus::Redis(redis) = self {
            let redis = redis.clone();
            tokio::spawn(async move { redis.sync_looking(couple_id, user_id).await });
        }
    }

    /// Whether any socket of the user, on any node, looks at the conversation: then their
    /// devices get no push.
    /// Whether a socket of the user on this node is looking now (no I/O).
    pub fn looking_here(&self, user_id: Uuid) -> bool {
        self.hub().looking_of(user_id) > 0
    }

    pub async fn is_looking(&self, couple_id: Uuid, user_id: Uuid) -> bool {
        match self {
            Bus::Local(hub) => hub.looking_of(user_id) > 0,
            Bus::Redis(redis) => redis.is_looking(couple_id, user_id).await,
        }
    }

    /// Stops the bus's background work, publishing what is still queued first.
    pub async fn stop(&self) {
        if let Bus::Redis(redis) = self {
            redis.stop().await;
        }
    }

    /// Whether the bus can deliver right now (`/readyz`).
    pub fn is_ready(&self) -> bool {
        match self {
            Bus::Local(_) => true,
            Bus::Redis(redis) => redis.is_connected(),
        }
    }
}
