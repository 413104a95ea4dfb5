//! The per-user socket limit. A user's sockets on this node are counted when the upgrade is
//! accepted, not when the session starts: counted later, several upgrades arriving together
//! would all see room and all pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;

#[derive(Default)]
pub struct Seats {
    taken: Mutex<HashMap<Uuid, usize>>,
}

/// One socket's place in its user's count; dropping it (the socket closed, or the upgrade
/// never completed) frees the place.
pub struct Seat {
    seats: Arc<Seats>,
    user_id: Uuid,
}

impl Seats {
    /// A place for one more socket of the user, if they hold fewer than `max`.
    pub fn take(self: &Arc<Self>, user_id: Uuid, max: usize) -> Option<Seat> {
        let mut taken = self.lock();
        let count = taken.entry(user_id).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Seat {
            seats: Arc::clone(self),
            user_id,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, usize>> {
        // A plain map of counts stays usable after a panic elsewhere.
        self.taken.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut taken = self.seats.lock();
        if let Some(count) = taken.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                taken.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_at_most_max_seats_and_a_dropped_one_is_free_again() {
        let seats = Arc::new(Seats::default());
        let user = Uuid::new_v4();
        let one = seats.take(user, 2);
        let two = seats.take(user, 2);
        assert!(one.is_some() && two.is_some());
        assert!(seats.take(user, 2).is_none());
        assert!(seats.take(Uuid::new_v4(), 2).is_some());
        drop(one);
        assert!(seats.take(user, 2).is_some());
    }
}
