//! The fault suite's traffic and its checker. A `Traffic` is a few couples chatting steadily,
//! each person one client behaving as a real one does: it sends at a steady pace with a fresh
//! `client_id` per chat and keeps every send until its `ack`. When its socket closes it
//! reconnects with `after=<last seq seen>` (to the next node when its own is gone) and sends
//! everything unacked again with the SAME `client_id`; a send refused for a passing reason
//! (`unavailable`, `rate_limited`, `internal`) goes again the same way after a pause.
//!
//! When the traffic stops, each couple's history is read back with `after=0` and set against
//! what the clients were told and shown (`tally`):
//!
//! - acked: chats whose sender got an `ack`;
//! - lost: acked, but not in the history, or not at the seq its ack named;
//! - duplicated: a client_id more than once in the history, or acked with two seqs;
//! - gaps: seqs missing from the history, or never shown to a partner who kept resuming;
//! - out of order: a client was shown a seq at or below one it had already been shown.
//!
//! `tally` is a plain function of the records, so the suite can show it counting failures in
//! records it makes up.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::support::User;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long clients may take, once sending stops, to get their last acks and see their
/// couple's last chats. Only a bound on how long a broken run lasts.
const SETTLE: Duration = Duration::from_secs(20);
/// Pause before sending again a chat refused for a passing reason.
const RETRY_AFTER: Duration = Duration::from_millis(200);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How one person sends.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// Time between two turns of sending.
    pub every: Duration,
    /// New chats sent in one turn, back to back.
    pub burst: usize,
    /// Characters of padding after each chat's label (big chats fill buffers sooner).
    pub padding: usize,
    /// Sends refused with `rate_limited` are dropped rather than sent again: a flood.
    pub give_up_when_limited: bool,
    /// New chats at most; after them the client only reads (and retries).
    pub max_sends: Option<u64>,
}

impl Pace {
    /// Ten chats a second: under the default frame rate, however many retries a
    /// reconnect sends at once.
    pub fn steady() -> Pace {
        Pace {
            every: Duration::from_millis(100),
            burst: 1,
            padding: 0,
            give_up_when_limited: false,
            max_sends: None,
        }
    }

    /// Fifty chats a second, one person talking steadily (the node's frame rate must allow
    /// it: see the fault suite's flags).
    pub fn talking() -> Pace {
        Pace {
            every: Duration::from_millis(20),
            ..Pace::steady()
        }
    }

    /// Only listens: sends nothing, so no ack of its own can reveal a gap to it. Only its
    /// cursor, resuming, and the bus bring it its partner's chats.
    pub fn listening() -> Pace {
        Pace {
            max_sends: Some(0),
            ..Pace::steady()
        }
    }

    /// Far above the frame rate (20 a second by default): a send every 2 ms, about 500 a
    /// second, never retrying what the limit refuses. (A debug build of the node answers
    /// about that many frames a second; more would only measure its backlog.)
    pub fn flood() -> Pace {
        Pace {
            every: Duration::from_millis(2),
            burst: 1,
            padding: 0,
            give_up_when_limited: true,
            max_sends: None,
        }
    }
}

/// One client of the traffic.
pub struct Person {
    pub user: User,
    /// Index of its couple in the traffic's couples.
    pub couple: usize,
    /// Nodes to connect to, in order of preference: the first is its own, the others are
    /// where it goes when that one is gone.
    pub nodes: Vec<SocketAddr>,
    pub pace: Pace,
    pub label: String,
}

/// The usual cast: each couple's first partner on `nodes[0]`, the second on `nodes[1]` (when
/// there is one), both falling back on the other nodes in turn.
pub fn people(couples: &[(User, User)], nodes: &[SocketAddr], pace: Pace) -> Vec<Person> {
    let rotated = |first: usize| -> Vec<SocketAddr> {
        (0..nodes.len())
            .map(|i| nodes[(first + i) % nodes.len()])
            .collect()
    };
    couples
        .iter()
        .enumerate()
        .flat_map(|(i, (a, b))| {
            [
                Person {
                    user: a.clone(),
                    couple: i,
                    nodes: rotated(0),
                    pace,
                    label: format!("c{i}a"),
                },
                Person {
                    user: b.clone(),
                    couple: i,
                    nodes: rotated(1 % nodes.len()),
                    pace,
                    label: format!("c{i}b"),
                },
            ]
        })
        .collect()
}

