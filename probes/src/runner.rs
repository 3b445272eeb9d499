//! Walks flows in one shared headless Chromium: a fresh browser context per
//! run (always disposed), real CDP input, the snippet injected into every
//! document, and a browser that is killed with all its children and relaunched
//! when it crashes or hangs. Infrastructure trouble is outcome `error`; a site
//! that misbehaves is outcome `fail`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::network::{
    EventLoadingFailed, EventLoadingFinished, EventRequestWillBeSent, EventResponseReceived,
    ResourceType,
};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::cdp::js_protocol::runtime::{
    AddBindingParams, ConsoleApiCalledType, EvaluateParams, EventBindingCalled,
    EventConsoleApiCalled, EventExceptionThrown,
};
use chromiumoxide::page::{Page, ScreenshotParams};
use futures::{FutureExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tracing::{info, instrument, warn};
use vitalsign_core::wire::ProbeRun;
use vitalsign_core::wire::run::{
    Artifact, Failure, Outcome, PageView, RUN_SCHEMA_VERSION, Step as StepResult, Vitals,
};

use crate::attribution::Recorder;
use crate::flow::{Action, Assertion, Flow, WaitFor};
use crate::measure::{self, Packet};
use crate::profile::Profile;

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

/// Why a run could not be done (as opposed to a site failing).
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("could not launch {path}: {reason}")]
    Launch { path: String, reason: String },
    #[error("browser did not start within {0:?}")]
    LaunchTimeout(Duration),
    #[error("the browser stopped answering ({0})")]
    Unresponsive(String),
    #[error("the browser crashed or was killed")]
    Crashed,
}

/// One launched Chromium: Debian's binary, new headless mode, a fresh profile
/// directory of its own, and a CDP handler loop that notices when the browser
/// goes away. Public so that every tool of ours that drives a browser (the
/// agent's demo visitor too) launches it the same way.
pub struct LiveBrowser {
    browser: Browser,
    pid: Option<u32>,
    version: String,
    handler_ended: Arc<AtomicBool>,
    handler: tokio::task::JoinHandle<()>,
    _profile_dir: tempfile::TempDir,
}

impl LiveBrowser {
    pub async fn launch(config: &RunnerConfig) -> Result<LiveBrowser, InfraError> {
        let launch_error = |reason: String| InfraError::Launch {
            path: config.chromium.display().to_string(),
            reason,
        };
        let profile_dir = tempfile::Builder::new()
            .prefix("vitalsign-chromium-")
            .tempdir()
            .map_err(|e| launch_error(e.to_string()))?;
        // Flag names without dashes: chromiumoxide adds them. It already passes
        // disable-background-networking, disable-sync and no-first-run.
        let browser_config = BrowserConfig::builder()
            .chrome_executable(&config.chromium)
            .new_headless_mode()
            .no_sandbox()
            .arg("disable-gpu")
            .arg("disable-component-update")
            .arg("disable-background-networking")
            .arg("no-first-run")
            .user_data_dir(profile_dir.path())
            .launch_timeout(config.launch_timeout)
            .request_timeout(Duration::from_secs(30))
            .viewport(None)
            .build()
            .map_err(launch_error)?;
        let launched = tokio::time::timeout(
            config.launch_timeout + Duration::from_secs(5),
            Browser::launch(browser_config),
        )
        .await
        .map_err(|_| InfraError::LaunchTimeout(config.launch_timeout))?;
        let (mut browser, mut handler) = launched.map_err(|e| launch_error(e.to_string()))?;
        let pid = browser.get_mut_child().and_then(|c| c.as_mut_inner().id());
        let handler_ended = Arc::new(AtomicBool::new(false));
        let ended = handler_ended.clone();
        // The examples unwrap here and panic when the browser goes away; a
        // monitor must instead notice the end and relaunch.
        let handler = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if let Err(e) = event {
                    tracing::debug!(error = %e, "CDP handler message error");
                }
            }
            ended.store(true, Relaxed);
        });
        let mut live = LiveBrowser {
            browser,
            pid,
            version: String::new(),
            handler_ended,
            handler,
            _profile_dir: profile_dir,
        };
        match tokio::time::timeout(Duration::from_secs(10), live.browser.version()).await {
            Ok(Ok(v)) => live.version = v.product.replace("HeadlessChrome", "Chromium"),
            _ => {
                live.kill().await;
                return Err(InfraError::Unresponsive(
                    "no answer to Browser.getVersion".into(),
                ));
            }
        }
        info!(?pid, version = %live.version, "browser launched");
        Ok(live)
    }

    pub fn browser(&self) -> &Browser {
        &self.browser
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The product from `Browser.getVersion`: `Chrome/156.0.8078.114`.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn alive(&self) -> bool {
        !self.handler_ended.load(Relaxed)
    }

    /// SIGKILL the browser and every process it started, then reap it.
    pub async fn kill(self) {
        if let Some(pid) = self.pid {
            crate::process::kill_tree(pid);
        }
        self.handler.abort();
        let mut browser = self.browser;
        let _ = tokio::time::timeout(Duration::from_secs(5), browser.wait()).await;
    }

    /// Ask the browser to quit (`Browser.close`, so pages are unloaded and
    /// its helper processes exit with it) and reap it; [`kill`](Self::kill)
    /// it when it is still running a few seconds later.
    pub async fn close(mut self) {
        let Some(pid) = self.pid else {
            return self.kill().await;
        };
        // The browser may drop the connection before it answers, so the
        // answer is not awaited for long: what counts is that the process ends.
        let asked = tokio::time::timeout(Duration::from_secs(5), self.browser.close());
        tokio::select! {
            _ = asked => {}
            _ = exited(pid) => {}
        }
        if tokio::time::timeout(Duration::from_secs(5), exited(pid))
            .await
            .is_ok()
        {
            self.handler.abort();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.browser.wait()).await;
        } else {
            warn!(pid, "browser did not quit when asked; killing it");
            self.kill().await;
        }
    }
}

