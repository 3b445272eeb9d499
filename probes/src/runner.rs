//! Walks flows in one shared headless Chromium: a fresh browser context per
//! run (always disposed), real CDP input, the snippet injected into every
//! document, and a browser that is killed with all its children and relaunched
//! when it crashes or hangs. Infrastructure trouble is outcome `error`; a site
//! that misbehaves is outcome `fail`.
//!
//! - [`browser`]: one launched Chromium ([`LiveBrowser`]): launch, close, kill, and the
//!   errors that are ours ([`InfraError`]).
//! - `iteration`: one pass through a flow's steps, and the medians over several.
//! - `walk`: the steps of one iteration in one page, each step's result and screenshots.
//! - `actions`: what each step kind does in the page (click, type, wait, assert, …).
//! - `network`: requests, bytes, failures and console errors counted from CDP events.
//! - `read_back`: the measurement injected into every document, and read back after a step.

mod actions;
pub mod browser;
mod iteration;
mod network;
mod read_back;
mod walk;

pub use browser::{InfraError, LiveBrowser};

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chromiumoxide::cdp::browser_protocol::target::CreateBrowserContextParams;
use tokio::sync::Mutex;
use tracing::{instrument, warn};
use vitalsign_core::wire::ProbeRun;
use vitalsign_core::wire::run::{Failure, Outcome, RUN_SCHEMA_VERSION};

use crate::flow::{Action, Flow};
use browser::with_timeout;
use iteration::{Iteration, combine, combine_page_views};

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The browser binary: Debian's package, never a downloaded build.
    pub chromium: PathBuf,
    pub launch_timeout: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            chromium: PathBuf::from("/usr/bin/chromium"),
            launch_timeout: Duration::from_secs(20),
        }
    }
}

/// Who is running what, where: copied into the result.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub run_id: String,
    pub location: String,
    pub agent_version: String,
    /// Screenshots are written here, named as in `ProbeRun.artifacts`.
    pub artifacts_dir: PathBuf,
    pub attempt: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            run_id: "local".into(),
            location: "local".into(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            artifacts_dir: std::env::temp_dir().join("vitalsign-artifacts"),
            attempt: 1,
        }
    }
}

/// One shared browser for every run; safe to use from several tasks at once.
pub struct Runner {
    config: RunnerConfig,
    live: Mutex<Option<Arc<LiveBrowser>>>,
    restarts: AtomicU64,
    launches: AtomicU64,
    http: reqwest::Client,
}