/// One-way traffic: each couple's first partner talks on `nodes[0]` (`Pace::talking`), the
/// second only listens on `nodes[1]`; both fall back on the other nodes in turn.
pub fn talkers_and_listeners(couples: &[(User, User)], nodes: &[SocketAddr]) -> Vec<Person> {
    let mut cast = people(couples, nodes, Pace::talking());
    for person in &mut cast {
        if person.label.ends_with('b') {
            person.pace = Pace::listening();
        }
    }
    cast
}

/// What the clients share while the traffic runs.
struct Shared {
    sending: AtomicBool,
    /// When sending stopped; clients give up `SETTLE` after it.
    stopped_at: OnceLock<Instant>,
    /// Sends of every client not yet acked (or given up).
    outstanding: AtomicUsize,
    /// The highest seq acked in each couple: what each of its clients must see by the end.
    highest_acked: Vec<AtomicI64>,
}

/// A few couples chatting until `stop`.
pub struct Traffic {
    shared: Arc<Shared>,
    couples: Vec<(User, User)>,
    clients: Vec<(usize, Arc<AtomicUsize>, JoinHandle<Seen>)>,
}

impl Traffic {
    pub fn start(couples: &[(User, User)], people: Vec<Person>) -> Traffic {
        let shared = Arc::new(Shared {
            sending: AtomicBool::new(true),
            stopped_at: OnceLock::new(),
            outstanding: AtomicUsize::new(0),
            highest_acked: couples.iter().map(|_| AtomicI64::new(0)).collect(),
        });
        let mut traffic = Traffic {
            shared,
            couples: couples.to_vec(),
            clients: Vec::new(),
        };
        traffic.join(people);
        traffic
    }

    /// More clients join (e.g. people opening the app in the middle of a fault).
    pub fn join(&mut self, people: Vec<Person>) {
        for person in people {
            let acks = Arc::new(AtomicUsize::new(0));
            let couple = person.couple;
            let client = Client {
                me: person.user.id.to_string(),
                person,
                shared: Arc::clone(&self.shared),
                acks: Arc::clone(&acks),
            };
            self.clients
                .push((couple, acks, tokio::spawn(client.run())));
        }
    }

