//! A pg_auto_failover formation of the test's own: a monitor and two Postgres nodes, a
//! primary and its synchronous standby, created with `pg_autoctl` in a temporary directory on
//! free ports, never touching the machine's server on 5432. Each `pg_autoctl` runs as the
//! `postgres` user (through `runuser` under root) in a process group of its own, so a test can
//! kill a node's whole machine at once: its keeper and its Postgres.
//!
//! The monitor's health checks are shortened so that a failover takes seconds rather than the
//! default half a minute: it checks each node every second (default 5 s), gives up on a check
//! after a second (5 s) with one retry 200 ms later (2 retries 2 s apart), counts a node
//! unhealthy after 2 s without an answer (20 s), and promotes the standby of a primary it
//! cannot reach after 3 s (30 s: the time an unreachable primary's own keeper is given to
//! notice it is cut off and step down, which a dead machine's never does).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// The database Duet uses in the formation.
const DBNAME: &str = "duet";

pub struct PgFormation {
    dir: tempfile::TempDir,
    monitor_port: u16,
    /// Each Postgres node's port, by node (0 and 1).
    pub ports: [u16; 2],
    /// The running `pg_autoctl` of the monitor and of each node, by name.
    keepers: Vec<(String, Child)>,
    as_postgres: bool,
    pg_ctl: PathBuf,
}

/// A node's state as the monitor sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    pub port: u16,
    pub reported: String,
    pub goal: String,
}

