//! The open-loop schedule of a `rate` step and the writers that keep it. Slot n of a step is
//! due at t0 + n/R, dealt round-robin to the M sockets (the socket at position p owns slots
//! p, p+M, p+2M, ...; partners are M/2 positions apart), so each socket sends every M/R
//! seconds and the total is evenly spread. A
//! writer sleeps until its next slot; when it wakes late (a busy machine, a blocked socket) it
//! feeds everything already due and flushes once, and the lateness lands in the latencies,
//! which are measured from the slots' times. The runtime's timer has 1 ms granularity, so a
//! send leaves up to ~1 ms after its slot: that is part of every latency reported (and bounded
//! by `send_lag_max_ms`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Nonce, Ws, edit_frame, error_label, react_frame, reply_frame, send_frame};
use crate::ledger::Shared;

/// Microseconds since the run began: the one time base of schedules and arrivals.
#[derive(Clone, Copy)]
pub struct Clock(pub Instant);

impl Clock {
    pub fn now_us(self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }

    pub async fn sleep_until(self, us: u64) {
        tokio::time::sleep_until((self.0 + Duration::from_micros(us)).into()).await;
    }
}

/// One step's schedule. Slot n (0, 1, 2, ...) is due at t0 + n/R; socket i sends slots
/// i + k*M for k = 0, 1, ... (M sockets). Slots before `warm_slots` are the warm-up.
pub struct Plan {
    pub nonce: Nonce,
    pub sockets: u64,
    pub rate: f64,
    pub t0_us: u64,
    pub warm_slots: u64,
    pub end_slots: u64,
    /// What share of the sends are reactions, replies and edits instead of chats.
    pub mix: Mix,
}

/// A mixed load: percentages of the sends that are reactions, replies and edits (the rest are
/// plain chats). Each targets the socket's own latest acked chat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mix {
    pub reactions: u8,
    pub replies: u8,
    pub edits: u8,
}

/// What one slot sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gesture {
    Chat,
    Reply,
    Edit,
    React,
}

impl Mix {
    /// `reactions=10,replies=5,edits=5`.
    pub fn parse(spec: &str) -> anyhow::Result<Mix> {
        let mut mix = Mix::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--mix wants name=percent, got {part:?}"))?;
            let value: u8 = value.parse()?;
            match name {
                "reactions" => mix.reactions = value,
                "replies" => mix.replies = value,
                "edits" => mix.edits = value,
                other => anyhow::bail!("--mix knows reactions, replies and edits, not {other:?}"),
            }
        }
        if u32::from(mix.reactions) + u32::from(mix.replies) + u32::from(mix.edits) > 100 {
            anyhow::bail!("--mix adds up to more than 100%");
        }
        Ok(mix)
    }
}

impl Plan {
    /// What socket i's k-th send is: spread evenly (a fixed permutation of 100 slots), the
    /// same for every run.
    pub fn gesture(&self, i: u32, k: u32) -> Gesture {
        let wheel = ((u64::from(k) * 37 + u64::from(i) * 11) % 100) as u8;
        let Mix {
            reactions,
            replies,
            edits,
        } = self.mix;
        if wheel < reactions {
            Gesture::React
        } else if wheel < reactions + replies {
            Gesture::Reply
        } else if wheel < reactions + replies + edits {
            Gesture::Edit
        } else {
            Gesture::Chat
        }
    }

    fn slot(&self, i: u32, k: u32) -> u64 {
        u64::from(k) * self.sockets + self.position(i)
    }

    /// Where socket i sends within each round of slots. Sockets 2c and 2c+1 are couple c's
    /// partners A and B (on different nodes). Positions alternate A, B, A, B, so each node
    /// gets every other slot, and B of couple c sits half a round after A: side by side,
    /// partners would send a slot apart every time and every couple's commits on the two
    /// nodes would meet at the couple's lock, which no couple does.
    fn position(&self, i: u32) -> u64 {
        let couples = self.sockets / 2;
        let i = u64::from(i);
        if i >= 2 * couples {
            return i;
        }
        let (couple, side) = (i / 2, i % 2);
        2 * ((couple + side * (couples / 2)) % couples) + side
    }

    fn slot_us(&self, slot: u64) -> u64 {
        self.t0_us + (slot as f64 * 1e6 / self.rate) as u64
    }

