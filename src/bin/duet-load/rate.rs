//! `rate` and `step`: open-loop chat load at fixed rates, the measurement a deployment is
//! sized by.
//!
//! Every couple has two sockets, partner A on one node and partner B on the next, and both
//! send, so with two nodes every chat crosses nodes through the bus. The total rate R is one
//! global schedule of slots 1/R apart dealt round-robin to the 2N sockets: socket i owns slots
//! i, i+2N, i+4N, ..., i.e. it sends every 2N/R seconds with phase i/R, so sends are spread
//! evenly in time instead of arriving in bursts. The schedule is open loop: each send has a
//! scheduled time, a writer that wakes late sends everything due at once (fed, then one flush),
//! and every latency is measured from the scheduled time, so a stalled server (or generator)
//! shows up as latency and not as a politely lower rate (no coordinated omission).
//!
//! Each socket has a writer task (follows the schedule) and a reader task (timestamps and
//! tallies what arrives). A send's client_id encodes (step nonce, sender, k), and its
//! scheduled time is a pure function of (sender, k), so an `ack` or a partner's `chat` is
//! accounted by arithmetic into one per-step ledger: bitsets of acked / delivered / refused
//! sends per sender and two histograms. Each step starts with a warm-up (counted nowhere) and
//! ends with a drain (acks and deliveries still welcome) after which what is missing is lost.
//! `step` runs its steps on the same sockets, back to back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Dialer, Frame, Node, Nonce, Ws, close_label, error_label, send_frame};
use crate::measure::{CpuUse, CpuWatch, pg_commits};
use crate::report::{Latency, Table, cell, histogram, line, note, round1, round3};
use crate::setup::read_tokens;

/// What `rate` and `step` share: where, who, how long, what passes, what else to measure.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// Nodes, HOST:PORT,HOST:PORT. Partner A of each couple connects to the first, B to the
    /// second, so every chat crosses nodes; with one node both are on it. (With more nodes the
    /// 2N sockets are dealt round-robin, so partners are still on different nodes.)
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<String>,
    /// Tokens file written by `setup`.
    #[arg(long)]
    pub tokens: PathBuf,
    /// Couples to use, from the start of the tokens file (default: all of them).
    #[arg(long)]
    pub couples: Option<usize>,
    /// Length of each measured window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub secs: f64,
    /// Warm-up before each window at the same rate, in seconds, not counted.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// After the window, how long to wait for outstanding acks and deliveries before counting
    /// what is missing as lost, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// A step passes when delivery p99 is at most this many ms (and nothing is lost,
    /// duplicated or unacked, and at least 97% of the target rate was sent).
    #[arg(long, default_value_t = 50.0)]
    pub p99_ms: f64,
    /// Measure the CPU time of these processes during the window: name=PID,name=PID.
    #[arg(long, value_delimiter = ',')]
    pub pids: Vec<String>,
    /// Also measure the CPU of the Postgres backends serving this database.
    #[arg(long)]
    pub pg_db: Option<String>,
    /// Also measure the CPU of every redis-server process on this machine.
    #[arg(long)]
    pub redis: bool,
    /// With --pg-db: a URL psql can connect with, to count Postgres transactions per chat.
    #[arg(long, requires = "pg_db")]
    pub pg_url: Option<String>,
    /// Loopback source addresses to rotate over (127.0.0.2 ...); 0 lets the kernel choose.
    #[arg(long, default_value_t = 200)]
    pub sources: u32,
    /// Sockets being opened at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

/// One fixed-rate open-loop step.
#[derive(clap::Args, Debug)]
pub struct RateArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Total chats per second over all sockets.
    #[arg(long)]
    pub rate: f64,
}

