//! The per-user socket limits: how many sockets a user holds on this node at once, and how
//! many they open per minute. A user's sockets are counted when the upgrade is accepted, not
//! when the session starts: counted later, several upgrades arriving together would all see
//! room and all pass. Openings are counted only for upgrades that passed every other check,
//! so a refused one does not use up the user's share; a client reconnecting in a tight loop
//! (each socket costs a replay) is told to wait.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

/// How often the opening counts of users back to a full burst are forgotten.
const TRIM_PERIOD: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Seats {
    taken: Mutex<HashMap<Uuid, usize>>,
    /// Sockets opened per user per minute (`DUET_SOCKET_RATE_PER_USER`).
    openings: PerMinute,
}

/// So many of something per user per minute (and as many at once), on this node.
#[derive(Default)]
pub struct PerMinute {
    /// `None`: unlimited.
    limiter: Option<DefaultKeyedRateLimiter<Uuid>>,
    /// When the counts were last trimmed.
    trimmed: Mutex<Option<Instant>>,
}

impl PerMinute {
    /// At most `per_minute` per user; 0: no limit.
    pub fn new(per_minute: u32) -> PerMinute {
        PerMinute {
            limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            trimmed: Mutex::default(),
        }
    }

    /// Counts one for the user; `Err` with how long to wait when they have had their share.
    pub fn check(&self, user_id: Uuid) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        self.trim(limiter);
        limiter
            .check_key(&user_id)
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }

    /// Forgets users whose share is full again (they behave exactly like unseen ones), at
    /// most once a period, so the map holds only the users of the last minute or two.
    fn trim(&self, limiter: &DefaultKeyedRateLimiter<Uuid>) {
        let mut trimmed = self.trimmed.lock().unwrap_or_else(|p| p.into_inner());
        if trimmed.is_some_and(|at| at.elapsed() < TRIM_PERIOD) {
            return;
        }
        *trimmed = Some(Instant::now());
        drop(trimmed);
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

/// One socket's place in its user's count; dropping it (the socket closed, or the upgrade
/// never completed) frees the place.
pub struct Seat {
    seats: Arc<Seats>,
    user_id: Uuid,
}

impl Seats {
    /// Seats with at most `per_minute` openings per user (and as many at once); 0: no limit.
    pub fn new(per_minute: u32) -> Seats {
        Seats {
            openings: PerMinute::new(per_minute),
            ..Seats::default()
        }
    }

    /// Counts one socket the user opens; `Err` with how long to wait when they have opened
    /// their share of the minute.
    pub fn open(&self, user_id: Uuid) -> Result<(), Duration> {
        self.openings.check(user_id)
    }

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
    #![allow(clippy::unwrap_used)]

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

    #[test]
    fn a_user_opens_at_most_the_rate_and_others_are_not_counted_with_them() {
        let seats = Seats::new(3);
        let user = Uuid::new_v4();
        for _ in 0..3 {
            assert!(seats.open(user).is_ok());
        }
        let wait = seats.open(user).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(seats.open(Uuid::new_v4()).is_ok());
        let unlimited = Seats::new(0);
        for _ in 0..100 {
            assert!(unlimited.open(user).is_ok());
        }
    }
}
