//! What the readers of a `rate` step count. Every frame a socket receives is parsed (borrowed,
//! no copies) outside any lock and then tallied into the step's one ledger: a send's client_id
//! names (step nonce, sender, k), so an `ack` marks bit k of the sender's acked set, a partner's
//! `chat` bit k of its delivered set, an `error` bit k of its refused set, and the latency is
//! now minus the slot's scheduled time. Bits already set are duplicates; a k below the highest
//! already delivered to that socket is a reordering; ids of another nonce are stale frames of
//! an earlier step or run.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::Result;
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Frame, Ws, close_label, error_label, named_by};
use crate::report::histogram;
use crate::schedule::{Clock, Gesture, Plan};

/// A fixed-size bitset over one sender's k.
pub struct Bits(Vec<u64>);

impl Bits {
    pub fn new(len: u32) -> Bits {
        Bits(vec![0; (len as usize).div_ceil(64)])
    }

    /// Sets bit k; true if it was not set before.
    pub fn set(&mut self, k: u32) -> bool {
        let (word, bit) = ((k / 64) as usize, 1u64 << (k % 64));
        match self.0.get_mut(word) {
            Some(w) if *w & bit == 0 => {
                *w |= bit;
                true
            }
            _ => false,
        }
    }

    pub fn get(&self, k: u32) -> bool {
        self.0
            .get((k / 64) as usize)
            .is_some_and(|w| w & (1 << (k % 64)) != 0)
    }
}

/// Everything the readers learn during one step. One ledger behind one mutex for all readers:
/// uncontended on the default single-threaded runtime and cheap on two threads, where
/// per-socket histograms (~200 KiB each at this precision) would cost memory and merging.
pub struct Ledger {
    plan: Arc<Plan>,
    pub acked: Vec<Bits>,
    pub delivered: Vec<Bits>,
    refused: Vec<Bits>,
    /// Sends that went out as reactions (a mixed load): no frame names them, so they are
    /// counted, not matched (`reacted_frames`).
    pub reactions: Vec<Bits>,
    pub acked_reactions: u64,
    /// `reacted` frames received: each reaction reaches both partners' sockets.
    pub reacted_frames: u64,
    /// Per receiving socket, the highest k that arrived from its partner.
    highest: Vec<Option<u32>>,
    pub delivery: Histogram<u64>,
    /// Delivery by what was sent (`KINDS`): a mixed load's tail is found in the kind whose
    /// own tail grows, or in the chats around the gestures.
    pub delivery_by_kind: [Histogram<u64>; 3],
    pub ack: Histogram<u64>,
    acked_total: u64,
    refused_total: u64,
    delivered_total: u64,
    pub duplicates: u64,
    pub duplicate_acks: u64,
    pub reordered: u64,
    /// `error` frames by code: those of measured sends and those naming no send.
    pub errors: BTreeMap<String, u64>,
    /// Frames of an earlier step (or run) arriving late.
    pub stale: u64,
    /// Frames that were not JSON of the contract's shape, or named a send that cannot exist.
    pub unreadable: u64,
}

/// The kinds of `Ledger::delivery_by_kind`, in its order (reactions are counted, not timed).
pub const KINDS: [&str; 3] = ["chat", "reply", "edit"];

impl Ledger {
    pub fn new(plan: Arc<Plan>) -> Result<Ledger> {
        let m = plan.sockets as u32;
        let bits = || {
            (0..m)
                .map(|i| Bits::new(plan.sends_of(i)))
                .collect::<Vec<_>>()
        };
        Ok(Ledger {
            acked: bits(),
            delivered: bits(),
            refused: bits(),
            reactions: bits(),
            acked_reactions: 0,
            reacted_frames: 0,
            highest: vec![None; m as usize],
            delivery: histogram()?,
            delivery_by_kind: [histogram()?, histogram()?, histogram()?],
            ack: histogram()?,
            plan,
            acked_total: 0,
            refused_total: 0,
            delivered_total: 0,
            duplicates: 0,
            duplicate_acks: 0,
            reordered: 0,
            errors: BTreeMap::new(),
            stale: 0,
            unreadable: 0,
        })
    }

