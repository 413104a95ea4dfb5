//! `push`: how soon a partner who is offline hears of a chat through Web Push. Every couple's
//! B subscribes a device whose endpoint is a push service this generator runs itself, then
//! stays offline (no socket, so nobody is looking); every A sends at an even share of `--rate`,
//! A's sockets spread over the nodes. The push service decrypts each push with the device's
//! key (RFC 8291, as a browser would) and matches it to the chat it names, so nothing is taken
//! on trust: a chat counts as pushed only when a push for its seq arrived, decrypted.
//!
//! Measured per push, from the chat a push names (the first of a collapsed burst):
//! - `send_to_push`: from writing A's send to the push service receiving the push; it holds
//!   the commit, so it is the partner's view of "how long until my phone knew";
//! - `ack_to_push`: from A's ack (the commit is done) to the push arriving: what pushing adds
//!   after the commit (the node answers A and starts the push at the same moment).
//!
//! The nodes must accept `http://` endpoints (`DUET_PUSH_ALLOW_HTTP=true`). Their
//! `DUET_PUSH_COLLAPSE_MS` decides how many chats a push stands for; with it at 0 every chat is
//! its own push. The devices are removed at the end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::extract::{Path as AxumPath, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::{SinkExt, StreamExt};

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use web_push_native::p256;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;

use crate::client::{Dialer, Frame, Node, Nonce, send_frame};
use crate::report::{Latency, Table, histogram, line, note};
use crate::setup::read_tokens;

/// Time from a chat's send and ack to a push about it reaching an offline partner's device.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Nodes, HOST:PORT,HOST:PORT: the couples' A sockets take turns among them.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Tokens file written by `setup`.
    #[arg(long)]
    tokens: PathBuf,
    /// Couples taking part (from the start of the tokens file).
    #[arg(long, default_value_t = 200)]
    couples: usize,
    /// Chats per second, all couples together.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 30.0)]
    secs: f64,
    /// Where the push service listens (the nodes must reach it).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Seconds to wait for the last pushes after the last send.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
}

/// A device's private half: what it decrypts its pushes with.
struct Device {
    private_key: String,
    auth: String,
}

#[derive(Default)]
struct Received {
    /// (couple, seq the push names) -> when it arrived, and how many chats it stands for.
    pushes: HashMap<(usize, i64), (Instant, u64)>,
    unreadable: u64,
}

#[derive(Clone)]
struct Service {
    devices: Arc<Vec<Device>>,
    received: Arc<Mutex<Received>>,
}

async fn take(
    State(service): State<Service>,
    AxumPath(couple): AxumPath<usize>,
    body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    let opened = service.devices.get(couple).and_then(|device| {
        let plain = duet::open_push(body.to_vec(), &device.private_key, &device.auth).ok()?;
        serde_json::from_slice::<serde_json::Value>(&plain).ok()
    });
    let mut received = service
        .received
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match opened.and_then(|p| Some((p["seq"].as_i64()?, p["count"].as_u64()?))) {
        Some((seq, count)) => {
            received.pushes.insert((couple, seq), (at, count));
        }
        None => received.unreadable += 1,
    }
    StatusCode::CREATED
}

fn device() -> (Device, String, String) {
    let secret = loop {
        if let Ok(key) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
            break key;
        }
    };
    let public = secret.public_key().as_affine().to_encoded_point(false);
    let auth = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    let device = Device {
        private_key: URL_SAFE_NO_PAD.encode(secret.to_bytes()),
        auth: auth.clone(),
    };
    (device, URL_SAFE_NO_PAD.encode(public.as_bytes()), auth)
}

/// Per couple: when each of A's chats was sent and acked, by seq.
#[derive(Default)]
struct Sent {
    sent: u64,
    /// seq -> (sent at, acked at)
    by_seq: HashMap<i64, (Instant, Instant)>,
    refused: u64,
}