    pub fn at_us(&self, i: u32, k: u32) -> u64 {
        self.slot_us(self.slot(i, k))
    }

    /// How many sends socket i makes in this step (warm-up included).
    pub fn sends_of(&self, i: u32) -> u32 {
        self.end_slots
            .saturating_sub(self.position(i))
            .div_ceil(self.sockets) as u32
    }

    /// Socket i's first k inside the measured window.
    pub fn first_measured(&self, i: u32) -> u32 {
        self.warm_slots
            .saturating_sub(self.position(i))
            .div_ceil(self.sockets) as u32
    }

    pub fn measured(&self, i: u32, k: u32) -> bool {
        self.slot(i, k) >= self.warm_slots
    }

    pub fn window_start_us(&self) -> u64 {
        self.slot_us(self.warm_slots)
    }

    pub fn window_end_us(&self) -> u64 {
        self.slot_us(self.end_slots)
    }

    pub fn window_sends(&self) -> u64 {
        self.end_slots - self.warm_slots
    }
}

/// A writer's account of one step.
#[derive(Default)]
pub struct Written {
    /// Sends written (k reached).
    pub sent: u32,
    /// Of which in the measured window.
    pub measured: u64,
    /// When the last measured send was flushed.
    pub last_flush_us: u64,
    /// How late the writer was at worst, from a send's scheduled time to its feeding.
    pub max_lag_us: u64,
    /// For each measured send, from its scheduled time to the flush that wrote it: the
    /// generator's own share of every latency it reports.
    pub flushed_after_us: Vec<u64>,
    /// Why the socket stopped taking writes.
    pub error: Option<String>,
}

/// One step for one writer: the plan to follow, and where to report when done.
pub struct Job {
    pub plan: Arc<Plan>,
    pub done: oneshot::Sender<Written>,
}

/// A socket's writer: follows each step's plan it is handed. Once its socket has failed it
/// answers every later step at once with that failure, so a step never waits on a dead socket.
pub async fn write_loop(
    mut sink: SplitSink<Ws, Message>,
    me: u32,
    shared: Arc<Shared>,
    mut jobs: mpsc::Receiver<Job>,
) {
    let mut broken: Option<String> = None;
    while let Some(job) = jobs.recv().await {
        let written = match &broken {
            Some(why) => Written {
                error: Some(why.clone()),
                ..Written::default()
            },
            None => follow(&mut sink, me, &job.plan, &shared).await,
        };
        if broken.is_none() {
            broken.clone_from(&written.error);
        }
        let _ = job.done.send(written);
    }
}