    /// Which send a frame's client_id names, if it is one of this step's.
    fn send_of(&mut self, client_id: Option<&str>) -> Option<(u32, u32)> {
        let (sender, k) = match client_id.map(|id| self.plan.nonce.decode(id)) {
            Some(Some(send)) => send,
            Some(None) => {
                self.stale += 1;
                return None;
            }
            None => return None,
        };
        if u64::from(sender) >= self.plan.sockets || k >= self.plan.sends_of(sender) {
            self.unreadable += 1;
            return None;
        }
        Some((sender, k))
    }

    /// Socket `me` sends its k-th send as a reaction.
    pub fn mark_reaction(&mut self, me: u32, k: u32) {
        if let Some(bits) = self.reactions.get_mut(me as usize) {
            bits.set(k);
        }
    }

    pub fn on_frame(&mut self, me: u32, frame: &Frame<'_>, now: u64) {
        match frame.kind {
            "chat" => {
                let Some((sender, k)) = self.send_of(frame.client_id) else {
                    return;
                };
                self.delivered_to(me, sender, k, now);
            }
            "edited" => {
                // An edit's text names its send (`m sender k at`); other edits are not ours.
                let Some((sender, k)) = frame.text.as_deref().and_then(named_by) else {
                    return;
                };
                if u64::from(sender) >= self.plan.sockets || k >= self.plan.sends_of(sender) {
                    self.unreadable += 1;
                    return;
                }
                self.delivered_to(me, sender, k, now);
            }
            "reacted" => self.reacted_frames += 1,
            "ack" => {
                let Some((sender, k)) = self.send_of(frame.client_id) else {
                    return;
                };
                if sender != me {
                    self.unreadable += 1;
                    return;
                }
                if !self.acked[sender as usize].set(k) {
                    self.duplicate_acks += 1;
                    return;
                }
                self.acked_total += 1;
                if self.reactions[sender as usize].get(k) {
                    self.acked_reactions += 1;
                }
                if self.plan.measured(sender, k) {
                    let latency = now.saturating_sub(self.plan.at_us(sender, k));
                    self.ack.saturating_record(latency.max(1));
                }
            }
            "error" => {
                let code = frame.code.unwrap_or("(no code)");
                let counted = match self.send_of(frame.client_id) {
                    Some((sender, k)) => {
                        if self.refused[sender as usize].set(k) {
                            self.refused_total += 1;
                        }
                        self.plan.measured(sender, k)
                    }
                    // An error about no send of ours (or of an earlier step): still worth seeing.
                    None => true,
                };
                if counted {
                    *self.errors.entry(code.to_owned()).or_default() += 1;
                }
            }
            _ => {}
        }
    }

    /// A send of `sender` (a chat, a reply or an edit) reached socket `me`.
    fn delivered_to(&mut self, me: u32, sender: u32, k: u32, now: u64) {
        // Our own sends come back to us too; only the partner's delivery counts.
        if sender == me {
            return;
        }
        if sender != (me ^ 1) {
            self.unreadable += 1;
            return;
        }
        if !self.delivered[sender as usize].set(k) {
            self.duplicates += 1;
            return;
        }
        self.delivered_total += 1;
        let highest = &mut self.highest[me as usize];
        match *highest {
            Some(h) if k < h => self.reordered += 1,
            _ => *highest = Some(k),
        }
        if self.plan.measured(sender, k) {
            let latency = now.saturating_sub(self.plan.at_us(sender, k)).max(1);
            self.delivery.saturating_record(latency);
            let kind = match self.plan.gesture(sender, k) {
                Gesture::Reply => 1,
                Gesture::Edit => 2,
                Gesture::Chat | Gesture::React => 0,
            };
            self.delivery_by_kind[kind].saturating_record(latency);
        }
    }

