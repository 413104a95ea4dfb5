//! Many nodes: partners on different nodes talk as if on one. Each test starts its own nodes
//! on one Postgres database and one Redis prefix of its own.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::*;

async fn couple_on(cluster: &Cluster) -> (User, User) {
    let addr = cluster.addrs[0];
    let mina = User::signup_at(
        addr,
        &format!("mina{}", &Uuid::new_v4().simple().to_string()[..6]),
    )
    .await;
    let joon = User::signup_at(
        addr,
        &format!("joon{}", &Uuid::new_v4().simple().to_string()[..6]),
    )
    .await;
    pair(&mina, &joon).await;
    (mina, joon)
}

/// The chats a socket receives until it has seen `count` of them.
async fn chats(socket: &mut Socket, count: usize) -> Vec<Value> {
    let mut chats = Vec::new();
    while chats.len() < count {
        chats.push(socket.until("chat").await);
    }
    chats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_from_node_a_reaches_the_partner_on_b_and_the_senders_tab_on_c() {
    let cluster = Cluster::start(3, &[]).await;
    let (mina, joon) = couple_on(&cluster).await;
    let mut laptop = mina.on(cluster.addrs[0]).socket().await;
    let mut partner = joon.on(cluster.addrs[1]).socket().await;
    let mut phone = mina.on(cluster.addrs[2]).socket().await;

    laptop.say("hello from A").await;
    for socket in [&mut partner, &mut phone, &mut laptop] {
        let chat = socket.until("chat").await;
        assert_eq!(chat["text"], "hello from A");
        assert_eq!(chat["seq"], 1);
    }

    // The same send retried on another node creates nothing new.
    let client_id = Uuid::new_v4();
    let send = json!({ "type": "send", "client_id": client_id, "text": "once" });
    laptop.send(send.clone()).await;
    phone.send(send).await;
    // The send that loses the race is a retry: its ack may come after the chat the winner
    // published, so the laptop keeps every chat it sees while waiting for its ack.
    let mut seen_by_laptop = Vec::new();
    let first = loop {
        let frame = laptop.until_any(&["ack", "chat"]).await;
        if frame["type"] == "ack" {
            break frame;
        }
        seen_by_laptop.push(frame["text"].clone());
    };
    let second = phone.until("ack").await;
    assert_eq!(first["id"], second["id"]);
    assert_eq!(partner.until("chat").await["seq"], 2);
    partner.say("and back from B").await;
    assert_eq!(partner.until("chat").await["text"], "and back from B");
    while seen_by_laptop.len() < 2 {
        seen_by_laptop.push(laptop.until("chat").await["text"].clone());
    }
    assert_eq!(
        seen_by_laptop,
        [json!("once"), json!("and back from B")],
        "one 'once' chat only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_question_gate_and_the_single_question_hold_across_nodes() {
    let cluster = Cluster::start(2, &[]).await;
    let (mina, joon) = couple_on(&cluster).await;
    let mut mine = mina.on(cluster.addrs[0]).socket().await;
    let mut theirs = joon.on(cluster.addrs[1]).socket().await;
    let mut watcher = joon.on(cluster.addrs[1]).socket().await;

    let keywords = [
        "여행", "맛집", "요리", "가족", "친구", "영화", "노래", "주말", "커피", "결혼",
    ];
    for keyword in keywords {
        let questions = both_say_at_once(&mut mine, &mut theirs, &mut watcher, keyword).await;
        assert_eq!(questions.len(), 1, "{keyword}: {questions:?}");
        let question_id = questions[0]["question_id"].clone();
        // Joon, on B, is gated by a question Mina may have triggered on A.
        let refused = theirs.outcome("may I?").await;
        assert_eq!(
            (refused["code"].as_str(), &refused["question_id"]),
            (Some("answer_required"), &question_id)
        );
        both_answer(&mut mine, &mut theirs, &mut watcher, &question_id).await;
    }
    // One question per keyword, however the two sends met: the answers page has them all.
    let (_, page) = mina.on(cluster.addrs[1]).get("/api/answers").await;
    assert_eq!(
        page["answers"].as_array().map(Vec::len),
        Some(keywords.len())
    );
}

/// Three couples, every partner on a different node from the other, everyone sending at
/// once: the two nodes' batches lock the same couples' rows concurrently. Each couple's
/// chats reach both partners gapless, in one order, and each sender's in the order sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_on_two_nodes_sending_at_once_see_one_gapless_order() {
    const EACH: usize = 60;
    let cluster = Cluster::start(2, &["--frame-burst=1000"]).await;
    let mut pairs = Vec::new();
    for _ in 0..3 {
        let (mina, joon) = couple_on(&cluster).await;
        let mine = mina.on(cluster.addrs[0]).socket().await;
        let theirs = joon.on(cluster.addrs[1]).socket().await;
        pairs.push((mine, theirs));
    }
    let runs = pairs.into_iter().map(|(mut mine, mut theirs)| async move {
        for i in 0..EACH {
            mine.say(&format!("m{i}")).await;
            theirs.say(&format!("j{i}")).await;
        }
        let seen_by_mina = chats(&mut mine, 2 * EACH).await;
        let seen_by_joon = chats(&mut theirs, 2 * EACH).await;
        let order = |chats: &[Value]| -> Vec<(i64, String)> {
            chats
                .iter()
                .map(|c| {
                    (
                        c["seq"].as_i64().unwrap_or(-1),
                        c["text"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        };
        let (mina_order, joon_order) = (order(&seen_by_mina), order(&seen_by_joon));
        assert_eq!(mina_order, joon_order, "one order for both");
        let seqs: Vec<i64> = mina_order.iter().map(|c| c.0).collect();
        assert_eq!(seqs, (1..=(2 * EACH) as i64).collect::<Vec<_>>(), "gapless");
        for prefix in ["m", "j"] {
            let sent: Vec<&str> = mina_order
                .iter()
                .map(|c| c.1.as_str())
                .filter(|t| t.starts_with(prefix))
                .collect();
            let wanted: Vec<String> = (0..EACH).map(|i| format!("{prefix}{i}")).collect();
            assert_eq!(sent, wanted, "{prefix}'s chats in the order sent");
        }
    });
    futures_util::future::join_all(runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_crosses_nodes_and_heals_when_a_node_dies_silently() {
    let cluster = Cluster::start(1, &[]).await;
    let (mina, joon) = couple_on(&cluster).await;
    let mut theirs = joon.on(cluster.addrs[0]).socket().await;
    assert_eq!(theirs.hello["partner_online"], false);

    let doomed = ProcessNode::start(&cluster).await;
    let mine = mina.on(doomed.addr).socket().await;
    assert_eq!(
        mine.hello["partner_online"], true,
        "Mina sees Joon, who is on another node"
    );
    let online = theirs.until("presence").await;
    assert_eq!(
        (online["user_id"].as_str(), online["online"].as_bool()),
        (Some(mina.id.to_string().as_str()), Some(true))
    );

    // The node dies without closing anything: Mina's presence expires and Joon is told.
    doomed.kill().await;
    let offline = theirs.until("presence").await;
    assert_eq!(offline["online"], false);
    drop(mine);

    // A socket opened later on a live node sees the truth too.
    let again = joon.on(cluster.addrs[0]).socket().await;
    assert_eq!(again.hello["partner_online"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_chat_arrives_in_order_across_a_redis_disconnect() {
    // A Redis of its own: cutting every subscriber of the shared one would cut other tests'.
    let private = PrivateRedis::start().await;
    let cluster = Cluster::start_with_redis(2, &[], &private.url()).await;
    let (mina, joon) = couple_on(&cluster).await;
    let mut mine = mina.on(cluster.addrs[0]).socket().await;
    let mut theirs = joon.on(cluster.addrs[1]).socket().await;

    let mut acked = Vec::new();
    let mut cut = 0;
    for round in 0..3 {
        for i in 0..10 {
            mine.say(&format!("round {round} chat {i}")).await;
            acked.push(mine.until("ack").await["seq"].as_i64().unwrap_or_default());
            if i == 4 {
                // Cut every subscriber connection, as a Redis restart would.
                let mut redis = redis::Client::open(private.url())
                    .expect("the private Redis's URL")
                    .get_multiplexed_async_connection()
                    .await
                    .expect("the private Redis");
                let killed: i64 = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("pubsub")
                    .query_async(&mut redis)
                    .await
                    .expect("CLIENT KILL");
                cut += killed;
            }
        }
    }
    assert!(cut >= 2, "subscriber connections were really cut ({cut})");
    let received: Vec<i64> = chats(&mut theirs, acked.len())
        .await
        .iter()
        .filter_map(|c| c["seq"].as_i64())
        .collect();
    assert_eq!(received, acked, "every acked chat, once, in order");

    // And nothing more arrives: the next frame after a sentinel is the sentinel.
    mine.say("sentinel").await;
    assert_eq!(theirs.until("chat").await["text"], "sentinel");
    let metrics_addr = cluster.metrics[1].expect("node 1's metrics listener");
    let metrics = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let reconnects = metrics
        .lines()
        .find(|l| l.starts_with("duet_redis_reconnects_total"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_default();
    assert!(reconnects >= 1.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_stopped_node_resumes_on_another_with_nothing_missing() {
    let mut cluster = Cluster::start(2, &["--drain-secs=2"]).await;
    let (mina, joon) = couple_on(&cluster).await;
    let mut mine = mina.on(cluster.addrs[0]).socket().await;
    let mut theirs = joon.on(cluster.addrs[1]).socket().await;
    mine.say("before").await;
    mine.until("ack").await;
    let last_seen = theirs.until("chat").await["seq"]
        .as_i64()
        .unwrap_or_default();

    let ((), closed) = tokio::join!(cluster.stop(1), theirs.closed());
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(1012));

    for i in 0..3 {
        mine.say(&format!("while you were away {i}")).await;
        mine.until("ack").await;
    }
    let resumed = joon
        .on(cluster.addrs[0])
        .socket_at(&format!("/ws?after={last_seen}"))
        .await;
    let texts: Vec<&str> = resumed
        .replay
        .iter()
        .filter_map(|f| f["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "while you were away 0",
            "while you were away 1",
            "while you were away 2"
        ],
        "replay: {:?}, last seen {last_seen}",
        resumed.replay
    );
    assert_eq!(resumed.synced["last_seq"], last_seen + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_on_a_fresh_database_all_come_up() {
    let db = TestDb::new(Backend::Postgres).await;
    let starts = (0..3).map(|_| duet::start(config(&db.url, db.data_dir(), &[])));
    let nodes = futures_util::future::join_all(starts).await;
    for node in nodes {
        let node = node.expect("every node migrates (or waits for the one that does) and starts");
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_sends_still_ack_and_partners_get_them_when_it_returns() {
    let mut redis = PrivateRedis::start().await;
    let cluster = Cluster::start_with_redis(2, &[], &redis.url()).await;
    let (mina, joon) = couple_on(&cluster).await;
    let mut mine = mina.on(cluster.addrs[0]).socket().await;
    let mut theirs = joon.on(cluster.addrs[1]).socket().await;
    mine.say("before the outage").await;
    mine.until("ack").await;
    assert_eq!(theirs.until("chat").await["text"], "before the outage");

    redis.kill().await;
    let mut acked = Vec::new();
    for i in 0..5 {
        mine.say(&format!("during the outage {i}")).await;
        // The database has it: the sender is acked whatever Redis does.
        acked.push(mine.until("ack").await["seq"].as_i64().unwrap_or_default());
    }
    let (status, _) = joon.on(cluster.addrs[1]).get("/readyz").await;
    assert_eq!(
        status,
        reqwest::StatusCode::SERVICE_UNAVAILABLE,
        "a node without its bus is not ready"
    );

    redis.resume().await;
    let received: Vec<i64> = chats(&mut theirs, acked.len())
        .await
        .iter()
        .filter_map(|c| c["seq"].as_i64())
        .collect();
    assert_eq!(
        received, acked,
        "every chat acked during the outage, once, in order"
    );
    mine.say("after the outage").await;
    assert_eq!(theirs.until("chat").await["text"], "after the outage");
}

/// A frozen Redis takes bytes and answers nothing. The node notices within seconds (its
/// subscriber PINGs), says so on `/readyz`, keeps acking and delivering on its own sockets,
/// and once Redis answers again the partner on the other node gets everything, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_is_noticed_and_nothing_acked_meanwhile_is_lost() {
    let mut redis = PrivateRedis::start().await;
    let cluster = Cluster::start_with_redis(2, &[], &redis.url()).await;
    let (mina, joon) = couple_on(&cluster).await;
    let mut mine = mina.on(cluster.addrs[0]).socket().await;
    let mut my_tab = mina.on(cluster.addrs[0]).socket().await;
    let mut theirs = joon.on(cluster.addrs[1]).socket().await;
    mine.say("before").await;
    mine.until("ack").await;
    assert_eq!(theirs.until("chat").await["text"], "before");

    redis.freeze(true).await;
    let mut acked = Vec::new();
    for i in 0..3 {
        let text = format!("while Redis is frozen {i}");
        let ack = mine.outcome(&text).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        acked.push(ack["seq"].as_i64().unwrap_or_default());
        // The sender's other tab on the same node does not wait for Redis.
        assert_eq!(my_tab.until_text(&text).await["text"], text.as_str());
    }
    let mut tries = 0;
    loop {
        let (status, _) = mina.on(cluster.addrs[0]).get("/readyz").await;
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tries += 1;
        assert!(tries < 100, "/readyz still says ready with Redis frozen");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    redis.freeze(false).await;
    let received: Vec<i64> = chats(&mut theirs, acked.len())
        .await
        .iter()
        .filter_map(|c| c["seq"].as_i64())
        .collect();
    assert_eq!(
        received, acked,
        "every chat acked while frozen, once, in order"
    );
}

/// The backstop for a lost doorbell: even when no event of the couple ever crosses between
/// the nodes (here they listen on different Redis prefixes), the partner gets the last chat
/// at the next ping tick, not whenever the next chat happens to arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_whose_node_never_hears_the_doorbell_still_gets_the_last_chat() {
    let cluster = Cluster::start(1, &["--ping-secs=1"]).await;
    let deaf = duet::start(config(
        &cluster.db.url,
        cluster.db.data_dir(),
        &[
            &format!("--redis-url={}", redis_url()),
            &format!("--redis-prefix=deaf-{}:", Uuid::new_v4().simple()),
            "--ping-secs=1",
            "--drain-delay-secs=0",
        ],
    ))
    .await
    .expect("the node starts");
    let (mina, joon) = couple_on(&cluster).await;
    let mut mine = mina.on(cluster.addrs[0]).socket().await;
    let mut theirs = joon.on(deaf.addr()).socket().await;
    mine.say("the last word").await;
    mine.until("ack").await;
    // Pings keep the socket busy, so bound the whole wait: a few ping ticks.
    let chat = tokio::time::timeout(std::time::Duration::from_secs(5), theirs.until("chat"))
        .await
        .expect("the last chat arrives within a few ping ticks");
    assert_eq!(chat["text"], "the last word");
    deaf.stop().await;
}

/// Closing a tab while opening another (a reload) must not leave the user offline in Redis:
/// the closing socket's removal may reach Redis after the opening one's entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_reloads_again_and_again_stays_online_for_the_partner_elsewhere() {
    // 41 sockets in a few seconds: past the default rate of openings per user.
    let mut cluster = Cluster::start(2, &["--socket-rate-per-user=0"]).await;
    let (mina, joon) = couple_on(&cluster).await;
    let mina = mina.on(cluster.addrs[0]);
    let mut current = mina.socket().await;
    for _ in 0..40 {
        let (next, ()) = tokio::join!(mina.socket(), async {
            current
                .send_raw(tokio_tungstenite::tungstenite::Message::Close(None))
                .await;
        });
        current = next;
    }
    // Shorter than a heartbeat (a third of the 3 s presence TTL), which would hide a wrong
    // removal by renewing the entry.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let theirs = joon.on(cluster.addrs[1]).socket().await;
    assert_eq!(
        theirs.hello["partner_online"], true,
        "Mina has a socket open, yet shows offline on the other node"
    );
    drop(current);
    cluster.stop(0).await;
}

/// The per-user limit holds when sockets open at once (with Redis, a session subscribes to
/// its couple's channel before it starts, which is when a late count would happen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_opened_at_once_are_limited_all_the_same() {
    let cluster = Cluster::start(1, &["--max-sockets-per-user=2"]).await;
    let (mina, _joon) = couple_on(&cluster).await;
    let mina = mina.on(cluster.addrs[0]);
    let attempts = (0..20).map(|_| mina.try_socket("/ws", None));
    let results = futures_util::future::join_all(attempts).await;
    let opened = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(opened, 2, "sockets opened at once with a limit of 2");
    for (status, body) in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(
            (*status, body["error"]["code"].as_str()),
            (429, Some("rate_limited"))
        );
    }
}

/// A Redis that hangs (stopped, not gone) must not hold a node up: sockets still open (the
/// presence question gives up after redis-rs's response timeout), sends are still acked and
/// reach the partner on the same node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_redis_holds_up_neither_sockets_nor_sends() {
    let mut redis = PrivateRedis::start().await;
    let cluster = Cluster::start_with_redis(1, &[], &redis.url()).await;
    let (mina, joon) = couple_on(&cluster).await;
    let mut mine = mina.on(cluster.addrs[0]).socket().await;
    mine.say("before").await;
    mine.until("ack").await;

    redis.freeze(true).await;
    // Opening a socket asks Redis who is online; it gives up and opens all the same.
    let mut theirs = joon.on(cluster.addrs[0]).socket().await;
    mine.say("while Redis hangs").await;
    assert_eq!(mine.until("ack").await["seq"], 2);
    assert_eq!(theirs.until("chat").await["text"], "while Redis hangs");
    redis.freeze(false).await;
}
