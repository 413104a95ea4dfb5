//! The order a socket gives the couple's events in: every seq once, in order, whatever the
//! bus did. The session feeds it what arrives (bus events, with or without a seq) and what it
//! read from the database (replay and catch-up pages), and asks it what to write now and
//! whether it must read from the database before writing on. No I/O here.
//!
//! `cursor` is the highest seq given. An event at or below it is a duplicate. One above
//! `cursor + 1` is held: two nodes' events can cross on their way here, so it waits a moment
//! for the ones before it, and if the gap has not filled by then the session catches up from
//! the cursor. Events without a seq (typing, presence, answers to this socket) have no place
//! in the order and pass at once.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// The couple's events as one socket must give them.
pub struct Order<T> {
    cursor: i64,
    /// Events that arrived ahead of their turn, by seq.
    early: BTreeMap<i64, T>,
    /// When the gap before `early` stops waiting to fill by itself.
    deadline: Option<Instant>,
    wait: Duration,
    limit: usize,
}

impl<T> Order<T> {
    /// `wait`: how long an early event waits for the ones before it. `limit`: events held at
    /// most; beyond, waiting costs more memory than a catch-up costs reads.
    pub fn new(wait: Duration, limit: usize) -> Self {
        Order {
            cursor: 0,
            early: BTreeMap::new(),
            deadline: None,
            wait,
            limit,
        }
    }

    /// The highest seq given so far: a catch-up reads what comes after it.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// An event from the bus. Yields what is to be written now, in order: the event itself
    /// if its turn has come (or it has no seq), then whatever was held waiting for it.
    pub fn arrive(&mut self, seq: Option<i64>, item: T) -> Released<'_, T> {
        let Some(seq) = seq else {
            return self.released(Some((None, item)), false);
        };
        if seq <= self.cursor {
            return self.released(None, false);
        }
        if seq > self.cursor + 1 {
            self.early.insert(seq, item);
            self.deadline
                .get_or_insert_with(|| Instant::now() + self.wait);
            return self.released(None, false);
        }
        self.cursor = seq;
        self.released(Some((Some(seq), item)), true)
    }

    /// Events up to `seq` were given from the database (a replay or catch-up page).
    pub fn advance_to(&mut self, seq: i64) {
        self.cursor = self.cursor.max(seq);
    }

    /// A catch-up gave every event up to `upto`. What was held and is now given is dropped;
    /// what was held beyond yields if its turn has come. A gap still open waits anew.
    pub fn caught_up(&mut self, upto: i64) -> Released<'_, T> {
        self.advance_to(upto);
        let cursor = self.cursor;
        self.early.retain(|seq, _| *seq > cursor);
        self.deadline = if self.early.is_empty() {
            None
        } else {
            Some(Instant::now() + self.wait)
        };
        self.released(None, true)
    }

    /// True when a gap has waited long enough, or too much is held: the session must read
    /// from the cursor on.
    pub fn behind(&self) -> bool {
        self.early.len() > self.limit || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// When the open gap stops waiting, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn released(&mut self, first: Option<(Option<i64>, T)>, held: bool) -> Released<'_, T> {
        Released {
            order: self,
            first,
            held,
        }
    }

    /// The held event whose turn has come, if any.
    fn next_held(&mut self) -> Option<(i64, T)> {
        let next = loop {
            let Some(entry) = self.early.first_entry() else {
                break None;
            };
            let seq = *entry.key();
            if seq > self.cursor + 1 {
                break None;
            }
            let item = entry.remove();
            if seq == self.cursor + 1 {
                self.cursor = seq;
                break Some((seq, item));
            }
        };
        if self.early.is_empty() {
            self.deadline = None;
        }
        next
    }
}

/// What may be written now, in order, as `(seq, item)`. Drain it: a held event it has not
/// yielded yet stays held.
#[must_use = "what is released must be written"]
pub struct Released<'a, T> {
    order: &'a mut Order<T>,
    first: Option<(Option<i64>, T)>,
    held: bool,
}

