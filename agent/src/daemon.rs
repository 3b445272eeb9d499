//! `vitalsign-agent run`: the long-running agent.
//!
//! Flow files are loaded from the flows directory; each valid flow becomes a
//! scheduler job (a broken file is reported with its file and step and skipped,
//! the others run). A job waits its jitter, takes a browser slot from the
//! concurrency semaphore, runs the flow (and once more at once if it did not
//! pass, so a single blip does not page anyone; both attempts are recorded),
//! spools the results and wakes the deliverer. SIGHUP reloads the flows;
//! SIGINT/SIGTERM stop scheduling, give running flows a grace period, flush
//! the spool and close the browser.
//!
//! Shutdown is one `CancellationToken` and `TaskTracker`s, as in the
//! collector: running flows are tasks of one tracker (waited for, up to the
//! grace period, then cancelled through a child token); the deliverer and the
//! metrics listener watch the token and are tasks of another.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Semaphore;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};
use uuid_like::new_run_id;
use vitalsign_core::wire::ProbeRun;
use vitalsign_core::wire::run::Outcome;
use vitalsign_probes::{Flow, RunOptions, Runner};

use crate::config::AgentConfig;
use crate::delivery::Deliverer;
use crate::metrics::AgentMetrics;
use crate::schedule::{self, Schedule};
use crate::spool::Spool;

/// Run ids sort by creation time (the spool delivers oldest first) and are
/// unique across agents without coordination.
pub mod uuid_like {
    use rand::Rng;

    pub fn new_run_id() -> String {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let random: u64 = rand::rng().random();
        format!("{ms:012x}-{random:016x}")
    }
}

/// Everything a flow execution needs, shared by the scheduler jobs.
pub struct Executor {
    pub config: AgentConfig,
    pub runner: Runner,
    pub spool: Spool,
    pub deliverer: Deliverer,
    pub metrics: Arc<AgentMetrics>,
    pub slots: Arc<Semaphore>,
}

impl Executor {
    /// Run one flow now (with the retry on failure) and spool what it produced.
    pub async fn execute(&self, flow: &Flow) -> Vec<ProbeRun> {
        let Ok(_slot) = self.slots.acquire().await else {
            return Vec::new(); // closed: shutting down
        };
        let mut results = Vec::new();
        for attempt in 1..=2 {
            let run = self.run_and_spool(flow, attempt).await;
            let passed = run.outcome == Outcome::Pass;
            results.push(run);
            if passed {
                break;
            }
        }
        self.deliverer.wake();
        results
    }

    async fn run_and_spool(&self, flow: &Flow, attempt: u32) -> ProbeRun {
        let run_id = new_run_id();
        let staging = self.config.spool_dir.join("staging").join(&run_id);
        let options = RunOptions {
            run_id: run_id.clone(),
            location: self.config.location.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            artifacts_dir: staging.clone(),
            attempt,
        };
        let started = Instant::now();
        let run = self.runner.run(flow, &options).await;
        self.metrics
            .record_run(run.outcome, started.elapsed().as_millis() as u64);
        self.metrics.set_browser_restarts(self.runner.restarts());
        let artifacts = artifact_files(&run, &staging);
        if let Err(e) = self.spool.put(&run, &artifacts) {
            // The one place a result could be lost: say so loudly.
            error!(run_id = %run.run_id, flow = %run.flow, error = %e, "could not spool a result");
        }
        let _ = std::fs::remove_dir_all(&staging);
        info!(run_id = %run.run_id, flow = %run.flow, attempt, outcome = run.outcome.as_str(), "flow finished");
        run
    }
}

pub fn artifact_files(run: &ProbeRun, dir: &Path) -> Vec<(String, PathBuf)> {
    run.artifacts
        .iter()
        .map(|a| (a.name.clone(), dir.join(&a.name)))
        .filter(|(_, p)| p.is_file())
        .collect()
}