/// Until `pid` has exited (polled: the child is reaped by `Browser::wait`).
async fn exited(pid: u32) {
    while crate::process::running(pid) {
        tokio::time::sleep(Duration::from_millis(20)).await;
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
                let result = crate::http_check::run_request(
                    &self.http,
                    flow,
                    &step.name,
                    request,
                    flow.step_timeout,
                )
                .await;
                let failed = result.outcome != Outcome::Pass;
                if failed {
                    it.outcome = Outcome::Fail;
                    it.failure = Some(Failure {
                        step: Some(it.steps.len()),
                        reason: result.error.clone().unwrap_or_default(),
                    });
                }
                it.steps.push(result);
                if failed {
                    break;
                }
            }
            it.fill_skipped(flow);
            return it;
        }
        let live = match self.browser().await {
            Ok(live) => live,
            Err(e) => return Iteration::failed(Outcome::Error, None, e.to_string()),
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
                return Iteration::failed(Outcome::Error, None, e);
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
                it = Iteration::failed(
                    Outcome::Error,
                    None,
                    "the browser stopped answering while closing the run".into(),
                );
            }
        }
        if !live.alive() {
            self.discard(&live).await;
            let steps = std::mem::take(&mut it.steps);
            it = Iteration::failed(
                Outcome::Error,
                it.failure.as_ref().and_then(|f| f.step),
                InfraError::Crashed.to_string(),
            );
            it.steps = steps;
        }
        it
    }

    async fn walk(
        &self,
        live: &Arc<LiveBrowser>,
        ctx: &BrowserContextId,
        flow: &Flow,
        options: &RunOptions,
        index: u32,
        run: &mut ProbeRun,
    ) -> Iteration {
        let mut it = Iteration::default();
        let target = match CreateTargetParams::builder()
            .url("about:blank")
            .browser_context_id(ctx.clone())
            .build()
        {
            Ok(t) => t,
            Err(e) => return Iteration::failed(Outcome::Error, None, e),
        };
        let page = match with_timeout(live.browser.new_page(target), "Target.createTarget").await {
            Ok(p) => p,
            Err(e) => return Iteration::failed(Outcome::Error, None, e),
        };
        if let Err(e) = prepare(&page, &flow.profile).await {
            let _ = page.close().await;
            return Iteration::failed(Outcome::Error, None, e);
        }
        let counters = Arc::new(std::sync::Mutex::new(Counters::default()));
        let listeners = match listen(&page, counters.clone()).await {
            Ok(l) => l,
            Err(e) => {
                let _ = page.close().await;
                return Iteration::failed(Outcome::Error, None, e);
            }
        };
        let mut handed_over = match page.event_listener::<EventBindingCalled>().await {
            Ok(events) => events,
            Err(e) => {
                listeners.abort();
                let _ = page.close().await;
                return Iteration::failed(
                    Outcome::Error,
                    None,
                    format!("subscribing to Runtime.bindingCalled: {e}"),
                );
            }
        };
        let mut recorder = Recorder::default();
        for (i, step) in flow.steps.iter().enumerate() {
            counters.lock().unwrap().start_step();
            let started = Instant::now();
            let outcome = tokio::time::timeout(
                flow.step_timeout,
                self.act(&page, flow, &step.action, &counters),
            )
            .await;
            let mut result = StepResult {
                name: step.name.clone(),
                kind: step.action.kind().into(),
                outcome: Outcome::Pass,
                duration_ms: 0.0,
                vitals: Vitals::default(),
                spread: None,
                status: None,
                url: None,
                requests: 0,
                transfer_bytes: 0,
                failed_requests: 0,
                console_errors: 0,
                error: None,
                artifacts: Vec::new(),
            };
            let failure = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(reason)) => Some(reason),
                Err(_) => Some(format!(
                    "step did not finish within {:?}",
                    flow.step_timeout
                )),
            };
            result.duration_ms = round1(started.elapsed().as_secs_f64() * 1000.0);
            if failure.is_none() {
                let script = read_back_script(&step.action);
                match tokio::time::timeout(Duration::from_secs(5), read_back(&page, script)).await {
                    Ok(Ok(Some(packet))) => recorder.add(i, packet),
                    Ok(Ok(None)) => warn!("the page had no recorder (was the document replaced?)"),
                    Ok(Err(e)) => warn!(error = %e, "could not read the step's vitals"),
                    Err(_) => warn!("reading the step's vitals timed out"),
                }
            }
            // Page views that ended during the step (a route change, a
            // document left) handed their last values over through the
            // binding; the events came before the read-back's answer.
            while let Some(Some(event)) = handed_over.next().now_or_never() {
                if event.name != measure::BINDING {
                    continue;
                }
                match serde_json::from_str::<Packet>(&event.payload) {
                    Ok(packet) => recorder.add(i, packet),
                    Err(e) => warn!(error = %e, "unreadable packet from the recorder"),
                }
            }
            if let Action::Screenshot(name) = &step.action
                && failure.is_none()
            {
                match self
                    .screenshot(&page, options, &format!("{name}-{}", index + 1))
                    .await
                {
                    Ok(artifact) => {
                        result.artifacts.push(artifact.name.clone());
                        run.artifacts.push(artifact);
                    }
                    Err(e) => warn!(error = %e, "screenshot failed"),
                }
            }
            result.url = current_url(&page).await;
            let c = counters.lock().unwrap().clone();
            result.status = c.document_status;
            result.requests = c.step_requests;
            result.transfer_bytes = c.step_bytes;
            result.failed_requests = c.step_failed;
            result.console_errors = c.step_console_errors;
            if let Some(reason) = failure {
                result.outcome = Outcome::Fail;
                result.error = Some(reason.clone());
                if let Ok(artifact) = self
                    .screenshot(&page, options, &format!("step-{}-failure", i + 1))
                    .await
                {
                    result.artifacts.push(artifact.name.clone());
                    run.artifacts.push(artifact);
                }
                it.outcome = Outcome::Fail;
                it.failure = Some(Failure {
                    step: Some(i),
                    reason: format!("step {} ({}): {reason}", i + 1, step.name),
                });
                it.steps.push(result);
                break;
            }
            it.steps.push(result);
        }
        it.page_views = recorder.finish(&mut it.steps);
        listeners.abort();
        let _ = tokio::time::timeout(Duration::from_secs(5), page.close()).await;
        it.fill_skipped(flow);
        it
    }

    async fn act(
        &self,
        page: &Page,
        flow: &Flow,
        action: &Action,
        counters: &Arc<std::sync::Mutex<Counters>>,
    ) -> Result<(), String> {
        match action {
            Action::Goto(target) => {
                let url = flow.url(target);
                page.goto(url.as_str())
                    .await
                    .map_err(|e| format!("could not open {url}: {e}"))?;
                wait_network_idle(counters, Duration::from_millis(300)).await;
                let status = counters.lock().unwrap().document_status;
                match status {
                    Some(s) if s >= 400 => Err(format!("{url} answered {s}")),
                    _ => Ok(()),
                }
            }
            Action::Click(selector) => {
                let element = find(page, selector).await?;
                element
                    .click()
                    .await
                    .map_err(|e| format!("could not click {selector}: {e}"))?;
                wait_network_idle(counters, Duration::from_millis(200)).await;
                Ok(())
            }
            Action::Type { selector, text } => {
                let value = text.resolve()?;
                let element = find(page, selector).await?;
                element
                    .click()
                    .await
                    .map_err(|e| format!("could not focus {selector}: {e}"))?;
                // The error must not echo the text: it may be a secret.
                element
                    .type_str(value)
                    .await
                    .map_err(|_| format!("could not type into {selector}"))?;
                Ok(())
            }
            Action::Press(key) => {
                crate::input::press(page, key)
                    .await
                    .map_err(|e| format!("could not press {key}: {e}"))?;
                wait_network_idle(counters, Duration::from_millis(200)).await;
                Ok(())
            }
            Action::Hover(selector) => {
                find(page, selector)
                    .await?
                    .hover()
                    .await
                    .map_err(|e| format!("could not hover {selector}: {e}"))?;
                Ok(())
            }
            Action::Scroll(selector) => {
                find(page, selector)
                    .await?
                    .scroll_into_view()
                    .await
                    .map_err(|e| format!("could not scroll to {selector}: {e}"))?;
                Ok(())
            }
            Action::Select { selector, value } => {
                let script = format!(
                    "(function(){{var e=document.querySelector({s});if(!e)return 'missing';var ok=[].some.call(e.options||[],function(o){{return o.value==={v}}});if(!ok)return 'no-option';e.value={v};e.dispatchEvent(new Event('input',{{bubbles:true}}));e.dispatchEvent(new Event('change',{{bubbles:true}}));return 'ok'}})()",
                    s = js_string(selector),
                    v = js_string(value)
                );
                match eval::<String>(page, &script).await?.as_str() {
                    "ok" => Ok(()),
                    "missing" => Err(format!("no element matches {selector}")),
                    _ => Err(format!("{selector} has no option with value {value:?}")),
                }
            }
            Action::WaitFor(condition) => wait_for(page, condition, counters).await,
            Action::Assert(assertion) => assert(page, assertion, counters).await,
            Action::Screenshot(_) => Ok(()),
            Action::Request(request) => {
                let result = crate::http_check::run_request(
                    &self.http,
                    flow,
                    "request",
                    request,
                    flow.step_timeout,
                )
                .await;
                match result.error {
                    None => Ok(()),
                    Some(e) => Err(e),
                }
            }
        }
    }

    async fn screenshot(
        &self,
        page: &Page,
        options: &RunOptions,
        name: &str,
    ) -> Result<Artifact, String> {
        let png = tokio::time::timeout(
            Duration::from_secs(10),
            page.screenshot(
                ScreenshotParams::builder()
                    .format(CaptureScreenshotFormat::Png)
                    .build(),
            ),
        )
        .await
        .map_err(|_| "screenshot timed out".to_string())?
        .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&options.artifacts_dir).map_err(|e| e.to_string())?;
        let file = format!("{name}.png");
        std::fs::write(options.artifacts_dir.join(&file), &png).map_err(|e| e.to_string())?;
        Ok(Artifact {
            name: file,
            content_type: "image/png".into(),
            bytes: png.len() as u64,
            sha256: hex_sha256(&png),
        })
    }
}

