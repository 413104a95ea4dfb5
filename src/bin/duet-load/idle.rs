//! `idle`: what an idle socket costs the server. Opens sockets in cumulative batches (up to
//! 2,000, then up to 10,000, ...), each synced and then only read (tungstenite answers the
//! server's pings while reading), waits `--hold` seconds after each batch for the server's
//! allocator to settle, and reports the growth of the server's VmRSS per socket: overall (since
//! before the first socket) and marginal (since the previous batch, the better estimate once
//! start-up allocations are amortised).
//!
//! The sockets are spread round-robin over the users of the tokens file. A user's first socket
//! connects plainly (and gets the latest 50 chats); later ones resume with `?after=<last seq>`,
//! like a reconnecting client, so opening 100,000 sockets does not replay 5 million chats
//! (`--full-replay` turns that off). From one machine, 100,000 sockets need ~100,000 file
//! descriptors on each side (the limit is raised at start) and more ephemeral ports than one
//! loopback address has, hence the rotating source addresses (`--sources`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::client::{Node, Opening, hold};
use crate::measure::rss_kib;
use crate::report::{Table, line, note, round1};
use crate::setup::read_tokens;

/// Open idle sockets in cumulative batches and measure the server's memory per socket.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The node, HOST:PORT.
    #[arg(long)]
    node: String,
    /// Tokens file written by `setup`.
    #[arg(long)]
    tokens: PathBuf,
    /// Users to spread the sockets over (A and B of each couple, from the top of the file);
    /// default all. The node's DUET_MAX_SOCKETS_PER_USER must allow sockets/users each.
    #[arg(long)]
    users: Option<usize>,
    /// Cumulative socket counts, e.g. 2000,10000,100000.
    #[arg(long, value_delimiter = ',', required = true)]
    counts: Vec<u64>,
    /// The server's pid, to read its VmRSS (without it only the generator's own is reported).
    #[arg(long)]
    pid: Option<u32>,
    /// Seconds to wait after each batch before reading memory.
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
    #[command(flatten)]
    opening: Opening,
    /// Connect every socket without `?after=` (each gets the latest 50 chats).
    #[arg(long)]
    full_replay: bool,
    /// Seconds one socket may take to connect and sync.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

/// Counters shared by the opening and holding tasks.
#[derive(Default)]
struct Tally {
    open: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
    first_error: Mutex<Option<String>>,
    drops: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn failed(&self, kind: String, message: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        *lock(&self.failures).entry(kind).or_default() += 1;
        lock(&self.first_error).get_or_insert(message);
    }

