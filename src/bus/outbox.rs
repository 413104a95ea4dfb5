//! What a socket still has to send to its client, pushed by whoever produces it (the hub
//! fanning out a couple's events, the committer answering a send) and taken by the socket's
//! own session, which writes it.
//!
//! A small bounded queue of our own rather than a channel: a node holds one per socket, most
//! of them idle, and this one costs a few dozen bytes while empty (no slots allocated up
//! front, unlike tokio's mpsc) and gives its memory back after a burst. A full outbox means
//! the client does not keep up; the session then closes it (it resumes with `after=`), so a
//! slow client never makes the node buffer without bound.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Mutex, MutexGuard};
use std::task::Poll;
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;

use super::BusEvent;

/// One thing for a socket to send.
#[derive(Debug)]
pub enum Delivery {
    /// An event of the couple, for every socket of it on this node.
    Event(BusEvent),
    /// A frame for this socket alone: the ack or error answering one of its sends.
    Reply(Utf8Bytes),
}

/// One socket's queue of what to write, filled by the hub and the committer and drained by
/// the socket's session. Bounded: a client that reads too slowly overflows it and is closed
/// with 1013 rather than slowing anyone else.
pub struct Outbox {
    queue: Mutex<Queue>,
    waker: AtomicWaker,
}

struct Queue {
    items: VecDeque<Delivery>,
    capacity: usize,
    /// Something was refused because the queue was full: the client is too slow.
    overflowed: bool,
    /// The session is gone: nothing more is accepted.
    closed: bool,
    /// When the oldest of `items` was queued.
    since: Option<Instant>,
}

/// Capacity kept after a burst; beyond it the queue's memory goes back to the allocator.
const KEEP: usize = 16;

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Outbox {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                capacity: capacity.max(8),
                overflowed: false,
                closed: false,
                since: None,
            }),
            waker: AtomicWaker::new(),
        }
    }

    /// Queues a delivery; false when the socket is gone or too slow (the delivery is dropped:
    /// a slow socket is closed and its client resumes from the database).
    pub fn push(&self, delivery: Delivery) -> bool {
        let (accepted, wake) = {
            let mut queue = self.lock();
            if queue.closed || queue.overflowed {
                (false, false)
            } else if queue.items.len() >= queue.capacity {
                // Wake the session so it closes the socket.
                queue.overflowed = true;
                (false, true)
            } else {
                if queue.items.is_empty() {
                    queue.since = Some(Instant::now());
                }
                queue.items.push_back(delivery);
                (true, true)
            }
        };
        if wake {
            self.waker.wake();
        }
        accepted
    }

    /// Waits until there is something, then moves everything queued into `into`, and says
    /// when the oldest of it was queued. `Err` when the queue overflowed.
    pub async fn take(&self, into: &mut VecDeque<Delivery>) -> Result<Instant, Overflowed> {
        poll_fn(|cx| {
            self.waker.register(cx.waker());
            let mut queue = self.lock();
            if queue.overflowed {
                return Poll::Ready(Err(Overflowed));
            }
            if queue.items.is_empty() {
                return Poll::Pending;
            }
            std::mem::swap(&mut queue.items, into);
            if queue.items.capacity() > KEEP {
                queue.items.shrink_to(KEEP);
            }
            Poll::Ready(Ok(queue.since.take().unwrap_or_else(Instant::now)))
        })
        .await
    }

    /// The session ended: later pushes are refused and what is queued is dropped.
    pub fn close(&self) {
        let mut queue = self.lock();
        queue.closed = true;
        queue.items = VecDeque::new();
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic elsewhere while holding this lock leaves a plain queue behind; keep going.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
pub struct Overflowed;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn a_full_outbox_overflows_and_a_closed_one_refuses() {
        let outbox = Outbox::new(8);
        for _ in 0..8 {
            assert!(outbox.push(Delivery::Reply("x".into())));
        }
        let mut taken = VecDeque::new();
        outbox.take(&mut taken).await.unwrap();
        assert_eq!(taken.len(), 8);
        for _ in 0..9 {
            outbox.push(Delivery::Reply("x".into()));
        }
        assert!(outbox.take(&mut VecDeque::new()).await.is_err());
        let closed = Outbox::new(8);
        closed.close();
        assert!(!closed.push(Delivery::Reply("x".into())));
    }
}