pub async fn run(args: Args) -> Result<bool> {
    if args.rate.is_nan() || args.rate <= 0.0 || args.secs.is_nan() || args.secs <= 0.0 {
        bail!("--rate and --secs must be above 0");
    }
    let nodes = Node::resolve_all(&args.nodes).await?;
    let couples = read_tokens(&args.tokens, Some(args.couples))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("the push service cannot listen on {}", args.listen))?;
    let listen = listener.local_addr()?;
    let mut devices = Vec::with_capacity(couples.len());
    let mut keys = Vec::with_capacity(couples.len());
    for _ in &couples {
        let (device, p256dh, auth) = device();
        devices.push(device);
        keys.push((p256dh, auth));
    }
    let service = Service {
        devices: Arc::new(devices),
        received: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/push/{couple}", axum::routing::post(take))
        .with_state(service.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Each B subscribes its device (on the node its couple's A does not use, when two).
    let mut subscribed = Vec::with_capacity(couples.len());
    for (i, (couple, (p256dh, auth))) in couples.iter().zip(&keys).enumerate() {
        let node = &nodes[(i + 1) % nodes.len()];
        let response = http
            .post(format!("http://{}/api/push/devices", node.addr))
            .bearer_auth(&couple.b)
            .json(&json!({
                "endpoint": format!("http://{listen}/push/{i}"),
                "keys": { "p256dh": p256dh, "auth": auth },
                "device": "duet-load",
            }))
            .send()
            .await
            .with_context(|| format!("subscribing couple {i}'s device"))?;
        if response.status() != reqwest::StatusCode::CREATED {
            bail!(
                "subscribing couple {i}'s device: {} {} (do the nodes run with \
                 DUET_PUSH_ALLOW_HTTP=true?)",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        let body: serde_json::Value = response.json().await?;
        subscribed.push((
            node.clone(),
            body["id"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    note(format!(
        "{} devices subscribed to the push service at {listen}",
        subscribed.len()
    ));

    let dialer = Dialer::new(16 * 1024, 16 * 1024, Duration::from_secs(10), 0);
    let nonce = Nonce::random();
    let period = Duration::from_secs_f64(couples.len() as f64 / args.rate);
    let per_couple = (args.secs * args.rate / couples.len() as f64).ceil() as u32;
    let start = Instant::now() + Duration::from_millis(500);
    let mut senders = Vec::new();
    for (i, couple) in couples.iter().enumerate() {
        let node = nodes[i % nodes.len()].clone();
        let (ws, _) = dialer
            .open_synced(&node, &couple.a, None, |_| {})
            .await
            .map_err(|e| anyhow::anyhow!("couple {i}'s A socket: {e}"))?;
        // Phases spread over one period, so the rate is even, not a pulse per period.
        let first = start + period.mul_f64(i as f64 / couples.len() as f64);
        senders.push(tokio::spawn(send(ws, i, nonce, first, period, per_couple)));
    }
    let mut sent = Vec::with_capacity(senders.len());
    for sender in senders {
        sent.push(sender.await.context("a sender task")??);
    }
    let chats: u64 = sent.iter().map(|s| s.sent).sum();
    let acked: u64 = sent.iter().map(|s| s.by_seq.len() as u64).sum();
    let refused: u64 = sent.iter().map(|s| s.refused).sum();

    // The last pushes: until every acked chat is counted, or the drain time is up.
    let deadline = Instant::now() + Duration::from_secs_f64(args.drain);
    loop {
        let counted: u64 = lock(&service).pushes.values().map(|(_, n)| n).sum();
        if counted >= acked || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (mut send_to_push, mut ack_to_push) = (histogram()?, histogram()?);
    let (mut pushes, mut counted, mut unmatched, mut early) = (0u64, 0u64, 0u64, 0u64);
    {
        let received = lock(&service);
        for (&(couple, seq), &(at, count)) in &received.pushes {
            pushes += 1;
            counted += count;
            let Some(&(sent_at, acked_at)) = sent.get(couple).and_then(|s| s.by_seq.get(&seq))
            else {
                unmatched += 1;
                continue;
            };
            let us = |d: Duration| d.as_micros().min(u128::from(u64::MAX)) as u64;
            send_to_push.saturating_record(us(at.saturating_duration_since(sent_at)).max(1));
            if at < acked_at {
                // The push overtook the ack on its way back to A's socket.
                early += 1;
            }
            ack_to_push.saturating_record(us(at.saturating_duration_since(acked_at)).max(1));
        }
        if received.unreadable > 0 {
            note(format!(
                "{} pushes did not decrypt or name a seq",
                received.unreadable
            ));
        }
    }

    for ((node, id), couple) in subscribed.iter().zip(&couples) {
        let _ = http
            .delete(format!("http://{}/api/push/devices/{id}", node.addr))
            .bearer_auth(&couple.b)
            .send()
            .await;
    }

    let (send_lat, ack_lat) = (Latency::of(&send_to_push), Latency::of(&ack_to_push));
    let ok = counted == acked && unmatched == 0 && refused == 0;
    line(
        "push",
        json!({
            "nodes": args.nodes,
            "couples": couples.len(),
            "rate": args.rate,
            "secs": args.secs,
            "chats_sent": chats,
            "chats_acked": acked,
            "refused": refused,
            "pushes": pushes,
            "chats_counted_by_pushes": counted,
            "pushes_not_matching_a_chat": unmatched,
            "pushes_before_ack": early,
            "send_to_push_ms": send_lat.json(),
            "ack_to_push_ms": ack_lat.json(),
            "ok": ok,
        }),
    );
    let mut table = Table::new(
        "push: an offline partner's device hears of each chat",
        &[
            "chats",
            "pushes",
            "counted",
            "p50 send→push",
            "p99",
            "max",
            "p50 ack→push",
            "p99",
            "ok",
        ],
    );
    table.row(vec![
        acked.to_string(),
        pushes.to_string(),
        counted.to_string(),
        send_lat.cell(|l| l.p50, 1),
        send_lat.cell(|l| l.p99, 1),
        send_lat.cell(|l| l.max, 1),
        ack_lat.cell(|l| l.p50, 1),
        ack_lat.cell(|l| l.p99, 1),
        if ok { "yes".into() } else { "NO".into() },
    ]);
    table.print();
    Ok(ok)
}

fn lock(service: &Service) -> std::sync::MutexGuard<'_, Received> {
    service
        .received
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One A: a chat every `period` from `first`, `count` of them, reading acks as they come.
async fn send(
    mut ws: crate::client::Ws,
    couple: usize,
    nonce: Nonce,
    first: Instant,
    period: Duration,
    count: u32,
) -> Result<Sent> {
    let mut out = Sent::default();
    let mut sent_at: HashMap<u32, Instant> = HashMap::new();
    let sender = couple as u32;
    let mut next = 0u32;
    let mut due = tokio::time::Instant::from_std(first);
    let mut answered = 0u32;
    while answered < count {
        tokio::select! {
            () = tokio::time::sleep_until(due), if next < count => {
                let id = nonce.client_id(sender, next);
                ws.send(send_frame(id, sender, next, 0)).await?;
                sent_at.insert(next, Instant::now());
                out.sent += 1;
                next += 1;
                due += period;
            }
            message = ws.next() => {
                let Some(message) = message else { bail!("couple {couple}'s socket ended") };
                let Message::Text(text) = message? else { continue };
                let Some(frame) = Frame::parse(text.as_str()) else { continue };
                let Some((s, k)) = frame.client_id.and_then(|id| nonce.decode(id)) else { continue };
                if s != sender {
                    continue;
                }
                match (frame.kind, frame.seq, sent_at.get(&k)) {
                    ("ack", Some(seq), Some(&at)) => {
                        out.by_seq.insert(seq, (at, Instant::now()));
                        answered += 1;
                    }
                    ("error", ..) => {
                        out.refused += 1;
                        answered += 1;
                    }
                    _ => {}
                }
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(out)
}