    fn dropped(&self, why: String) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        *lock(&self.drops).entry(why).or_default() += 1;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub async fn run(args: Args) -> Result<bool> {
    if args.counts.windows(2).any(|w| w[0] >= w[1]) || args.counts.first() == Some(&0) {
        bail!("--counts must be increasing and positive (they are cumulative)");
    }
    let max = args.counts.last().copied().unwrap_or(0);
    crate::limits::ensure_descriptors(max)?;
    let node = Node::resolve(&args.node).await?;
    let couples = read_tokens(&args.tokens, None)?;
    let mut tokens: Vec<String> = couples.into_iter().flat_map(|c| [c.a, c.b]).collect();
    if let Some(users) = args.users {
        if users == 0 || users > tokens.len() {
            bail!(
                "--users {users}: the tokens file has {} users",
                tokens.len()
            );
        }
        tokens.truncate(users);
    }
    let users = tokens.len() as u64;
    let per_user = max.div_ceil(users);
    if per_user > 8 {
        note(format!(
            "{per_user} sockets per user: the node needs DUET_MAX_SOCKETS_PER_USER >= {per_user} \
             (default 8) and DUET_MAX_SOCKETS >= {max} (default 10000)"
        ));
    }
    if let Some(pid) = args.pid {
        if rss_kib(pid).is_none() {
            bail!("--pid {pid}: no such process");
        }
        if let Some(limit) = crate::limits::process_nofile(pid)
            && limit < max + 100
        {
            note(format!(
                "the server (pid {pid}) may open only {limit} files; {max} sockets need more"
            ));
        }
    }

    let tokens: Arc<Vec<String>> = Arc::new(tokens);
    let last_seq: Arc<Vec<AtomicI64>> = Arc::new((0..users).map(|_| AtomicI64::new(-1)).collect());
    let dialer = Arc::new(args.opening.dialer(Duration::from_secs_f64(args.timeout)));
    let tally = Arc::new(Tally::default());
    let concurrency = args.opening.concurrency.max(1);
    let gate = Arc::new(Semaphore::new(concurrency));

    let base_rss = args.pid.and_then(rss_kib);
    let base_self = rss_kib(std::process::id());
    let (mut prev_rss, mut prev_open) = (base_rss, 0u64);
    let mut table = Table::new(
        "idle sockets: growth of the server's resident memory",
        &[
            "target",
            "open",
            "failed",
            "dropped",
            "open/s",
            "server MiB",
            "B/socket",
            "marginal B/socket",
            "generator B/socket",
        ],
    );
    let mut attempted = 0u64;
    let mut all_ok = true;
    for &target in &args.counts {
        note(format!("opening sockets up to {target}"));
        let started = Instant::now();
        while attempted < target {
            let permit = gate.clone().acquire_owned().await?;
            let i = attempted;
            attempted += 1;
            let user = (i % users) as usize;
            let (dialer, node, tokens, last_seq, tally) = (
                dialer.clone(),
                node.clone(),
                tokens.clone(),
                last_seq.clone(),
                tally.clone(),
            );
            let full = args.full_replay;
            tokio::spawn(async move {
                let known = last_seq[user].load(Ordering::Relaxed);
                let after = (!full && known >= 0).then_some(known);
                match dialer
                    .open_synced(&node, &tokens[user], after, |_| {})
                    .await
                {
                    Ok((mut ws, synced)) => {
                        last_seq[user].fetch_max(synced.last_seq, Ordering::Relaxed);
                        tally.open.fetch_add(1, Ordering::Relaxed);
                        drop(permit);
                        let why = hold(&mut ws, None).await;
                        tally.open.fetch_sub(1, Ordering::Relaxed);
                        tally.dropped(why);
                    }
                    Err(e) => {
                        tally.failed(e.kind(), e.to_string());
                        drop(permit);
                    }
                }
            });
        }
        // Every opening task has given its permit back once all permits are free again.
        drop(gate.acquire_many(concurrency as u32).await?);
        let open_secs = started.elapsed().as_secs_f64();
        let open = tally.open.load(Ordering::Relaxed);
        note(format!(
            "{open} sockets open ({:.1} s); holding {} s",
            open_secs, args.hold
        ));
        tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;

        let open = tally.open.load(Ordering::Relaxed);
        let failed = tally.failed.load(Ordering::Relaxed);
        let dropped = tally.dropped.load(Ordering::Relaxed);
        let rss = args.pid.and_then(rss_kib);
        let self_rss = rss_kib(std::process::id());
        let per = |now: Option<u64>, then: Option<u64>, sockets: u64| match (now, then) {
            (Some(now), Some(then)) if sockets > 0 => {
                Some(((now as f64 - then as f64) * 1024.0 / sockets as f64).round())
            }
            _ => None,
        };
        let overall = per(rss, base_rss, open);
        let marginal = per(rss, prev_rss, open.saturating_sub(prev_open));
        let generator = per(self_rss, base_self, open);
        line(
            "idle",
            json!({
                "node": args.node,
                "target": target,
                "open": open,
                "users": users,
                "failed": failed,
                "failures": *lock(&tally.failures),
                "first_error": *lock(&tally.first_error),
                "dropped": dropped,
                "drops": *lock(&tally.drops),
                "open_secs": round1(open_secs),
                "hold_secs": args.hold,
                "server_pid": args.pid,
                "server_rss_base_kib": base_rss,
                "server_rss_kib": rss,
                "per_socket_bytes": overall,
                "marginal_per_socket_bytes": marginal,
                "generator_rss_kib": self_rss,
                "generator_per_socket_bytes": generator,
            }),
        );
        let show = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.0}"));
        table.row(vec![
            target.to_string(),
            open.to_string(),
            failed.to_string(),
            dropped.to_string(),
            format!(
                "{:.0}",
                (open.saturating_sub(prev_open)) as f64 / open_secs.max(1e-9)
            ),
            rss.map_or("-".into(), |r| format!("{:.1}", r as f64 / 1024.0)),
            show(overall),
            show(marginal),
            show(generator),
        ]);
        all_ok &= failed == 0 && dropped == 0;
        prev_rss = rss;
        prev_open = open;
    }
    table.print();
    if let Some(e) = lock(&tally.first_error).as_ref() {
        note(format!("first failure: {e}"));
    }
    Ok(all_ok)
}