/// Sends socket `me`'s part of the plan on time, or as soon as possible when late.
async fn follow(
    sink: &mut SplitSink<Ws, Message>,
    me: u32,
    plan: &Plan,
    shared: &Shared,
) -> Written {
    let clock = shared.clock;
    let sends = plan.sends_of(me);
    let mut written = Written::default();
    let mut reactions = 0u32;
    let mut k = 0u32;
    while k < sends {
        clock.sleep_until(plan.at_us(me, k)).await;
        let now = clock.now_us();
        written.max_lag_us = written
            .max_lag_us
            .max(now.saturating_sub(plan.at_us(me, k)));
        let mut fed = 0u32;
        let mut measured = 0u64;
        let first_measured_slot = written.flushed_after_us.len();
        // Everything due by now goes in one write.
        while k < sends && plan.at_us(me, k) <= now {
            let at = plan.at_us(me, k);
            let id = plan.nonce.client_id(me, k);
            let gesture = plan.gesture(me, k);
            // A gesture needs a chat of the socket's own to target; until one is acked, a chat.
            let target = match gesture {
                Gesture::Chat => None,
                _ => shared.target(me),
            };
            let frame = match (gesture, target) {
                (Gesture::Reply, Some(to)) => reply_frame(id, me, k, at, &to),
                (Gesture::Edit, Some(chat)) => edit_frame(id, me, k, at, &chat),
                (Gesture::React, Some(chat)) => {
                    // Marked before it leaves, so its ack always finds it marked.
                    if let Some(ledger) = shared.ledger().as_mut() {
                        ledger.mark_reaction(me, k);
                    }
                    reactions += 1;
                    react_frame(id, &chat, reactions)
                }
                _ => send_frame(id, me, k, at),
            };
            if let Err(e) = sink.feed(frame).await {
                written.error = Some(format!("write: {}", error_label(&e)));
                return written;
            }
            if plan.measured(me, k) {
                measured += 1;
                // The slot's time for now; the flush below makes it the lateness.
                written.flushed_after_us.push(at);
            }
            fed += 1;
            k += 1;
        }
        if let Err(e) = sink.flush().await {
            written.error = Some(format!("write: {}", error_label(&e)));
            return written;
        }
        let flushed = clock.now_us();
        for after in &mut written.flushed_after_us[first_measured_slot..] {
            *after = flushed.saturating_sub(*after);
        }
        written.sent += fed;
        written.measured += measured;
        shared.written.fetch_add(u64::from(fed), Ordering::Relaxed);
        if measured > 0 {
            written.last_flush_us = clock.now_us();
        }
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(sockets: u64, rate: f64, warm_slots: u64, end_slots: u64) -> Plan {
        Plan {
            nonce: Nonce::random(),
            sockets,
            rate,
            t0_us: 1_000,
            warm_slots,
            end_slots,
            mix: Mix::default(),
        }
    }

    #[test]
    fn a_mix_deals_its_shares_over_every_hundred_sends() -> anyhow::Result<()> {
        let mut p = plan(2, 100.0, 0, 200);
        p.mix = Mix::parse("reactions=10,replies=5,edits=5")?;
        let count = |g| (0..100).filter(|&k| p.gesture(1, k) == g).count();
        assert_eq!(
            [
                count(Gesture::React),
                count(Gesture::Reply),
                count(Gesture::Edit),
                count(Gesture::Chat)
            ],
            [10, 5, 5, 80]
        );
        assert!(Mix::parse("reactions=60,edits=50").is_err());
        assert_eq!(Mix::parse("")?, Mix::default());
        Ok(())
    }

    #[test]
    fn every_slot_is_sent_once_and_the_window_is_counted_exactly() {
        let p = plan(6, 1000.0, 7, 50);
        let mut slots: Vec<u64> = (0..6)
            .flat_map(|i| (0..p.sends_of(i)).map(move |k| (i, k)))
            .map(|(i, k)| p.slot(i, k))
            .collect();
        slots.sort_unstable();
        assert_eq!(slots, (0..50).collect::<Vec<_>>());
        let measured: u64 = (0..6)
            .map(|i| u64::from(p.sends_of(i) - p.first_measured(i)))
            .sum();
        assert_eq!(measured, p.window_sends());
        for i in 0..6 {
            let first = p.first_measured(i);
            assert!(first == 0 || !p.measured(i, first - 1));
            assert!(first == p.sends_of(i) || p.measured(i, first));
        }
    }

    #[test]
    fn partners_send_half_a_period_apart() {
        // Three couples at 1,000/s: each socket sends every 6 ms; the two partners of a
        // couple are 3 ms apart, whichever goes first.
        let p = plan(6, 1000.0, 7, 50);
        for couple in 0..3 {
            let (a, b) = (p.at_us(2 * couple, 0), p.at_us(2 * couple + 1, 0));
            assert_eq!(a.abs_diff(b), 3_000, "couple {couple}");
        }
        // And the nodes take turns: partner A, partner B, partner A ...
        let mut order: Vec<u32> = (0..6).collect();
        order.sort_by_key(|&i| p.at_us(i, 0));
        let sides: Vec<u32> = order.iter().map(|i| i % 2).collect();
        assert_eq!(sides, [0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn sends_are_spread_one_slot_apart() {
        let p = plan(4, 2000.0, 0, 100);
        assert_eq!(p.at_us(0, 0), 1_000);
        // Socket 3, the second couple's B, follows the first couple's A; that couple's B
        // (socket 1) sends half a round after its A.
        assert_eq!(p.at_us(3, 0), 1_500);
        assert_eq!(p.at_us(2, 0), 2_000);
        assert_eq!(p.at_us(1, 0), 2_500);
        assert_eq!(p.at_us(0, 1), 3_000);
        assert_eq!(p.window_end_us(), 51_000);
    }
}
