//! `storm`: a node holding many sockets dies and they all come back at once elsewhere.
//! Opens `--sockets` sockets to the FIRST node (spread over every user of the tokens file),
//! each remembering the last event seq it saw; then the node dies, killed by the generator
//! (`--kill-pid`, SIGKILL: no drain, no goodbye) or by whoever runs the test. Every socket
//! notices its end, waits a random jitter like a real client, and reconnects to the SECOND node
//! with `?after=<last seq>`, retrying refusals (connection refused, 429, 503, timeouts) with
//! jittered exponential backoff. Reported: time from the death to the first and to the last
//! socket synced, per-socket time to synced (p50/p99), retries, and sockets that failed for
//! good (a refusal that retrying cannot fix, or still not synced at `--timeout`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tokio::sync::{Semaphore, watch};

use crate::client::{DialError, Dialer, Node, Opening, hold};
use crate::report::{Latency, Table, histogram, line, note, round1, round3};
use crate::schedule::Clock;
use crate::setup::read_tokens;

/// Kill a node holding many sockets and time their reconnects to another node.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Nodes, HOST:PORT,HOST:PORT: the sockets start on the first, which dies, and reconnect
    /// to the second.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Tokens file written by `setup`.
    #[arg(long)]
    tokens: PathBuf,
    /// Sockets to open on the first node, spread over all users of the tokens file.
    #[arg(long, default_value_t = 10_000)]
    sockets: u64,
    /// The first node's pid: the generator SIGKILLs it once every socket is open. Without it,
    /// the generator waits (up to --wait seconds) for the sockets to drop.
    #[arg(long)]
    kill_pid: Option<u32>,
    /// Seconds to wait for the node to go down when not killing it ourselves.
    #[arg(long, default_value_t = 600.0)]
    wait: f64,
    /// Each socket waits a random 0..this many ms after noticing the end before reconnecting.
    #[arg(long, default_value_t = 250)]
    jitter_ms: u64,
    /// First retry backoff in ms; doubles per retry (with jitter) up to 5 s.
    #[arg(long, default_value_t = 100)]
    backoff_ms: u64,
    /// Seconds after its drop that a socket may take to resync before it counts as failed.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Seconds one connection attempt may take (connect, upgrade, replay, synced).
    #[arg(long, default_value_t = 10.0)]
    attempt_timeout: f64,
    #[command(flatten)]
    opening: Opening,
}

/// What the sockets report back, shared with the coordinator.
#[derive(Default)]
struct Tally {
    opened: AtomicU64,
    open_failed: AtomicU64,
    dropped: AtomicU64,
    synced: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    /// Resumes whose `synced` was behind the seq the socket had already seen.
    went_back: AtomicU64,
    replayed: AtomicU64,
    /// The earliest drop noticed, µs (u64::MAX until one is).
    first_drop_us: AtomicU64,
    times: Mutex<Times>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// How the first node's sockets ended (eof, reset, close code).
    drops: Mutex<BTreeMap<String, u64>>,
    first_error: Mutex<Option<String>>,
}

