//! The doorbell between nodes. Every event of a couple is published to that couple's channel;
//! each node delivers it to the sockets it holds locally. The bus is at-most-once by design:
//! what matters is in the database, and sessions heal any gap from there by `seq`.
//!
//! `Bus` is an enum, not a trait object: the backend is chosen once at start-up, and "go to
//! definition" lands on real code. Nothing above this module knows which backend it talks to.

mod hub;

use axum::extract::ws::Utf8Bytes;
use uuid::Uuid;

pub use hub::{Hub, Subscription};

/// What travels on a couple's channel.
#[derive(Clone, Debug)]
pub enum BusEvent {
    /// A frame for the couple's sockets, serialized once by the publisher.
    Frame {
        /// Set for persisted events; sessions use it to drop duplicates and detect gaps.
        seq: Option<i64>,
        /// Sockets of this user skip the frame (typing, presence and read marks go to the
        /// partner only).
        skip_user: Option<Uuid>,
        json: Utf8Bytes,
    },
    /// A session was ended (logout): every socket opened with it closes, on every node.
    SessionEnded { session_id: Uuid },
}

#[derive(Clone)]
pub enum Bus {
    /// One process: the hub is the whole bus.
    Local(std::sync::Arc<Hub>),
}

impl Bus {
    pub fn local(capacity: usize) -> Self {
        Bus::Local(Hub::new(capacity))
    }

    fn hub(&self) -> &std::sync::Arc<Hub> {
        match self {
            Bus::Local(hub) => hub,
        }
    }

    pub async fn publish(&self, couple_id: Uuid, event: BusEvent) {
        match self {
            Bus::Local(hub) => hub.deliver(couple_id, event),
        }
    }

    /// Starts receiving the couple's events on this node; dropping the subscription stops.
    pub fn subscribe(&self, couple_id: Uuid) -> Subscription {
        self.hub().subscribe(couple_id)
    }

    /// Counts a socket of `user_id`; true when it is the user's first anywhere (came online).
    pub async fn socket_opened(&self, user_id: Uuid) -> bool {
        self.hub().socket_opened(user_id) == 1
    }

    /// Uncounts a socket; true when it was the user's last anywhere (went offline).
    pub async fn socket_closed(&self, user_id: Uuid) -> bool {
        self.hub().socket_closed(user_id) == 0
    }

    /// Whether the user has a socket open on any node.
    pub async fn is_online(&self, user_id: Uuid) -> bool {
        self.hub().sockets_of(user_id) > 0
    }

    /// Sockets the user holds on this node, for the per-user limit.
    pub fn local_sockets_of(&self, user_id: Uuid) -> usize {
        self.hub().sockets_of(user_id)
    }

    /// Whether the bus can deliver right now (`/readyz`).
    pub async fn is_ready(&self) -> bool {
        match self {
            Bus::Local(_) => true,
        }
    }
}