/// Consecutive fixed-rate steps on the same sockets until one fails.
#[derive(clap::Args, Debug)]
pub struct StepArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// The rates of the steps, in order: 500,1000,2000.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["from", "max"])]
    pub rates: Vec<f64>,
    /// Or a geometric series: the first rate ...
    #[arg(long, requires = "max")]
    pub from: Option<f64>,
    /// ... multiplied by this each step ...
    #[arg(long, default_value_t = 1.5)]
    pub factor: f64,
    /// ... up to this rate.
    #[arg(long, requires = "from")]
    pub max: Option<f64>,
}

pub async fn rate(args: RateArgs) -> Result<bool> {
    check_rate(args.rate)?;
    let mut rig = Rig::open(&args.load).await?;
    let mut table = Rig::table();
    let step = rig.step("rate", 1, args.rate).await?;
    table.row(step.row);
    table.print();
    Ok(step.pass)
}

pub async fn step(args: StepArgs) -> Result<bool> {
    let rates = match (args.from, args.max) {
        (Some(from), Some(max)) => {
            if args.factor <= 1.0 {
                bail!("--factor must be above 1");
            }
            let mut rates = Vec::new();
            let mut r = from;
            while r <= max * 1.000_001 {
                rates.push(r.round());
                r *= args.factor;
            }
            rates
        }
        _ => args.rates.clone(),
    };
    if rates.is_empty() {
        bail!("give --rates R,R,... or --from R --max R [--factor F]");
    }
    for r in &rates {
        check_rate(*r)?;
    }
    let mut rig = Rig::open(&args.load).await?;
    let mut table = Rig::table();
    let (mut best, mut failing) = (None, None);
    for (i, r) in rates.iter().enumerate() {
        let step = rig.step("step", i + 1, *r).await?;
        table.row(step.row);
        if step.pass {
            best = Some(*r);
        } else {
            failing = Some(*r);
            break;
        }
    }
    line(
        "step",
        json!({
            "summary": true,
            "max_sustained": best,
            "first_failing": failing,
            "p99_ms": args.load.p99_ms,
        }),
    );
    table.print();
    match (best, failing) {
        (Some(b), _) => note(format!("max sustained: {b} chats/s")),
        (None, _) => note("no step passed"),
    }
    Ok(true)
}

fn check_rate(rate: f64) -> Result<()> {
    if !(rate.is_finite() && rate > 0.0) {
        bail!("a rate must be a positive number of chats per second, not {rate}");
    }
    Ok(())
}

/// Microseconds since the run began: the one time base of schedules and arrivals.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now_us(self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }

    async fn sleep_until(self, us: u64) {
        tokio::time::sleep_until((self.0 + Duration::from_micros(us)).into()).await;
    }
}

/// One step's schedule. Slot n (0, 1, 2, ...) is due at t0 + n/R; socket i sends slots
/// i + k*M for k = 0, 1, ... (M sockets). Slots before `warm_slots` are the warm-up.
struct Plan {
    nonce: Nonce,
    sockets: u64,
    rate: f64,
    t0_us: u64,
    warm_slots: u64,
    end_slots: u64,
}

impl Plan {
    fn slot(&self, i: u32, k: u32) -> u64 {
        u64::from(k) * self.sockets + u64::from(i)
    }

    fn slot_us(&self, slot: u64) -> u64 {
        self.t0_us + (slot as f64 * 1e6 / self.rate) as u64
    }

    fn at_us(&self, i: u32, k: u32) -> u64 {
        self.slot_us(self.slot(i, k))
    }

    /// How many sends socket i makes in this step (warm-up included).
    fn sends_of(&self, i: u32) -> u32 {
        self.end_slots
            .saturating_sub(u64::from(i))
            .div_ceil(self.sockets) as u32
    }

    /// Socket i's first k inside the measured window.
    fn first_measured(&self, i: u32) -> u32 {
        self.warm_slots
            .saturating_sub(u64::from(i))
            .div_ceil(self.sockets) as u32
    }

    fn measured(&self, i: u32, k: u32) -> bool {
        self.slot(i, k) >= self.warm_slots
    }

    fn window_start_us(&self) -> u64 {
        self.slot_us(self.warm_slots)
    }