impl PgFormation {
    /// Creates the monitor, then the first node (the primary), then the second (its
    /// standby, copied from the primary), and waits until the monitor has them as `primary`
    /// and `secondary`. Fails saying how to install pg_auto_failover if it is missing.
    pub async fn start() -> PgFormation {
        let pg_ctl = pg_ctl().unwrap_or_else(|| {
            panic!("pg_ctl was not found in /usr/lib/postgresql/*/bin; install Postgres")
        });
        let found = std::process::Command::new("pg_autoctl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "pg_autoctl is missing: install pg_auto_failover with \
             `apt-get install -y pg-auto-failover-cli postgresql-15-auto-failover` \
             (the extension's package for the Postgres version installed)"
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let as_postgres = nix_is_root();
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .await
                .expect("running chown");
            assert!(status.success(), "chown postgres {}", dir.path().display());
        }
        let mut formation = PgFormation {
            monitor_port: free_port(),
            ports: [free_port(), free_port()],
            dir,
            keepers: Vec::new(),
            as_postgres,
            pg_ctl,
        };
        formation.create_monitor().await;
        formation.create_node(0).await;
        formation
            .wait_for(Duration::from_secs(120), |states| {
                states.iter().any(|s| s.reported == "single")
            })
            .await;
        formation.create_node(1).await;
        formation.wait_until_settled().await;
        formation
    }

    /// What Duet is given: libpq's multi-host URL, as `pg_autoctl show uri` prints it.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{DBNAME}?sslmode=disable&target_session_attrs=read-write",
            self.ports[0], self.ports[1]
        )
    }

    /// One node's own URL, for reading (or pausing) that node whatever its role.
    pub fn node_url(&self, node: usize) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{DBNAME}?sslmode=disable",
            self.ports[node]
        )
    }

    fn monitor_url(&self) -> String {
        format!(
            "postgres://autoctl_node@127.0.0.1:{}/pg_auto_failover?sslmode=disable",
            self.monitor_port
        )
    }

    fn data(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn create_monitor(&mut self) {
        let data = self.data("monitor");
        let port = self.monitor_port.to_string();
        self.spawn_keeper(
            "monitor",
            &[
                "create",
                "monitor",
                "--pgdata",
                &data.display().to_string(),
                "--pgport",
                &port,
                "--hostname",
                "127.0.0.1",
                "--auth",
                "trust",
                "--no-ssl",
                "--pgctl",
                &self.pg_ctl.display().to_string(),
                "--run",
            ],
        );
        let monitor = self.connect_monitor(Duration::from_secs(60)).await;
        for (setting, value) in [
            ("health_check_period", "1000"),
            ("health_check_timeout", "1000"),
            ("health_check_max_retries", "1"),
            ("health_check_retry_delay", "200"),
            ("node_considered_unhealthy_timeout", "2000"),
            ("primary_demote_timeout", "3000"),
        ] {
            monitor
                .execute_unprepared(&format!(
                    "ALTER SYSTEM SET pgautofailover.{setting} = {value}"
                ))
                .await
                .unwrap_or_else(|e| panic!("setting {setting} on the monitor: {e}"));
        }
        monitor
            .execute_unprepared("SELECT pg_reload_conf()")
            .await
            .expect("reloading the monitor's settings");
    }

    async fn connect_monitor(&self, within: Duration) -> DatabaseConnection {
        let until = Instant::now() + within;
        loop {
            // As the superuser: ALTER SYSTEM needs it (autoctl_node is for the keepers).
            let url = format!(
                "postgres://postgres@127.0.0.1:{}/pg_auto_failover?sslmode=disable",
                self.monitor_port
            );
            match Database::connect(url.as_str()).await {
                Ok(db) if db.execute_unprepared("SELECT 1").await.is_ok() => return db,
                _ if Instant::now() < until => tokio::time::sleep(Duration::from_millis(200)).await,
                Ok(_) => panic!("the monitor did not answer: {}", self.logs()),
                Err(e) => panic!("the monitor did not start: {e}\n{}", self.logs()),
            }
        }
    }

    async fn create_node(&mut self, node: usize) {
        let name = format!("node{}", node + 1);
        let data = self.data(&name).display().to_string();
        let port = self.ports[node].to_string();
        let monitor = self.monitor_url();
        let pg_ctl = self.pg_ctl.display().to_string();
        self.spawn_keeper(
            &name,
            &[
                "create",
                "postgres",
                "--pgdata",
                &data,
                "--pgport",
                &port,
                "--hostname",
                "127.0.0.1",
                "--name",
                &name,
                "--dbname",
                DBNAME,
                "--monitor",
                &monitor,
                "--auth",
                "trust",
                "--no-ssl",
                "--pgctl",
                &pg_ctl,
                "--run",
            ],
        );
    }

    /// Starts a node's keeper again after its machine was killed: it rejoins the formation
    /// (as the standby, when the other node was promoted meanwhile).
    pub async fn restart_node(&mut self, node: usize) {
        let name = format!("node{}", node + 1);
        let data = self.data(&name).display().to_string();
        self.spawn_keeper(&name, &["run", "--pgdata", &data]);
    }

    fn spawn_keeper(&mut self, name: &str, args: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .expect("a log file");
        let err = log.try_clone().expect("a log file");
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "pg_autoctl"]);
            c
        } else {
            Command::new("pg_autoctl")
        };
        command
            .args(args)
            .env("PG_CONFIG", self.pg_ctl.with_file_name("pg_config"))
            // pg_autoctl keeps its configuration and state under these: the test's own.
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg-config"))
            .env("XDG_DATA_HOME", self.dir.path().join("xdg-data"))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("xdg-run"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting pg_autoctl for {name}: {e}"));
        self.keepers.retain(|(n, _)| n != name);
        self.keepers.push((name.to_owned(), child));
    }

    /// Kills a node's machine at once: its keeper and its Postgres, every process of its
    /// group, with SIGKILL. Nothing is flushed, nothing is said to the monitor.
    pub async fn kill_node(&mut self, node: usize) {
        let name = format!("node{}", node + 1);
        if let Some((_, child)) = self.keepers.iter().find(|(n, _)| *n == name)
            && let Some(pid) = child.id()
        {
            kill_group(pid);
        }
        // Postgres may have left the keeper's group; its own pid file names it.
        if let Some(pid) = postmaster_pid(&self.data(&name)) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        if let Some((_, child)) = self.keepers.iter_mut().find(|(n, _)| *n == name) {
            let _ = child.wait().await;
        }
    }

    /// A planned switchover: the standby becomes the primary and the primary its standby.
    pub async fn switchover(&self) {
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "pg_autoctl"]);
            c
        } else {
            Command::new("pg_autoctl")
        };
        let output = command
            .args(["perform", "switchover", "--monitor", &self.monitor_url()])
            .args(["--wait", "60"])
            .current_dir(self.dir.path())
            .output()
            .await
            .expect("running pg_autoctl perform switchover");
        assert!(
            output.status.success(),
            "pg_autoctl perform switchover: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.logs()
        );
    }

    /// The nodes as the monitor has them, by port.
    pub async fn states(&self) -> Vec<NodeState> {
        let Ok(monitor) = Database::connect(self.monitor_url().as_str()).await else {
            return Vec::new();
        };
        let rows = monitor
            .query_all_raw(Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT nodeport, reportedstate::text AS reported, goalstate::text AS goal \
                 FROM pgautofailover.node ORDER BY nodeid",
            ))
            .await
            .unwrap_or_default();
        let _ = monitor.close().await;
        rows.iter()
            .filter_map(|row| {
                Some(NodeState {
                    port: u16::try_from(row.try_get::<i32>("", "nodeport").ok()?).ok()?,
                    reported: row.try_get("", "reported").ok()?,
                    goal: row.try_get("", "goal").ok()?,
                })
            })
            .collect()
    }

    /// The primary's `synchronous_commit` and `synchronous_standby_names`: what makes an
    /// ack mean "on two machines".
    pub async fn replication(&self) -> (String, String) {
        let node = self.primary().await.expect("a primary");
        let db = Database::connect(self.node_url(node).as_str())
            .await
            .expect("connecting to the primary");
        let mut settings = Vec::new();
        for name in ["synchronous_commit", "synchronous_standby_names"] {
            let row = db
                .query_one_raw(Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!("SELECT current_setting('{name}') AS value"),
                ))
                .await
                .expect("reading a setting")
                .expect("a row");
            settings.push(row.try_get::<String>("", "value").expect("a value"));
        }
        let _ = db.close().await;
        (settings.remove(0), settings.remove(0))
    }

    /// Which node (0 or 1) the monitor has as the primary now.
    pub async fn primary(&self) -> Option<usize> {
        let states = self.states().await;
        let state = states
            .iter()
            .find(|s| s.reported == "primary" && s.goal == "primary")?;
        self.ports.iter().position(|p| *p == state.port)
    }

    /// Waits until one node is `primary` and the other `secondary`, both as the monitor
    /// wants them: a synchronous standby is in place again.
    pub async fn wait_until_settled(&self) -> Duration {
        self.wait_for(Duration::from_secs(180), |states| {
            let settled = |role: &str| states.iter().any(|s| s.reported == role && s.goal == role);
            states.len() == 2 && settled("primary") && settled("secondary")
        })
        .await
    }

    /// Waits until `settled` holds of the monitor's states; how long that took.
    pub async fn wait_for(
        &self,
        within: Duration,
        settled: impl Fn(&[NodeState]) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let states = self.states().await;
            if settled(&states) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "the formation did not settle within {within:?}: {states:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The tail of every keeper's log, for a failure message.
    fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["monitor", "node1", "node2"] {
            let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("--- {name}.log\n"));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for PgFormation {
    fn drop(&mut self) {
        // The keepers' Postgres servers are not ours to reap: stopped by hand, here too when
        // the test panicked, or they would outlive it.
        for (_, child) in &self.keepers {
            if let Some(pid) = child.id() {
                kill_group(pid);
            }
        }
        for name in ["node1", "node2", "monitor"] {
            if let Some(pid) = postmaster_pid(&self.data(name)) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

fn kill_group(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status();
}

/// The postmaster's pid: the first line of `postmaster.pid` in its data directory.
fn postmaster_pid(data: &Path) -> Option<u32> {
    std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn nix_is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Debian's newest `pg_ctl`, in its versioned directory: pg_autoctl finds the server's
/// other programs beside it (a wrapper on PATH would not do).
fn pg_ctl() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let pg_ctl = entry.path().join("bin/pg_ctl");
            pg_ctl.is_file().then_some((version, pg_ctl))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, path)| path)
}
