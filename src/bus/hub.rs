//! A node's local fan-out: couple id -> the broadcast channel its local sessions listen on,
//! user id -> the sockets the user holds here, and what this node last told its sockets about
//! each partner's presence. Whatever the bus backend, events end up delivered through a hub.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use super::BusEvent;
use crate::frame::ServerFrame;

/// Asks the bus backend to start or stop listening to a couple's channel (Redis SUBSCRIBE /
/// UNSUBSCRIBE). `Listen` carries a reply for when the subscription is active.
pub enum Watch {
    Listen(Uuid, oneshot::Sender<()>),
    Forget(Uuid),
}

struct Local {
    sockets: usize,
    couple_id: Uuid,
    partner_id: Uuid,
}

pub struct Hub {
    /// Events a session may fall behind by before it is told it lagged (it then catches up
    /// from the database instead).
    capacity: usize,
    channels: Mutex<HashMap<Uuid, broadcast::Sender<BusEvent>>>,
    users: Mutex<HashMap<Uuid, Local>>,
    /// The presence this node last passed on, per user: a change is forwarded, a repeat is not.
    presence: Mutex<HashMap<Uuid, bool>>,
    watch: Option<mpsc::UnboundedSender<Watch>>,
}

impl Hub {
    pub fn new(capacity: usize, watch: Option<mpsc::UnboundedSender<Watch>>) -> Arc<Self> {
        Arc::new(Hub {
            capacity: capacity.max(16),
            channels: Mutex::default(),
            users: Mutex::default(),
            presence: Mutex::default(),
            watch,
        })
    }

    /// Joins the couple's local channel; the receiver, when present, resolves once the
    /// backend listens to the couple's channel too.
    pub fn subscribe(
        self: &Arc<Self>,
        couple_id: Uuid,
    ) -> (Subscription, Option<oneshot::Receiver<()>>) {
        let mut channels = lock(&self.channels);
        let mut ready = None;
        let tx = channels.entry(couple_id).or_insert_with(|| {
            if let Some(watch) = &self.watch {
                let (done, wait) = oneshot::channel();
                if watch.send(Watch::Listen(couple_id, done)).is_ok() {
                    ready = Some(wait);
                }
            }
            broadcast::channel(self.capacity).0
        });
        let subscription = Subscription {
            rx: tx.subscribe(),
            couple_id,
            hub: Arc::clone(self),
        };
        (subscription, ready)
    }

    pub fn deliver(&self, couple_id: Uuid, event: BusEvent) {
        let event = match event {
            BusEvent::Presence { user_id, online } => {
                let changed = lock(&self.presence).insert(user_id, online) != Some(online);
                if !changed {
                    return;
                }
                BusEvent::Frame {
                    seq: None,
                    skip_user: Some(user_id),
                    json: ServerFrame::Presence { user_id, online }.to_text(),
                }
            }
            event => event,
        };
        if let Some(tx) = lock(&self.channels).get(&couple_id) {
            // No receiver left is fine: nobody of this couple is connected here.
            let _ = tx.send(event);
        }
    }

    /// Tells every local session to catch up from the database: the channel may have lost
    /// events (the Redis subscriber reconnected).
    pub fn resync_all(&self) {
        for tx in lock(&self.channels).values() {
            let _ = tx.send(BusEvent::Resync);
        }
    }

    /// Couples with at least one local session.
    pub fn couples(&self) -> Vec<Uuid> {
        lock(&self.channels).keys().copied().collect()
    }

    pub fn has_couple(&self, couple_id: Uuid) -> bool {
        lock(&self.channels).contains_key(&couple_id)
    }

    /// Counts a local socket; returns how many the user now has here.
    pub fn socket_opened(&self, user_id: Uuid, couple_id: Uuid, partner_id: Uuid) -> usize {
        let mut users = lock(&self.users);
        let local = users.entry(user_id).or_insert(Local {
            sockets: 0,
            couple_id,
            partner_id,
        });
        local.sockets += 1;
        local.sockets
    }

    /// Uncounts a local socket; returns how many the user still has here.
    pub fn socket_closed(&self, user_id: Uuid) -> usize {
        let mut users = lock(&self.users);
        let Some(local) = users.get_mut(&user_id) else {
            return 0;
        };
        local.sockets = local.sockets.saturating_sub(1);
        let left = local.sockets;
        if left == 0 {
            users.remove(&user_id);
        }
        left
    }

    pub fn sockets_of(&self, user_id: Uuid) -> usize {
        lock(&self.users).get(&user_id).map_or(0, |l| l.sockets)
    }

    /// Users with a socket here.
    pub fn local_users(&self) -> Vec<Uuid> {
        lock(&self.users).keys().copied().collect()
    }

    /// `(couple, partner)` for every local user: whose presence this node's sockets care about.
    pub fn watched_partners(&self) -> Vec<(Uuid, Uuid)> {
        lock(&self.users)
            .values()
            .map(|l| (l.couple_id, l.partner_id))
            .collect()
    }

    /// Records what a socket was told in `hello`, so the next change is recognized as one.
    pub fn note_presence(&self, user_id: Uuid, online: bool) {
        lock(&self.presence).insert(user_id, online);
    }
}

/// A poisoned lock only means another thread panicked mid-update of a plain map; the map is
/// still usable, and a chat server should keep serving rather than cascade the panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A session's place on its couple's channel. Dropping it leaves the channel, and the last
/// one to leave removes it (and the backend stops listening).
pub struct Subscription {
    pub rx: broadcast::Receiver<BusEvent>,
    couple_id: Uuid,
    hub: Arc<Hub>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut channels = lock(&self.hub.channels);
        // Our own receiver is still alive here, hence 1.
        if channels
            .get(&self.couple_id)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            channels.remove(&self.couple_id);
            if let Some(watch) = &self.hub.watch {
                let _ = watch.send(Watch::Forget(self.couple_id));
            }
        }
    }
}