    fn window_end_us(&self) -> u64 {
        self.slot_us(self.end_slots)
    }

    fn window_sends(&self) -> u64 {
        self.end_slots - self.warm_slots
    }
}

/// A fixed-size bitset over one sender's k.
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: u32) -> Bits {
        Bits(vec![0; (len as usize).div_ceil(64)])
    }

    /// Sets bit k; true if it was not set before.
    fn set(&mut self, k: u32) -> bool {
        let (word, bit) = ((k / 64) as usize, 1u64 << (k % 64));
        match self.0.get_mut(word) {
            Some(w) if *w & bit == 0 => {
                *w |= bit;
                true
            }
            _ => false,
        }
    }

    fn get(&self, k: u32) -> bool {
        self.0
            .get((k / 64) as usize)
            .is_some_and(|w| w & (1 << (k % 64)) != 0)
    }
}

/// Everything the readers learn during one step. One mutex for all readers: a lock per frame
/// on a 2-core machine costs less than merging per-socket histograms would.
struct Ledger {
    plan: Arc<Plan>,
    acked: Vec<Bits>,
    delivered: Vec<Bits>,
    refused: Vec<Bits>,
    /// Per receiving socket, the highest k that arrived from its partner.
    highest: Vec<Option<u32>>,
    delivery: Histogram<u64>,
    ack: Histogram<u64>,
    acked_total: u64,
    refused_total: u64,
    delivered_total: u64,
    duplicates: u64,
    duplicate_acks: u64,
    reordered: u64,
    /// `error` frames by code: those of measured sends and those naming no send.
    errors: BTreeMap<String, u64>,
    /// Frames of an earlier step (or run) arriving late.
    stale: u64,
    /// Frames that were not JSON of the contract's shape, or named a send that cannot exist.
    unreadable: u64,
}

