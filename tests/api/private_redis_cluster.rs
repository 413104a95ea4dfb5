//! A Redis Cluster of the test's own: six `redis-server` processes (three masters, three
//! replicas) on free ports, in a temporary directory, created with `redis-cli --cluster
//! create`. The machine's Redis on 6379 is never touched. Dropping it kills every process.

use std::time::Duration;

use redis::Value;
use tokio::process::{Child, Command};
use uuid::Uuid;

pub struct RedisCluster {
    pub nodes: Vec<ClusterNode>,
    dir: tempfile::TempDir,
}

pub struct ClusterNode {
    pub port: u16,
    child: Option<Child>,
}

/// Two free ports: the client port and the cluster bus port.
fn free_ports() -> (u16, u16) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let b = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = |l: &std::net::TcpListener| l.local_addr().expect("its address").port();
    (port(&a), port(&b))
}

/// One `redis-server` in cluster mode on free ports, answering. A port found free may be
/// taken by a parallel test before the server binds it; the server then exits, and another
/// pair of ports is tried.
async fn spawn_node(dir: &std::path::Path) -> ClusterNode {
    for _ in 0..5 {
        let (port, bus) = free_ports();
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--cluster-port", &bus.to_string()])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            // A dead master is noticed and its replica promoted within a few seconds.
            .args(["--cluster-node-timeout", "2000"])
            // The other shards keep serving while one has no master.
            .args(["--cluster-require-full-coverage", "no"])
            // Replicas are in sync a moment after the cluster is created (the default waits
            // 5 s before a first sync), and one that lost its master takes over however long
            // the link was down.
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &dir.display().to_string()])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting redis-server ({e}); install it with `apt-get install -y redis-server` (7.0 or newer, for sharded pub/sub)"
                )
            });
        for _ in 0..200 {
            if cluster_info(port).await.is_ok() {
                return ClusterNode {
                    port,
                    child: Some(child),
                };
            }
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("redis-server did not start on free ports five times in a row");
}

impl RedisCluster {
    pub async fn start() -> RedisCluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut nodes = Vec::new();
        for _ in 0..6 {
            nodes.push(spawn_node(dir.path()).await);
        }
        let cluster = RedisCluster { nodes, dir };
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
            .await
            .expect("running redis-cli --cluster create");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        for node in &cluster.nodes {
            cluster
                .wait_until(
                    node.port,
                    |info| {
                        info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:6")
                    },
                    "the cluster is formed",
                )
                .await;
        }
        for node in &cluster.nodes {
            for _ in 0..200 {
                if let Ok(mut conn) = connect(node.port).await
                    && let Ok(info) = redis::cmd("INFO")
                        .arg("replication")
                        .query_async::<String>(&mut conn)
                        .await
                    && (info.contains("role:master") || info.contains("master_link_status:up"))
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        cluster
    }

    /// Seeds for `--redis-cluster-urls`: two of the masters are enough.
    pub fn urls(&self) -> String {
        self.nodes[..2]
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn wait_until(&self, port: u16, ok: impl Fn(&str) -> bool, what: &str) {
        for _ in 0..200 {
            if let Ok(info) = cluster_info(port).await
                && ok(&info)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis node {port}: {what} did not happen in 10 s");
    }

    /// The port of the master that serves the slot of this couple's channel and keys, as the
    /// cluster says now.
    pub async fn master_of(&self, couple_id: Uuid) -> u16 {
        let key = format!("{{{}}}", couple_id.simple());
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            // A frozen node does not answer; the others know.
            let Ok(mut conn) = connect(node.port).await else {
                continue;
            };
            let Ok(slot) = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&key)
                .query_async::<i64>(&mut conn)
                .await
            else {
                continue;
            };
            let Ok(Value::Array(ranges)) = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async::<Value>(&mut conn)
                .await
            else {
                continue;
            };
            for range in ranges {
                if let Value::Array(f) = range
                    && let [Value::Int(start), Value::Int(end), Value::Array(master), ..] =
                        f.as_slice()
                    && (*start..=*end).contains(&slot)
                    && let Some(Value::Int(port)) = master.get(1)
                {
                    return u16::try_from(*port).expect("a port");
                }
            }
        }
        panic!("no node knows who serves {key}");
    }

    /// How many subscribers the sharded channel has on the node at `port`.
    pub async fn subscribers(&self, port: u16, channel: &str) -> i64 {
        let mut conn = connect(port).await.expect("connecting to a cluster node");
        let reply: Vec<Value> = redis::cmd("PUBSUB")
            .arg("SHARDNUMSUB")
            .arg(channel)
            .query_async(&mut conn)
            .await
            .expect("PUBSUB SHARDNUMSUB");
        match reply.get(1) {
            Some(Value::Int(n)) => *n,
            _ => 0,
        }
    }

    /// SIGKILLs the node at `port`: no goodbye, its replica has to take over.
    pub async fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster");
        if let Some(mut child) = node.child.take() {
            child.kill().await.expect("killing redis-server");
        }
    }

