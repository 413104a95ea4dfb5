//! The fault suite: a steady stream of chats between a few couples (partners on different
//! nodes where it matters) while something breaks: a node killed or drained, Redis killed,
//! frozen or cut, Postgres restarted, a client that stops reading, a client that floods.
//! Clients retry as real ones do (the same `client_id` after a disconnect or a passing
//! refusal, see `stream.rs`), and each scenario ends with an exact count against every
//! couple's `after=0` history: nothing acked is lost or doubled, no seq is missing or shown
//! out of order. Each prints one line of figures (`--nocapture` collects them).
//!
//! Delivery must also come back by itself, and soon: in the scenarios that break the bus or
//! a node, one partner of each couple talks steadily (`Pace::talking`, 150-200 chats a second
//! in all) and the other, on another node, only listens (no ack of its own can reveal a gap
//! to it), and each scenario bounds how late a listener heard any acked chat after the fault.
//!
//! Every scenario has its own database and Redis prefix (or its own Redis or Postgres server
//! when it breaks one) and its own ports, and streams for a few seconds only, so the suite
//! runs in parallel with the rest and stays fast.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use uuid::Uuid;

use crate::private_pg::PrivatePostgres;
use crate::stream::{
    CoupleRecord, Pace, Person, Seen, Traffic, people, talkers_and_listeners, tally,
};
use crate::support::*;

/// Couples in each scenario: enough for batches to mix couples, few enough to stay light.
pub(crate) const COUPLES: usize = 3;
/// How long the stream goes on after a fault has ended, so every client is seen recovering.
pub(crate) const AFTER: Duration = Duration::from_secs(2);
/// Flags of every node here: a short drain, so a stopped node is gone quickly; the database
/// may take a second before a send is answered `unavailable`; a frame rate above a talker's
/// fifty chats a second, with room for the retries a reconnect sends at once. Clients here
/// reconnect as fast as faults make them: the rate of socket openings per user is not what
/// these tests are about, so it is off.
pub(crate) const FLAGS: &[&str] = &[
    "--drain-secs=2",
    "--db-timeout-ms=1000",
    "--frame-rate=100",
    "--frame-burst=1000",
    "--socket-rate-per-user=0",
];
/// Once the bus is usable again, a listening-only partner hears every acked chat within
/// this: the publisher retries what it kept at once and every session resumes from its seq.
const HEARD_AFTER_BUS: Duration = Duration::from_secs(1);
/// After a node's death (or the database's return) a listener may first have to notice,
/// reconnect elsewhere and read what it missed.
const HEARD_AFTER_NODE: Duration = Duration::from_secs(2);
/// While a service the node depends on is down or hangs, a send is still answered within
/// this (an ack, or `unavailable` and the client retries): no client waits on a timeout of
/// the fault's length. The node promises `--db-timeout-ms` from the send's arrival; the rest
/// is room for a busy machine.
const PROMPT: Duration = Duration::from_secs(2);

/// Talkers on `nodes[0]` and listeners on `nodes[1]`, plus one couple more whose people
/// open the app only when told to (in the middle of a fault): the first `COUPLES` couples'
/// clients and the latecomers.
fn cast_with_latecomers(
    couples: &[(User, User)],
    nodes: &[SocketAddr],
) -> (Vec<Person>, Vec<Person>) {
    let mut cast = talkers_and_listeners(couples, nodes);
    let late = cast.split_off(2 * COUPLES);
    (cast, late)
}

/// One-way traffic around a node about to go: in even couples the talker is on it (its
/// last publishes may never leave) and the listener on a node that stays; in odd couples the
/// other way round. Whoever loses their node moves to `other`.
fn cast_around(
    couples: &[(User, User)],
    stays: SocketAddr,
    goes: SocketAddr,
    other: SocketAddr,
) -> Vec<Person> {
    let mut cast = talkers_and_listeners(couples, &[stays, goes]);
    for person in &mut cast {
        let talks = person.pace.max_sends != Some(0);
        person.nodes = if talks == (person.couple % 2 == 0) {
            vec![goes, other, stays]
        } else {
            vec![stays, other, goes]
        };
    }
    cast
}

