//! A Postgres server of the test's own: `initdb` into a temporary directory, started with
//! `pg_ctl` on a free port, so a test can stop it and start it again without touching the
//! machine's server that every other test shares. It is stopped and removed when dropped.
//!
//! Postgres refuses to run as root; under root (CI, containers) its commands run as the
//! `postgres` user, who then owns the directory.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpStream;

pub struct PrivatePostgres {
    pub port: u16,
    /// Where `initdb`, `pg_ctl` and `postgres` are.
    bin: PathBuf,
    /// Holds the data directory, the server's Unix socket and its log.
    dir: tempfile::TempDir,
    /// Under root, commands run as `postgres` through `runuser`.
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Creates a fresh cluster and starts it; fails saying how to get Postgres if its
    /// programs are missing.
    pub async fn start() -> PrivatePostgres {
        let bin = server_bin().unwrap_or_else(|| {
            panic!(
                "initdb and pg_ctl were found neither on PATH nor in /usr/lib/postgresql/*/bin; \
                 install the Postgres server with `apt-get install -y postgresql`"
            )
        });
        let dir = tempfile::tempdir().expect("a temporary directory");
        let as_postgres = std::fs::metadata(dir.path())
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        if as_postgres {
            let status = tokio::process::Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .await
                .expect("running chown");
            assert!(
                status.success(),
                "chown postgres {}: running as root needs a `postgres` user for Postgres",
                dir.path().display()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut pg = PrivatePostgres {
            port,
            bin,
            dir,
            as_postgres,
        };
        let data = pg.data().display().to_string();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
        )
        .await;
        pg.resume().await;
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once, as a crash would: every connection drops, nothing is
    /// answered until `resume`.
    pub async fn stop(&mut self) {
        let data = self.data().display().to_string();
        self.run("pg_ctl", &["stop", "-D", &data, "-m", "immediate", "-w"])
            .await;
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    pub async fn resume(&mut self) {
        let data = self.data().display().to_string();
        let log = self.dir.path().join("log").display().to_string();
        // No fsync: a commit still reaches the kernel, so it survives the server's crash
        // (all a test does to it), just not the machine's. (Not `synchronous_commit=off`:
        // that acknowledges commits a crash then loses, which is no fault of Duet's.)
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &["start", "-D", &data, "-l", &log, "-w", "-o", &options],
        )
        .await;
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the private Postgres did not start on port {}", self.port);
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the server's programs (as `postgres` under root) and fails loudly, with
    /// its output, if it fails.
    async fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program, args)
            .output()
            .await
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?}: {}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn command(&self, program: &str, args: &[&str]) -> tokio::process::Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = tokio::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            tokio::process::Command::new(path)
        };
        command.args(args).stdin(std::process::Stdio::null());
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // The server is pg_ctl's daemon, not our child: it must be stopped by hand, here
        // too when the test panicked, or it would outlive the test.
        let data = self.data();
        let path = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        };
        let _ = command
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(&data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The directory of `initdb` and `pg_ctl`: on PATH, else Debian's newest version.
fn server_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).find(|p| has_server(p)));
    on_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry.file_name().to_str()?.parse().ok()?;
                let bin = entry.path().join("bin");
                has_server(&bin).then_some((version, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    })
}

fn has_server(bin: &Path) -> bool {
    bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()
}
