//! `resume`: how long a partner who was away takes to catch up. Each repetition: B is
//! offline; A (on the first node) sends `--count` chats, a window of them in flight, until all
//! are acked; then B connects to the second node with `/ws?after=<the last seq B saw>` and the
//! time from starting its TCP connect to its `synced` frame is measured. B's replay is checked
//! too: exactly the chats A sent this repetition, each once, nothing else.
//!
//! A's sends are retried when the node answers `rate_limited` (its default is 20 frames/s per
//! socket), so the mode also works against a node with default limits, only slower; the
//! retries are reported. Any other refusal stops the run.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Dialer, Frame, Node, Nonce, Ws, close_label, send_frame};
use crate::report::{Table, line, note, round3};
use crate::setup::read_tokens;

/// Time an offline partner's catch-up over `/ws?after=` after N missed chats.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Nodes, HOST:PORT,HOST:PORT: A sends on the first, B resumes on the second (or the
    /// first when only one is given).
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Tokens file written by `setup`.
    #[arg(long)]
    tokens: PathBuf,
    /// Which couple of the tokens file (0 is the first line).
    #[arg(long, default_value_t = 0)]
    couple: usize,
    /// Chats B misses per repetition.
    #[arg(long, default_value_t = 1000)]
    count: u32,
    /// Repetitions.
    #[arg(long, default_value_t = 5)]
    reps: u32,
    /// A's sends in flight (sent, not yet acked) at once.
    #[arg(long, default_value_t = 32)]
    window: u32,
    /// Seconds without any progress after which the run gives up.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