    /// Stops (`true`) or continues (`false`) the node at `port`: its connections stay open and
    /// nothing is answered, as with a host that hangs.
    pub async fn freeze(&self, port: u16, frozen: bool) {
        let pid = self
            .nodes
            .iter()
            .find(|n| n.port == port)
            .and_then(|n| n.child.as_ref())
            .and_then(|c| c.id())
            .expect("a running node of this cluster");
        let status = Command::new("kill")
            .arg(if frozen { "-STOP" } else { "-CONT" })
            .arg(pid.to_string())
            .status()
            .await
            .expect("running kill");
        assert!(status.success(), "kill -STOP/-CONT {pid}");
    }

    /// Waits until a node other than the dead one serves the couple's slot.
    pub async fn failed_over(&self, couple_id: Uuid, dead: u16) -> u16 {
        for _ in 0..300 {
            let master = self.master_of(couple_id).await;
            if master != dead
                && let Ok(info) = cluster_info(master).await
                && info.contains("cluster_state:ok")
            {
                return master;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no replica took over from {dead} in 15 s");
    }
}

impl RedisCluster {
    /// Adds a master without slots, the way an operator grows the cluster (`redis-cli
    /// --cluster add-node`); returns its port once every node knows it.
    pub async fn add_master(&mut self) -> u16 {
        let node = spawn_node(self.dir.path()).await;
        let port = node.port;
        self.nodes.push(node);
        let added = Command::new("redis-cli")
            .args(["--cluster", "add-node"])
            .arg(format!("127.0.0.1:{port}"))
            .arg(format!("127.0.0.1:{}", self.nodes[0].port))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
            .await
            .expect("running redis-cli --cluster add-node");
        assert!(
            added.status.success(),
            "redis-cli --cluster add-node failed: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        let known = format!("cluster_known_nodes:{}", self.nodes.len());
        for node in &self.nodes {
            self.wait_until(
                node.port,
                |info| info.contains(&known),
                "the new node is known",
            )
            .await;
        }
        port
    }

    /// Moves the slot of the couple's keys and channel to another master (`to`, or any
    /// other), the way `redis-cli --cluster reshard` does: IMPORTING/MIGRATING, MIGRATE of
    /// its keys, then SETSLOT NODE everywhere. Returns the new master's port.
    pub async fn move_slot_of(&self, couple_id: Uuid, to: Option<u16>) -> u16 {
        let from = self.master_of(couple_id).await;
        let mut masters = self.masters().await;
        if let Some(to) = to
            && !masters.contains(&to)
        {
            masters.push(to);
        }
        let to = to.unwrap_or_else(|| {
            *masters
                .iter()
                .find(|p| **p != from)
                .expect("another master")
        });
        let mut src = connect(from).await.expect("the slot's master");
        let mut dst = connect(to).await.expect("the new master");
        let id = |port: u16| async move {
            let mut conn = connect(port).await.expect("a master");
            redis::cmd("CLUSTER")
                .arg("MYID")
                .query_async::<String>(&mut conn)
                .await
                .expect("CLUSTER MYID")
        };
        let (from_id, to_id) = (id(from).await, id(to).await);
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(format!("{{{}}}", couple_id.simple()))
            .query_async(&mut src)
            .await
            .expect("CLUSTER KEYSLOT");
        let setslot = |state: &str, node: &str| {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SETSLOT").arg(slot).arg(state).arg(node);
            cmd
        };
        setslot("IMPORTING", &from_id)
            .exec_async(&mut dst)
            .await
            .expect("IMPORTING");
        setslot("MIGRATING", &to_id)
            .exec_async(&mut src)
            .await
            .expect("MIGRATING");
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query_async(&mut src)
                .await
                .expect("GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            let mut migrate = redis::cmd("MIGRATE");
            migrate
                .arg("127.0.0.1")
                .arg(to)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys);
            // A master that just joined answers CLUSTERDOWN for its first seconds.
            for attempt in 0.. {
                match migrate.exec_async(&mut src).await {
                    Ok(()) => break,
                    Err(e) if attempt < 100 && e.to_string().contains("CLUSTERDOWN") => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("MIGRATE: {e}"),
                }
            }
        }
        for port in std::iter::once(to).chain(masters.iter().copied().filter(|p| *p != to)) {
            let mut conn = connect(port).await.expect("a master");
            setslot("NODE", &to_id)
                .exec_async(&mut conn)
                .await
                .expect("SETSLOT NODE");
        }
        to
    }

    /// The ports of the live masters.
    async fn masters(&self) -> Vec<u16> {
        let mut masters = Vec::new();
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let Ok(mut conn) = connect(node.port).await else {
                continue;
            };
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await
                .expect("INFO replication");
            if info.contains("role:master") {
                masters.push(node.port);
            }
        }
        masters
    }
}

async fn connect(port: u16) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

async fn cluster_info(port: u16) -> redis::RedisResult<String> {
    let mut conn = connect(port).await?;
    redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut conn)
        .await
}
