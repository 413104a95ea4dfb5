//! What the machine spent: CPU time of named processes and process groups (a node, the
//! Postgres backends of one database, every `redis-server`, the generator itself) read from
//! `/proc/PID/stat` before and after a window, resident memory from `/proc/PID/status`, and
//! Postgres's committed-transaction counter through `psql`. Everything here is Linux `/proc`.

use std::collections::HashMap;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`, 100 on every common Linux).
fn clk_tck() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ')': state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS of a process in KiB (`None` if it is gone).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Which processes a CPU group counts.
#[derive(Clone, Debug)]
enum Select {
    Pid(u32),
    /// Postgres backends serving one database: their process title is
    /// `postgres: USER DB HOST(PORT) STATE`.
    PgBackends(String),
    /// Every process whose command name is `redis-server`.
    Redis,
}

/// A set of named process groups whose CPU time is sampled around a measured window.
#[derive(Clone, Debug)]
pub struct CpuWatch {
    groups: Vec<(String, Select)>,
}

/// Ticks per pid of each group at one moment.
pub struct CpuSample(Vec<HashMap<u32, u64>>);

/// CPU a group used between two samples.
#[derive(Debug)]
pub struct CpuUse {
    pub name: String,
    pub micros: u64,
    /// Processes seen in the group (a named pid that vanished shows 0).
    pub processes: usize,
    /// Part of the group is not on the server side (the generator itself).
    pub client: bool,
}

/// The name of the group that is the generator itself: always measured, never in `total`.
pub const SELF: &str = "duet-load";

impl CpuWatch {
    /// `pids` are `name=PID` pairs; `pg_db` a database name; `redis` every redis-server.
    pub fn new(pids: &[String], pg_db: Option<&str>, redis: bool) -> Result<CpuWatch> {
        let mut groups = vec![(SELF.to_owned(), Select::Pid(std::process::id()))];
        for pair in pids {
            let Some((name, pid)) = pair.split_once('=') else {
                bail!("--pids wants name=PID pairs, got {pair:?}");
            };
            let pid: u32 = pid
                .trim()
                .parse()
                .with_context(|| format!("--pids: {pid:?} is not a pid"))?;
            if cpu_ticks(pid).is_none() {
                bail!("--pids: no process {pid} ({name}) to measure");
            }
            groups.push((name.trim().to_owned(), Select::Pid(pid)));
        }
        if let Some(db) = pg_db {
            groups.push((format!("postgres:{db}"), Select::PgBackends(db.to_owned())));
        }
        if redis {
            groups.push(("redis".to_owned(), Select::Redis));
        }
        Ok(CpuWatch { groups })
    }

    /// Reads every group's ticks. Scans /proc when a group is a pattern, so callers run it
    /// with `spawn_blocking`, away from the sockets' workers.
    pub fn sample(&self) -> CpuSample {
        let needs_scan = self
            .groups
            .iter()
            .any(|(_, s)| !matches!(s, Select::Pid(_)));
        let scanned = if needs_scan { processes() } else { Vec::new() };
        let per_group = self
            .groups
            .iter()
            .map(|(_, select)| match select {
                Select::Pid(pid) => cpu_ticks(*pid).map(|t| (*pid, t)).into_iter().collect(),
                Select::PgBackends(db) => {
                    let needle = format!(" {db} ");
                    scanned
                        .iter()
                        .filter(|p| {
                            p.cmdline.starts_with("postgres:") && p.cmdline.contains(&needle)
                        })
                        .filter_map(|p| cpu_ticks(p.pid).map(|t| (p.pid, t)))
                        .collect()
                }
                Select::Redis => scanned
                    .iter()
                    .filter(|p| p.comm == "redis-server")
                    .filter_map(|p| cpu_ticks(p.pid).map(|t| (p.pid, t)))
                    .collect(),
            })
            .collect();
        CpuSample(per_group)
    }

    /// CPU used per group between `before` and `after`. A process that appeared in between
    /// counts whole (it started inside the window); one that exited took its time with it.
    pub fn usage(&self, before: &CpuSample, after: &CpuSample) -> Vec<CpuUse> {
        let micros_per_tick = 1_000_000 / clk_tck();
        self.groups
            .iter()
            .zip(before.0.iter().zip(&after.0))
            .map(|((name, _), (b, a))| {
                let ticks: u64 = a
                    .iter()
                    .map(|(pid, t)| t.saturating_sub(b.get(pid).copied().unwrap_or(0)))
                    .sum();
                CpuUse {
                    name: name.clone(),
                    micros: ticks * micros_per_tick,
                    processes: a.len(),
                    client: name == SELF,
                }
            })
            .collect()
    }
}

struct Process {
    pid: u32,
    comm: String,
    cmdline: String,
}

fn processes() -> Vec<Process> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        // Arguments are NUL-separated; a rewritten process title is one NUL-padded string.
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        Some(Process {
            pid,
            comm: comm.trim().to_owned(),
            cmdline: cmdline.trim().to_owned(),
        })
    })
    .collect()
}

/// `xact_commit` of one database through `psql URL` (the statistics are at most ~1 s stale).
pub async fn pg_commits(url: &str, db: &str) -> Result<u64> {
    if !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("--pg-db {db:?}: only letters, digits and _ are supported");
    }
    let out = tokio::process::Command::new("psql")
        .arg(url)
        .args(["-X", "-A", "-t", "-c"])
        .arg(format!(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'"
        ))
        .output()
        .await
        .context("cannot run psql (is it on PATH?)")?;
    if !out.status.success() {
        bail!(
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().with_context(|| {
        format!(
            "psql: no xact_commit for database {db:?} (got {:?})",
            text.trim()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_cpu_and_rss() {
        let me = std::process::id();
        assert!(cpu_ticks(me).is_some());
        assert!(rss_kib(me).is_some_and(|kib| kib > 0));
    }
}
