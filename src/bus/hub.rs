//! A node's local fan-out: couple id -> the outboxes of that couple's sockets on this node,
//! user id -> how many sockets the user holds here, and what this node last told its sockets
//! about each partner's presence. Whatever the bus backend, events reach sockets through a
//! hub: delivering one is a push onto each local outbox of the couple, sharing one encoded
//! frame, so a couple present on a node costs a short vector, not a ring of slots.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::BusEvent;
use super::outbox::{Delivery, Outbox};
use crate::frame::ServerFrame;

/// Asks the bus backend to start or stop listening to a couple's channel (Redis SUBSCRIBE /
/// UNSUBSCRIBE). `Listen` carries a reply for when the subscription is active.
pub enum Watch {
    Listen(Uuid, oneshot::Sender<()>),
    Forget(Uuid),
}

/// Telling every local session to catch up goes in steps of this many couples, this far
/// apart: a few couples hear at once, thousands do not send the database all their reads in
/// the same millisecond (10,000 couples take half a second).
const RESYNC_STEP: usize = 100;
const RESYNC_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

struct Local {
    sockets: usize,
    /// Sockets whose client shows the conversation (not a hidden tab): while any socket of
    /// the user anywhere does, nothing is pushed to their devices.
    looking: usize,
    couple_id: Uuid,
    partner_id: Uuid,
}

/// A socket of a couple on this node.
struct Listener {
    user_id: Uuid,
    outbox: Arc<Outbox>,
}

/// This node's sockets by couple and user: where an event of a couple, from this node or
/// from the bus, is handed to each local socket's `Outbox`, and where the presence of the
/// users present here is kept and passed on. The only per-node state of a chat.
pub struct Hub {
    couples: Mutex<HashMap<Uuid, Vec<Listener>>>,
    users: Mutex<HashMap<Uuid, Local>>,
    /// The presence this node last passed on, per user, with the couple it was for: a change
    /// is forwarded, a repeat is not. Entries go with the couple's last local socket, so the
    /// map holds only the people of couples present here.
    presence: Mutex<HashMap<Uuid, (Uuid, bool)>>,
    watch: Option<mpsc::UnboundedSender<Watch>>,
}

impl Hub {
    pub fn new(watch: Option<mpsc::UnboundedSender<Watch>>) -> Arc<Self> {
        Arc::new(Hub {
            couples: Mutex::default(),
            users: Mutex::default(),
            presence: Mutex::default(),
            watch,
        })
    }

    /// Adds a socket's outbox to its couple; the receiver, when present, resolves once the
    /// backend listens to the couple's channel too.
    pub fn subscribe(
        self: &Arc<Self>,
        couple_id: Uuid,
        user_id: Uuid,
        outbox: Arc<Outbox>,
    ) -> (Subscription, Option<oneshot::Receiver<()>>) {
        let mut couples = lock(&self.couples);
        let mut ready = None;
        let listeners = couples.entry(couple_id).or_insert_with(|| {
            if let Some(watch) = &self.watch {
                let (done, wait) = oneshot::channel();
                if watch.send(Watch::Listen(couple_id, done)).is_ok() {
                    ready = Some(wait);
                }
            }
            Vec::with_capacity(2)
        });
        listeners.push(Listener {
            user_id,
            outbox: Arc::clone(&outbox),
        });
        let subscription = Subscription {
            couple_id,
            outbox,
            hub: Arc::clone(self),
        };
        (subscription, ready)
    }

    pub fn deliver(&self, couple_id: Uuid, event: BusEvent) {
        let event = match event {
            BusEvent::Presence { user_id, online } => {
                // Under the couples' lock: a couple with nobody here leaves no entry behind.
                let couples = lock(&self.couples);
                if !couples.contains_key(&couple_id) {
                    return;
                }
                let before = lock(&self.presence).insert(user_id, (couple_id, online));
                drop(couples);
                if before.map(|(_, was)| was) == Some(online) {
                    return;
                }
                BusEvent::Frame {
                    seq: None,
                    skip_user: Some(user_id),
                    from: None,
                    json: ServerFrame::Presence { user_id, online }.to_text(),
                }
            }
            event => event,
        };
        let couples = lock(&self.couples);
        let Some(listeners) = couples.get(&couple_id) else {
            // Nobody of this couple is connected here.
            return;
        };
        let skip = match &event {
            BusEvent::Frame { skip_user, .. } => *skip_user,
            _ => None,
        };
        for listener in listeners {
            if Some(listener.user_id) != skip {
                listener.outbox.push(Delivery::Event(event.clone()));
            }
        }
    }

    /// Tells every local session to catch up from the database: the channel may have lost
    /// events (the Redis subscriber reconnected). Couples are told in a random order, in steps
    /// of `RESYNC_STEP`, so a node with thousands of sessions does not send the database
    /// thousands of reads in the same millisecond.
    pub fn resync_all(self: &Arc<Self>) {
        self.resync(self.couples());
    }

    /// Tells the local sessions of these couples to catch up, spread like `resync_all`.
    pub fn resync(self: &Arc<Self>, mut couples: Vec<Uuid>) {
        use rand::seq::SliceRandom;
        if couples.is_empty() {
            return;
        }
        couples.shuffle(&mut rand::rng());
        let hub = Arc::clone(self);
        tokio::spawn(async move {
            for (i, slice) in couples.chunks(RESYNC_STEP).enumerate() {
                if i > 0 {
                    tokio::time::sleep(RESYNC_PAUSE).await;
                }
                for couple in slice {
                    hub.deliver(*couple, BusEvent::Resync);
                }
            }
        });
    }