#[derive(Debug)]
struct Iteration {
    outcome: Outcome,
    failure: Option<Failure>,
    steps: Vec<StepResult>,
    page_views: Vec<PageView>,
}

impl Default for Iteration {
    fn default() -> Self {
        Iteration {
            outcome: Outcome::Pass,
            failure: None,
            steps: Vec::new(),
            page_views: Vec::new(),
        }
    }
}

impl Iteration {
    fn failed(outcome: Outcome, step: Option<usize>, reason: String) -> Iteration {
        Iteration {
            outcome,
            failure: Some(Failure { step, reason }),
            steps: Vec::new(),
            page_views: Vec::new(),
        }
    }

    /// Steps after a failure did not run; say so rather than leave them out.
    fn fill_skipped(&mut self, flow: &Flow) {
        if self.outcome == Outcome::Pass || self.steps.is_empty() {
            return;
        }
        for step in flow.steps.iter().skip(self.steps.len()) {
            self.steps.push(StepResult {
                name: step.name.clone(),
                kind: step.action.kind().into(),
                outcome: Outcome::Skipped,
                duration_ms: 0.0,
                vitals: Vitals::default(),
                spread: None,
                status: None,
                url: None,
                requests: 0,
                transfer_bytes: 0,
                failed_requests: 0,
                console_errors: 0,
                error: None,
                artifacts: Vec::new(),
            });
        }
    }
}

