//! Sends spooled results to the collector until each is acknowledged.
//!
//! A result leaves the spool only after the collector answered 2xx for the run
//! and for each of its artifacts. The run id makes a repeated POST harmless, so
//! a crash between "collector stored it" and "we deleted it" costs one resend,
//! never a duplicate. Transient failures (connection, 408, 429, 5xx) back off
//! exponentially with full jitter; a 4xx that retrying cannot fix moves the
//! result to `rejected/` where a person can see it.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;
use tracing::{info, warn};
use vitalsign_core::secret::Secret;

use crate::metrics::AgentMetrics;
use crate::spool::{Pending, Spool};

const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug)]
enum Failure {
    /// Try again later.
    Transient(String),
    /// The collector will never take this document.
    Permanent(String),
}

#[derive(Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    base_url: String,
    token: Secret,
    spool: Spool,
    wake: Arc<Notify>,
    metrics: Arc<AgentMetrics>,
}

impl Deliverer {
    pub fn new(base_url: &str, token: Secret, spool: Spool, metrics: Arc<AgentMetrics>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("vitalsign-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("reqwest client with static settings");
        Deliverer {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            token,
            spool,
            wake: Arc::new(Notify::new()),
            metrics,
        }
    }

    /// Tell the delivery loop that something new is in the spool.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Deliver until `shutdown` resolves; then make one last bounded attempt.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = MIN_BACKOFF;
        loop {
            let delay = match self.deliver_pending().await {
                Ok(()) => {
                    backoff = MIN_BACKOFF;
                    None
                }
                Err(reason) => {
                    let wait = rand::rng().random_range(MIN_BACKOFF..=backoff);
                    warn!(%reason, retry_in_ms = wait.as_millis() as u64, spooled = self.spool.depth(), "collector unavailable; results stay spooled");
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    Some(wait)
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => {}
                _ = async {
                    match delay {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending::<()>().await,
                    }
                } => {}
            }
        }
        // Shutting down: one more pass so what finished last is not left behind
        // when the collector is up; whatever fails stays spooled for next start.
        let _ = tokio::time::timeout(Duration::from_secs(10), self.deliver_pending()).await;
    }

    /// Send everything pending, oldest first. Stops at the first transient
    /// failure (the collector is probably down; hammering it helps nobody).
    pub async fn deliver_pending(&self) -> Result<(), String> {
        let ids = self.spool.pending_ids().map_err(|e| e.to_string())?;
        self.metrics.set_spool_depth(ids.len());
        for id in ids {
            let pending = match self.spool.load(&id) {
                Ok(p) => p,
                Err(e) => {
                    warn!(run_id = %id, error = %e, "unreadable spool entry set aside");
                    let _ = self.spool.reject(&id, &e.to_string());
                    continue;
                }
            };
            match self.deliver(&pending).await {
                Ok(()) => {
                    self.spool.remove(&id).map_err(|e| e.to_string())?;
                    self.metrics.delivered();
                    info!(run_id = %id, flow = %pending.run.flow, "result delivered");
                }
                Err(Failure::Permanent(reason)) => {
                    warn!(run_id = %id, %reason, "collector rejected the result; kept in rejected/");
                    self.spool.reject(&id, &reason).map_err(|e| e.to_string())?;
                    self.metrics.rejected();
                }
                Err(Failure::Transient(reason)) => {
                    self.metrics.set_spool_depth(self.spool.depth());
                    return Err(reason);
                }
            }
        }
        self.metrics.set_spool_depth(self.spool.depth());
        Ok(())
    }

    async fn deliver(&self, pending: &Pending) -> Result<(), Failure> {
        let run = &pending.run;
        let url = format!("{}/v1/runs", self.base_url);
        let response = self
            .client
            .post(&url)
            .bearer_auth(self.token.expose())
            .json(run)
            .send()
            .await;
        check(response, "run").await?;
        for (name, path) in &pending.artifacts {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| Failure::Permanent(format!("artifact {name}: {e}")))?;
            let content_type = run
                .artifacts
                .iter()
                .find(|a| &a.name == name)
                .map_or("application/octet-stream", |a| a.content_type.as_str());
            let url = format!(
                "{}/v1/runs/{}/artifacts/{}",
                self.base_url, run.run_id, name
            );
            let response = self
                .client
                .put(&url)
                .bearer_auth(self.token.expose())
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes)
                .send()
                .await;
            check(response, "artifact").await?;
        }
        Ok(())
    }
}

async fn check(response: reqwest::Result<reqwest::Response>, what: &str) -> Result<(), Failure> {
    let response =
        response.map_err(|e| Failure::Transient(format!("{what} upload: {}", without_url(&e))))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    let reason = format!("{what} upload answered {status}: {body}");
    if status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        // A wrong token is a config mistake being fixed, not a bad result: keep it.
        || status == reqwest::StatusCode::UNAUTHORIZED
        || status == reqwest::StatusCode::FORBIDDEN
    {
        Err(Failure::Transient(reason))
    } else {
        Err(Failure::Permanent(reason))
    }
}

/// reqwest errors print the URL; ours carry no secrets in URLs, but the message
/// reads better without repeating it on every retry line.
fn without_url(error: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    let mut deepest = error.to_string();
    while let Some(e) = source {
        deepest = e.to_string();
        source = e.source();
    }
    deepest
}
