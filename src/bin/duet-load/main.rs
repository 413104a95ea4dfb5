//! `duet-load`: the load generator for sizing a Duet deployment. It speaks only the public
//! wire contract (`../shared/PROTOCOL.md`): REST to make couples, WebSockets for everything
//! else, so it measures any deployment from outside, one node or a cluster.
//!
//! ```text
//! duet-load setup  --addr H:P --couples N --out FILE [--prefix NAME]
//! duet-load rate   --nodes H:P,H:P --tokens FILE --couples N --rate R --secs S
//! duet-load step   --nodes H:P,H:P --tokens FILE --couples N --rates 500,1000,2000
//! duet-load idle   --node H:P --tokens FILE --users U --counts 2000,10000,100000 --pid PID
//! duet-load resume --nodes H:P,H:P --tokens FILE --count 1000 --reps 5
//! duet-load storm  --nodes H:P,H:P --tokens FILE --sockets 10000 [--kill-pid PID]
//! duet-load push   --nodes H:P,H:P --tokens FILE --couples 200 --rate 200 --secs 30
//! ```
//!
//! Output convention, the same for every mode: **stdout carries only results**, one JSON
//! object per line, each written the moment its step or measurement finishes and stamped with
//! `"mode"` and `"at"`; **stderr carries everything for people**: progress notes while it
//! runs and a table of the results at the end. So `duet-load rate ... >> results.jsonl` keeps
//! the machine-readable record and still shows the table. Exit status: 0 when the run did what
//! was asked and passed, 2 when it ran but did not pass (a failing `rate` step, a `resume`
//! that missed chats, `idle` or `storm` sockets that failed), 1 when it could not run.
//!
//! The generator shares the machine with what it measures, so it is built to be cheap: by
//! default it runs on one thread (`--threads 1`: no cross-thread wake-ups, the least CPU per
//! chat, and at most one core taken from the server); `--threads 0` uses every core. In `rate`
//! and `step` its own CPU per chat is always reported (`duet-load` in `cpu_us_per_chat`), so a
//! run can be checked for the generator having been the bottleneck (also `send_lag_max_ms`).
//!
//! What each mode measures and how is documented at the top of its module: `setup.rs`,
//! `rate.rs` (`rate` and `step`; its send schedule and writers are in `schedule.rs`, what its
//! readers count in `ledger.rs`), `idle.rs`, `resume.rs`, `storm.rs` and `push.rs`. The protocol is in
//! `client.rs`, CPU and memory in `measure.rs`, output in `report.rs`, descriptor limits in
//! `limits.rs`. The node's own limits matter for every mode: Duet by default allows 20
//! frames/s per socket (`DUET_FRAME_RATE`, `DUET_FRAME_BURST`), 8 sockets per user per node
//! (`DUET_MAX_SOCKETS_PER_USER`), 30 sockets opened per user per minute per node
//! (`DUET_SOCKET_RATE_PER_USER`; `idle`, `storm` and `resume` open or reopen more, so set it
//! to 0) and 10,000 sockets per node (`DUET_MAX_SOCKETS`); a sizing run raises them, and the generator reports `rate_limited`, 429 and 503 plainly when it
//! meets them.

mod client;
mod idle;
mod ledger;
mod limits;
mod measure;
mod push;
mod rate;
mod report;
mod resume;
mod schedule;
mod setup;
mod stages;
mod storm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Load generator for Duet: makes couples, then measures chat throughput and latency, idle
/// socket memory, resume time and reconnect storms through the public wire contract. Results
/// are JSON lines on stdout; progress and a final table go to stderr.
#[derive(Parser, Debug)]
#[command(name = "duet-load", version)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    /// Runtime worker threads; 1 runs everything on one thread, which spends the least CPU
    /// per message (no cross-thread wake-ups); 0 means one per core.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Sign up 2N users and pair them into N couples; write their tokens to a file.
    Setup(setup::Args),
    /// One fixed-rate open-loop step: every partner sends, chats cross nodes; delivery and
    /// ack latency, losses, duplicates, errors, optionally CPU per chat.
    Rate(rate::RateArgs),
    /// Fixed-rate steps on the same sockets, rising until one fails; prints the highest
    /// passing rate ("max sustained").
    Step(rate::StepArgs),
    /// Open idle sockets in cumulative batches and report the server's memory per socket.
    Idle(idle::Args),
    /// Time for an offline partner to catch up on N missed chats with `/ws?after=`.
    Resume(resume::Args),
    /// Kill (or wait for) a node holding many sockets and time their reconnects elsewhere.
    Storm(storm::Args),
    /// Time from a chat to the Web Push reaching its offline partner's device (a push service
    /// of its own, decrypting every push).
    Push(push::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match cli.threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    };
    let outcome = match runtime {
        Ok(runtime) => runtime.block_on(async {
            match cli.mode {
                Mode::Setup(args) => setup::run(args).await,
                Mode::Rate(args) => rate::rate(args).await,
                Mode::Step(args) => rate::step(args).await,
                Mode::Idle(args) => idle::run(args).await,
                Mode::Resume(args) => resume::run(args).await,
                Mode::Storm(args) => storm::run(args).await,
                Mode::Push(args) => push::run(args).await,
            }
        }),
        Err(e) => Err(anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("duet-load: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
