//! The generator's own file-descriptor limit. Every socket is a descriptor and shells often
//! start with a soft limit of 1024, so a mode that opens many sockets raises the soft limit to
//! the hard one first (and, when the hard one is too low and we may, the hard one too). The
//! crate forbids `unsafe` and has no libc binding, so this goes through util-linux's `prlimit`
//! on our own pid and reads the result back from `/proc/self/limits`.

use anyhow::{Result, bail};

use crate::report::note;

/// Descriptors a run needs beyond its sockets: stdio, the runtime, HTTP clients, /proc reads.
const SPARE: u64 = 64;

/// Makes sure `sockets` more descriptors can be opened, or says exactly what to do.
pub fn ensure_descriptors(sockets: u64) -> Result<()> {
    let needed = sockets + SPARE;
    let (soft, hard) = current()?;
    if soft >= needed {
        return Ok(());
    }
    // Raising the hard limit needs CAP_SYS_RESOURCE; when we have it, go no higher than needed
    // (and never above the kernel's per-process ceiling).
    let ceiling = nr_open().unwrap_or(1_048_576);
    let target_hard = if hard >= needed {
        hard
    } else {
        needed.min(ceiling)
    };
    let pid = std::process::id();
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={target_hard}:{target_hard}"))
        .stderr(std::process::Stdio::null())
        .status();
    let (soft_now, hard_now) = current()?;
    if soft_now >= needed {
        if soft_now != soft {
            note(format!(
                "raised the open-file limit from {soft} to {soft_now} for {sockets} sockets"
            ));
        }
        return Ok(());
    }
    let how = match status {
        Err(_) => "prlimit (util-linux) was not found".to_owned(),
        Ok(_) => format!("could only raise it to {soft_now} (hard limit {hard_now})"),
    };
    bail!(
        "{sockets} sockets need {needed} open files but the limit is {soft} (hard {hard}); {how}. \
         Raise it before running, e.g. `ulimit -n {needed}` as root, or ask for fewer sockets"
    )
}

/// (soft, hard) of RLIMIT_NOFILE from /proc/self/limits ("unlimited" counts as u64::MAX).
fn current() -> Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/limits")?;
    let Some(line) = text.lines().find(|l| l.starts_with("Max open files")) else {
        bail!("/proc/self/limits has no \"Max open files\" line");
    };
    let mut numbers = line["Max open files".len()..].split_whitespace().map(|w| {
        if w == "unlimited" {
            Some(u64::MAX)
        } else {
            w.parse().ok()
        }
    });
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(soft), Some(hard)) => Ok((soft, hard)),
        _ => bail!("cannot read the open-file limit from {line:?}"),
    }
}

fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The open-file limit of another process (the server), to warn before asking it for more
/// sockets than it can hold.
pub fn process_nofile(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
