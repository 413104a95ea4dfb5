//! Nodes on a Redis Cluster (`--redis-cluster-urls`): each couple's channel lives on the shard
//! that owns its slot (sharded pub/sub), and partners on different nodes talk as on one Redis,
//! also while a master dies and its replica takes over. Each test starts its own six-process
//! cluster on free ports, its own database and nodes.

use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::private_redis_cluster::RedisCluster;
use crate::stream::{Traffic, talkers_and_listeners};
use crate::support::*;

async fn couple_on(addr: std::net::SocketAddr) -> (User, User) {
    let tag = &Uuid::new_v4().simple().to_string()[..8];
    let mina = User::signup_at(addr, &format!("sm{tag}")).await;
    let joon = User::signup_at(addr, &format!("sj{tag}")).await;
    pair(&mina, &joon).await;
    (mina, joon)
}

fn couple_id(socket: &Socket) -> Uuid {
    socket.hello["couple_id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .expect("hello names the couple")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_on_another_node_receives_the_chat_through_the_couples_shard() {
    let redis = RedisCluster::start().await;
    let cluster = Cluster::start_on_redis_cluster(2, &[], &redis.urls()).await;
    let (mina, joon) = couple_on(cluster.addrs[0]).await;
    let mut theirs = joon.on(cluster.addrs[1]).socket().await;
    assert_eq!(theirs.hello["partner_online"], false);
    let mut mine = mina.on(cluster.addrs[0]).socket().await;
    assert_eq!(
        mine.hello["partner_online"], true,
        "Mina, on node A, sees Joon online on node B"
    );
    let online = theirs.until("presence").await;
    assert_eq!(online["online"], true, "Joon is told Mina came online");

    // The couple's channel has both nodes as subscribers on the master of its slot, and
    // none anywhere else: the channel is sharded, not broadcast.
    let couple = couple_id(&mine);
    let channel = format!("{}couple:{{{}}}", cluster.prefix, couple.simple());
    let owner = redis.master_of(couple).await;
    assert_eq!(redis.subscribers(owner, &channel).await, 2);
    for node in redis.nodes.iter().filter(|n| n.port != owner) {
        assert_eq!(redis.subscribers(node.port, &channel).await, 0);
    }

    mine.say("hello through the shard").await;
    let chat = theirs.until("chat").await;
    assert_eq!(
        (chat["text"].as_str(), chat["seq"].as_i64()),
        (Some("hello through the shard"), Some(1))
    );
    theirs.say("and back").await;
    mine.until_text("and back").await;

    drop(mine);
    let offline = theirs.until("presence").await;
    assert_eq!(offline["online"], false, "Joon is told Mina left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_question_gate_holds_across_nodes_on_a_redis_cluster() {
    let redis = RedisCluster::start().await;
    let cluster = Cluster::start_on_redis_cluster(2, &[], &redis.urls()).await;
    let (mina, joon) = couple_on(cluster.addrs[0]).await;
    let mut mine = mina.on(cluster.addrs[0]).socket().await;
    let mut theirs = joon.on(cluster.addrs[1]).socket().await;
    let mut watcher = joon.on(cluster.addrs[1]).socket().await;

    for keyword in ["여행", "맛집", "요리"] {
        let questions = both_say_at_once(&mut mine, &mut theirs, &mut watcher, keyword).await;
        assert_eq!(questions.len(), 1, "{keyword}: {questions:?}");
        let question_id = questions[0]["question_id"].clone();
        let refused = theirs.outcome("may I?").await;
        assert_eq!(
            (refused["code"].as_str(), &refused["question_id"]),
            (Some("answer_required"), &question_id)
        );
        // Reconnecting on the other node does not lift the gate.
        let mut elsewhere = joon.on(cluster.addrs[0]).socket().await;
        let refused = elsewhere.outcome("and now?").await;
        assert_eq!(refused["code"], "answer_required");
        drop(elsewhere);
        both_answer(&mut mine, &mut theirs, &mut watcher, &question_id).await;
    }
    // One question per keyword, however the two sends met.
    let (_, page) = mina.on(cluster.addrs[1]).get("/api/answers").await;
    assert_eq!(page["answers"].as_array().map(Vec::len), Some(3));
}

/// An operator moves the couple's slot to another master (resharding): the old master drops
/// the channel's subscribers, the nodes subscribe where the slot lives now, and the partners
/// go on talking with nothing missing; so does a couple that stayed on the old master (the
/// nodes replace their connection to it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_couple_whose_slot_moves_to_another_master_keeps_talking() {
    let redis = RedisCluster::start().await;
    let cluster = Cluster::start_on_redis_cluster(2, &[], &redis.urls()).await;
    let (mina, joon) = couple_on(cluster.addrs[0]).await;
    let mut mine = mina.on(cluster.addrs[0]).socket().await;
    let mut theirs = joon.on(cluster.addrs[1]).socket().await;
    let couple = couple_id(&mine);
    let from = redis.master_of(couple).await;
    // A neighbour: another couple whose slot is on the same master and stays there.
    let (mut near_a, mut near_b) = loop {
        let (a, b) = couple_on(cluster.addrs[0]).await;
        let near_a = a.on(cluster.addrs[0]).socket().await;
        if redis.master_of(couple_id(&near_a)).await == from {
            break (near_a, b.on(cluster.addrs[1]).socket().await);
        }
    };
    mine.say("before the move").await;
    theirs.until_text("before the move").await;

    let channel = format!("{}couple:{{{}}}", cluster.prefix, couple.simple());
    let to = redis.move_slot_of(couple, None).await;
    assert!(
        both_nodes_subscribe_on(&redis, to, &channel).await,
        "both nodes subscribe where the slot lives now"
    );

    mine.say("after the move").await;
    let chat = theirs.until_text("after the move").await;
    assert_eq!(chat["seq"], 2, "nothing in between went missing");
    theirs.say("heard you").await;
    mine.until_text("heard you").await;
    near_a.say("we stayed").await;
    assert_eq!(near_b.until_text("we stayed").await["seq"], 1);
}

/// The cluster grows: a new master joins and the couple's slot is moved to it. The nodes
/// learn of the new master from the slot map, subscribe there, and the partners go on
/// talking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_added_to_the_cluster_takes_over_a_couple() {
    let mut redis = RedisCluster::start().await;
    let cluster = Cluster::start_on_redis_cluster(2, &[], &redis.urls()).await;
    let (mina, joon) = couple_on(cluster.addrs[0]).await;
    let mut mine = mina.on(cluster.addrs[0]).socket().await;
    let mut theirs = joon.on(cluster.addrs[1]).socket().await;
    mine.say("on three shards").await;
    theirs.until_text("on three shards").await;

    let new_master = redis.add_master().await;
    let couple = couple_id(&mine);
    redis.move_slot_of(couple, Some(new_master)).await;
    let channel = format!("{}couple:{{{}}}", cluster.prefix, couple.simple());
    assert!(
        both_nodes_subscribe_on(&redis, new_master, &channel).await,
        "both nodes subscribe on the new master"
    );
    mine.say("on four").await;
    assert_eq!(theirs.until_text("on four").await["seq"], 2);
    for node in &cluster.addrs {
        let (status, _) = mina.on(*node).get("/readyz").await;
        assert_eq!(status, 200, "a node connected to the new master is ready");
    }
}