    /// Waits until every client has a few acks (a listener, a few chats heard): the traffic
    /// flows before the fault.
    pub async fn flowing(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self
            .clients
            .iter()
            .any(|(_, acks, _)| acks.load(Ordering::Relaxed) < 3)
        {
            assert!(
                Instant::now() < deadline,
                "the traffic did not start flowing"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops new sends and waits for every client to settle: its sends acked, its couple's
    /// last chats seen (or `SETTLE` passed).
    pub async fn stop(self) -> Stopped {
        let _ = self.shared.stopped_at.set(Instant::now());
        self.shared.sending.store(false, Ordering::Relaxed);
        let mut clients: Vec<Vec<Seen>> = self.couples.iter().map(|_| Vec::new()).collect();
        for (couple, _, handle) in self.clients {
            clients[couple].push(handle.await.expect("a client ran to its end"));
        }
        Stopped {
            couples: self.couples,
            clients,
        }
    }
}

impl Traffic {
    /// Stops, reads every couple's history through `reader`, and asserts the rules every
    /// scenario keeps; the tally is returned for the scenario's own checks.
    pub async fn finish(self, scenario: &str, fault_end: Instant, reader: SocketAddr) -> Tally {
        let tally = self.stop().await.check(scenario, fault_end, reader).await;
        tally.assert_clean();
        tally
    }
}

/// The traffic after it stopped: what its clients saw, before the history is read.
pub struct Stopped {
    couples: Vec<(User, User)>,
    clients: Vec<Vec<Seen>>,
}

impl Stopped {
    /// Adds what a socket outside the traffic was shown (it must hold every seq too).
    pub fn add(&mut self, couple: usize, seen: Seen) {
        self.clients[couple].push(seen);
    }

    /// Reads every couple's history with `after=0` from `reader`, counts, and prints the
    /// scenario's one-line summary.
    pub async fn check(self, scenario: &str, fault_end: Instant, reader: SocketAddr) -> Tally {
        let mut records = Vec::new();
        for ((a, _), clients) in self.couples.iter().zip(self.clients) {
            let replay = a.on(reader).socket_at("/ws?after=0").await;
            let history = replay
                .replay
                .iter()
                .filter(|f| f["type"] == "chat")
                .map(|f| {
                    (
                        f["seq"].as_i64().unwrap_or(-1),
                        f["client_id"].as_str().and_then(|s| s.parse().ok()),
                    )
                })
                .collect();
            records.push(CoupleRecord {
                history,
                last_seq: replay.synced["last_seq"].as_i64().unwrap_or(-1),
                clients,
            });
        }
        let tally = tally(scenario, &records, fault_end);
        eprintln!("{tally}");
        tally
    }
}

/// What one client was told and shown.
#[derive(Debug, Default)]
pub struct Seen {
    pub label: String,
    /// Sends nothing (`Pace::listening`).
    pub listens_only: bool,
    /// Chats this client started (each with its own client_id).
    pub sends: u64,
    /// The seq each acked client_id was given, and when the first ack came.
    pub acks: HashMap<Uuid, (i64, Instant)>,
    /// Acks naming another seq than an earlier ack of the same client_id.
    pub conflicting_acks: usize,
    /// Every chat seq shown to this client, in order, across its sockets, with when.
    pub chats: Vec<(i64, Instant)>,
    /// When chats by the partner were shown (what crosses nodes when partners are apart).
    pub heard: Vec<Instant>,
    /// Sends never acked nor given up when the client stopped.
    pub unacked: usize,
    /// `error` frames by code.
    pub errors: BTreeMap<String, usize>,
    /// How each socket the server ended was closed: its close code, or `None` when it just
    /// dropped (no close frame).
    pub closes: Vec<Option<u16>>,
    pub connects: usize,
    /// The longest a send waited for its ack or error on an open socket.
    pub slowest_answer: Duration,
}

/// One couple's history and what its clients saw.
pub struct CoupleRecord {
    /// `(seq, client_id)` of every chat in the `after=0` replay, in replay order.
    pub history: Vec<(i64, Option<Uuid>)>,
    /// `synced.last_seq` of that replay.
    pub last_seq: i64,
    pub clients: Vec<Seen>,
}

/// The counts of one run.
#[derive(Debug, Default)]
pub struct Tally {
    pub scenario: String,
    pub acked: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub gaps: usize,
    pub out_of_order: usize,
    pub unacked: usize,
    pub reconnects: usize,
    pub errors: BTreeMap<String, usize>,
    pub slowest_answer: Duration,
    /// The longest any client went without an ack, or without hearing its partner, while
    /// both were sending: how long the fault held things up.
    pub longest_stall: Duration,
    /// From the fault's end until every client still sending was acked again and every
    /// client whose partner still sent heard it again (`None`: nothing happened after it).
    pub recovery: Option<Duration>,
    /// The longest a listening-only client waited for an acked chat, counted from its ack
    /// or, for a chat acked during the fault, from the fault's end: how soon delivery came
    /// back for someone no ack of their own could tell of a gap (`None`: no listener).
    pub listener_lag: Option<Duration>,
    /// From the fault's end until the last listening-only client heard its partner again.
    pub heard_again: Option<Duration>,
    pub clients: Vec<ClientTally>,
    /// What each lost chat looked like, for the failure message.
    pub findings: Vec<String>,
}

/// How one client fared, for rules about particular clients.
#[derive(Debug)]
pub struct ClientTally {
    pub label: String,
    /// How each socket the server ended was closed (`None`: no close frame).
    pub closes: Vec<Option<u16>>,
    /// `error` frames by code.
    pub errors: BTreeMap<String, usize>,
}

/// Counts what the records show; see the module docs for what each count means.
pub fn tally(scenario: &str, couples: &[CoupleRecord], fault_end: Instant) -> Tally {
    let mut t = Tally {
        scenario: scenario.to_owned(),
        ..Tally::default()
    };
    let mut recovery = None;
    for couple in couples {
        // The history: every seq from 1 to the last, once, in order, each client_id once.
        let mut in_history: HashMap<Uuid, i64> = HashMap::new();
        let mut previous = 0;
        for (seq, client_id) in &couple.history {
            if *seq <= previous {
                t.out_of_order += 1;
            }
            previous = previous.max(*seq);
            if let Some(id) = client_id {
                // The first one counts; any later one is the duplicate.
                match in_history.entry(*id) {
                    Entry::Occupied(_) => t.duplicated += 1,
                    Entry::Vacant(entry) => {
                        entry.insert(*seq);
                    }
                }
            }
        }
        let expected: HashSet<i64> = (1..=couple.last_seq).collect();
        let stored: HashSet<i64> = couple.history.iter().map(|c| c.0).collect();
        t.gaps += expected.difference(&stored).count();

        let mut acked: HashMap<Uuid, i64> = HashMap::new();
        for client in &couple.clients {
            for (id, (seq, _)) in &client.acks {
                if let Some(other) = acked.insert(*id, *seq)
                    && other != *seq
                {
                    t.duplicated += 1;
                }
            }
            t.duplicated += client.conflicting_acks;
            // Every client, resuming from the last seq it saw, must have been shown each
            // one once and in order.
            let mut cursor = 0;
            for (seq, _) in &client.chats {
                if *seq <= cursor {
                    t.out_of_order += 1;
                }
                cursor = cursor.max(*seq);
            }
            let shown: HashSet<i64> = client.chats.iter().map(|c| c.0).collect();
            t.gaps += expected.difference(&shown).count();

            t.unacked += client.unacked;
            t.reconnects += client.connects.saturating_sub(1);
            for (code, n) in &client.errors {
                *t.errors.entry(code.clone()).or_default() += n;
            }
            t.slowest_answer = t.slowest_answer.max(client.slowest_answer);
            let mut acked_at: Vec<Instant> = client.acks.values().map(|a| a.1).collect();
            acked_at.sort();
            for times in [&acked_at, &client.heard] {
                for pair in times.windows(2) {
                    t.longest_stall = t.longest_stall.max(pair[1] - pair[0]);
                }
            }
            // Back when it is acked again and hears its partner again: on a node of its own,
            // acks alone would not show the bus healing. A kind of event a client no longer
            // had after the fault (it had stopped sending, or its partner had) tells nothing.
            for times in [&acked_at, &client.heard] {
                if let Some(at) = times.iter().filter(|at| **at >= fault_end).min() {
                    let took = *at - fault_end;
                    recovery = Some(recovery.map_or(took, |r: Duration| r.max(took)));
                }
            }
            t.clients.push(ClientTally {
                label: client.label.clone(),
                closes: client.closes.clone(),
                errors: client.errors.clone(),
            });
        }
        let acked_at: HashMap<i64, Instant> = couple
            .clients
            .iter()
            .flat_map(|c| c.acks.values().copied())
            .collect();
        for listener in couple.clients.iter().filter(|c| c.listens_only) {
            let mut first_heard: HashMap<i64, Instant> = HashMap::new();
            for (seq, at) in &listener.chats {
                first_heard.entry(*seq).or_insert(*at);
            }
            for (seq, acked) in &acked_at {
                // Never heard is a gap, counted above; here, how late.
                if let Some(heard) = first_heard.get(seq) {
                    let lag = heard.saturating_duration_since((*acked).max(fault_end));
                    t.listener_lag = Some(t.listener_lag.unwrap_or_default().max(lag));
                }
            }
            if let Some(at) = listener.heard.iter().find(|at| **at >= fault_end) {
                let took = *at - fault_end;
                t.heard_again = Some(t.heard_again.unwrap_or_default().max(took));
            }
        }
        t.acked += acked.len();
        let at_seq: HashMap<i64, Option<Uuid>> = couple.history.iter().copied().collect();
        for (id, seq) in &acked {
            let stored = in_history.get(id);
            if stored != Some(seq) {
                t.lost += 1;
                t.findings.push(format!(
                    "acked {id} as seq {seq}; the history has it at {stored:?}, and at seq {seq} {:?}",
                    at_seq.get(seq)
                ));
            }
        }
    }
    t.recovery = recovery;
    t
}

impl Tally {
    /// The rules every scenario keeps: nothing acked is lost or doubled, no seq is missing
    /// or shown out of order, and something was acked at all.
    pub fn assert_clean(&self) {
        let broken = self.broken();
        assert!(
            broken.is_empty(),
            "{}: {}\n{}",
            broken.join(", "),
            self,
            self.findings
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// The rules of `assert_clean` this run broke.
    pub fn broken(&self) -> Vec<&'static str> {
        let mut broken = Vec::new();
        if self.acked == 0 {
            broken.push("nothing was acked");
        }
        if self.lost > 0 {
            broken.push("acked chats were lost");
        }
        if self.duplicated > 0 {
            broken.push("chats were duplicated");
        }
        if self.gaps > 0 {
            broken.push("seqs are missing");
        }
        if self.out_of_order > 0 {
            broken.push("seqs came out of order");
        }
        broken
    }

    /// Every listening-only client heard every acked chat within `bound` of its ack, or of
    /// the fault's end for one acked during the fault.
    pub fn assert_listeners_hear_within(&self, bound: Duration) {
        let lag = self
            .listener_lag
            .expect("the scenario has listening-only clients");
        assert!(
            lag <= bound,
            "a listening-only partner heard a chat {:.2} s late (at most {:.2} s): {self}",
            lag.as_secs_f64(),
            bound.as_secs_f64()
        );
    }

    /// Close codes of every socket the server ended, over all clients.
    pub fn closes(&self) -> Vec<Option<u16>> {
        self.clients
            .iter()
            .flat_map(|c| c.closes.iter().copied())
            .collect()
    }

    /// How the client with this label fared.
    pub fn client(&self, label: &str) -> &ClientTally {
        self.clients
            .iter()
            .find(|c| c.label == label)
            .unwrap_or_else(|| panic!("no client {label}"))
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: Option<Duration>| {
            d.map_or("never".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
        };
        let recovery = secs(self.recovery);
        write!(
            f,
            "fault {}: acked {}, lost {}, dup {}, gaps {}, out of order {}, unacked {}, \
             reconnects {}, slowest answer {:.2} s, longest stall {:.2} s, recovery {}, \
             listener lag {}, heard again {}, errors {:?}",
            self.scenario,
            self.acked,
            self.lost,
            self.duplicated,
            self.gaps,
            self.out_of_order,
            self.unacked,
            self.reconnects,
            self.slowest_answer.as_secs_f64(),
            self.longest_stall.as_secs_f64(),
            recovery,
            secs(self.listener_lag),
            secs(self.heard_again),
            self.errors,
        )
    }
}

/// A send waiting for its ack.
struct Pending {
    client_id: Uuid,
    frame: String,
    /// When it last went out (on this socket or an earlier one).
    sent: Instant,
    /// When to send it again after a passing refusal.
    retry_at: Option<Instant>,
}

struct Client {
    person: Person,
    shared: Arc<Shared>,
    /// Acks so far (for a listening-only client, chats heard), for `Traffic::flowing`.
    acks: Arc<AtomicUsize>,
    /// The user's id as chats name their sender.
    me: String,
}

/// Why a socket's loop ended.
enum Next {
    Reconnect,
    Done,
}

impl Client {
    async fn run(self) -> Seen {
        let mut seen = Seen {
            label: self.person.label.clone(),
            listens_only: self.person.pace.max_sends == Some(0),
            ..Seen::default()
        };
        let mut pending = Unacked::default();
        let mut cursor = 0;
        let mut backoff = BACKOFF_MIN;
        let mut attempt = 0;
        loop {
            if self.settled(&pending, cursor) || self.out_of_time() {
                break;
            }
            let node = self.person.nodes[attempt % self.person.nodes.len()];
            let Some(ws) = self.connect(node, cursor).await else {
                attempt += 1;
                tokio::time::sleep(backoff.mul_f64(rand::random_range(0.5..1.0))).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            };
            seen.connects += 1;
            backoff = BACKOFF_MIN;
            attempt = 0;
            let (sink, mut stream) = ws.split();
            let (out, writer) = writer(sink);
            let next = self
                .converse(&out, &mut stream, &mut seen, &mut pending, &mut cursor)
                .await;
            match next {
                Next::Reconnect => writer.abort(),
                Next::Done => {
                    let _ = out.send(Message::Close(None));
                    drop(out);
                    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
                    break;
                }
            }
        }
        seen.unacked = pending.len();
        seen
    }

    /// One socket's life: everything unacked goes again, then new chats at the pace and
    /// retries when due, until the socket ends or the client has settled.
    async fn converse(
        &self,
        out: &mpsc::UnboundedSender<Message>,
        stream: &mut SplitStream<Ws>,
        seen: &mut Seen,
        pending: &mut Unacked,
        cursor: &mut i64,
    ) -> Next {
        let pace = self.person.pace;
        for p in pending.by_number.values_mut() {
            p.sent = Instant::now();
            p.retry_at = None;
            let _ = out.send(Message::text(p.frame.clone()));
        }
        let mut next_send = Instant::now();
        loop {
            let now = Instant::now();
            let mut wake = now + Duration::from_millis(50);
            if self.shared.sending.load(Ordering::Relaxed) {
                wake = wake.min(next_send);
            }
            if let Some(retry) = pending.by_number.values().filter_map(|p| p.retry_at).min() {
                wake = wake.min(retry);
            }
            tokio::select! {
                message = stream.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        self.on_frame(&frame, seen, pending, cursor);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        seen.closes.push(frame.map(|f| u16::from(f.code)));
                        return Next::Reconnect;
                    }
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => {
                        seen.closes.push(None);
                        return Next::Reconnect;
                    }
                },
                () = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    for _ in 0..pace.burst {
                        let done = pace.max_sends.is_some_and(|max| seen.sends >= max);
                        if done || !self.shared.sending.load(Ordering::Relaxed) || now < next_send {
                            break;
                        }
                        let n = seen.sends;
                        seen.sends += 1;
                        let client_id = Uuid::new_v4();
                        let text = format!("{}-{n} {}", self.person.label, "x".repeat(pace.padding));
                        let frame = json!({ "type": "send", "client_id": client_id, "text": text.trim() }).to_string();
                        let _ = out.send(Message::text(frame.clone()));
                        pending.insert(n, Pending { client_id, frame, sent: now, retry_at: None });
                        self.shared.outstanding.fetch_add(1, Ordering::Relaxed);
                    }
                    if now >= next_send {
                        // A person who was held up does not type faster afterwards.
                        next_send = (next_send + pace.every).max(now);
                    }
                    for p in pending.by_number.values_mut() {
                        if p.retry_at.is_some_and(|at| at <= now) {
                            p.retry_at = None;
                            p.sent = now;
                            let _ = out.send(Message::text(p.frame.clone()));
                        }
                    }
                    if self.settled(pending, *cursor) || self.out_of_time() {
                        return Next::Done;
                    }
                },
            }
        }
    }

    fn on_frame(&self, frame: &Value, seen: &mut Seen, pending: &mut Unacked, cursor: &mut i64) {
        let now = Instant::now();
        let client_id: Option<Uuid> = frame["client_id"].as_str().and_then(|s| s.parse().ok());
        match frame["type"].as_str() {
            Some("chat") => {
                let seq = frame["seq"].as_i64().unwrap_or(-1);
                seen.chats.push((seq, now));
                if frame["sender_id"].as_str() != Some(self.me.as_str()) {
                    seen.heard.push(now);
                    if seen.listens_only {
                        self.acks.fetch_add(1, Ordering::Relaxed);
                    }
                }
                *cursor = (*cursor).max(seq);
            }
            Some("ack") => {
                let (Some(id), Some(seq)) = (client_id, frame["seq"].as_i64()) else {
                    return;
                };
                match seen.acks.get(&id) {
                    Some((first, _)) if *first != seq => seen.conflicting_acks += 1,
                    Some(_) => {}
                    None => {
                        seen.acks.insert(id, (seq, now));
                        self.acks.fetch_add(1, Ordering::Relaxed);
                        self.shared.highest_acked[self.person.couple]
                            .fetch_max(seq, Ordering::Relaxed);
                    }
                }
                if let Some(p) = pending.remove(id) {
                    seen.slowest_answer = seen.slowest_answer.max(now - p.sent);
                    self.shared.outstanding.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Some("error") => {
                let code = frame["code"].as_str().unwrap_or("?").to_owned();
                *seen.errors.entry(code.clone()).or_default() += 1;
                let Some(id) = client_id else {
                    return;
                };
                let passing = matches!(code.as_str(), "unavailable" | "rate_limited" | "internal");
                let give_up =
                    !passing || (code == "rate_limited" && self.person.pace.give_up_when_limited);
                let Some(p) = pending.get_mut(id) else {
                    return;
                };
                seen.slowest_answer = seen.slowest_answer.max(now - p.sent);
                if give_up {
                    pending.remove(id);
                    self.shared.outstanding.fetch_sub(1, Ordering::Relaxed);
                } else {
                    p.retry_at = Some(now + RETRY_AFTER);
                }
            }
            _ => {}
        }
    }

    /// Done: no more sends, nobody's sends outstanding, and every acked chat of the couple
    /// shown to this client.
    fn settled(&self, pending: &Unacked, cursor: i64) -> bool {
        !self.shared.sending.load(Ordering::Relaxed)
            && pending.is_empty()
            && self.shared.outstanding.load(Ordering::Relaxed) == 0
            && cursor >= self.shared.highest_acked[self.person.couple].load(Ordering::Relaxed)
    }

    fn out_of_time(&self) -> bool {
        self.shared
            .stopped_at
            .get()
            .is_some_and(|at| at.elapsed() > SETTLE)
    }

    async fn connect(&self, node: SocketAddr, cursor: i64) -> Option<Ws> {
        let mut req = format!("ws://{node}/ws?after={cursor}")
            .into_client_request()
            .ok()?;
        let cookie =
            HeaderValue::from_str(&format!("duet_session={}", self.person.user.token)).ok()?;
        req.headers_mut().insert("cookie", cookie);
        match tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async(req),
        )
        .await
        {
            Ok(Ok((ws, _))) => Some(ws),
            _ => None,
        }
    }
}

/// The socket's writer, apart from its reader as in a browser, where `send` queues and never
/// holds up reading: a client that sends a lot still reads everything it is sent.
fn writer(mut sink: SplitSink<Ws, Message>) -> (mpsc::UnboundedSender<Message>, JoinHandle<()>) {
    let (out, mut queued) = mpsc::unbounded_channel::<Message>();
    let task = tokio::spawn(async move {
        while let Some(message) = queued.recv().await {
            if sink.feed(message).await.is_err() {
                return;
            }
            while let Ok(message) = queued.try_recv() {
                if sink.feed(message).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    (out, task)
}

/// A client's sends waiting for their acks, by number (retries go out in the order first
/// sent) and by client_id (what answers name).
#[derive(Default)]
struct Unacked {
    by_number: BTreeMap<u64, Pending>,
    by_id: HashMap<Uuid, u64>,
}

impl Unacked {
    fn insert(&mut self, n: u64, pending: Pending) {
        self.by_id.insert(pending.client_id, n);
        self.by_number.insert(n, pending);
    }

    fn get_mut(&mut self, id: Uuid) -> Option<&mut Pending> {
        let n = self.by_id.get(&id)?;
        self.by_number.get_mut(n)
    }

    fn remove(&mut self, id: Uuid) -> Option<Pending> {
        let n = self.by_id.remove(&id)?;
        self.by_number.remove(&n)
    }

    fn len(&self) -> usize {
        self.by_number.len()
    }

    fn is_empty(&self) -> bool {
        self.by_number.is_empty()
    }
}
