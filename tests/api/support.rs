//! What every test needs: a node of its own on a random port with a database of its own,
//! users that sign up and pair, and a WebSocket client that speaks the contract.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use duet::config::Config;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

/// How long a test waits for a frame it expects before failing (not a speed assertion:
/// only a bound on how long a broken test hangs).
const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body once on the embedded SQLite and once on Postgres:
/// `both_backends!(a_rule_of_the_product);` makes `a_rule_of_the_product::sqlite` and
/// `a_rule_of_the_product::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            }
        )*
    };
}

fn admin_url() -> String {
    std::env::var("DUET_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test and is dropped after it.
pub struct TestDb {
    pub url: String,
    postgres_name: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary directory");
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}/duet.db", dir.path().display()),
                postgres_name: None,
                _dir: dir,
            },
            Backend::Postgres => {
                let name = format!("duet_test_{}", Uuid::new_v4().simple());
                let admin = Database::connect(admin_url()).await.unwrap_or_else(|e| {
                    panic!(
                        "Postgres is not reachable at {} ({e}). Start it with \
                         `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
                         or point DUET_TEST_POSTGRES at a server where user postgres may create databases.",
                        admin_url()
                    )
                });
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("creating the test database");
                let base = admin_url();
                let server = base.rsplit_once('/').map_or(base.as_str(), |(s, _)| s);
                TestDb {
                    url: format!("{server}/{name}"),
                    postgres_name: Some(name),
                    _dir: dir,
                }
            }
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// A database that lives on a server of the test's own (e.g. a private Postgres it will
    /// restart); it goes away with that server, so nothing is dropped here.
    pub fn existing(url: &str) -> TestDb {
        TestDb {
            url: url.to_owned(),
            postgres_name: None,
            _dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(admin) = Database::connect(admin_url()).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A node under test, with its own database.
pub struct TestNode {
    pub addr: SocketAddr,
    node: Option<duet::Node>,
    pub db: TestDb,
}

impl TestNode {
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(&mut self) {
        if let Some(node) = self.node.take() {
            node.stop().await;
        }
    }

    /// Starts stopping the node; the handle finishes when it has.
    pub fn begin_stop(&mut self) -> tokio::task::JoinHandle<()> {
        let node = self.node.take();
        tokio::spawn(async move {
            if let Some(node) = node {
                node.stop().await;
            }
        })
    }

    /// Stops the node and starts a new one on the same database; returns its address.
    pub async fn restart(&mut self, extra: &[&str]) -> SocketAddr {
        self.stop().await;
        let node = duet::start(config(&self.db.url, self.db.data_dir(), extra))
            .await
            .expect("the node starts again");
        self.addr = node.addr();
        self.node = Some(node);
        self.addr
    }
}

/// A config as a test wants it: random port, the given database, the repo's assets.
pub fn config(db_url: &str, data_dir: &std::path::Path, extra: &[&str]) -> Config {
    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        config: Config,
    }
    let mut args = vec![
        "duet".to_owned(),
        "--bind=127.0.0.1:0".to_owned(),
        format!("--database-url={db_url}"),
        format!("--data-dir={}", data_dir.display()),
        format!("--assets-dir={}/assets", env!("CARGO_MANIFEST_DIR")),
        "--origins=http://duet.test".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    // Only the flags count: a developer's own DUET_* (or DATABASE_URL, REDIS_URL) in the
    // environment must not change what a test runs.
    let command = Args::command().mut_args(|arg| arg.env(None::<&'static str>));
    let matches = command
        .try_get_matches_from(args)
        .unwrap_or_else(|e| panic!("a test's flags: {e}"));
    Args::from_arg_matches(&matches)
        .unwrap_or_else(|e| panic!("a test's flags: {e}"))
        .config
}

/// Removes the node's settings from a child's environment (see `config`).
pub fn without_node_env(command: &mut tokio::process::Command) {
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("DUET_")
            || matches!(name, "DATABASE_URL" | "REDIS_URL" | "REDIS_CLUSTER_URLS")
        {
            command.env_remove(name);
        }
    }
}

pub async fn spawn_node(backend: Backend) -> TestNode {
    spawn_node_with(backend, &[]).await
}

/// A node with extra flags, e.g. `&["--frame-rate=1"]`.
pub async fn spawn_node_with(backend: Backend, extra: &[&str]) -> TestNode {
    let db = TestDb::new(backend).await;
    let node = duet::start(config(&db.url, db.data_dir(), extra))
        .await
        .expect("the node starts");
    TestNode {
        addr: node.addr(),
        node: Some(node),
        db,
    }
}

/// A signed-in user talking to one node over HTTP and WebSocket.
#[derive(Clone)]
pub struct User {
    http: reqwest::Client,
    pub base: String,
    pub addr: SocketAddr,
    pub token: String,
    pub id: Uuid,
    pub username: String,
}

pub const PASSWORD: &str = "correct horse battery";

pub async fn request(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let http = reqwest::Client::new();
    let mut req = http.request(method, url);
    if let Some(token) = token {
        req = req.header("cookie", format!("duet_session={token}"));
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("the node answers");
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, value, headers)
}

pub fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("duet_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .filter(|t| !t.is_empty())
}

impl User {
    pub async fn signup(node: &TestNode, username: &str) -> User {
        User::signup_at(node.addr, username).await
    }

    pub async fn signup_at(addr: SocketAddr, username: &str) -> User {
        let base = format!("http://{addr}");
        let body = json!({ "username": username, "password": PASSWORD });
        let (status, value, headers) = request(
            reqwest::Method::POST,
            &format!("{base}/api/signup"),
            None,
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "signup of {username}: {value}");
        User::from_response(addr, &value, &headers)
    }

    pub async fn login_at(addr: SocketAddr, username: &str) -> User {
        let base = format!("http://{addr}");
        let body = json!({ "username": username, "password": PASSWORD });
        let (status, value, headers) = request(
            reqwest::Method::POST,
            &format!("{base}/api/login"),
            None,
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "login of {username}: {value}");
        User::from_response(addr, &value, &headers)
    }

    fn from_response(
        addr: SocketAddr,
        value: &Value,
        headers: &reqwest::header::HeaderMap,
    ) -> User {
        User {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
            addr,
            token: session_cookie(headers).expect("a session cookie"),
            id: value["user"]["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("a user id"),
            username: value["user"]["username"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// The same account, talking to another node.
    pub fn on(&self, addr: SocketAddr) -> User {
        User {
            base: format!("http://{addr}"),
            addr,
            ..self.clone()
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, v, _) = request(
            reqwest::Method::GET,
            &format!("{}{path}", self.base),
            Some(&self.token),
            None,
        )
        .await;
        (s, v)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, v, _) = request(
            reqwest::Method::POST,
            &format!("{}{path}", self.base),
            Some(&self.token),
            Some(body),
        )
        .await;
        (s, v)
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let (s, v, _) = request(
            reqwest::Method::DELETE,
            &format!("{}{path}", self.base),
            Some(&self.token),
            None,
        )
        .await;
        (s, v)
    }

    pub async fn socket(&self) -> Socket {
        self.socket_at("/ws").await
    }

    /// Opens `/ws` and reads through `hello`, the replay and `synced`.
    pub async fn socket_at(&self, path: &str) -> Socket {
        let mut socket = self
            .try_socket(path, None)
            .await
            .unwrap_or_else(|(s, v)| panic!("upgrade of {path} refused: {s} {v}"));
        socket.hello = socket.expect("hello").await;
        loop {
            let frame = socket.next().await;
            if frame["type"] == "synced" {
                socket.synced = frame;
                break;
            }
            socket.replay.push(frame);
        }
        socket
    }

    pub async fn try_socket(
        &self,
        path: &str,
        origin: Option<&str>,
    ) -> Result<Socket, (u16, Value)> {
        try_socket(self.addr, path, Some(&self.token), origin).await
    }
}

pub async fn try_socket(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    origin: Option<&str>,
) -> Result<Socket, (u16, Value)> {
    let mut req = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("a websocket request");
    if let Some(token) = token {
        let cookie = HeaderValue::from_str(&format!("duet_session={token}")).expect("a header");
        req.headers_mut().insert("cookie", cookie);
    }
    if let Some(origin) = origin {
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(origin).expect("a header"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(Socket {
            ws,
            hello: Value::Null,
            replay: Vec::new(),
            synced: Value::Null,
        }),
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((status, body))
        }
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

/// Signs up two users and pairs them.
pub async fn couple(node: &TestNode) -> (User, User) {
    let mina = User::signup(node, "mina").await;
    let joon = User::signup(node, "joon").await;
    pair(&mina, &joon).await;
    (mina, joon)
}

pub async fn pair(a: &User, b: &User) {
    let (status, req) = a
        .post("/api/requests", json!({ "username": b.username }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "request: {req}");
    let id = req["request"]["id"]
        .as_str()
        .expect("a request id")
        .to_owned();
    let (status, couple) = b
        .post(&format!("/api/requests/{id}/accept"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "accept: {couple}");
}

pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub hello: Value,
    pub replay: Vec<Value>,
    pub synced: Value,
}

impl Socket {
    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .expect("sending a frame");
    }

    /// Queues a frame without flushing, so many leave back to back.
    pub async fn feed(&mut self, frame: Value) {
        self.ws
            .feed(Message::text(frame.to_string()))
            .await
            .expect("feeding a frame");
    }

    pub async fn flush(&mut self) {
        self.ws.flush().await.expect("flushing frames");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("sending a message");
    }

    /// Sends a chat; returns its client_id.
    pub async fn say(&mut self, text: &str) -> Uuid {
        let client_id = Uuid::new_v4();
        self.send(json!({ "type": "send", "client_id": client_id, "text": text }))
            .await;
        client_id
    }

    /// The next JSON frame (pings and pongs are skipped); fails on close or silence.
    pub async fn next(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a frame arrives in time")
                .expect("the socket is open")
                .expect("a valid frame");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
                Message::Close(frame) => panic!("socket closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// The next frame, which must be of this type.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let frame = self.next().await;
        assert_eq!(frame["type"], kind, "expected a {kind} frame, got {frame}");
        frame
    }

    /// Skips frames until one of this type arrives (presence, typing and the like).
    pub async fn until(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Waits for the server to close the socket; returns the close frame.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("the socket closes in time");
            match message {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return None,
            }
        }
    }
}

impl Socket {
    /// Skips frames until one of these types arrives.
    pub async fn until_any(&mut self, kinds: &[&str]) -> Value {
        loop {
            let frame = self.next().await;
            if kinds.iter().any(|k| frame["type"] == *k) {
                return frame;
            }
        }
    }
}

impl Socket {
    /// Sends a chat and returns what answers it: its `ack`, or the `error` carrying its
    /// client_id (frames in between are skipped).
    pub async fn outcome(&mut self, text: &str) -> Value {
        let client_id = self.say(text).await.to_string();
        loop {
            let frame = self.until_any(&["ack", "error"]).await;
            if frame["client_id"] == client_id.as_str() {
                return frame;
            }
        }
    }

    /// Skips frames until the chat with this text arrives.
    pub async fn until_text(&mut self, text: &str) -> Value {
        loop {
            let frame = self.until("chat").await;
            if frame["text"] == text {
                return frame;
            }
        }
    }
}

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

/// Both partners send `text` at the same moment. A send may land before the other's question
/// or be gated by it (`answer_required`); either way the questions come, wherever they fall
/// between the chats. Returns the questions `watcher` saw up to the chats that went through
/// (at least one); a second question could still be on its way, so callers that count
/// questions also count them on the answers page, which lists every one asked.
pub async fn both_say_at_once(
    a: &mut Socket,
    b: &mut Socket,
    watcher: &mut Socket,
    text: &str,
) -> Vec<Value> {
    let (a, b) = tokio::join!(a.outcome(text), b.outcome(text));
    let sent = [a, b].iter().filter(|r| r["type"] == "ack").count();
    assert!(sent >= 1, "{text}: neither send went through");
    let (mut chats, mut questions) = (0, Vec::new());
    while chats < sent || questions.is_empty() {
        let frame = watcher.until_any(&["chat", "question"]).await;
        match frame["type"].as_str() {
            Some("chat") => chats += 1,
            _ => questions.push(frame),
        }
    }
    questions
}

/// Both partners answer `question_id`; the watcher sees two `answered` frames and no second
/// question.
pub async fn both_answer(
    a: &mut Socket,
    b: &mut Socket,
    watcher: &mut Socket,
    question_id: &Value,
) {
    for socket in [a, b] {
        socket
            .send(json!({ "type": "answer", "question_id": question_id, "text": "yes" }))
            .await;
    }
    for _ in 0..2 {
        let frame = watcher.until_any(&["answered", "question"]).await;
        assert_eq!(frame["type"], "answered", "a second question: {frame}");
    }
}