#[derive(Default)]
struct Times {
    /// When each socket noticed its drop.
    dropped_us: Vec<u64>,
    /// When each socket was synced again.
    synced_us: Vec<u64>,
    /// Each socket's own time from noticing the drop to synced (its jitter included).
    recovery_us: Vec<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tally {
    fn error(&self, e: &DialError) {
        *lock(&self.errors).entry(e.kind()).or_default() += 1;
        lock(&self.first_error).get_or_insert_with(|| e.to_string());
    }
}

pub async fn run(args: Args) -> Result<bool> {
    if args.nodes.len() < 2 {
        bail!("--nodes needs two nodes: the one that dies and the one the sockets move to");
    }
    let nodes = Node::resolve_all(&args.nodes).await?;
    let (first, second) = (nodes[0].clone(), nodes[1].clone());
    if args.sockets == 0 {
        bail!("--sockets must be at least 1");
    }
    crate::limits::ensure_descriptors(args.sockets)?;
    let tokens: Vec<String> = read_tokens(&args.tokens, None)?
        .into_iter()
        .flat_map(|c| [c.a, c.b])
        .collect();
    let per_user = args.sockets.div_ceil(tokens.len() as u64);
    if per_user > 8 {
        note(format!(
            "{per_user} sockets per user: both nodes need DUET_MAX_SOCKETS_PER_USER >= {per_user} \
             (default 8) and DUET_MAX_SOCKETS >= {} (default 10000)",
            args.sockets
        ));
    }
    if let Some(pid) = args.kill_pid
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    {
        bail!("--kill-pid {pid}: no such process");
    }

    let clock = Clock(Instant::now());
    let tokens = Arc::new(tokens);
    let dialer = Arc::new(
        args.opening
            .dialer(Duration::from_secs_f64(args.attempt_timeout)),
    );
    let tally = Arc::new(Tally {
        first_drop_us: AtomicU64::new(u64::MAX),
        ..Tally::default()
    });
    let (stop, stopped) = watch::channel(false);
    let concurrency = args.opening.concurrency.max(1);
    let gate = Arc::new(Semaphore::new(concurrency));
    let life = Arc::new(Life {
        first,
        second,
        dialer,
        tally: tally.clone(),
        clock,
        jitter_ms: args.jitter_ms,
        backoff_ms: args.backoff_ms.max(1),
        timeout_us: (args.timeout * 1e6) as u64,
    });

    note(format!(
        "opening {} sockets on {}",
        args.sockets, life.first.name
    ));
    let started = Instant::now();
    for i in 0..args.sockets {
        let permit = gate.clone().acquire_owned().await?;
        let token = tokens[(i % tokens.len() as u64) as usize].clone();
        tokio::spawn(life.clone().live(token, permit, stopped.clone()));
    }
    drop(gate.acquire_many(concurrency as u32).await?);
    let opened = tally.opened.load(Ordering::Relaxed);
    let open_failed = tally.open_failed.load(Ordering::Relaxed);
    let open_secs = started.elapsed().as_secs_f64();
    line(
        "storm",
        json!({
            "phase": "opened",
            "node": life.first.name,
            "sockets": args.sockets,
            "opened": opened,
            "open_failed": open_failed,
            "errors": *lock(&tally.errors),
            "first_error": *lock(&tally.first_error),
            "secs": round1(open_secs),
        }),
    );
    if opened == 0 {
        bail!(
            "no socket opened on {}: {}",
            life.first.name,
            lock(&tally.first_error).clone().unwrap_or_default()
        );
    }
    // Opening failures are reported above; the storm is about the sockets that did open.
    lock(&tally.errors).clear();
    *lock(&tally.first_error) = None;

    let death_us = match args.kill_pid {
        Some(pid) => {
            note(format!("{opened} sockets open; kill -9 {pid}"));
            let at = clock.now_us();
            let status = tokio::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .await
                .context("cannot run kill")?;
            if !status.success() {
                bail!("kill -9 {pid} failed ({status})");
            }
            at
        }
        None => {
            note(format!(
                "{opened} sockets open on {}; waiting up to {} s for it to go down",
                life.first.name, args.wait
            ));
            let deadline = Instant::now() + Duration::from_secs_f64(args.wait);
            loop {
                let first = tally.first_drop_us.load(Ordering::Relaxed);
                if first != u64::MAX {
                    break first;
                }
                if Instant::now() >= deadline {
                    bail!("no socket dropped within {} s", args.wait);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };

    // Every socket ends synced or failed; the slowest gets its own timeout after its drop.
    let give_up =
        Instant::now() + Duration::from_secs_f64(args.timeout + args.attempt_timeout + 5.0);
    let mut last_note = Instant::now();
    loop {
        let settled = tally.synced.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed);
        if settled >= opened || Instant::now() >= give_up {
            break;
        }
        if last_note.elapsed() >= Duration::from_secs(5) {
            note(format!("{settled} of {opened} sockets settled"));
            last_note = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);

    let synced = tally.synced.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let dropped = tally.dropped.load(Ordering::Relaxed);
    let times = std::mem::take(&mut *lock(&tally.times));
    let since_death = |us: &u64| us.saturating_sub(death_us);
    let mut to_synced = histogram()?;
    for t in &times.synced_us {
        to_synced.saturating_record(since_death(t).max(1));
    }
    let mut recovery = histogram()?;
    for t in &times.recovery_us {
        recovery.saturating_record((*t).max(1));
    }
    let recovery = Latency::of(&recovery);
    let ms = |us: u64| round3(us as f64 / 1000.0);
    let first_synced = times.synced_us.iter().min().map(|t| ms(since_death(t)));
    let last_synced = times.synced_us.iter().max().map(|t| ms(since_death(t)));
    let last_drop = times.dropped_us.iter().max().map(|t| ms(since_death(t)));
    let latency = Latency::of(&to_synced);
    let retries = tally.retries.load(Ordering::Relaxed);
    let pass = synced == opened;
    line(
        "storm",
        json!({
            "phase": "storm",
            "from": life.first.name,
            "to": life.second.name,
            "killed_pid": args.kill_pid,
            "sockets": opened,
            "dropped": dropped,
            "drops": *lock(&tally.drops),
            "synced": synced,
            "failed": failed,
            "unsettled": opened.saturating_sub(synced + failed),
            "retries": retries,
            "errors": *lock(&tally.errors),
            "first_error": *lock(&tally.first_error),
            "went_back": tally.went_back.load(Ordering::Relaxed),
            "replayed_frames": tally.replayed.load(Ordering::Relaxed),
            "last_drop_noticed_ms": last_drop,
            "first_synced_ms": first_synced,
            "last_synced_ms": last_synced,
            "to_synced_ms": latency.json(),
            "drop_to_synced_ms": recovery.json(),
            "jitter_ms": args.jitter_ms,
            "pass": pass,
        }),
    );
    let mut table = Table::new(
        "storm: ms from the node's death to sockets synced on the other node",
        &[
            "sockets", "synced", "failed", "retries", "first", "p50", "p99", "last",
        ],
    );
    let show = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.0}"));
    table.row(vec![
        opened.to_string(),
        synced.to_string(),
        failed.to_string(),
        retries.to_string(),
        show(first_synced),
        latency.cell(|l| l.p50, 0),
        latency.cell(|l| l.p99, 0),
        show(last_synced),
    ]);
    table.print();
    if let Some(e) = lock(&tally.first_error).as_ref() {
        note(format!("first error after the death: {e}"));
    }
    Ok(pass)
}

/// What every socket's life shares.
struct Life {
    first: Node,
    second: Node,
    dialer: Arc<Dialer>,
    tally: Arc<Tally>,
    clock: Clock,
    jitter_ms: u64,
    backoff_ms: u64,
    timeout_us: u64,
}

impl Life {
    /// One socket: open on the first node, hold until it drops, reconnect to the second.
    async fn live(
        self: Arc<Self>,
        token: String,
        permit: tokio::sync::OwnedSemaphorePermit,
        mut stopped: watch::Receiver<bool>,
    ) {
        let tally = &self.tally;
        let mut last_seq = 0i64;
        let opened = self
            .dialer
            .open_synced(&self.first, &token, None, |f| {
                last_seq = last_seq.max(f.event_seq().unwrap_or(0));
            })
            .await;
        // Counted before the permit goes back: the coordinator reads the counts once every
        // permit is back.
        let mut ws = match opened {
            Ok((ws, synced)) => {
                last_seq = last_seq.max(synced.last_seq);
                tally.opened.fetch_add(1, Ordering::Relaxed);
                drop(permit);
                ws
            }
            Err(e) => {
                tally.open_failed.fetch_add(1, Ordering::Relaxed);
                tally.error(&e);
                return;
            }
        };

        let why = tokio::select! {
            why = hold(&mut ws, Some(&mut last_seq)) => why,
            _ = stopped.changed() => return,
        };
        drop(ws);
        *lock(&tally.drops).entry(why).or_default() += 1;
        let dropped_us = self.clock.now_us();
        tally.dropped.fetch_add(1, Ordering::Relaxed);
        tally.first_drop_us.fetch_min(dropped_us, Ordering::Relaxed);
        lock(&tally.times).dropped_us.push(dropped_us);

        if self.jitter_ms > 0 {
            let jitter = rand::random_range(0..self.jitter_ms);
            tokio::time::sleep(Duration::from_millis(jitter)).await;
        }
        let mut backoff = self.backoff_ms;
        loop {
            let attempt = self
                .dialer
                .open_synced(&self.second, &token, Some(last_seq), |_| {
                    tally.replayed.fetch_add(1, Ordering::Relaxed);
                })
                .await;
            match attempt {
                Ok((mut ws, synced)) => {
                    let now = self.clock.now_us();
                    {
                        let mut times = lock(&tally.times);
                        times.synced_us.push(now);
                        times.recovery_us.push(now.saturating_sub(dropped_us));
                    }
                    tally.synced.fetch_add(1, Ordering::Relaxed);
                    if synced.last_seq < last_seq {
                        tally.went_back.fetch_add(1, Ordering::Relaxed);
                    }
                    // Stay connected like a real client until the run ends, so later sockets
                    // meet a node that holds the earlier ones.
                    let mut seq = synced.last_seq;
                    tokio::select! {
                        _ = hold(&mut ws, Some(&mut seq)) => {}
                        _ = stopped.changed() => {}
                    }
                    return;
                }
                Err(e) => {
                    tally.error(&e);
                    let waited = self.clock.now_us().saturating_sub(dropped_us);
                    if !e.retriable() || waited >= self.timeout_us {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    tally.retries.fetch_add(1, Ordering::Relaxed);
                    // Half to all of the backoff, so retries of a herd spread out.
                    let pause = backoff / 2 + rand::random_range(0..=backoff / 2);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    backoff = (backoff * 2).min(5_000);
                }
            }
        }
    }
}
