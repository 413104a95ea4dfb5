//! The `duet` command: `duet` (or `duet serve`) runs a node, `duet migrate` only migrates.

use anyhow::Context;
use clap::{Parser, Subcommand};
use duet::config::Config;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "duet", version, about = "Real-time chat for couples")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (the default): migrate the database, then serve until SIGTERM or Ctrl-C.
    Serve,
    /// Migrate the database and exit.
    Migrate,
    /// The question catalogue.
    #[command(subcommand)]
    Questions(QuestionsCommand),
    /// What a node runs to measure a voice note: the bytes on stdin, `{"content_type",
    /// "duration_ms"}` or `null` on stdout, under memory and CPU limits, so a hostile file
    /// can at worst end this process, never the node.
    #[command(hide = true)]
    MeasureRecording { sniffed: String },
}

#[derive(Subcommand)]
enum QuestionsCommand {
    /// Add or update questions from a TOML or JSON file, keyed by `key` (idempotent).
    Import { file: std::path::PathBuf },
    /// Print the catalogue.
    List,
    /// Measure the keyword matcher: chats per second through a synthetic catalogue.
    Bench {
        #[arg(long, default_value_t = 10_000)]
        keywords: usize,
        #[arg(long, default_value_t = 200_000)]
        chats: usize,
    },
}

/// Address space and CPU time a measurement may take: far more than any recording needs, far
/// less than a file claiming billions of entries asks for (which then fails here, alone).
const MEASURE_MEMORY: u64 = 1 << 30;
const MEASURE_CPU_SECS: u64 = 10;

fn measure_recording(sniffed: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    rlimit::setrlimit(rlimit::Resource::AS, MEASURE_MEMORY, MEASURE_MEMORY)?;
    rlimit::setrlimit(rlimit::Resource::CPU, MEASURE_CPU_SECS, MEASURE_CPU_SECS)?;
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes)?;
    let found = duet::measure_recording(bytes, sniffed).map(|(content_type, duration_ms)| {
        serde_json::json!({ "content_type": content_type, "duration_ms": duration_ms })
    });
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &found)?;
    out.flush()?;
    Ok(())
}

/// mimalloc rather than the system allocator: measured on the load generator, a node spends
/// about a tenth less CPU per chat, and an idle socket costs a little less memory.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Measuring runs alone, before any runtime thread: its limits must cover all it does.
    if let Some(Command::MeasureRecording { sniffed }) = &cli.command {
        return measure_recording(sniffed);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(&cli.config);
    match cli.command.unwrap_or(Command::Serve) {
        Command::MeasureRecording { .. } => {}
        Command::Migrate => {
            let db = duet::store::connect(&cli.config).await?;
            duet::store::migrate(&db).await?;
            tracing::info!("database migrated");
        }
        Command::Questions(command) => questions(&cli.config, command).await?,
        Command::Serve => {
            let node = duet::start(cli.config).await?;
            println!("Duet is running: open http://{}", node.addr());
            stop_signal().await;
            tracing::info!("stopping: draining sockets (a second signal quits at once)");
            tokio::select! {
                () = node.stop() => {}
                () = stop_signal() => tracing::warn!("quitting without finishing the drain"),
            }
        }
    }
    Ok(())
}

async fn questions(config: &Config, command: QuestionsCommand) -> anyhow::Result<()> {
    if let QuestionsCommand::Bench { keywords, chats } = command {
        let report = duet::question::bench::run(keywords, chats);
        println!(
            "{} keywords (automaton built in {:.1} ms): {} chats, {:.0} chats/s, {} questions triggered",
            report.keywords, report.build_ms, report.chats, report.chats_per_sec, report.triggers
        );
        return Ok(());
    }
    let db = duet::store::connect(config).await?;
    duet::store::migrate(&db).await?;
    match command {
        QuestionsCommand::Import { file } => {
            let source = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let entries = migration::catalogue::parse(&source)?;
            let report = duet::store::questions::import(&db, &entries).await?;
            println!(
                "{} added, {} updated, {} unchanged (running nodes pick this up within {} s)",
                report.added, report.updated, report.unchanged, config.catalogue_refresh_secs
            );
        }
        QuestionsCommand::List => {
            for (question, keywords) in duet::store::questions::list(&db).await? {
                println!(
                    "{:>4}  {:<24} {}  [{}]",
                    question.id,
                    question.key,
                    question.text,
                    keywords.join(", ")
                );
            }
        }
        QuestionsCommand::Bench { .. } => {}
    }
    Ok(())
}

fn init_logging(config: &Config) {
    let mut filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    // The WebSocket library logs frames, and frames are a couple's chats: held at warn
    // whatever DUET_LOG says, unless it names the library itself.
    if !config.log.contains("tungstenite") {
        for quiet in ["tungstenite=warn", "tokio_tungstenite=warn"] {
            if let Ok(directive) = quiet.parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
