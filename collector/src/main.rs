//! `vitalsign-collector serve`: parse flags, load config, set up logging, run;
//! `vitalsign-collector backup`: copy the live database.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vitalsign_collector::config::Database;
use vitalsign_collector::{Application, CollectorConfig};

#[derive(Parser)]
#[command(
    name = "vitalsign-collector",
    version,
    about = "Receives vitals, stores them, answers queries"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve beacons, runs, queries and metrics.
    Serve {
        /// Config file (TOML). `VITALSIGN_…` variables override it.
        #[arg(long, env = "VITALSIGN_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on (overrides `listen`); port 0 picks a free port.
        #[arg(long)]
        listen: Option<String>,
        /// SQLite database file or `postgres://…` URL (overrides `db`;
        /// `VITALSIGN_DB` keeps a password off the command line).
        #[arg(long)]
        db: Option<Database>,
    },
    /// Copy the database to FILE while the collector keeps running (SQLite's
    /// online backup API). Restore by stopping the collector and putting FILE
    /// in the database's place; see docs/operations.md.
    Backup {
        /// Where to write the copy; it must not exist yet.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Config file to read `db` from. `VITALSIGN_…` variables override it.
        #[arg(long, env = "VITALSIGN_CONFIG")]
        config: Option<PathBuf>,
        /// The collector's database (overrides `db`).
        #[arg(long)]
        db: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let (config, listen, db) = match Cli::parse().command {
        Command::Serve { config, listen, db } => (config, listen, db),
        Command::Backup { to, config, db } => return backup(config, db, &to),
    };
    let mut settings = match CollectorConfig::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(listen) = listen {
        settings.listen = listen;
    }
    if let Some(db) = db {
        settings.db = db;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: redirected to a file (demo.sh, systemd) the
    // escape codes are noise, and NO_COLOR turns it off even on a terminal.
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour);
    if settings.log_format == vitalsign_core::config::LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
    let runtime = tokio::runtime::Runtime::new().expect("starting the async runtime");
    match runtime.block_on(serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn backup(config: Option<PathBuf>, db: Option<PathBuf>, to: &Path) -> ExitCode {
    let db = match db {
        Some(db) => db,
        None => match CollectorConfig::load(config.as_deref()) {
            Ok(CollectorConfig {
                db: Database::Sqlite(path),
                ..
            }) => path,
            Ok(CollectorConfig { db, .. }) => {
                eprintln!(
                    "error: `backup` copies a SQLite file; {db} is PostgreSQL: back it up with \
                     pg_dump or your database's backups (see docs/operations.md)"
                );
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match vitalsign_collector::store::backup::backup(&db, to) {
        Ok(report) => {
            println!(
                "backed up {} to {} ({} bytes, schema version {}, integrity ok)",
                db.display(),
                report.path.display(),
                report.bytes,
                report.schema_version
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: backup of {} failed: {e}", db.display());
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: CollectorConfig) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    // Cancelled on the signal; the task ends with the runtime otherwise.
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            shutdown.cancel();
        }
    });
    app.run_until_cancelled(shutdown).await
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: draining in-flight requests");
}