impl Runner {
    pub fn new(config: RunnerConfig) -> Runner {
        Runner {
            config,
            live: Mutex::new(None),
            restarts: AtomicU64::new(0),
            launches: AtomicU64::new(0),
            http: reqwest::Client::builder()
                .user_agent(concat!("vitalsign-probe/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("reqwest client with static settings"),
        }
    }

    /// Times a crashed or hung browser was replaced.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Relaxed)
    }

    /// The pid of the current browser, if one runs (for tests and metrics).
    pub async fn browser_pid(&self) -> Option<u32> {
        self.live.lock().await.as_ref().and_then(|l| l.pid)
    }

    /// Close the browser and reap it and its children.
    pub async fn shutdown(&self) {
        if let Some(live) = self.live.lock().await.take() {
            match Arc::try_unwrap(live) {
                Ok(live) => live.kill().await,
                Err(shared) => {
                    if let Some(pid) = shared.pid {
                        crate::process::kill_tree(pid);
                    }
                }
            }
        }
    }

    async fn browser(&self) -> Result<Arc<LiveBrowser>, InfraError> {
        let mut slot = self.live.lock().await;
        if let Some(live) = slot.as_ref() {
            if live.alive() {
                return Ok(live.clone());
            }
            warn!("browser is gone; relaunching");
            self.restarts.fetch_add(1, Relaxed);
            if let Some(pid) = slot.take().and_then(|dead| dead.pid) {
                crate::process::kill_tree(pid);
            }
        }
        let live = Arc::new(self.launch().await?);
        *slot = Some(live.clone());
        Ok(live)
    }

    /// Forget a browser that misbehaved so the next run starts a new one.
    async fn discard(&self, broken: &Arc<LiveBrowser>) {
        let mut slot = self.live.lock().await;
        if slot.as_ref().is_some_and(|l| Arc::ptr_eq(l, broken)) {
            self.restarts.fetch_add(1, Relaxed);
            if let Some(dead) = slot.take()
                && let Some(pid) = dead.pid
            {
                crate::process::kill_tree(pid);
            }
        }
    }

    async fn launch(&self) -> Result<LiveBrowser, InfraError> {
        let live = LiveBrowser::launch(&self.config).await?;
        self.launches.fetch_add(1, Relaxed);
        Ok(live)
    }

    /// Run a flow (all its iterations) and describe what happened. Never panics;
    /// problems of our own become outcome `error`.
    #[instrument(skip_all, fields(flow = %flow.name, run_id = %options.run_id))]
    pub async fn run(&self, flow: &Flow, options: &RunOptions) -> ProbeRun {
        let started_at_ms = unix_ms();
        let mut run = ProbeRun {
            schema_version: RUN_SCHEMA_VERSION,
            run_id: options.run_id.clone(),
            flow: flow.name.clone(),
            location: options.location.clone(),
            agent_version: options.agent_version.clone(),
            browser_version: None,
            profile: Some(flow.profile.name.clone()),
            started_at_ms,
            finished_at_ms: started_at_ms,
            iterations: flow.iterations,
            attempt: options.attempt,
            outcome: Outcome::Pass,
            failure: None,
            steps: Vec::new(),
            page_views: Vec::new(),
            artifacts: Vec::new(),
        };
        let mut iterations: Vec<Iteration> = Vec::new();
        for i in 0..flow.iterations {
            let iteration = match tokio::time::timeout(
                flow.flow_timeout,
                self.iteration(flow, options, i, &mut run),
            )
            .await
            {
                Ok(it) => it,
                Err(_) => Iteration::failed(
                    Outcome::Fail,
                    None,
                    format!("the flow did not finish within {:?}", flow.flow_timeout),
                ),
            };
            let failed = iteration.outcome != Outcome::Pass;
            iterations.push(iteration);
            if failed {
                break;
            }
        }
        let last = iterations.pop().expect("at least one iteration ran");
        if last.outcome != Outcome::Pass {
            run.outcome = last.outcome;
            run.failure = last.failure;
            run.steps = last.steps;
            run.page_views = last.page_views;
        } else {
            iterations.push(last);
            run.steps = combine(&iterations);
            run.page_views = combine_page_views(&iterations);
        }
        run.finished_at_ms = unix_ms().max(started_at_ms);
        run
    }

    async fn iteration(
        &self,
        flow: &Flow,
        options: &RunOptions,
        index: u32,
        run: &mut ProbeRun,
    ) -> Iteration {
        if flow.is_http_only() {
            let mut it = Iteration::default();
            for step in &flow.steps {
                let Action::Request(request) = &step.action else {
                    continue;
                };
                let (result, checked) = crate::http_check::run_request(
                    &self.http,
                    flow,
                    &step.name,
                    request,
                    flow.step_timeout,
                )
                .await;
                it.steps.push(result);
                if let Err(error) = checked {
                    it.outcome = error.outcome();
                    it.failure = Some(Failure {
                        step: Some(it.steps.len() - 1),
                        reason: error.to_string(),
                    });
                    break;
                }
            }
            it.fill_skipped(flow);
            return it;
        }
        let live = match self.browser().await {
            Ok(live) => live,
            Err(e) => return Iteration::infra(e),
        };
        run.browser_version = Some(live.version.clone());
        let ctx = match with_timeout(
            live.browser
                .create_browser_context(CreateBrowserContextParams::default()),
            "Target.createBrowserContext",
        )
        .await
        {
            Ok(ctx) => ctx,
            Err(e) => {
                self.discard(&live).await;
                return Iteration::infra(e);
            }
        };
        let mut it = self.walk(&live, &ctx, flow, options, index, run).await;
        // Always dispose the context, whatever happened inside it.
        if with_timeout(
            live.browser.dispose_browser_context(ctx),
            "Target.disposeBrowserContext",
        )
        .await
        .is_err()
        {
            self.discard(&live).await;
            if it.outcome == Outcome::Pass {
                it = Iteration::infra(InfraError::Unresponsive("while closing the run".into()));
            }
        }
        if !live.alive() {
            // Whatever the step that was running reported, the browser went
            // away under it: that step and the run are ours to explain.
            self.discard(&live).await;
            let mut steps = std::mem::take(&mut it.steps);
            let step = it.failure.as_ref().and_then(|f| f.step);
            if let Some(running) = step.and_then(|i| steps.get_mut(i)) {
                running.outcome = Outcome::Error;
            }
            it = Iteration::failed(Outcome::Error, step, InfraError::Crashed.to_string());
            it.steps = steps;
        }
        it
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