/// Load every `*.toml` in `dir`; broken files are logged (file, step, reason)
/// and skipped so one typo does not stop the other flows.
pub fn load_flows(dir: &Path, metrics: &AgentMetrics) -> anyhow::Result<Vec<(Flow, Schedule)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the flows directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let mut flows = Vec::new();
    let mut errors = 0;
    for path in paths {
        match Flow::load(&path) {
            Ok(flow) => {
                let schedule = match flow.schedule.as_deref() {
                    None => Ok(Schedule::Every(schedule::DEFAULT_INTERVAL)),
                    Some(text) => schedule::parse(text),
                };
                match schedule {
                    Ok(s) => flows.push((flow, s)),
                    Err(reason) => {
                        errors += 1;
                        error!(file = %path.display(), "flow not scheduled: key `schedule`: {reason}");
                    }
                }
            }
            Err(e) => {
                errors += 1;
                error!("flow not loaded: {e}");
            }
        }
    }
    metrics.set_flow_load_errors(errors);
    Ok(flows)
}

/// Put every flow on the scheduler; returns the scheduler so it can be replaced on reload.
async fn schedule_flows(
    flows: Vec<(Flow, Schedule)>,
    executor: Arc<Executor>,
    max_jitter: Duration,
    running: Running,
) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new()
        .await
        .context("creating the scheduler")?;
    for (flow, schedule) in flows {
        let jitter = schedule::jitter(&flow.name, &schedule, max_jitter);
        let name = flow.name.clone();
        let flow = Arc::new(flow);
        let executor = executor.clone();
        let running = running.clone();
        let task = move |_id, _lock| {
            let flow = flow.clone();
            let executor = executor.clone();
            let running = running.clone();
            Box::pin(async move {
                let cancel = running.cancel.clone();
                // A tracker keeps no finished tasks: nothing to reap.
                running.tasks.spawn(async move {
                    // Cancelled only after the grace period: dropping the run
                    // stops it at its next await, as an abort did.
                    cancel
                        .run_until_cancelled(async {
                            tokio::time::sleep(jitter).await;
                            executor.execute(&flow).await;
                        })
                        .await;
                });
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        };
        let job = match &schedule {
            Schedule::Every(every) => Job::new_repeated_async(*every, task),
            Schedule::Cron(cron) => Job::new_async(cron.as_str(), task),
        }
        .context("creating a scheduler job")?;
        scheduler.add(job).await.context("adding a scheduler job")?;
        info!(flow = %name, schedule = %describe(&schedule), ?jitter, "scheduled");
    }
    scheduler.start().await.context("starting the scheduler")?;
    Ok(scheduler)
}

fn describe(schedule: &Schedule) -> String {
    match schedule {
        Schedule::Every(d) => format!("every {}", humantime::format_duration(*d)),
        Schedule::Cron(c) => format!("cron {c}"),
    }
}

/// The flows running now: tasks of one tracker, and the token that cancels
/// them when the grace period is over.
#[derive(Clone)]
struct Running {
    tasks: TaskTracker,
    cancel: CancellationToken,
}

/// The daemon's main loop.
pub async fn run(config: AgentConfig, runner: Runner) -> anyhow::Result<()> {
    let metrics = Arc::new(AgentMetrics::default());
    let spool = Spool::open(&config.spool_dir)
        .with_context(|| format!("opening the spool {}", config.spool_dir.display()))?;
    metrics.set_spool_depth(spool.depth());
    let deliverer = Deliverer::new(
        config.collector_base(),
        config.token.clone(),
        spool.clone(),
        metrics.clone(),
    );
    let shutdown = CancellationToken::new();
    // The deliverer and the metrics listener: stopped by `shutdown` after the
    // runs, so the last results are still delivered and scraped.
    let services = TaskTracker::new();
    services.spawn(deliverer.clone().run(shutdown.clone().cancelled_owned()));
    if let Some(listen) = &config.listen {
        crate::http::serve(listen, metrics.clone(), shutdown.clone(), &services).await?;
    }
    services.close();
    let slots = Arc::new(Semaphore::new(config.effective_concurrency()));
    let executor = Arc::new(Executor {
        config: config.clone(),
        runner,
        spool,
        deliverer,
        metrics: metrics.clone(),
        slots: slots.clone(),
    });
    let running = Running {
        tasks: TaskTracker::new(),
        cancel: shutdown.child_token(),
    };
    let max_jitter = Duration::from_secs(config.max_jitter_secs);
    let flows = load_flows(&config.flows_dir, &metrics)?;
    info!(
        flows = flows.len(),
        location = %config.location,
        concurrency = config.effective_concurrency(),
        collector = %config.collector_base(),
        "agent started"
    );
    let mut scheduler =
        schedule_flows(flows, executor.clone(), max_jitter, running.clone()).await?;

    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                info!("SIGHUP: reloading flows");
                let _ = scheduler.shutdown().await;
                match load_flows(&config.flows_dir, &metrics) {
                    Ok(flows) => {
                        scheduler = schedule_flows(flows, executor.clone(), max_jitter, running.clone()).await?;
                    }
                    Err(e) => {
                        error!("reload failed, no flows scheduled until the next SIGHUP: {e:#}");
                        scheduler = JobScheduler::new().await?;
                    }
                }
            }
            _ = terminate.recv() => { info!("SIGTERM: shutting down"); break; }
            _ = tokio::signal::ctrl_c() => { info!("SIGINT: shutting down"); break; }
        }
    }

    let _ = scheduler.shutdown().await;
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    running.tasks.close();
    if tokio::time::timeout(grace, running.tasks.wait())
        .await
        .is_err()
    {
        warn!(
            ?grace,
            "running flows did not finish in time; cancelling them"
        );
        running.cancel.cancel();
        running.tasks.wait().await;
    }
    slots.close();
    shutdown.cancel();
    services.wait().await;
    executor.runner.shutdown().await;
    info!(spooled = executor.spool.depth(), "agent stopped");
    Ok(())
}