/// Per-step medians over passing iterations.
fn combine(iterations: &[Iteration]) -> Vec<StepResult> {
    let first = &iterations[0];
    first
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let samples: Vec<Vitals> = iterations
                .iter()
                .filter_map(|it| it.steps.get(i))
                .map(|s| s.vitals.clone())
                .collect();
            let durations: Vec<Vitals> = iterations
                .iter()
                .filter_map(|it| it.steps.get(i))
                .map(|s| Vitals {
                    lcp: Some(s.duration_ms),
                    ..Vitals::default()
                })
                .collect();
            let (vitals, spread) = measure::summarise(&samples);
            let (duration, _) = measure::summarise(&durations);
            let mut combined = step.clone();
            combined.vitals = vitals;
            combined.spread = spread;
            combined.duration_ms = duration.lcp.unwrap_or(step.duration_ms);
            combined
        })
        .collect()
}

/// Per-page-view medians over passing iterations. Page views are matched by
/// name (the step that started them); one that not every iteration opened
/// is summarised over those that did.
fn combine_page_views(iterations: &[Iteration]) -> Vec<PageView> {
    let mut combined: Vec<PageView> = Vec::new();
    for it in iterations {
        for view in &it.page_views {
            if !combined.iter().any(|v| v.name == view.name) {
                combined.push(view.clone());
            }
        }
    }
    for view in &mut combined {
        let samples: Vec<Vitals> = iterations
            .iter()
            .filter_map(|it| it.page_views.iter().find(|v| v.name == view.name))
            .map(|v| v.vitals.clone())
            .collect();
        let (vitals, spread) = measure::summarise(&samples);
        view.vitals = vitals;
        view.spread = spread;
    }
    combined
}