impl Ledger {
    fn new(plan: Arc<Plan>) -> Result<Ledger> {
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
            highest: vec![None; m as usize],
            delivery: histogram()?,
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

    fn on_frame(&mut self, me: u32, frame: &Frame<'_>, now: u64) {
        match frame.kind {
            "chat" => {
                let Some((sender, k)) = self.send_of(frame.client_id) else {
                    return;
                };
                // Our own chats come back to us too; only the partner's delivery counts.
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
                    let latency = now.saturating_sub(self.plan.at_us(sender, k));
                    self.delivery.saturating_record(latency.max(1));
                }
            }
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

    /// Every send written has its answer and every acked send reached the partner.
    fn settled(&self, written: u64) -> bool {
        self.acked_total + self.refused_total >= written && self.delivered_total >= self.acked_total
    }
}

/// What the readers share with the coordinator.
struct Shared {
    clock: Clock,
    ledger: Mutex<Option<Ledger>>,
    /// Sockets that ended, by close code (or how the stream ended), over the whole run.
    closes: Mutex<BTreeMap<String, u64>>,
    /// Sends written in the current step.
    written: AtomicU64,
}

impl Shared {
    fn ledger(&self) -> MutexGuard<'_, Option<Ledger>> {
        // A reader that panicked cannot leave the tallies half-updated in a way worth losing
        // the run over.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn closes(&self) -> MutexGuard<'_, BTreeMap<String, u64>> {
        self.closes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn read_loop(mut stream: SplitStream<Ws>, me: u32, shared: Arc<Shared>) {
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

/// A writer's account of one step.
#[derive(Default)]
struct Written {
    /// Sends written (k reached).
    sent: u32,
    /// Of which in the measured window.
    measured: u64,
    /// When the last measured send was flushed.
    last_flush_us: u64,
    /// How late the writer was at worst, from a send's scheduled time to its feeding.
    max_lag_us: u64,
    /// Why the socket stopped taking writes.
    error: Option<String>,
}

struct Job {
    plan: Arc<Plan>,
    done: oneshot::Sender<Written>,
}

async fn write_loop(
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
    let mut k = 0u32;
    while k < sends {
        clock.sleep_until(plan.at_us(me, k)).await;
        let now = clock.now_us();
        written.max_lag_us = written
            .max_lag_us
            .max(now.saturating_sub(plan.at_us(me, k)));
        let mut fed = 0u32;
        let mut measured = 0u64;
        // Everything due by now goes in one write.
        while k < sends && plan.at_us(me, k) <= now {
            let at = plan.at_us(me, k);
            let frame = send_frame(plan.nonce.client_id(me, k), me, k, at);
            if let Err(e) = sink.feed(frame).await {
                written.error = Some(format!("write: {e}"));
                return written;
            }
            measured += u64::from(plan.measured(me, k));
            fed += 1;
            k += 1;
        }
        if let Err(e) = sink.flush().await {
            written.error = Some(format!("write: {e}"));
            return written;
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

/// The couples' sockets, open and synced, with their tasks; reused by every step.
struct Rig {
    shared: Arc<Shared>,
    writers: Vec<mpsc::Sender<Job>>,
    sockets: u64,
    couples: usize,
    nodes: Vec<String>,
    cpu: Arc<CpuWatch>,
    pg: Option<(String, String)>,
    secs: f64,
    warmup: f64,
    drain: f64,
    p99_ms: f64,
    warned_frame_rate: bool,
}

/// One finished step.
struct Step {
    pass: bool,
    row: Vec<String>,
}

impl Rig {
    async fn open(args: &LoadArgs) -> Result<Rig> {
        if !(args.secs > 0.0 && args.warmup >= 0.0 && args.drain >= 0.0) {
            bail!("--secs must be positive, --warmup and --drain not negative");
        }
        let nodes = Node::resolve_all(&args.nodes).await?;
        let couples = read_tokens(&args.tokens, args.couples)?;
        let sockets = couples.len() * 2;
        crate::limits::ensure_descriptors(sockets as u64)?;
        let cpu = Arc::new(CpuWatch::new(
            &args.pids,
            args.pg_db.as_deref(),
            args.redis,
        )?);
        let pg = match (&args.pg_url, &args.pg_db) {
            (Some(url), Some(db)) => {
                pg_commits(url, db).await.context("--pg-url")?;
                Some((url.clone(), db.clone()))
            }
            _ => None,
        };
        // Reads are a few hundred bytes at a time; writes are fed and flushed explicitly.
        let dialer = Arc::new(Dialer::new(
            16 * 1024,
            64 * 1024,
            Duration::from_secs(30),
            args.sources,
        ));
        let shared = Arc::new(Shared {
            clock: Clock(Instant::now()),
            ledger: Mutex::new(None),
            closes: Mutex::new(BTreeMap::new()),
            written: AtomicU64::new(0),
        });

        note(format!(
            "opening {sockets} sockets ({} couples) on {}",
            couples.len(),
            args.nodes.join(", ")
        ));
        let started = Instant::now();
        let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
        let mut opening = JoinSet::new();
        for i in 0..sockets {
            let couple = &couples[i / 2];
            let token = if i % 2 == 0 {
                couple.a.clone()
            } else {
                couple.b.clone()
            };
            let node = nodes[i % nodes.len()].clone();
            let (dialer, gate) = (dialer.clone(), gate.clone());
            opening.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let opened = dialer.open_synced(&node, &token, None, |_| {}).await;
                (i, node.name, opened)
            });
        }
        let mut ws: Vec<Option<Ws>> = (0..sockets).map(|_| None).collect();
        let mut failures = 0usize;
        let mut first = None;
        while let Some(joined) = opening.join_next().await {
            let (i, node, opened) = joined?;
            match opened {
                Ok((socket, _)) => ws[i] = Some(socket),
                Err(e) => {
                    failures += 1;
                    first.get_or_insert_with(|| {
                        let side = if i % 2 == 0 { "A" } else { "B" };
                        format!("couple {} partner {side} on {node}: {e}", i / 2)
                    });
                }
            }
        }
        if let Some(first) = first {
            bail!("{failures} of {sockets} sockets could not open; the first: {first}");
        }
        note(format!(
            "{sockets} sockets synced in {:.1} s",
            started.elapsed().as_secs_f64()
        ));

        let mut writers = Vec::with_capacity(sockets);
        for (i, socket) in ws.into_iter().enumerate() {
            let Some(socket) = socket else {
                bail!("socket {i} was not opened");
            };
            let (sink, stream) = socket.split();
            let (jobs, rx) = mpsc::channel(1);
            tokio::spawn(read_loop(stream, i as u32, shared.clone()));
            tokio::spawn(write_loop(sink, i as u32, shared.clone(), rx));
            writers.push(jobs);
        }
        Ok(Rig {
            shared,
            writers,
            sockets: sockets as u64,
            couples: couples.len(),
            nodes: args.nodes.clone(),
            cpu,
            pg,
            secs: args.secs,
            warmup: args.warmup,
            drain: args.drain,
            p99_ms: args.p99_ms,
            warned_frame_rate: false,
        })
    }

    fn table() -> Table {
        Table::new(
            "delivery latency in ms, from each send's scheduled time to the partner's socket",
            &[
                "step",
                "rate",
                "achieved",
                "sent",
                "acked",
                "lost",
                "dup",
                "errors",
                "closed",
                "p50",
                "p90",
                "p99",
                "p99.9",
                "max",
                "ack p99",
                "cpu µs/chat",
                "pass",
            ],
        )
    }

    async fn step(&mut self, mode: &str, index: usize, rate: f64) -> Result<Step> {
        let clock = self.shared.clock;
        let per_socket = rate / self.sockets as f64;
        note(format!(
            "step {index}: {rate} chats/s ({per_socket:.2}/s per socket), {}s warm-up + {}s",
            self.warmup, self.secs
        ));
        if per_socket > 20.0 && !self.warned_frame_rate {
            self.warned_frame_rate = true;
            note(format!(
                "each socket sends {per_socket:.1}/s, above Duet's default DUET_FRAME_RATE (20/s): \
                 the node must be started with a higher DUET_FRAME_RATE/DUET_FRAME_BURST or it \
                 answers rate_limited"
            ));
        }
        let warm_slots = (self.warmup * rate).round() as u64;
        let plan = Arc::new(Plan {
            nonce: Nonce::random(),
            sockets: self.sockets,
            rate,
            // A little time for every writer to get its job before the first slot.
            t0_us: clock.now_us() + 200_000,
            warm_slots,
            end_slots: warm_slots + ((self.secs * rate).round() as u64).max(1),
        });
        *self.shared.ledger() = Some(Ledger::new(plan.clone())?);
        self.shared.written.store(0, Ordering::Relaxed);
        let closes_before = self.shared.closes().clone();

        let mut done = Vec::with_capacity(self.writers.len());
        for writer in &self.writers {
            let (tx, rx) = oneshot::channel();
            // A writer whose task ended answers through the dropped channel below.
            let _ = writer
                .send(Job {
                    plan: plan.clone(),
                    done: tx,
                })
                .await;
            done.push(rx);
        }

        clock.sleep_until(plan.window_start_us()).await;
        let cpu_before = sample(&self.cpu).await?;
        let commits_before = match &self.pg {
            Some((url, db)) => Some(pg_commits(url, db).await?),
            None => None,
        };
        clock.sleep_until(plan.window_end_us()).await;
        let cpu_after = sample(&self.cpu).await?;
        let cpu = self.cpu.usage(&cpu_before, &cpu_after);

        let mut written = Vec::with_capacity(done.len());
        for rx in done {
            written.push(rx.await.unwrap_or_else(|_| Written {
                error: Some("writer task ended".into()),
                ..Written::default()
            }));
        }
        let drain_until = clock.now_us() + (self.drain * 1e6) as u64;
        loop {
            let total = self.shared.written.load(Ordering::Relaxed);
            let settled = self
                .shared
                .ledger()
                .as_ref()
                .is_none_or(|l| l.settled(total));
            if settled || clock.now_us() >= drain_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let Some(ledger) = self.shared.ledger().take() else {
            bail!("the step's ledger vanished");
        };
        let commits = match (&self.pg, commits_before) {
            (Some((url, db)), Some(before)) => {
                // pg_stat_database is updated at most once a second.
                clock.sleep_until(plan.window_end_us() + 1_100_000).await;
                Some(pg_commits(url, db).await?.saturating_sub(before))
            }
            _ => None,
        };
        let closes_after = self.shared.closes().clone();
        let closed: BTreeMap<String, u64> = closes_after
            .into_iter()
            .filter_map(|(code, n)| {
                let new = n - closes_before.get(&code).copied().unwrap_or(0);
                (new > 0).then_some((code, new))
            })
            .collect();

        Ok(self.account(mode, index, &plan, &ledger, &written, &cpu, commits, closed))
    }

    #[allow(clippy::too_many_arguments)]
    fn account(
        &self,
        mode: &str,
        index: usize,
        plan: &Plan,
        ledger: &Ledger,
        written: &[Written],
        cpu: &[CpuUse],
        commits: Option<u64>,
        closed: BTreeMap<String, u64>,
    ) -> Step {
        let (mut sent, mut acked, mut delivered, mut lost, mut not_acked) =
            (0u64, 0u64, 0u64, 0u64, 0u64);
        for (i, w) in written.iter().enumerate() {
            let i = i as u32;
            for k in plan.first_measured(i)..w.sent {
                let a = ledger.acked[i as usize].get(k);
                let d = ledger.delivered[i as usize].get(k);
                sent += 1;
                acked += u64::from(a);
                not_acked += u64::from(!a);
                delivered += u64::from(d);
                lost += u64::from(a && !d);
            }
        }
        let window_us = plan.window_end_us() - plan.window_start_us();
        let last_flush = written.iter().map(|w| w.last_flush_us).max().unwrap_or(0);
        let took_us = last_flush
            .saturating_sub(plan.window_start_us())
            .max(window_us);
        let achieved = sent as f64 / (took_us as f64 / 1e6);
        let max_lag_ms = written.iter().map(|w| w.max_lag_us).max().unwrap_or(0) as f64 / 1000.0;
        let writer_errors = written.iter().filter(|w| w.error.is_some()).count();
        let first_writer_error = written.iter().find_map(|w| w.error.clone());
        let delivery = Latency::of(&ledger.delivery);
        let ack = Latency::of(&ledger.ack);

        let mut fail = Vec::new();
        if delivered == 0 {
            fail.push("nothing was delivered".to_owned());
        } else if delivery.p99 > self.p99_ms {
            fail.push(format!(
                "delivery p99 {:.1} ms > {} ms",
                delivery.p99, self.p99_ms
            ));
        }
        if lost > 0 {
            fail.push(format!("{lost} acked chats never reached the partner"));
        }
        if not_acked > 0 {
            fail.push(format!("{not_acked} sends not acked"));
        }
        if ledger.duplicates > 0 {
            fail.push(format!("{} duplicate deliveries", ledger.duplicates));
        }
        if achieved < 0.97 * plan.rate {
            fail.push(format!("achieved {achieved:.0}/s < 97% of {}/s", plan.rate));
        }
        if let Some(n) = ledger.errors.get("rate_limited") {
            fail.push(format!(
                "{n} sends refused rate_limited: raise the node's DUET_FRAME_RATE/DUET_FRAME_BURST"
            ));
        }
        let pass = fail.is_empty();

        let per_chat =
            |micros: u64| (delivered > 0).then(|| round1(micros as f64 / delivered as f64));
        let server_us: u64 = cpu.iter().filter(|c| !c.client).map(|c| c.micros).sum();
        let measured_server = cpu.iter().any(|c| !c.client);
        let mut cpu_ms = serde_json::Map::new();
        let mut cpu_per_chat = serde_json::Map::new();
        let mut cpu_processes = serde_json::Map::new();
        for c in cpu {
            cpu_ms.insert(c.name.clone(), json!(round1(c.micros as f64 / 1000.0)));
            cpu_processes.insert(c.name.clone(), json!(c.processes));
            cpu_per_chat.insert(c.name.clone(), json!(per_chat(c.micros)));
        }
        if measured_server {
            cpu_per_chat.insert("total".into(), json!(per_chat(server_us)));
        }

        let value = json!({
            "step": index,
            "nodes": self.nodes,
            "couples": self.couples,
            "sockets": self.sockets,
            "target_rate": plan.rate,
            "per_socket_rate": round3(plan.rate / self.sockets as f64),
            "secs": self.secs,
            "expected": plan.window_sends(),
            "sent": sent,
            "achieved_rate": round1(achieved),
            "acked": acked,
            "not_acked": not_acked,
            "errors": ledger.errors,
            "delivered": delivered,
            "lost": lost,
            "duplicates": ledger.duplicates,
            "duplicate_acks": ledger.duplicate_acks,
            "reordered": ledger.reordered,
            "stale_frames": ledger.stale,
            "unreadable_frames": ledger.unreadable,
            "closed": closed,
            "writer_errors": writer_errors,
            "first_writer_error": first_writer_error,
            "send_lag_max_ms": round3(max_lag_ms),
            "delivery_ms": delivery.json(),
            "ack_ms": ack.json(),
            "cpu_ms": cpu_ms,
            "cpu_us_per_chat": cpu_per_chat,
            "cpu_processes": cpu_processes,
            "pg_commits": commits,
            "pg_commits_per_chat": commits.and_then(|c| (delivered > 0).then(|| round3(c as f64 / delivered as f64))),
            "p99_limit_ms": self.p99_ms,
            "pass": pass,
            "fail": fail,
        });
        line(mode, value);

        let errors: u64 = ledger.errors.values().sum();
        let closed_n: u64 = closed.values().sum();
        let row = vec![
            index.to_string(),
            cell(plan.rate, 1),
            format!("{achieved:.1}"),
            sent.to_string(),
            acked.to_string(),
            lost.to_string(),
            ledger.duplicates.to_string(),
            errors.to_string(),
            closed_n.to_string(),
            delivery.cell(|l| l.p50, 2),
            delivery.cell(|l| l.p90, 2),
            delivery.cell(|l| l.p99, 2),
            delivery.cell(|l| l.p999, 2),
            delivery.cell(|l| l.max, 2),
            ack.cell(|l| l.p99, 2),
            if measured_server {
                per_chat(server_us).map_or("-".into(), |x| format!("{x:.0}"))
            } else {
                "-".into()
            },
            if pass { "yes".into() } else { "NO".into() },
        ];
        Step { pass, row }
    }
}

/// A CPU sample off the runtime's workers: it may scan /proc, and the workers are timing
/// sockets.
async fn sample(cpu: &Arc<CpuWatch>) -> Result<crate::measure::CpuSample> {
    let cpu = cpu.clone();
    Ok(tokio::task::spawn_blocking(move || cpu.sample()).await?)
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
        }
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
    fn sends_are_spread_one_slot_apart() {
        let p = plan(4, 2000.0, 0, 100);
        assert_eq!(p.at_us(0, 0), 1_000);
        assert_eq!(p.at_us(1, 0), 1_500);
        assert_eq!(p.at_us(0, 1), 3_000);
        assert_eq!(p.window_end_us(), 51_000);
    }

    #[test]
    fn bits_tell_first_from_repeated() {
        let mut bits = Bits::new(130);
        assert!(bits.set(129));
        assert!(!bits.set(129));
        assert!(bits.get(129) && !bits.get(128));
        assert!(!bits.set(1_000));
    }
}