/// The browser runner every subcommand shares: one Chromium, a context per run.
pub fn new_runner(_config: &AgentConfig) -> anyhow::Result<Runner> {
    Ok(Runner::new(vitalsign_probes::RunnerConfig::default()))
}

/// Load one flow file; the error already names the file and step.
pub fn load_flow_file(path: &Path) -> Result<Flow, String> {
    let flow = Flow::load(path).map_err(|e| e.to_string())?;
    if let Some(text) = flow.schedule.as_deref() {
        schedule::parse(text)
            .map_err(|reason| format!("{}: key `schedule`: {reason}", path.display()))?;
    }
    Ok(flow)
}

/// Run a flow once for `once` and `check` (no spool, no retry): artifacts go
/// to `vitalsign-artifacts/<run id>/` in the working directory.
pub async fn run_once(
    runner: &Runner,
    config: &AgentConfig,
    flow: &Flow,
    iterations: u32,
) -> ProbeRun {
    let run_id = new_run_id();
    let mut flow = flow.clone();
    flow.iterations = iterations;
    let options = RunOptions {
        artifacts_dir: PathBuf::from("vitalsign-artifacts").join(&run_id),
        run_id,
        location: config.location.clone(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        attempt: 1,
    };
    runner.run(&flow, &options).await
}

/// `check --post`: spool the runs and make one delivery pass; what fails stays
/// spooled for the next `run` or `check --post`.
pub async fn post_runs(config: &AgentConfig, runs: &[ProbeRun]) -> anyhow::Result<()> {
    let spool = Spool::open(&config.spool_dir)
        .with_context(|| format!("opening the spool {}", config.spool_dir.display()))?;
    for run in runs {
        let dir = PathBuf::from("vitalsign-artifacts").join(&run.run_id);
        spool.put(run, &artifact_files(run, &dir))?;
    }
    let metrics = Arc::new(AgentMetrics::default());
    let deliverer = Deliverer::new(
        config.collector_base(),
        config.token.clone(),
        spool.clone(),
        metrics,
    );
    deliverer.deliver_pending().await.map_err(|reason| {
        anyhow::anyhow!(
            "{reason}; {} result(s) stay in {}",
            spool.depth(),
            config.spool_dir.display()
        )
    })
}