#[derive(Debug, Default, Clone)]
struct Counters {
    in_flight: i64,
    last_activity: Option<Instant>,
    document_status: Option<u16>,
    step_requests: u32,
    step_bytes: u64,
    step_failed: u32,
    step_console_errors: u32,
}

impl Counters {
    fn start_step(&mut self) {
        self.step_requests = 0;
        self.step_bytes = 0;
        self.step_failed = 0;
        self.step_console_errors = 0;
    }
}

/// Count requests, bytes, failures and console errors from CDP events.
async fn listen(
    page: &Page,
    counters: Arc<std::sync::Mutex<Counters>>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let err = |e: chromiumoxide::error::CdpError| format!("subscribing to page events: {e}");
    let mut sent = page
        .event_listener::<EventRequestWillBeSent>()
        .await
        .map_err(err)?;
    let mut responses = page
        .event_listener::<EventResponseReceived>()
        .await
        .map_err(err)?;
    let mut finished = page
        .event_listener::<EventLoadingFinished>()
        .await
        .map_err(err)?;
    let mut failed = page
        .event_listener::<EventLoadingFailed>()
        .await
        .map_err(err)?;
    let mut console = page
        .event_listener::<EventConsoleApiCalled>()
        .await
        .map_err(err)?;
    let mut exceptions = page
        .event_listener::<EventExceptionThrown>()
        .await
        .map_err(err)?;
    Ok(tokio::spawn(async move {
        loop {
            let now = Instant::now();
            tokio::select! {
                Some(_) = sent.next() => { let mut c = counters.lock().unwrap(); c.in_flight += 1; c.step_requests += 1; c.last_activity = Some(now); }
                Some(e) = responses.next() => {
                    if e.r#type == ResourceType::Document {
                        counters.lock().unwrap().document_status = u16::try_from(e.response.status).ok();
                    }
                }
                Some(e) = finished.next() => { let mut c = counters.lock().unwrap(); c.in_flight -= 1; c.step_bytes += e.encoded_data_length.max(0.0) as u64; c.last_activity = Some(now); }
                Some(_) = failed.next() => { let mut c = counters.lock().unwrap(); c.in_flight -= 1; c.step_failed += 1; c.last_activity = Some(now); }
                Some(e) = console.next() => { if e.r#type == ConsoleApiCalledType::Error { counters.lock().unwrap().step_console_errors += 1; } }
                Some(_) = exceptions.next() => { counters.lock().unwrap().step_console_errors += 1; }
                else => break,
            }
        }
    }))
}

