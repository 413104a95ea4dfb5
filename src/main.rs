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

/// mimalloc rather than the system allocator: measured on the load generator, a node spends
/// about a tenth less CPU per chat, and an idle socket costs a little less memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.config);
    match cli.command.unwrap_or(Command::Serve) {
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
