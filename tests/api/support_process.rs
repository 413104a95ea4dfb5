//! A node in a process of its own, standing alone on a SQLite database of its own, whose
//! memory a test can read from `/proc`: what the memory rules need, since a node inside the
//! test binary shares its heap with the test.

#![allow(dead_code)]

use std::net::SocketAddr;

use crate::support::{duet_process, start_process};

pub struct StandaloneNode {
    pub addr: SocketAddr,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

/// A process's resident memory now and at its highest, in KiB (`VmRSS`, `VmHWM`).
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

impl Memory {
    pub fn rss_mib(&self) -> u64 {
        self.rss_kib / 1024
    }

    pub fn peak_mib(&self) -> u64 {
        self.peak_kib / 1024
    }
}

impl StandaloneNode {
    /// Starts `duet` with `env` (settings as `DUET_*` variables, which a node of any version
    /// accepts) and waits until it prints its address.
    pub async fn start(env: &[(&str, &str)]) -> StandaloneNode {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut command = duet_process();
        command
            .arg(format!("--data-dir={}", dir.path().display()))
            .arg(format!(
                "--assets-dir={}/assets",
                env!("CARGO_MANIFEST_DIR")
            ))
            .envs(env.iter().copied());
        let (child, addr) = start_process(command).await;
        StandaloneNode {
            addr,
            child,
            _dir: dir,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn memory(&self) -> Memory {
        let pid = self.child.id().expect("the node is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .expect("reading the node's /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        };
        Memory {
            rss_kib: field("VmRSS:"),
            peak_kib: field("VmHWM:"),
        }
    }
}
