//! The steps of one iteration in one page: each step run under its timeout,
//! its vitals read back, its counters and screenshots kept in its result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::browser_protocol::target::CreateTargetParams;
use chromiumoxide::cdp::js_protocol::runtime::EventBindingCalled;
use chromiumoxide::page::{Page, ScreenshotParams};
use futures::{FutureExt, StreamExt};
use sha2::{Digest, Sha256};
use tracing::warn;
use vitalsign_core::wire::ProbeRun;
use vitalsign_core::wire::run::{Artifact, Failure, Outcome};

use super::browser::{InfraError, LiveBrowser, with_timeout};
use super::iteration::Iteration;
use super::network::{Counters, listen};
use super::read_back::{current_url, prepare, read_back, read_back_script};
use super::{RunOptions, Runner};
use crate::attribution::Recorder;
use crate::flow::{Action, Flow};
use crate::measure::{self, Packet};
use crate::step_result::{self, StepError};

impl Runner {
    pub(super) async fn walk(
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
            Err(reason) => {
                return Iteration::infra(InfraError::Cdp {
                    what: "Target.createTarget".into(),
                    reason,
                });
            }
        };
        let page = match with_timeout(live.browser.new_page(target), "Target.createTarget").await {
            Ok(p) => p,
            Err(e) => return Iteration::infra(e),
        };
        if let Err(e) = prepare(&page, &flow.profile).await {
            let _ = page.close().await;
            return Iteration::infra(e);
        }
        let counters = Arc::new(std::sync::Mutex::new(Counters::default()));
        let listeners = match listen(&page, counters.clone()).await {
            Ok(l) => l,
            Err(e) => {
                let _ = page.close().await;
                return Iteration::infra(e);
            }
        };
        let mut handed_over = match page.event_listener::<EventBindingCalled>().await {
            Ok(events) => events,
            Err(e) => {
                listeners.abort();
                let _ = page.close().await;
                return Iteration::infra(InfraError::Cdp {
                    what: "subscribing to Runtime.bindingCalled".into(),
                    reason: e.to_string(),
                });
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
            let mut result = step_result::new(&step.name, step.action.kind(), Outcome::Pass);
            let failure = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error),
                Err(_) => Some(StepError::Timeout(flow.step_timeout)),
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
            if let Some(error) = failure {
                step_result::record_failure(&mut result, &error);
                if let Ok(artifact) = self
                    .screenshot(&page, options, &format!("step-{}-failure", i + 1))
                    .await
                {
                    result.artifacts.push(artifact.name.clone());
                    run.artifacts.push(artifact);
                }
                it.outcome = error.outcome();
                it.failure = Some(Failure {
                    step: Some(i),
                    reason: format!("step {} ({}): {error}", i + 1, step.name),
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

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
