//! A node under test, in this process, on a random port, configured by flags only.

use super::*;

/// A node under test, with its own database.
pub struct TestNode {
    pub addr: SocketAddr,
    /// Where the node serves `/metrics` (its own listener, on a random port in tests).
    pub metrics: Option<SocketAddr>,
    node: Option<duet::Node>,
    pub db: TestDb,
}

impl TestNode {
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sockets this node closed because their client did not keep up.
    pub fn slow_client_disconnects(&self) -> u64 {
        self.node
            .as_ref()
            .map_or(0, |node| node.metrics().slow_client_disconnects.get())
    }

    /// The node's `/metrics`, from its metrics listener.
    pub fn metrics_url(&self) -> String {
        format!(
            "http://{}/metrics",
            self.metrics.expect("a metrics listener")
        )
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
        self.metrics = node.metrics_addr();
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
        // The test binary is not duet: voice notes are measured by the real one.
        format!("--recording-probe={}", env!("CARGO_BIN_EXE_duet")),
    ];
    // Tests run many nodes at once: each its own metrics port, unless the test says.
    if !extra.iter().any(|a| a.starts_with("--metrics-bind")) {
        args.push("--metrics-bind=127.0.0.1:0".to_owned());
    }
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
        metrics: node.metrics_addr(),
        node: Some(node),
        db,
    }
}