/// A master of the slot map fails mid-stream; how, the test says.
enum MasterFault {
    /// SIGKILL: connections reset at once.
    Killed,
    /// SIGSTOP until the replica takes over, then SIGCONT: connections stay open and nothing
    /// is answered, as with a host that hangs.
    Frozen,
}

/// A steady one-way stream between four couples whose partners sit on different nodes (two
/// hundred chats a second), one partner of each only listening, so what it hears comes over
/// the bus (one who sends would also catch up from its acks' seqs). The master that serves the first couple
/// fails; its replica takes over, both nodes follow the slot map to it, and every session of
/// that shard's couples catches up: nothing acked is lost, doubled or out of order, the
/// nodes are ready again, and every listener hears every chat within a second of the
/// promotion.
async fn a_master_fails_mid_stream(fault: MasterFault) {
    let mut redis = RedisCluster::start().await;
    let cluster = Cluster::start_on_redis_cluster(
        2,
        &[
            "--drain-secs=2",
            "--db-timeout-ms=1000",
            "--frame-rate=100",
            "--frame-burst=1000",
        ],
        &redis.urls(),
    )
    .await;
    let mut couples = Vec::new();
    for _ in 0..4 {
        couples.push(couple_on(cluster.addrs[0]).await);
    }
    // Two hundred chats a second one way; the listeners are on the other node.
    let traffic = Traffic::start(&couples, talkers_and_listeners(&couples, &cluster.addrs));
    traffic.flowing().await;
    let first = couple_id_of(&couples[0].0, &cluster).await;
    let victim = redis.master_of(first).await;
    let readyz = async || couples[0].0.on(cluster.addrs[1]).get("/readyz").await.0;

    let fault_at = Instant::now();
    match fault {
        MasterFault::Killed => {
            redis.kill(victim).await;
            let mut saw_unready = false;
            while fault_at.elapsed() < Duration::from_secs(1) {
                saw_unready |= readyz().await == 503;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(
                saw_unready,
                "a node says it is not ready while a shard is unreachable"
            );
        }
        MasterFault::Frozen => redis.freeze(victim, true).await,
    }
    let successor = redis.failed_over(first, victim).await;
    let promoted_at = Instant::now();
    let promoted = promoted_at - fault_at;
    if matches!(fault, MasterFault::Frozen) {
        redis.freeze(victim, false).await;
    }
    let mut ready_again = None;
    for _ in 0..100 {
        if readyz().await == 200 {
            ready_again = Some(fault_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let scenario = match fault {
        MasterFault::Killed => "Redis Cluster master SIGKILLed",
        MasterFault::Frozen => "Redis Cluster master frozen (SIGSTOP)",
    };
    eprintln!(
        "{scenario}: {victim} replaced by {successor}, promoted after {promoted:?}, node ready again after {ready_again:?}"
    );
    assert!(
        ready_again.is_some(),
        "the node is ready again after the failover"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Counted from the promotion: until then the shard has no master to publish on.
    let tally = traffic
        .finish(scenario, promoted_at, cluster.addrs[0])
        .await;
    tally.assert_listeners_hear_within(Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_stream_loses_no_acked_chat() {
    a_master_fails_mid_stream(MasterFault::Killed).await;
}

/// The nodes notice a hanging master by their PINGs and hold that shard's publishes without
/// waiting on it; when the old master wakes up it is a replica and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_master_loses_no_acked_chat() {
    a_master_fails_mid_stream(MasterFault::Frozen).await;
}

async fn couple_id_of(user: &User, cluster: &Cluster) -> Uuid {
    user.on(cluster.addrs[0]).couple_id().await
}

/// Waits until both nodes are subscribed to the couple's channel on the master at `port`.
async fn both_nodes_subscribe_on(redis: &RedisCluster, port: u16, channel: &str) -> bool {
    for _ in 0..200 {
        if redis.subscribers(port, channel).await == 2 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