    /// Couples with at least one local session.
    pub fn couples(&self) -> Vec<Uuid> {
        lock(&self.couples).keys().copied().collect()
    }

    pub fn has_couple(&self, couple_id: Uuid) -> bool {
        lock(&self.couples).contains_key(&couple_id)
    }

    /// Counts a local socket, looking at the conversation until its client says otherwise;
    /// returns how many sockets of the user are here now, and how many of them look.
    pub fn socket_opened(
        &self,
        user_id: Uuid,
        couple_id: Uuid,
        partner_id: Uuid,
    ) -> (usize, usize) {
        let mut users = lock(&self.users);
        let local = users.entry(user_id).or_insert(Local {
            sockets: 0,
            looking: 0,
            couple_id,
            partner_id,
        });
        local.sockets += 1;
        local.looking += 1;
        (local.sockets, local.looking)
    }

    /// A socket's client started or stopped looking; returns how many of the user's sockets
    /// here look now.
    pub fn looking_changed(&self, user_id: Uuid, looking: bool) -> usize {
        let mut users = lock(&self.users);
        let Some(local) = users.get_mut(&user_id) else {
            return 0;
        };
        local.looking = if looking {
            (local.looking + 1).min(local.sockets)
        } else {
            local.looking.saturating_sub(1)
        };
        local.looking
    }

    pub fn looking_of(&self, user_id: Uuid) -> usize {
        lock(&self.users).get(&user_id).map_or(0, |l| l.looking)
    }

    /// `(couple, user)` for every user looking from a socket here: whose looking entries this
    /// node renews.
    pub fn local_lookers(&self) -> Vec<(Uuid, Uuid)> {
        lock(&self.users)
            .iter()
            .filter(|(_, l)| l.looking > 0)
            .map(|(user, l)| (l.couple_id, *user))
            .collect()
    }

    /// Uncounts a local socket (`looking`: whether its client was looking); returns how many
    /// sockets the user still has here, and how many of them look.
    pub fn socket_closed(&self, user_id: Uuid, looking: bool) -> (usize, usize) {
        let mut users = lock(&self.users);
        let Some(local) = users.get_mut(&user_id) else {
            return (0, 0);
        };
        local.sockets = local.sockets.saturating_sub(1);
        if looking {
            local.looking = local.looking.saturating_sub(1);
        }
        let left = (local.sockets, local.looking);
        if left.0 == 0 {
            users.remove(&user_id);
        }
        left
    }

    pub fn sockets_of(&self, user_id: Uuid) -> usize {
        lock(&self.users).get(&user_id).map_or(0, |l| l.sockets)
    }

    /// `(couple, (user, partner))` for every user with a socket here: whose presence this
    /// node renews, and whose partner's presence its sockets care about.
    pub fn local_users(&self) -> Vec<(Uuid, (Uuid, Uuid))> {
        lock(&self.users)
            .iter()
            .map(|(user, l)| (l.couple_id, (*user, l.partner_id)))
            .collect()
    }

    /// Records what a socket was told in `hello`, so the next change is recognized as one.
    pub fn note_presence(&self, couple_id: Uuid, user_id: Uuid, online: bool) {
        lock(&self.presence).insert(user_id, (couple_id, online));
    }

    /// People whose presence this node remembers.
    pub fn presence_len(&self) -> usize {
        lock(&self.presence).len()
    }
}

/// A poisoned lock only means another thread panicked mid-update of a plain map; the map is
/// still usable, and a chat server should keep serving rather than cascade the panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A socket's place in its couple's fan-out. Dropping it leaves, and the last one to leave
/// removes the couple (and the backend stops listening).
pub struct Subscription {
    couple_id: Uuid,
    outbox: Arc<Outbox>,
    hub: Arc<Hub>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.outbox.close();
        let mut couples = lock(&self.hub.couples);
        let Some(listeners) = couples.get_mut(&self.couple_id) else {
            return;
        };
        listeners.retain(|l| !Arc::ptr_eq(&l.outbox, &self.outbox));
        if listeners.is_empty() {
            couples.remove(&self.couple_id);
            lock(&self.hub.presence).retain(|_, (couple_id, _)| *couple_id != self.couple_id);
            if let Some(watch) = &self.hub.watch {
                let _ = watch.send(Watch::Forget(self.couple_id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn presence_is_forgotten_with_the_couples_last_socket() {
        let hub = Hub::new(None);
        let (couple, mina, joon) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let laptop = hub.subscribe(couple, mina, Arc::new(Outbox::new(16))).0;
        let phone = hub.subscribe(couple, mina, Arc::new(Outbox::new(16))).0;
        hub.note_presence(couple, joon, true);
        hub.deliver(
            couple,
            BusEvent::Presence {
                user_id: joon,
                online: false,
            },
        );
        // A couple with nobody here is not remembered at all.
        hub.deliver(
            Uuid::now_v7(),
            BusEvent::Presence {
                user_id: Uuid::now_v7(),
                online: true,
            },
        );
        assert_eq!(hub.presence_len(), 1);
        drop(laptop);
        assert_eq!(
            hub.presence_len(),
            1,
            "a socket of the couple is still here"
        );
        drop(phone);
        assert_eq!(hub.presence_len(), 0);
    }
}