pub async fn run(args: Args) -> Result<bool> {
    if args.count == 0 || args.reps == 0 {
        bail!("--count and --reps must be at least 1");
    }
    let nodes = Node::resolve_all(&args.nodes).await?;
    let (node_a, node_b) = (&nodes[0], &nodes[1 % nodes.len()]);
    let couples = read_tokens(&args.tokens, None)?;
    let Some(couple) = couples.get(args.couple) else {
        bail!(
            "--couple {}: the tokens file has {} couples",
            args.couple,
            couples.len()
        );
    };
    let timeout = Duration::from_secs_f64(args.timeout);
    // B's replay of a thousand chats arrives in a burst: a roomy read buffer.
    let dialer = Dialer::new(64 * 1024, 64 * 1024, timeout, 0);

    // Where B stands before its first absence.
    let (mut b, synced) = dialer
        .open_synced(node_b, &couple.b, None, |_| {})
        .await
        .context("partner B's first connection")?;
    let mut b_seq = synced.last_seq;
    close(&mut b).await;
    let (mut a, _) = dialer
        .open_synced(node_a, &couple.a, None, |_| {})
        .await
        .context("partner A's connection")?;

    let mut table = Table::new(
        "resume: from B's TCP connect to its synced frame",
        &[
            "rep",
            "missed",
            "replayed",
            "ms to synced",
            "send s",
            "retries",
            "ok",
        ],
    );
    let mut times = Vec::new();
    let mut all_ok = true;
    for rep in 1..=args.reps {
        let nonce = Nonce::random();
        let sent = send_all(&mut a, nonce, args.count, args.window, timeout)
            .await
            .with_context(|| format!("rep {rep}: A's sends"))?;

        let (mut replayed, mut duplicates, mut foreign, mut behind) = (0u32, 0u32, 0u32, 0u32);
        let mut seen = vec![false; args.count as usize];
        let started = Instant::now();
        let (mut b, synced) = dialer
            .open_synced(node_b, &couple.b, Some(b_seq), |frame| {
                if frame.event_seq().is_some_and(|seq| seq <= b_seq) {
                    behind += 1;
                }
                if frame.kind != "chat" {
                    return;
                }
                match frame.client_id.and_then(|id| nonce.decode(id)) {
                    Some((0, k)) if (k as usize) < seen.len() => {
                        if std::mem::replace(&mut seen[k as usize], true) {
                            duplicates += 1;
                        } else {
                            replayed += 1;
                        }
                    }
                    _ => foreign += 1,
                }
            })
            .await
            .with_context(|| format!("rep {rep}: B's resume"))?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        close(&mut b).await;
        let after = b_seq;
        b_seq = synced.last_seq;
        let ok = replayed == args.count && duplicates == 0 && foreign == 0 && behind == 0;
        all_ok &= ok;
        times.push(ms);
        line(
            "resume",
            json!({
                "rep": rep,
                "nodes": args.nodes,
                "missed": args.count,
                "replayed": replayed,
                "duplicates": duplicates,
                "unexpected": foreign,
                "at_or_before_after": behind,
                "frames": synced.frames,
                "unreadable": synced.unreadable,
                "after": after,
                "synced_last_seq": synced.last_seq,
                "a_last_seq": sent.last_seq,
                "ms_to_synced": round3(ms),
                "send_secs": round3(sent.secs),
                "rate_limited_retries": sent.retries,
                "ok": ok,
            }),
        );
        table.row(vec![
            rep.to_string(),
            args.count.to_string(),
            replayed.to_string(),
            format!("{ms:.1}"),
            format!("{:.2}", sent.secs),
            sent.retries.to_string(),
            if ok { "yes".into() } else { "NO".into() },
        ]);
        if !ok {
            note(format!(
                "rep {rep}: B replayed {replayed} of {} chats ({duplicates} twice, {foreign} \
                 unexpected, {behind} at or before its resume point)",
                args.count
            ));
        }
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    line(
        "resume",
        json!({
            "summary": true,
            "nodes": args.nodes,
            "missed": args.count,
            "reps": args.reps,
            "median_ms": round3(median),
            "min_ms": round3(sorted.first().copied().unwrap_or(0.0)),
            "max_ms": round3(sorted.last().copied().unwrap_or(0.0)),
            "ok": all_ok,
        }),
    );
    table.print();
    note(format!(
        "resume after {} missed chats: median {median:.1} ms, min {:.1}, max {:.1}",
        args.count,
        sorted.first().copied().unwrap_or(0.0),
        sorted.last().copied().unwrap_or(0.0)
    ));
    Ok(all_ok)
}

struct Sent {
    secs: f64,
    retries: u64,
    last_seq: i64,
}

/// Sends chats 0..count as sender 0 of `nonce`, at most `window` unanswered, until every one
/// is acked.
async fn send_all(
    ws: &mut Ws,
    nonce: Nonce,
    count: u32,
    window: u32,
    timeout: Duration,
) -> Result<Sent> {
    let started = Instant::now();
    let mut acked = vec![false; count as usize];
    let (mut acked_n, mut in_flight, mut next) = (0u32, 0u32, 0u32);
    let mut retry: VecDeque<u32> = VecDeque::new();
    let mut retry_at = Instant::now();
    let mut retries = 0u64;
    let mut last_seq = 0i64;
    let mut progress = Instant::now();
    // The window halves on every rate_limited and grows by one per ack (AIMD), so against
    // a node with a frame limit the sends settle at its rate instead of bouncing off it.
    let mut allowed = window.max(1);
    while acked_n < count {
        let mut fed = false;
        while in_flight < allowed {
            // After a rate_limited, nothing new goes out before the retries: the node's
            // bucket needs the pause, not more frames to refuse.
            let k = if !retry.is_empty() {
                if Instant::now() < retry_at {
                    break;
                }
                retry.pop_front()
            } else if next < count {
                next += 1;
                Some(next - 1)
            } else {
                None
            };
            let Some(k) = k else { break };
            ws.feed(send_frame(nonce.client_id(0, k), 0, k, 0)).await?;
            in_flight += 1;
            fed = true;
        }
        if fed {
            ws.flush().await?;
        }
        // Wake for a pending retry even when nothing arrives.
        let wait = if retry.is_empty() {
            timeout
        } else {
            retry_at
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        };
        let message = match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(message)) => message?,
            Ok(None) => bail!("A's socket ended"),
            Err(_) if progress.elapsed() >= timeout => {
                bail!("no answer to A's sends for {timeout:?} ({acked_n} of {count} acked)")
            }
            Err(_) => continue,
        };
        let text = match &message {
            Message::Text(text) => text.as_str(),
            Message::Close(frame) => bail!("A's socket closed: {}", close_label(frame.as_ref())),
            _ => continue,
        };
        let Some(frame) = Frame::parse(text) else {
            continue;
        };
        let Some((0, k)) = frame.client_id.and_then(|id| nonce.decode(id)) else {
            continue;
        };
        match frame.kind {
            // A repeated ack (there should be none) must not open the window twice.
            "ack"
                if (k as usize) < acked.len()
                    && !std::mem::replace(&mut acked[k as usize], true) =>
            {
                acked_n += 1;
                in_flight = in_flight.saturating_sub(1);
                last_seq = last_seq.max(frame.seq.unwrap_or(0));
                progress = Instant::now();
                allowed = (allowed + 1).min(window.max(1));
            }
            "error" => {
                in_flight = in_flight.saturating_sub(1);
                match frame.code {
                    Some("rate_limited") => {
                        retries += 1;
                        retry.push_back(k);
                        allowed = (allowed / 2).max(1);
                        // The node refills its bucket continuously (20 frames/s by default).
                        retry_at = Instant::now() + Duration::from_millis(50);
                    }
                    code => bail!(
                        "the node refused chat {k}: {}",
                        code.unwrap_or("error without a code")
                    ),
                }
            }
            _ => {}
        }
    }
    if retries > 0 {
        note(format!(
            "{retries} sends were refused rate_limited and retried (DUET_FRAME_RATE limits A)"
        ));
    }
    Ok(Sent {
        secs: started.elapsed().as_secs_f64(),
        retries,
        last_seq,
    })
}

/// Closes politely and waits briefly for the node's reply, so B is really offline.
async fn close(ws: &mut Ws) {
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}
