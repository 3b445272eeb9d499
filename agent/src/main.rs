//! `vitalsign-agent`: parse the command line, set up logging, hand over to the library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vitalsign_agent::budget;
use vitalsign_agent::config::AgentConfig;
use vitalsign_agent::daemon;
use vitalsign_agent::demo_visitor;
use vitalsign_agent::report::{CheckReport, run_table};

#[derive(Parser)]
#[command(
    name = "vitalsign-agent",
    version,
    about = "Runs vitalsign flows: scheduled, once, or as a CI budget check"
)]
struct Cli {
    /// Agent config file (TOML). `VITALSIGN_…` variables override it.
    #[arg(long, global = true, env = "VITALSIGN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every flow in the flows directory on its schedule and deliver the results.
    Run,
    /// Run flows now and print their page views and steps as tables (or JSON).
    Once {
        /// Flow files.
        #[arg(required = true)]
        flows: Vec<PathBuf>,
        /// Print the results as JSON lines instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Run flows N times, compare medians with budgets, exit non-zero when one is broken.
    Check {
        /// Flow files.
        #[arg(required = true)]
        flows: Vec<PathBuf>,
        /// Budget file (TOML, `[[budget]] rules = ["lcp <= 2500ms"]`).
        #[arg(long)]
        budgets: PathBuf,
        /// Runs per flow; each metric is the median.
        #[arg(long, default_value_t = 3)]
        iterations: u32,
        /// Write a JUnit XML report here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Write a Markdown report here.
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// Write the verdicts and the runs (page views and steps) as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also deliver the runs to the collector from the config.
        #[arg(long)]
        post: bool,
    },
    /// Check flow files without running them.
    Validate {
        #[arg(required = true)]
        flows: Vec<PathBuf>,
    },
    /// For ./demo.sh: browse the demo site like a person, with the real RUM
    /// snippet, so the demo has field data. Not for production use.
    #[command(hide = true)]
    DemoVisitor {
        /// The demo site, for example http://127.0.0.1:8080/demo/.
        #[arg(long)]
        base: String,
        /// Start a visit this often.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        every: std::time::Duration,
    },
}

/// Exit codes: 0 ok, 1 a budget broken / a flow failed / a file invalid, 2 could not run.
const EXIT_COULD_NOT_RUN: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match AgentConfig::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_COULD_NOT_RUN);
        }
    };
    init_tracing(
        &config,
        matches!(cli.command, Command::Run | Command::DemoVisitor { .. }),
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(EXIT_COULD_NOT_RUN);
        }
    };
    match runtime.block_on(dispatch(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_COULD_NOT_RUN)
        }
    }
}

fn init_tracing(config: &AgentConfig, daemon: bool) {
    // One-shot commands print their own output; keep their logs to warnings.
    // chromiumoxide warns about every CDP event newer than its protocol
    // bindings; those are not ours to act on, so only its errors show.
    let default = if daemon {
        "info,chromiumoxide=error"
    } else {
        "warn,chromiumoxide=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only on a terminal: redirected to a file (demo.sh, systemd) the
    // escape codes are noise, and NO_COLOR turns it off even on a terminal.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    if config.log_format == vitalsign_core::config::LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn dispatch(command: Command, config: AgentConfig) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run => {
            let runner = daemon::new_runner(&config)?;
            daemon::run(config, runner).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { flows } => Ok(validate(&flows)),
        Command::DemoVisitor { base, every } => {
            let options = demo_visitor::VisitorOptions::new(&base, every)?;
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .context("while installing the SIGTERM handler")?;
            let shutdown = async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            };
            demo_visitor::run(options, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Once { flows, json } => once(config, &flows, json).await,
        Command::Check {
            flows,
            budgets,
            iterations,
            junit,
            markdown,
            json,
            post,
        } => {
            let budgets = budget::load(&budgets)?;
            check(
                config,
                &flows,
                &budgets,
                iterations,
                Reports {
                    junit: junit.as_deref(),
                    markdown: markdown.as_deref(),
                    json: json.as_deref(),
                },
                post,
            )
            .await
        }
    }
}

fn validate(paths: &[PathBuf]) -> ExitCode {
    let mut bad = 0;
    for path in paths {
        match daemon::load_flow_file(path) {
            Ok(flow) => println!(
                "ok    {} (flow {:?}, {} steps)",
                path.display(),
                flow.name,
                flow.steps.len()
            ),
            Err(e) => {
                bad += 1;
                println!("error {e}");
            }
        }
    }
    if bad > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn once(config: AgentConfig, paths: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let flows = load_all(paths)?;
    let runner = daemon::new_runner(&config)?;
    let mut worst = 0u8;
    for flow in &flows {
        let run = daemon::run_once(&runner, &config, flow, 1).await;
        if json {
            println!("{}", serde_json::to_string(&run)?);
        } else {
            println!("{}", run_table(&run));
        }
        worst = worst.max(match run.outcome {
            vitalsign_core::wire::run::Outcome::Pass => 0,
            vitalsign_core::wire::run::Outcome::Error => EXIT_COULD_NOT_RUN,
            _ => 1,
        });
    }
    runner.shutdown().await;
    Ok(ExitCode::from(worst))
}

async fn check(
    config: AgentConfig,
    paths: &[PathBuf],
    budgets: &[budget::Budget],
    iterations: u32,
    reports: Reports<'_>,
    post: bool,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (1..=100).contains(&iterations),
        "--iterations must be 1 to 100"
    );
    let flows = load_all(paths)?;
    let runner = daemon::new_runner(&config)?;
    let mut runs = Vec::new();
    for flow in &flows {
        runs.push(daemon::run_once(&runner, &config, flow, iterations).await);
    }
    runner.shutdown().await;
    let report = CheckReport::new(runs, budgets);
    print!("{}", report.summary());
    if let Some(path) = reports.junit {
        std::fs::write(path, report.junit_xml())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = reports.markdown {
        std::fs::write(path, report.markdown())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = reports.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json())? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if post {
        daemon::post_runs(&config, &report.runs).await?;
    }
    Ok(ExitCode::from(report.exit_code() as u8))
}

/// Where `check` writes its reports besides the summary on stdout.
struct Reports<'a> {
    junit: Option<&'a Path>,
    markdown: Option<&'a Path>,
    json: Option<&'a Path>,
}

fn load_all(paths: &[PathBuf]) -> anyhow::Result<Vec<vitalsign_probes::Flow>> {
    paths
        .iter()
        .map(|p| daemon::load_flow_file(p).map_err(anyhow::Error::msg))
        .collect()
}