impl<T> Iterator for Released<'_, T> {
    type Item = (Option<i64>, T);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if !self.held {
            return None;
        }
        let next = self.order.next_held().map(|(seq, item)| (Some(seq), item));
        self.held = next.is_some();
        next
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const WAIT: Duration = Duration::from_millis(100);

    fn order() -> Order<&'static str> {
        Order::new(WAIT, 4)
    }

    /// Feeds one bus event; returns what the session would write, as seqs (0 for no seq).
    fn arrive(order: &mut Order<&'static str>, seq: Option<i64>) -> Vec<i64> {
        let name = "event";
        order
            .arrive(seq, name)
            .map(|(seq, _)| seq.unwrap_or(0))
            .collect()
    }

    fn caught_up(order: &mut Order<&'static str>, upto: i64) -> Vec<i64> {
        order
            .caught_up(upto)
            .map(|(seq, _)| seq.unwrap_or(0))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn events_in_order_pass_through() {
        let mut order = order();
        for seq in 1..=5 {
            assert_eq!(arrive(&mut order, Some(seq)), [seq]);
        }
        assert_eq!(order.cursor(), 5);
        assert_eq!(order.deadline(), None);
        assert!(!order.behind());
    }

    #[tokio::test(start_paused = true)]
    async fn duplicates_are_dropped() {
        let mut order = order();
        order.advance_to(3);
        assert_eq!(arrive(&mut order, Some(3)), Vec::<i64>::new());
        assert_eq!(arrive(&mut order, Some(1)), Vec::<i64>::new());
        assert_eq!(arrive(&mut order, Some(4)), [4]);
        assert_eq!(arrive(&mut order, Some(4)), Vec::<i64>::new());
        // A duplicate of one held is held once.
        assert_eq!(arrive(&mut order, Some(6)), Vec::<i64>::new());
        assert_eq!(arrive(&mut order, Some(6)), Vec::<i64>::new());
        assert_eq!(arrive(&mut order, Some(5)), [5, 6]);
        assert_eq!(order.cursor(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn an_early_event_is_held_until_the_gap_fills() {
        let mut order = order();
        assert_eq!(arrive(&mut order, Some(1)), [1]);
        assert_eq!(arrive(&mut order, Some(4)), Vec::<i64>::new());
        assert_eq!(arrive(&mut order, Some(3)), Vec::<i64>::new());
        assert_eq!(order.deadline(), Some(Instant::now() + WAIT));
        tokio::time::advance(WAIT / 2).await;
        assert!(!order.behind());
        assert_eq!(arrive(&mut order, Some(2)), [2, 3, 4]);
        assert_eq!(order.cursor(), 4);
        // Filled: nothing waits any more.
        assert_eq!(order.deadline(), None);
        tokio::time::advance(WAIT).await;
        assert!(!order.behind());
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_past_its_deadline_asks_for_a_catch_up_from_the_cursor() {
        let mut order = order();
        assert_eq!(arrive(&mut order, Some(1)), [1]);
        let held_at = Instant::now();
        assert_eq!(arrive(&mut order, Some(3)), Vec::<i64>::new());
        // A later early event does not push the deadline back.
        tokio::time::advance(WAIT / 2).await;
        assert_eq!(arrive(&mut order, Some(5)), Vec::<i64>::new());
        assert_eq!(order.deadline(), Some(held_at + WAIT));
        // A part of the gap filling does not either.
        assert_eq!(arrive(&mut order, Some(2)), [2, 3]);
        assert_eq!(order.deadline(), Some(held_at + WAIT));
        tokio::time::advance(WAIT / 2 - Duration::from_millis(1)).await;
        assert!(!order.behind());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(order.behind());
        assert_eq!(order.cursor(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn too_many_held_asks_for_a_catch_up_at_once() {
        let mut order = order();
        for seq in 2..=5 {
            assert_eq!(arrive(&mut order, Some(seq)), Vec::<i64>::new());
        }
        assert!(!order.behind());
        assert_eq!(arrive(&mut order, Some(6)), Vec::<i64>::new());
        assert!(order.behind());
    }

    #[tokio::test(start_paused = true)]
    async fn a_catch_up_merges_with_what_is_held_without_duplicates() {
        let mut order = order();
        assert_eq!(arrive(&mut order, Some(1)), [1]);
        for seq in [3, 4, 7, 8] {
            assert_eq!(arrive(&mut order, Some(seq)), Vec::<i64>::new());
        }
        tokio::time::advance(WAIT).await;
        assert!(order.behind());
        // The database gave 2 to 5: 3 and 4 were among them; 7 and 8 still wait for 6.
        order.advance_to(5);
        assert_eq!(caught_up(&mut order, 5), Vec::<i64>::new());
        assert!(!order.behind());
        assert_eq!(arrive(&mut order, Some(4)), Vec::<i64>::new());
        assert_eq!(arrive(&mut order, Some(6)), [6, 7, 8]);
        assert_eq!(order.deadline(), None);
        // Held events right after what the catch-up gave are written at once.
        assert_eq!(arrive(&mut order, Some(10)), Vec::<i64>::new());
        assert_eq!(arrive(&mut order, Some(11)), Vec::<i64>::new());
        assert_eq!(caught_up(&mut order, 9), [10, 11]);
        assert_eq!(order.cursor(), 11);
        assert_eq!(order.deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_a_catch_up_did_not_fill_waits_anew() {
        let mut order = order();
        assert_eq!(arrive(&mut order, Some(1)), [1]);
        assert_eq!(arrive(&mut order, Some(5)), Vec::<i64>::new());
        tokio::time::advance(WAIT).await;
        assert!(order.behind());
        // The database had only up to 3 (the rest not visible yet to this read).
        assert_eq!(caught_up(&mut order, 3), Vec::<i64>::new());
        assert!(!order.behind());
        assert_eq!(order.deadline(), Some(Instant::now() + WAIT));
        tokio::time::advance(WAIT).await;
        assert!(order.behind());
        assert_eq!(caught_up(&mut order, 4), [5]);
        assert_eq!(order.deadline(), None);
        assert!(!order.behind());
    }

    #[tokio::test(start_paused = true)]
    async fn events_without_a_seq_pass_at_once() {
        let mut order = order();
        assert_eq!(arrive(&mut order, Some(1)), [1]);
        assert_eq!(arrive(&mut order, Some(3)), Vec::<i64>::new());
        // Typing and presence do not wait behind the gap, and do not fill it.
        assert_eq!(arrive(&mut order, None), [0]);
        assert_eq!(arrive(&mut order, None), [0]);
        assert_eq!(order.cursor(), 1);
        assert_eq!(arrive(&mut order, Some(2)), [2, 3]);
    }
}
