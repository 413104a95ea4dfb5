//! `rate` and `step`: open-loop chat load at fixed rates, the measurement a deployment is
//! sized by.
//!
//! Every couple has two sockets, partner A on one node and partner B on the next, and both
//! send, so with two nodes every chat crosses nodes through the bus. A step sends at a total
//! rate R spread evenly over the 2N sockets on a fixed schedule (`schedule.rs`): open loop, so
//! a stalled server shows up as latency and not as a politely lower rate, and every latency is
//! measured from the send's scheduled time (no coordinated omission). Each socket has a writer
//! task that keeps its part of the schedule and a reader task that tallies what arrives into
//! the step's ledger (`ledger.rs`). A step is a warm-up (not counted), the measured window, and
//! a drain during which late acks and deliveries are still welcome; what is still missing
//! after it is lost. `step` runs its steps back to back on the same sockets (no reconnecting:
//! a step that closed sockets fails, and the run stops there).
//!
//! The pass rule: delivery p99 within `--p99-ms`, nothing lost, every send acked, no
//! duplicates, at least 97% of the target rate actually sent. "Lost" means acked by the server
//! but never delivered to the partner (data loss); sends refused or never answered are
//! `not_acked`, with the refusals counted by error code.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::client::{Dialer, Node, Nonce, Ws};
use crate::ledger::{Ledger, Shared, read_loop};
use crate::measure::{CpuUse, CpuWatch, pg_commits};
use crate::report::{Latency, Table, cell, line, note, round1, round3};
use crate::schedule::{Clock, Job, Mix, Plan, Written, write_loop};
use crate::setup::read_tokens;
use crate::stages::Stages;

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
    /// A mixed load instead of plain chats: percentages of the sends that are reactions,
    /// replies and edits, e.g. `reactions=10,replies=5,edits=5` (each targets the socket's
    /// own latest chat). Delivery latency counts chats, replies and edits; reactions are
    /// counted on arrival at both partners.
    #[arg(long, default_value = "")]
    pub mix: String,
    /// The nodes' metrics listeners (DUET_METRICS_BIND), HOST:PORT,HOST:PORT: their stage
    /// histograms are read before and after the step, and the report says where an event's
    /// time went (`stages_ms`).
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
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
        (Some(b), Some(_)) => note(format!("max sustained: {b} chats/s")),
        (Some(b), None) => note(format!(
            "every step passed: max sustained is {b} chats/s or more"
        )),
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
    mix: Mix,
    warned_frame_rate: bool,
    metrics: Vec<String>,
    http: reqwest::Client,
}

/// Everything one step observed, for `account`.
struct Observed {
    plan: Arc<Plan>,
    ledger: Ledger,
    written: Vec<Written>,
    cpu: Vec<CpuUse>,
    commits: Option<u64>,
    /// Sockets that ended during the step, by how.
    closed: BTreeMap<String, u64>,
    /// Each stage's share of the step, from the nodes' histograms.
    stages: Option<serde_json::Value>,
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
        let mix = Mix::parse(&args.mix)?;
        let shared = Arc::new(Shared {
            clock: Clock(Instant::now()),
            ledger: Mutex::new(None),
            closes: Mutex::new(BTreeMap::new()),
            written: AtomicU64::new(0),
            targets: Mutex::new(vec![None; sockets]),
            mixed: mix != Mix::default(),
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
            mix,
            warned_frame_rate: false,
            metrics: args.metrics.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
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
            mix: self.mix,
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
        let stages_before = self.stages().await?;
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
        let stages = match stages_before {
            Some(before) => self.stages().await?.map(|after| after.since(&before)),
            None => None,
        };
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

        let observed = Observed {
            plan,
            ledger,
            written,
            cpu,
            commits,
            closed,
            stages,
        };
        Ok(self.account(mode, index, &observed))
    }

    /// The nodes' stage histograms now, when their metrics were given.
    async fn stages(&self) -> Result<Option<Stages>> {
        if self.metrics.is_empty() {
            return Ok(None);
        }
        Ok(Some(Stages::scrape(&self.http, &self.metrics).await?))
    }

    /// Turns what a step observed into its JSON line and table row, and judges it.
    fn account(&self, mode: &str, index: usize, observed: &Observed) -> Step {
        let Observed {
            plan,
            ledger,
            written,
            cpu,
            commits,
            closed,
            stages,
        } = observed;
        let commits = *commits;
        let (mut sent, mut acked, mut delivered, mut lost, mut not_acked, mut reactions) =
            (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
        for (i, w) in written.iter().enumerate() {
            let i = i as u32;
            for k in plan.first_measured(i)..w.sent {
                let a = ledger.acked[i as usize].get(k);
                let d = ledger.delivered[i as usize].get(k);
                // A reaction is not matched to its frames: counted below, over the step.
                let r = ledger.reactions[i as usize].get(k);
                sent += 1;
                acked += u64::from(a);
                not_acked += u64::from(!a);
                delivered += u64::from(d);
                reactions += u64::from(a && r);
                lost += u64::from(a && !d && !r);
            }
        }
        // Each acked reaction reaches both partners' sockets, warm-up ones too.
        let lost_reactions = (2 * ledger.acked_reactions).saturating_sub(ledger.reacted_frames) / 2;
        // What CPU is divided by: every event that reached the couple.
        let events = delivered + reactions;
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
        let flushed = crate::report::histogram().ok().map(|mut h| {
            for after in written.iter().flat_map(|w| &w.flushed_after_us) {
                h.saturating_record((*after).max(1));
            }
            Latency::of(&h).json()
        });

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
        if lost_reactions > 0 {
            fail.push(format!(
                "{lost_reactions} acked reactions never reached both partners"
            ));
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

        let per_chat = |micros: u64| (events > 0).then(|| round1(micros as f64 / events as f64));
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

        let commits_per_chat =
            commits.and_then(|c| (events > 0).then(|| round3(c as f64 / events as f64)));
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
            "mix": { "reactions": plan.mix.reactions, "replies": plan.mix.replies, "edits": plan.mix.edits },
            "reactions": reactions,
            "lost": lost,
            "lost_reactions": lost_reactions,
            "duplicates": ledger.duplicates,
            "duplicate_acks": ledger.duplicate_acks,
            "reordered": ledger.reordered,
            "stale_frames": ledger.stale,
            "unreadable_frames": ledger.unreadable,
            "closed": closed,
            "writer_errors": writer_errors,
            "first_writer_error": first_writer_error,
            "send_lag_max_ms": round3(max_lag_ms),
            "flushed_after_ms": flushed,
            "delivery_ms": delivery.json(),
            "delivery_ms_by_kind": crate::ledger::KINDS
                .iter()
                .zip(&ledger.delivery_by_kind)
                .filter(|(_, h)| !h.is_empty())
                .map(|(kind, h)| (kind.to_string(), Latency::of(h).json()))
                .collect::<serde_json::Map<_, _>>(),
            "ack_ms": ack.json(),
            "cpu_ms": cpu_ms,
            "cpu_us_per_chat": cpu_per_chat,
            "cpu_processes": cpu_processes,
            "pg_commits": commits,
            "pg_commits_per_chat": commits_per_chat,
            "stages_ms": stages,
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
