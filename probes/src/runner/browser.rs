//! One launched Chromium, and the errors that are ours rather than the site's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use futures::StreamExt;
use tracing::{info, warn};

use super::RunnerConfig;

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
    /// A CDP call that sets up or ends a run failed; `what` names it.
    #[error("{what}: {reason}")]
    Cdp { what: String, reason: String },
}

/// One launched Chromium: Debian's binary, new headless mode, a fresh profile
/// directory of its own, and a CDP handler loop that notices when the browser
/// goes away. Public so that every tool of ours that drives a browser (the
/// agent's demo visitor too) launches it the same way.
pub struct LiveBrowser {
    pub(super) browser: Browser,
    pub(super) pid: Option<u32>,
    pub(super) version: String,
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

pub(super) async fn with_timeout<T>(
    fut: impl std::future::Future<Output = chromiumoxide::error::Result<T>>,
    what: &str,
) -> Result<T, InfraError> {
    match tokio::time::timeout(Duration::from_secs(15), fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(InfraError::Cdp {
            what: what.into(),
            reason: e.to_string(),
        }),
        Err(_) => Err(InfraError::Unresponsive(format!("{what} timed out"))),
    }
}
