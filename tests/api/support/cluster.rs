//! Several nodes on one database and one Redis, some as processes of their own that a
//! test can kill, and a Redis of the test's own.

use super::*;

/// The machine's Redis, which every test shares (each under a prefix of its own).
pub fn redis_url() -> String {
    std::env::var("DUET_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Fails the test, saying how to start Redis, when it does not answer.
pub async fn redis() -> redis::aio::MultiplexedConnection {
    let fail = |e: redis::RedisError| -> ! {
        panic!(
            "Redis is not reachable at {} ({e}). Start it with `redis-server --daemonize yes`, \
             or point DUET_TEST_REDIS at one.",
            redis_url()
        )
    };
    let client = redis::Client::open(redis_url()).unwrap_or_else(|e| fail(e));
    client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| fail(e))
}

/// Several nodes sharing one Postgres database and one Redis prefix, both the test's own.
pub struct Cluster {
    pub db: TestDb,
    pub prefix: String,
    pub addrs: Vec<SocketAddr>,
    /// Each node's `/metrics` listener, by the same index.
    pub metrics: Vec<Option<SocketAddr>>,
    nodes: Vec<Option<duet::Node>>,
    extra: Vec<String>,
    /// `--redis-url=...` or `--redis-cluster-urls=...`.
    redis_flag: String,
}

impl Cluster {
    pub async fn start(nodes: usize, extra: &[&str]) -> Cluster {
        Cluster::start_with_redis(nodes, extra, &redis_url()).await
    }

    /// A cluster on a Redis of the test's choosing (e.g. a private one it will restart).
    pub async fn start_with_redis(nodes: usize, extra: &[&str], redis_url: &str) -> Cluster {
        let db = TestDb::new(Backend::Postgres).await;
        Cluster::start_on(db, nodes, extra, redis_url).await
    }

    /// A cluster on a database and a Redis of the test's choosing.
    pub async fn start_on(db: TestDb, nodes: usize, extra: &[&str], redis_url: &str) -> Cluster {
        if redis_url == self::redis_url() {
            redis().await;
        }
        Cluster::start_with_flag(db, nodes, extra, format!("--redis-url={redis_url}")).await
    }

    /// Nodes on a Redis Cluster (sharded pub/sub), given by some of its nodes.
    pub async fn start_on_redis_cluster(nodes: usize, extra: &[&str], urls: &str) -> Cluster {
        let db = TestDb::new(Backend::Postgres).await;
        Cluster::start_with_flag(db, nodes, extra, format!("--redis-cluster-urls={urls}")).await
    }

    async fn start_with_flag(
        db: TestDb,
        nodes: usize,
        extra: &[&str],
        redis_flag: String,
    ) -> Cluster {
        let mut cluster = Cluster {
            db,
            prefix: format!("duet-test-{}:", Uuid::new_v4().simple()),
            addrs: Vec::new(),
            metrics: Vec::new(),
            nodes: Vec::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            redis_flag,
        };
        for _ in 0..nodes {
            cluster.add_node().await;
        }
        cluster
    }

    /// Flags a node of this cluster runs with.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            self.redis_flag.clone(),
            format!("--redis-prefix={}", self.prefix),
            "--presence-ttl-secs=3".to_owned(),
        ];
        // Tests stop nodes often; the drain delay is for load balancers, not for them.
        if !self
            .extra
            .iter()
            .any(|a| a.starts_with("--drain-delay-secs"))
        {
            args.push("--drain-delay-secs=0".to_owned());
        }
        args.extend(self.extra.iter().cloned());
        args
    }

    pub async fn add_node(&mut self) -> SocketAddr {
        let args = self.args();
        let extra: Vec<&str> = args.iter().map(String::as_str).collect();
        let node = duet::start(config(&self.db.url, self.db.data_dir(), &extra))
            .await
            .expect("the node starts");
        let addr = node.addr();
        self.addrs.push(addr);
        self.metrics.push(node.metrics_addr());
        self.nodes.push(Some(node));
        addr
    }

    /// Drains and stops node `i` (sockets close with 1012).
    pub async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes.get_mut(i).and_then(Option::take) {
            node.stop().await;
        }
    }
}

/// The `duet` binary on a free port with the tests' origin, quiet, killed when dropped; the
/// caller adds its database and settings.
pub fn duet_process() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_duet"));
    without_node_env(&mut command);
    command
        .arg("--bind=127.0.0.1:0")
        .arg("--metrics-bind=127.0.0.1:0")
        .arg("--origins=http://duet.test")
        .env("DUET_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts the process and waits until it prints the address it listens on.
pub async fn start_process(
    mut command: tokio::process::Command,
) -> (tokio::process::Child, SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let mut child = command.spawn().expect("starting a duet process");
    let stdout = child.stdout.take().expect("the node's stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the node starts in time")
        .expect("reading the node's stdout")
        .expect("the node prints its address");
    let addr = line
        .rsplit("http://")
        .next()
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr)
}

/// A node in a process of its own, which a test can kill without any goodbye.
pub struct ProcessNode {
    pub addr: SocketAddr,
    child: tokio::process::Child,
}

impl ProcessNode {
    pub async fn start(cluster: &Cluster) -> ProcessNode {
        let mut command = duet_process();
        command
            .arg(format!("--database-url={}", cluster.db.url))
            .arg(format!("--data-dir={}", cluster.db.data_dir().display()))
            .args(cluster.args());
        let (child, addr) = start_process(command).await;
        ProcessNode { addr, child }
    }

    /// SIGKILL: no drain, no close frames, no presence cleanup.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM, as an orchestrator stops a node: it drains (sockets close with 1012) and
    /// exits. Returns how it exited.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("the node is running");
        let status = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await
            .expect("running kill");
        assert!(status.success(), "kill -TERM {pid}");
        self.child
            .wait()
            .await
            .expect("waiting for the node to exit")
    }
}

/// A Redis server of the test's own, on its own port, that the test can stop and start again.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<tokio::process::Child>,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut redis = PrivateRedis { port, child: None };
        redis.resume().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub async fn resume(&mut self) {
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting redis-server ({e}); install it with `apt-get install -y redis-server`"
                )
            });
        self.child = Some(child);
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Stops (`true`) or continues (`false`) the server: connections stay open, nothing is
    /// answered, as with a Redis that hangs.
    pub async fn freeze(&mut self, frozen: bool) {
        let Some(pid) = self.child.as_ref().and_then(|c| c.id()) else {
            return;
        };
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = tokio::process::Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .await
            .expect("running kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Kills the server: every connection drops, as in a crash or a restart.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}
