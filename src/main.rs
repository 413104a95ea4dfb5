//! The `duet` command: `duet` (or `duet serve`) runs a node, `duet migrate` only migrates.

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
}

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
        Command::Serve => {
            let node = duet::start(cli.config).await?;
            println!("Duet is running: open http://{}", node.addr());
            stop_signal().await;
            tracing::info!("stopping: draining sockets");
            node.stop().await;
        }
    }
    Ok(())
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
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