    /// Every send written has its answer and every acked send reached the partner.
    pub fn settled(&self, written: u64) -> bool {
        self.acked_total + self.refused_total >= written
            && self.delivered_total + self.acked_reactions >= self.acked_total
            && self.reacted_frames >= 2 * self.acked_reactions
    }
}

/// What the readers share with the coordinator.
pub struct Shared {
    pub clock: Clock,
    pub ledger: Mutex<Option<Ledger>>,
    /// Sockets that ended, by close code (or how the stream ended), over the whole run.
    pub closes: Mutex<BTreeMap<String, u64>>,
    /// Sends written in the current step.
    pub written: AtomicU64,
    /// Per socket, its latest acked chat: what a mixed load's next gesture targets (kept
    /// only when `mixed`).
    pub targets: Mutex<Vec<Option<String>>>,
    pub mixed: bool,
}

impl Shared {
    pub fn ledger(&self) -> MutexGuard<'_, Option<Ledger>> {
        // A reader that panicked cannot leave the tallies half-updated in a way worth losing
        // the run over.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Socket `me`'s latest acked chat, if any yet.
    pub fn target(&self, me: u32) -> Option<String> {
        let targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        targets.get(me as usize).cloned().flatten()
    }

    pub fn closes(&self) -> MutexGuard<'_, BTreeMap<String, u64>> {
        self.closes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A socket's reader: timestamps each frame as it arrives, tallies it into the current step's
/// ledger (frames between steps are dropped), and records how the socket ended.
pub async fn read_loop(mut stream: SplitStream<Ws>, me: u32, shared: Arc<Shared>) {
    let ended = loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => {
                let now = shared.clock.now_us();
                // Parse before taking the lock: the critical section is only the tally.
                let frame = Frame::parse(text.as_str());
                if let Some(ledger) = shared.ledger().as_mut() {
                    match &frame {
                        Some(frame) => ledger.on_frame(me, frame, now),
                        None => ledger.unreadable += 1,
                    }
                }
                // The chat an ack names (a new chat, or a gesture's target) is the next target.
                if shared.mixed
                    && let Some(Frame {
                        kind: "ack",
                        id: Some(id),
                        ..
                    }) = &frame
                {
                    let mut targets = shared
                        .targets
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    if let Some(slot) = targets.get_mut(me as usize) {
                        *slot = Some((*id).to_owned());
                    }
                }
            }
            Some(Ok(Message::Binary(_))) => {
                if let Some(ledger) = shared.ledger().as_mut() {
                    ledger.unreadable += 1;
                }
            }
            Some(Ok(Message::Close(frame))) => break close_label(frame.as_ref()),
            Some(Ok(_)) => {}
            Some(Err(e)) => break error_label(&e),
            None => break "eof".to_owned(),
        }
    };
    *shared.closes().entry(ended).or_default() += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_tell_first_from_repeated() {
        let mut bits = Bits::new(130);
        assert!(bits.set(129));
        assert!(!bits.set(129));
        assert!(bits.get(129) && !bits.get(128));
        assert!(!bits.set(1_000));
    }

    #[test]
    fn a_mixed_loads_deliveries_are_timed_by_what_was_sent() -> anyhow::Result<()> {
        let plan = Plan {
            nonce: crate::client::Nonce::random(),
            sockets: 2,
            rate: 100.0,
            t0_us: 1_000,
            warm_slots: 0,
            end_slots: 200,
            mix: crate::schedule::Mix::parse("reactions=10,replies=5,edits=5")?,
        };
        let mut ledger = Ledger::new(Arc::new(plan))?;
        // Socket 0 hears each of its partner's hundred sends but the reactions (counted,
        // not timed).
        for k in 0..100 {
            if ledger.plan.gesture(1, k) != Gesture::React {
                ledger.delivered_to(0, 1, k, 1_000_000);
            }
        }
        let counts: Vec<u64> = ledger.delivery_by_kind.iter().map(|h| h.len()).collect();
        assert_eq!(counts, [80, 5, 5], "chats, replies, edits");
        assert_eq!(ledger.delivery.len(), 90);
        Ok(())
    }
}