/// No request in flight for `quiet`, bounded by the step timeout around it.
async fn wait_network_idle(counters: &Arc<std::sync::Mutex<Counters>>, quiet: Duration) {
    loop {
        let (in_flight, last) = {
            let c = counters.lock().unwrap();
            (c.in_flight, c.last_activity)
        };
        if in_flight <= 0 && last.is_none_or(|t| t.elapsed() >= quiet) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn prepare(page: &Page, profile: &Profile) -> Result<(), String> {
    profile.apply(page).await?;
    page.execute(AddBindingParams::new(measure::BINDING))
        .await
        .map_err(|e| format!("Runtime.addBinding: {e}"))?;
    page.evaluate_on_new_document(measure::init_script())
        .await
        .map_err(|e| format!("Page.addScriptToEvaluateOnNewDocument: {e}"))?;
    Ok(())
}

/// Read the step's vitals. A step that started a navigation (a form submitted
/// with Enter, a link followed by a script) may still be swapping documents:
/// the old context is gone before the new one exists, so try again briefly
/// rather than lose the new page's numbers.
async fn read_back(page: &Page, script: &str) -> Result<Option<Packet>, String> {
    let mut attempts = 0;
    loop {
        match read_back_once(page, script).await {
            Err(e) if attempts < 10 && navigating(&e) => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// The page's URL after a step, as [`Step::url`](StepResult::url) carries it.
/// chromiumoxide tracks the main frame's URL from navigation events (same
/// document ones too), so this asks no JavaScript of a page that may be
/// between documents.
async fn current_url(page: &Page) -> Option<String> {
    match tokio::time::timeout(Duration::from_secs(5), page.url()).await {
        Ok(Ok(Some(url))) => vitalsign_core::wire::run::page_url(&url),
        _ => None,
    }
}

fn navigating(error: &str) -> bool {
    error.contains("Cannot find context")
        || error.contains("context was destroyed")
        || error.contains("Inspected target navigated")
}

/// How long a step's read-back waits: what the step did that may still be on
/// its way. Input waits for its event-timing entries (frames and a margin); a
/// navigation or a wait for content, for its paints (frames); a step that only
/// looks at the page caused nothing, and the step before waited for its own.
fn read_back_script(action: &Action) -> &'static str {
    match action {
        Action::Assert(_) | Action::Screenshot(_) | Action::Request(_) => measure::READ_BACK_NOW,
        Action::Goto(_) | Action::WaitFor(_) => measure::READ_BACK_FRAMES,
        Action::Click(_)
        | Action::Type { .. }
        | Action::Press(_)
        | Action::Hover(_)
        | Action::Select { .. }
        | Action::Scroll(_) => measure::READ_BACK,
    }
}

async fn read_back_once(page: &Page, script: &str) -> Result<Option<Packet>, String> {
    let params = EvaluateParams::builder()
        .expression(script)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .map_err(|e| e.to_string())?;
    let result = page.evaluate(params).await.map_err(|e| e.to_string())?;
    result
        .into_value::<Option<Packet>>()
        .map_err(|e| e.to_string())
}

async fn eval<T: serde::de::DeserializeOwned>(page: &Page, script: &str) -> Result<T, String> {
    let params = EvaluateParams::builder()
        .expression(script)
        .return_by_value(true)
        .build()
        .map_err(|e| e.to_string())?;
    page.evaluate(params)
        .await
        .map_err(|e| format!("evaluating in the page: {e}"))?
        .into_value::<T>()
        .map_err(|e| format!("reading the page's answer: {e}"))
}

async fn find(page: &Page, selector: &str) -> Result<chromiumoxide::element::Element, String> {
    page.find_element(selector)
        .await
        .map_err(|_| format!("no element matches {selector}"))
}

fn js_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

async fn wait_for(
    page: &Page,
    condition: &WaitFor,
    counters: &Arc<std::sync::Mutex<Counters>>,
) -> Result<(), String> {
    let check = match condition {
        WaitFor::Delay(d) => {
            tokio::time::sleep(*d).await;
            return Ok(());
        }
        WaitFor::NetworkIdle(quiet) => {
            wait_network_idle(counters, *quiet).await;
            return Ok(());
        }
        WaitFor::Selector(s) => format!(
            "(function(){{var e=document.querySelector({});if(!e)return false;var r=e.getBoundingClientRect();return r.width>0&&r.height>0&&getComputedStyle(e).visibility!=='hidden'}})()",
            js_string(s)
        ),
        WaitFor::Text(t) => format!(
            "!!(document.body&&document.body.innerText.indexOf({})>=0)",
            js_string(t)
        ),
        WaitFor::UrlContains(u) => format!("location.href.indexOf({})>=0", js_string(u)),
    };
    // Polls until the step timeout around this call ends it.
    loop {
        if eval::<bool>(page, &check).await.unwrap_or(false) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn assert(
    page: &Page,
    assertion: &Assertion,
    counters: &Arc<std::sync::Mutex<Counters>>,
) -> Result<(), String> {
    match assertion {
        Assertion::TextContains { selector, text } => {
            let script = format!(
                "(function(){{var e=document.querySelector({});return e?e.innerText:null}})()",
                js_string(selector)
            );
            match eval::<Option<String>>(page, &script).await? {
                None => Err(format!("no element matches {selector}")),
                Some(found) if found.contains(text.as_str()) => Ok(()),
                Some(found) => {
                    let shown: String = found.trim().chars().take(80).collect();
                    Err(format!(
                        "text {text:?} not found in {selector} (found {shown:?})"
                    ))
                }
            }
        }
        Assertion::Visible(selector) | Assertion::Hidden(selector) => {
            let script = format!(
                "(function(){{var e=document.querySelector({});if(!e)return 'absent';var r=e.getBoundingClientRect();return r.width>0&&r.height>0&&getComputedStyle(e).visibility!=='hidden'?'visible':'hidden'}})()",
                js_string(selector)
            );
            let state = eval::<String>(page, &script).await?;
            let want_visible = matches!(assertion, Assertion::Visible(_));
            match (want_visible, state.as_str()) {
                (true, "visible") | (false, "hidden") | (false, "absent") => Ok(()),
                (true, "absent") => Err(format!("{selector} is not on the page, expected visible")),
                (true, _) => Err(format!("{selector} is hidden, expected visible")),
                (false, _) => Err(format!("{selector} is visible, expected hidden")),
            }
        }
        Assertion::UrlContains(part) => {
            let url = eval::<String>(page, "location.href").await?;
            if url.contains(part.as_str()) {
                Ok(())
            } else {
                Err(format!("URL is {url}, expected it to contain {part:?}"))
            }
        }
        Assertion::Status(expected) => {
            let status = counters.lock().unwrap().document_status;
            match status {
                Some(s) if s == *expected => Ok(()),
                Some(s) => Err(format!("document status is {s}, expected {expected}")),
                None => Err(format!(
                    "no document was loaded, expected status {expected}"
                )),
            }
        }
    }
}

async fn with_timeout<T>(
    fut: impl std::future::Future<Output = chromiumoxide::error::Result<T>>,
    what: &str,
) -> Result<T, String> {
    match tokio::time::timeout(Duration::from_secs(15), fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(InfraError::Unresponsive(format!("{what} timed out")).to_string()),
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
