//! A node's local fan-out: couple id -> the broadcast channel its local sessions listen on,
//! and user id -> how many sockets the user holds here. Whatever the bus backend, events end
//! up delivered through a hub.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;
use uuid::Uuid;

use super::BusEvent;

pub struct Hub {
    /// Events a session may fall behind by before it is told it lagged (it then catches up
    /// from the database instead).
    capacity: usize,
    channels: Mutex<HashMap<Uuid, broadcast::Sender<BusEvent>>>,
    sockets: Mutex<HashMap<Uuid, usize>>,
}

impl Hub {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Hub {
            capacity: capacity.max(16),
            channels: Mutex::default(),
            sockets: Mutex::default(),
        })
    }

    pub fn subscribe(self: &Arc<Self>, couple_id: Uuid) -> Subscription {
        let rx = lock(&self.channels)
            .entry(couple_id)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe();
        Subscription {
            rx,
            couple_id,
            hub: Arc::clone(self),
        }
    }

    pub fn deliver(&self, couple_id: Uuid, event: BusEvent) {
        if let Some(tx) = lock(&self.channels).get(&couple_id) {
            // No receiver left is fine: nobody of this couple is connected here.
            let _ = tx.send(event);
        }
    }

    /// Couples with at least one local session.
    pub fn couples(&self) -> Vec<Uuid> {
        lock(&self.channels).keys().copied().collect()
    }

    pub fn socket_opened(&self, user_id: Uuid) -> usize {
        let mut sockets = lock(&self.sockets);
        let count = sockets.entry(user_id).or_default();
        *count += 1;
        *count
    }

    pub fn socket_closed(&self, user_id: Uuid) -> usize {
        let mut sockets = lock(&self.sockets);
        let count = sockets.get(&user_id).copied().unwrap_or_default();
        if count <= 1 {
            sockets.remove(&user_id);
            0
        } else {
            sockets.insert(user_id, count - 1);
            count - 1
        }
    }

    pub fn sockets_of(&self, user_id: Uuid) -> usize {
        lock(&self.sockets)
            .get(&user_id)
            .copied()
            .unwrap_or_default()
    }
}

/// A poisoned lock only means another thread panicked mid-update of a plain map; the map is
/// still usable, and a chat server should keep serving rather than cascade the panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A session's place on its couple's channel. Dropping it leaves the channel, and the last
/// one to leave removes it.
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
        }
    }
}