pub(crate) async fn couples_on(addr: SocketAddr, count: usize) -> Vec<(User, User)> {
    let mut couples = Vec::new();
    for _ in 0..count {
        let tag = &Uuid::new_v4().simple().to_string()[..8];
        let a = User::signup_at(addr, &format!("fa{tag}")).await;
        let b = User::signup_at(addr, &format!("fb{tag}")).await;
        pair(&a, &b).await;
        couples.push((a, b));
    }
    couples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_without_warning_loses_no_acked_chat() {
    let cluster = Cluster::start(2, FLAGS).await;
    let doomed = ProcessNode::start(&cluster).await;
    let couples = couples_on(cluster.addrs[0], COUPLES).await;
    let cast = cast_around(&couples, cluster.addrs[0], doomed.addr, cluster.addrs[1]);
    let traffic = Traffic::start(&couples, cast);
    traffic.flowing().await;

    doomed.kill().await;
    let fault_end = Instant::now();
    tokio::time::sleep(AFTER).await;

    let tally = traffic
        .finish("kill -9 of a node", fault_end, cluster.addrs[0])
        .await;
    assert!(
        tally.reconnects >= COUPLES,
        "every client of the killed node came back on another: {tally}"
    );
    tally.assert_listeners_hear_within(HEARD_AFTER_NODE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_drained_by_sigterm_hands_its_clients_over_without_loss() {
    let cluster = Cluster::start(2, FLAGS).await;
    let draining = ProcessNode::start(&cluster).await;
    let couples = couples_on(cluster.addrs[0], COUPLES).await;
    let cast = cast_around(&couples, cluster.addrs[0], draining.addr, cluster.addrs[1]);
    let traffic = Traffic::start(&couples, cast);
    traffic.flowing().await;

    let status = draining.terminate().await;
    let fault_end = Instant::now();
    assert!(status.success(), "a drained node exits 0, not {status}");
    tokio::time::sleep(AFTER).await;

    let tally = traffic
        .finish("SIGTERM drain", fault_end, cluster.addrs[0])
        .await;
    let restarts = tally.closes().iter().filter(|c| **c == Some(1012)).count();
    assert!(
        restarts >= COUPLES,
        "the drained node's sockets close with 1012: {:?}",
        tally.closes()
    );
    tally.assert_listeners_hear_within(HEARD_AFTER_NODE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_loses_no_acked_chat() {
    let mut redis = PrivateRedis::start().await;
    let cluster = Cluster::start_with_redis(2, FLAGS, &redis.url()).await;
    let couples = couples_on(cluster.addrs[0], COUPLES + 1).await;
    let (cast, late) = cast_with_latecomers(&couples, &cluster.addrs);
    let mut traffic = Traffic::start(&couples, cast);
    traffic.flowing().await;

    redis.kill().await;
    // A couple opens the app while Redis is away: its channel is subscribed on return.
    traffic.join(late);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, _) = couples[0].0.on(cluster.addrs[0]).get("/readyz").await;
    assert_eq!(
        status, 503,
        "Redis is really down: the node says it is not ready"
    );
    // Long enough for the publisher's backoff to grow past the talkers' pace.
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.resume().await;
    let fault_end = Instant::now();
    tokio::time::sleep(AFTER).await;

    let tally = traffic
        .finish("Redis killed for 3 s", fault_end, cluster.addrs[0])
        .await;
    tally.assert_listeners_hear_within(HEARD_AFTER_BUS);
}

/// A Redis that hangs (stopped, not gone) holds up neither sockets nor sends, also for a
/// couple that opens the app meanwhile; nothing acked is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_loses_no_acked_chat_and_holds_up_no_send() {
    let mut redis = PrivateRedis::start().await;
    let cluster = Cluster::start_with_redis(2, FLAGS, &redis.url()).await;
    let couples = couples_on(cluster.addrs[0], COUPLES + 1).await;
    let (cast, late) = cast_with_latecomers(&couples, &cluster.addrs);
    let mut traffic = Traffic::start(&couples, cast);
    traffic.flowing().await;

    redis.freeze(true).await;
    // A couple opens the app while Redis hangs: its channel must be subscribed all the same.
    traffic.join(late);
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.freeze(false).await;
    let fault_end = Instant::now();
    tokio::time::sleep(AFTER).await;

    let tally = traffic
        .finish("Redis frozen", fault_end, cluster.addrs[0])
        .await;
    assert!(
        tally.slowest_answer <= PROMPT,
        "a send waited {:.1} s for its answer while Redis hung (at most {PROMPT:?}): {tally}",
        tally.slowest_answer.as_secs_f64()
    );
    tally.assert_listeners_hear_within(HEARD_AFTER_BUS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_cut_by_client_kill_lose_no_acked_chat() {
    let redis = PrivateRedis::start().await;
    let cluster = Cluster::start_with_redis(2, FLAGS, &redis.url()).await;
    let couples = couples_on(cluster.addrs[0], COUPLES + 1).await;
    let (cast, mut late) = cast_with_latecomers(&couples, &cluster.addrs);
    let mut traffic = Traffic::start(&couples, cast);
    traffic.flowing().await;

    // Three cuts a little apart: one while the nodes are still resubscribing.
    let client = redis::Client::open(redis.url()).expect("a Redis URL");
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("the private Redis answers");
    let mut cut = 0;
    for _ in 0..3 {
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut admin)
            .await
            .expect("CLIENT KILL");
        cut += killed;
        // After the first cut, a couple opens the app while the nodes resubscribe.
        traffic.join(std::mem::take(&mut late));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let fault_end = Instant::now();
    assert!(cut >= 2, "both nodes' subscribers were cut ({cut})");
    tokio::time::sleep(AFTER).await;

    let tally = traffic
        .finish("CLIENT KILL TYPE pubsub", fault_end, cluster.addrs[0])
        .await;
    tally.assert_listeners_hear_within(HEARD_AFTER_BUS);
}

/// While the database is down a send cannot be stored, and the client must hear so promptly
/// (`unavailable`, and it retries) rather than wait for a pool's timeout; once it is back,
/// nothing acked is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_loses_no_acked_chat_and_sends_are_answered_promptly() {
    let mut pg = PrivatePostgres::start().await;
    let cluster = Cluster::start_on(TestDb::existing(&pg.url()), 2, FLAGS, &redis_url()).await;
    let couples = couples_on(cluster.addrs[0], COUPLES + 1).await;
    let (cast, late) = cast_with_latecomers(&couples, &cluster.addrs);
    let mut traffic = Traffic::start(&couples, cast);
    traffic.flowing().await;

    pg.stop().await;
    // A couple opens the app while the database is away: refused, it tries again.
    traffic.join(late);
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.resume().await;
    let fault_end = Instant::now();
    tokio::time::sleep(AFTER).await;

    let tally = traffic
        .finish("Postgres restarted", fault_end, cluster.addrs[0])
        .await;
    assert!(
        tally.slowest_answer <= PROMPT,
        "a send waited {:.1} s for its answer while Postgres was down (at most {PROMPT:?}): {tally}",
        tally.slowest_answer.as_secs_f64()
    );
    tally.assert_listeners_hear_within(HEARD_AFTER_NODE);
}

/// A socket whose client stops reading while its partner sends a lot is closed with a close
/// frame (1013: it resumes with `after=`), and it holds up nobody: the partner's and everyone
/// else's chats flow on. The client reads nothing at all until the node has given up on it,
/// as a phone app put in the background does, and only then looks at what it got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_falls_behind_is_closed_with_a_close_frame_and_slows_nobody() {
    let node = spawn_node_with(
        Backend::Postgres,
        &[
            "--drain-secs=2",
            "--frame-rate=2000",
            "--frame-burst=4000",
            "--socket-rate-per-user=0",
        ],
    )
    .await;
    let couples = couples_on(node.addr, COUPLES).await;
    let (_, ref silent_user) = couples[0];
    let mut silent = silent_socket(silent_user, node.addr).await;

    let mut cast = people(&couples, &[node.addr], Pace::steady());
    // The partner of the silent socket sends big chats, fast: some 10 MB it never reads,
    // more than the socket's buffers and its queue hold.
    cast[0].pace = Pace {
        every: Duration::from_millis(1),
        burst: 1,
        padding: 3900,
        give_up_when_limited: false,
        max_sends: Some(2_500),
    };
    let started = Instant::now();
    let traffic = Traffic::start(&couples, cast);
    traffic.flowing().await;
    // It stalls (a phone in a tunnel) long enough for the socket's buffers and its queue to
    // fill, then reads again: what it finds ends with the node's close frame. (A client that
    // never reads again cannot be sent one: the node drops it after its write timeout.)
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut seen = Seen {
        label: "silent".to_owned(),
        connects: 2,
        ..Seen::default()
    };
    let closed = read_to_close(&mut silent, &mut seen).await;
    // The node has given up on it when only the traffic's own sockets are left open.
    let deadline = Instant::now() + Duration::from_secs(40);
    let metrics = node.metrics.expect("the node's metrics listener");
    while sockets_open(metrics).await > 2 * COUPLES as u64 {
        assert!(
            Instant::now() < deadline,
            "the node never gave up on a client that fell behind"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fault_end = Instant::now();
    eprintln!(
        "fault slow consumer: the node ended the silent socket {:.1} s into the stream, \
         close code {closed:?}, after {} chats it had taken",
        (fault_end - started).as_secs_f64(),
        seen.chats.len()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut stopped = traffic.stop().await;
    // It resumes as any client does, from the last seq it saw.
    let last = seen.chats.iter().map(|c| c.0).max().unwrap_or(0);
    let resumed = silent_user
        .on(node.addr)
        .socket_at(&format!("/ws?after={last}"))
        .await;
    for frame in resumed.replay.iter().filter(|f| f["type"] == "chat") {
        seen.chats
            .push((frame["seq"].as_i64().unwrap_or(-1), Instant::now()));
    }
    seen.closes.push(closed);
    stopped.add(0, seen);
    let tally = stopped.check("slow consumer", fault_end, node.addr).await;
    tally.assert_clean();
    assert_eq!(
        closed,
        Some(1013),
        "the silent socket is closed with 1013, not dropped: {tally}"
    );
    for label in ["c0a", "c0b"] {
        let closes = &tally.client(label).closes;
        assert!(
            closes.is_empty(),
            "{label}'s sockets stay open, yet closed: {closes:?}; {tally}"
        );
    }
}

/// A client sending far above the frame rate hears `rate_limited` for what is over it and
/// keeps its socket; what it sent within the limit is stored like any chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_rate_limited_and_never_disconnected() {
    let node = spawn_node_with(Backend::Postgres, FLAGS).await;
    let couples = couples_on(node.addr, COUPLES).await;
    let mut cast = people(&couples, &[node.addr], Pace::steady());
    cast[0].pace = Pace::flood();
    let traffic = Traffic::start(&couples, cast);
    traffic.flowing().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fault_end = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let tally = traffic.finish("flood", fault_end, node.addr).await;
    let flooder = tally.client("c0a");
    assert!(
        flooder.errors.get("rate_limited").is_some_and(|n| *n > 0),
        "the flood was rate limited: {tally}"
    );
    assert!(
        flooder.closes.is_empty(),
        "the flooding client's socket was never closed, yet it was: {:?}; {tally}",
        flooder.closes
    );
}

/// The node's open sockets, from `/metrics` on its metrics listener.
async fn sockets_open(addr: SocketAddr) -> u64 {
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("duet_sockets_open "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no duet_sockets_open in {metrics}"))
}

/// A socket opened with a receive buffer of a few kilobytes, so what its client does not
/// read backs up on the server soon.
async fn silent_socket(user: &User, addr: SocketAddr) -> WebSocketStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    tcp.set_recv_buffer_size(4096)
        .expect("a small receive buffer");
    let stream = tcp.connect(addr).await.expect("the node accepts");
    let mut req = format!("ws://{addr}/ws?after=0")
        .into_client_request()
        .expect("a websocket request");
    let cookie = HeaderValue::from_str(&format!("duet_session={}", user.token)).expect("a header");
    req.headers_mut().insert("cookie", cookie);
    let (ws, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .expect("the upgrade");
    ws
}

/// Reads every frame until the server ends the socket; returns its close code, or `None`
/// when it dropped the connection without a close frame.
async fn read_to_close(
    ws: &mut WebSocketStream<tokio::net::TcpStream>,
    seen: &mut Seen,
) -> Option<u16> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("the server closes a socket that does not keep up");
        match message {
            Some(Ok(Message::Text(text))) => {
                let frame: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if frame["type"] == "chat" {
                    seen.chats
                        .push((frame["seq"].as_i64().unwrap_or(-1), Instant::now()));
                }
            }
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            None | Some(Err(_)) => return None,
        }
    }
}

/// The checker itself must be able to fail: fed records with one fault each, it counts it.
#[test]
fn the_checker_counts_every_kind_of_failure() {
    let t = Instant::now();
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let client = |label: &str, acks: &[(Uuid, i64)], chats: &[i64]| Seen {
        label: label.to_owned(),
        acks: acks.iter().map(|(id, seq)| (*id, (*seq, t))).collect(),
        chats: chats.iter().map(|seq| (*seq, t)).collect(),
        connects: 1,
        ..Seen::default()
    };
    let record = |history: &[(i64, Uuid)], x: &[i64], y: &[i64]| {
        vec![CoupleRecord {
            history: history.iter().map(|(s, id)| (*s, Some(*id))).collect(),
            last_seq: history.iter().map(|h| h.0).max().unwrap_or(0),
            clients: vec![client("x", &[(a, 1), (c, 3)], x), client("y", &[(b, 2)], y)],
        }]
    };
    let all = [(1, a), (2, b), (3, c)];

    let clean = tally("clean", &record(&all, &[1, 2, 3], &[1, 2, 3]), t);
    assert_eq!(
        (
            clean.acked,
            clean.lost,
            clean.duplicated,
            clean.gaps,
            clean.out_of_order
        ),
        (3, 0, 0, 0, 0),
        "{clean}"
    );
    clean.assert_clean();

    let undelivered = tally("undelivered", &record(&all, &[1, 2, 3], &[1, 3]), t);
    assert_eq!(
        (undelivered.gaps, undelivered.lost),
        (1, 0),
        "{undelivered}"
    );

    let lost = tally("lost", &record(&all[..2], &[1, 2], &[1, 2]), t);
    assert_eq!(lost.lost, 1, "{lost}");

    let doubled = tally(
        "doubled",
        &record(
            &[(1, a), (2, b), (3, c), (4, a)],
            &[1, 2, 3, 4],
            &[1, 2, 3, 4],
        ),
        t,
    );
    assert_eq!(doubled.duplicated, 1, "{doubled}");

    let holed = tally(
        "holed",
        &record(&[(1, a), (2, b), (4, c)], &[1, 2, 4], &[1, 2, 4]),
        t,
    );
    assert!(holed.gaps >= 1 && holed.lost == 1, "{holed}");

    let reordered = tally("reordered", &record(&all, &[1, 2, 3], &[1, 3, 2]), t);
    assert_eq!(reordered.out_of_order, 1, "{reordered}");

    let repeated = tally("repeated", &record(&all, &[1, 2, 2, 3], &[1, 2, 3]), t);
    assert_eq!(repeated.out_of_order, 1, "{repeated}");

    // A listener that heard the second chat three seconds after its ack (the fault ended at
    // its ack) was three seconds late, however soon it heard the first.
    let late = Duration::from_secs(3);
    let listener = Seen {
        label: "listener".to_owned(),
        listens_only: true,
        chats: vec![(1, t), (2, t + late), (3, t + late)],
        heard: vec![t, t + late, t + late],
        connects: 1,
        ..Seen::default()
    };
    let mut one_way = record(&all, &[1, 2, 3], &[1, 2, 3]);
    one_way[0].clients.push(listener);
    let lagging = tally("lagging", &one_way, t);
    assert_eq!(lagging.listener_lag, Some(late), "{lagging}");
    assert_eq!(lagging.heard_again, Some(Duration::ZERO), "{lagging}");
    assert_eq!(clean.listener_lag, None, "no listener, no lag: {clean}");

    let nothing = tally("nothing", &[], t);
    assert_eq!(nothing.broken(), ["nothing was acked"]);
    for (run, rule) in [
        (&undelivered, "seqs are missing"),
        (&lost, "acked chats were lost"),
        (&doubled, "chats were duplicated"),
        (&reordered, "seqs came out of order"),
    ] {
        assert!(run.broken().contains(&rule), "{rule}: {run}");
    }
}
